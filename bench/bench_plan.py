"""How long does resolving a call plan take? 2,000 users, 500 schedules, 200 policies.

Builds the directory once, then times many `plan()` calls at random moments and prints the
per-plan percentiles. A benchmark that prints figures, not a test; the target is < 1 ms.

    .venv/bin/python bench/bench_plan.py [--plans 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ari_controller.oncall.models import EscalationPolicy, Schedule, User
from ari_controller.oncall.plan import Directory, plan

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney"]
SHIFT_LENGTHS: list[Any] = ["daily", "weekly", 8, 12, 24]
ICAL_SCHEDULES = 25  # of the 500, read from generated .ics files with weekly RRULEs


def build_users(count: int) -> list[User]:
    return [
        User(
            id=f"user{i}",
            name=f"User {i}",
            email=f"user{i}@example.com",
            contacts=[f"PJSIP/user{i}", f"PJSIP/+4930{i:06}@trunk"],
        )
        for i in range(count)
    ]


def layered_schedule(rng: random.Random, index: int, users: list[User]) -> Schedule:
    layers = []
    for _ in range(rng.randint(1, 3)):
        layer: dict[str, Any] = {
            "members": [u.id for u in rng.sample(users, rng.randint(2, 8))],
            "start": dt.datetime(2023, 1, 1) + dt.timedelta(hours=rng.randrange(24 * 365)),
            "shift_length": rng.choice(SHIFT_LENGTHS),
        }
        if rng.random() < 0.5:
            layer["restrictions"] = [
                {"days": "mon-fri", "start": "09:00", "end": "17:00"},
                {"days": ["sat"], "start": "22:00", "end": "06:00"},
            ]
        layers.append(layer)
    overrides = []
    for _ in range(rng.randint(0, 5)):
        begin = dt.datetime(2024, 1, 1) + dt.timedelta(hours=rng.randrange(24 * 730))
        overrides.append(
            {
                "user": rng.choice(users).id,
                "start": begin,
                "end": begin + dt.timedelta(hours=rng.randint(1, 72)),
            }
        )
    return Schedule.model_validate(
        {
            "id": f"sched{index}",
            "time_zone": rng.choice(ZONES),
            "layers": layers,
            "overrides": overrides,
        }
    )


def ical_schedule(rng: random.Random, index: int, users: list[User], directory: Path) -> Schedule:
    people = rng.sample(users, 4)
    events = []
    for turn, user in enumerate(people):
        start = dt.datetime(2024, 1, 1, 9) + dt.timedelta(weeks=turn)
        end = start + dt.timedelta(weeks=1)
        events.append(
            "BEGIN:VEVENT\r\n"
            f"UID:{index}-{turn}@bench\r\nSUMMARY:On call - {user.name}\r\n"
            f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}\r\n"
            f"DTEND;TZID=Europe/Berlin:{end:%Y%m%dT%H%M%S}\r\n"
            f"RRULE:FREQ=WEEKLY;INTERVAL={len(people)}\r\n"
            f"ATTENDEE;CN={user.name}:mailto:{user.email}\r\nEND:VEVENT\r\n"
        )
    path = directory / f"sched{index}.ics"
    path.write_text("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "".join(events) + "END:VCALENDAR\r\n")
    return Schedule.model_validate(
        {"id": f"sched{index}", "time_zone": "Europe/Berlin", "ical": path.name},
        context={"base_dir": directory},
    )


def build_policies(
    rng: random.Random, count: int, users: list[User], schedules: list[Schedule]
) -> list[EscalationPolicy]:
    policies = []
    for i in range(count):
        rules = []
        for _ in range(rng.randint(1, 4)):
            rules.append(
                {
                    "users": [u.id for u in rng.sample(users, rng.randint(0, 2))],
                    "schedules": [s.id for s in rng.sample(schedules, rng.randint(1, 3))],
                }
            )
        policies.append(
            EscalationPolicy.model_validate(
                {"id": f"policy{i}", "rules": rules, "call_everyone_on_rule": rng.random() < 0.3}
            )
        )
    return policies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plans", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    users = build_users(2000)
    with tempfile.TemporaryDirectory() as tmp:
        schedules = [ical_schedule(rng, i, users, Path(tmp)) for i in range(ICAL_SCHEDULES)]
        schedules += [layered_schedule(rng, i, users) for i in range(ICAL_SCHEDULES, 500)]
        policies = build_policies(rng, 200, users, schedules)
        began = time.perf_counter()
        directory = Directory.build(users, schedules)
        built = time.perf_counter() - began

    window = int(dt.timedelta(days=3 * 365).total_seconds())
    origin = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    calls = [
        (rng.choice(policies), origin + dt.timedelta(seconds=rng.randrange(window)))
        for _ in range(args.plans)
    ]
    pick = random.Random(args.seed)
    for policy, at in calls[:500]:  # warm-up: first touches of lazily expanded calendars
        plan(policy, at, pick, directory)

    durations = []
    responders = 0
    clock = time.perf_counter_ns
    for policy, at in calls:
        started = clock()
        result = plan(policy, at, pick, directory)
        durations.append(clock() - started)
        responders += len(result.responders)
    durations.sort()

    def ms(ns: float) -> str:
        return f"{ns / 1e6:.4f} ms"

    p50, p99 = durations[len(durations) // 2], durations[int(len(durations) * 0.99)]
    print(
        f"directory: {len(users)} users, {len(schedules)} schedules "
        f"({ICAL_SCHEDULES} iCalendar), {len(policies)} policies; built in {built * 1000:.0f} ms"
    )
    print(
        f"plans: {len(calls)} at random moments over 3 years, "
        f"{responders / len(calls):.2f} responders per plan"
    )
    print(
        f"per plan: p50 {ms(p50)}  p99 {ms(p99)}  "
        f"mean {ms(statistics.fmean(durations))}  max {ms(durations[-1])}"
    )
    print("target < 1 ms per plan:", "met" if p99 < 1e6 else "NOT met")


if __name__ == "__main__":
    main()
