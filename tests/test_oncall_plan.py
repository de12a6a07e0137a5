"""Whom a call reaches, in which order: plans from escalation policies at given moments."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_controller.oncall.models import EscalationPolicy, Schedule, User
from ari_controller.oncall.plan import CallPlan, Directory, plan
from ari_controller.oncall.schedules import who_is_on_call

DATA = Path(__file__).parent / "data" / "oncall"
UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def example() -> tuple[Directory, dict[str, EscalationPolicy]]:
    data = yaml.safe_load((DATA / "example.yaml").read_text())
    context = {"base_dir": DATA}
    users = [User.model_validate(u, context=context) for u in data["users"]]
    schedules = [Schedule.model_validate(s, context=context) for s in data["schedules"]]
    policies = [
        EscalationPolicy.model_validate(p, context=context) for p in data["escalation_policies"]
    ]
    return Directory.build(users, schedules), {p.id: p for p in policies}


def people(result: CallPlan) -> list[str]:
    return [r.user_id for r in result.responders]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Wednesday 11:00 Berlin: office hours, dave's layer wins; then alice (rule 2).
        (dt.datetime(2024, 1, 3, 11, 0, tzinfo=BERLIN), ["dave", "alice"]),
        # Wednesday 20:00: the weekly rotation, alice's first week; alice is not called twice.
        (dt.datetime(2024, 1, 3, 20, 0, tzinfo=BERLIN), ["alice"]),
        # Second week, Saturday: bob.
        (dt.datetime(2024, 1, 13, 3, 0, tzinfo=BERLIN), ["bob", "alice"]),
        # Easter Saturday: carol's override wins over every layer.
        (dt.datetime(2024, 3, 30, 11, 0, tzinfo=BERLIN), ["carol", "alice"]),
        # Before the first shift of any layer: straight to the named user.
        (dt.datetime(2023, 12, 31, 12, 0, tzinfo=BERLIN), ["alice"]),
    ],
)
def test_database_policy_at_pinned_moments(
    example: tuple[Directory, dict[str, EscalationPolicy]], moment: dt.datetime, expected: list[str]
) -> None:
    directory, policies = example
    result = plan(policies["database"], moment, random.Random(7), directory)
    assert people(result) == expected


def test_reasons_rules_and_contacts(example: tuple[Directory, dict[str, EscalationPolicy]]) -> None:
    directory, policies = example
    result = plan(
        policies["database"],
        dt.datetime(2024, 1, 3, 11, 0, tzinfo=BERLIN),
        random.Random(1),
        directory,
    )
    dave, alice = result.responders
    assert (dave.rule, dave.schedule_id, dave.reason) == (
        0,
        "dba-primary",
        "on call in schedule 'DBA primary'",
    )
    assert (alice.rule, alice.schedule_id, alice.reason) == (1, None, "named in rule 2")
    assert alice.contacts == ("PJSIP/alice", "PJSIP/+4917012345@trunk")
    assert (alice.name, alice.language) == ("Alice Schmidt", "de")


def test_call_everyone_on_rule_with_an_ics_schedule(
    example: tuple[Directory, dict[str, EscalationPolicy]],
) -> None:
    directory, policies = example
    # Tuesday 12 March, New York: carol's calendar week and bob's extra shift overlap.
    moment = dt.datetime(2024, 3, 12, 12, 0, tzinfo=NEW_YORK)
    orders = set()
    for seed in range(30):
        result = plan(policies["network"], moment, random.Random(seed), directory)
        names = people(result)
        # Both on-call people first (rule 1), in random order; bob is not called again in rule 2.
        assert sorted(names[:2]) == ["bob", "carol"] and names[2:] == ["dave"]
        assert all(
            r.reason == "on call in schedule 'Network on call'" for r in result.responders[:2]
        )
        orders.add(tuple(names))
    assert orders == {("bob", "carol", "dave"), ("carol", "bob", "dave")}


def directory_of(*ids: str) -> Directory:
    return Directory.build(
        [User(id=i, name=i.upper(), contacts=[f"PJSIP/{i}", f"PJSIP/{i}-mobile"]) for i in ids]
    )


def test_one_responder_per_rule_is_picked_at_random_and_deterministically() -> None:
    directory = directory_of("a", "b", "c", "d")
    policy = EscalationPolicy.model_validate(
        {"id": "p", "rules": [{"users": ["a", "b", "c"]}, {"users": ["d"]}]}
    )
    at = dt.datetime(2024, 5, 1, tzinfo=UTC)
    picks = Counter(
        people(plan(policy, at, random.Random(seed), directory))[0] for seed in range(300)
    )
    assert set(picks) == {"a", "b", "c"} and min(picks.values()) > 60
    for seed in range(20):
        result = plan(policy, at, random.Random(seed), directory)
        assert len(result.responders) == 2 and people(result)[1] == "d"
        assert result == plan(policy, at, random.Random(seed), directory)


def test_a_person_appearing_twice_is_called_once_in_the_first_place() -> None:
    directory = directory_of("a", "b", "c")
    policy = EscalationPolicy.model_validate(
        {
            "id": "p",
            "rules": [
                {"users": ["a"]},
                {"users": ["a", "b"]},
                {"users": ["b", "a"]},
                {"users": ["c"]},
            ],
        }
    )
    result = plan(policy, dt.datetime(2024, 5, 1, tzinfo=UTC), random.Random(3), directory)
    # Rule 2 can only add b; rule 3 has nobody new and is skipped.
    assert people(result) == ["a", "b", "c"]
    assert [r.rule for r in result.responders] == [0, 1, 3]


def test_unknown_people_and_schedules_are_skipped_not_fatal() -> None:
    directory = directory_of("a")
    policy = EscalationPolicy.model_validate(
        {"id": "p", "rules": [{"users": ["ghost"], "schedules": ["nowhere"]}, {"users": ["a"]}]}
    )
    result = plan(policy, dt.datetime(2024, 5, 1, tzinfo=UTC), random.Random(0), directory)
    assert people(result) == ["a"]


def test_nobody_on_call_gives_an_empty_plan() -> None:
    schedule = Schedule.model_validate(
        {
            "id": "s",
            "layers": [{"members": ["a"], "start": "2030-01-01T00:00:00", "shift_length": "daily"}],
        }
    )
    directory = Directory.build([User(id="a", name="A", contacts=["PJSIP/a"])], [schedule])
    policy = EscalationPolicy.model_validate({"id": "p", "rules": [{"schedules": ["s"]}]})
    result = plan(policy, dt.datetime(2024, 5, 1, tzinfo=UTC), random.Random(0), directory)
    assert result.empty


def test_a_moment_without_a_time_zone_is_refused() -> None:
    policy = EscalationPolicy.model_validate({"id": "p", "rules": [{"users": ["a"]}]})
    with pytest.raises(ValueError, match="time zone"):
        plan(policy, dt.datetime(2024, 5, 1), random.Random(0), directory_of("a"))


# --- properties over random directories, policies and moments -------------------------------

USER_IDS = [f"u{i}" for i in range(8)]
SCHEDULE_IDS = [f"s{i}" for i in range(4)]


@st.composite
def schedules(draw: st.DrawFn, schedule_id: str) -> Schedule:
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        layer: dict[str, Any] = {
            "members": draw(st.lists(st.sampled_from(USER_IDS), min_size=1, max_size=4)),
            "start": draw(
                st.datetimes(dt.datetime(2023, 1, 1), dt.datetime(2025, 1, 1))
            ).isoformat(),
            "shift_length": draw(st.sampled_from(["daily", "weekly", 8, 12, 24])),
        }
        if draw(st.booleans()):
            start, end = draw(
                st.sampled_from([("09:00", "17:00"), ("18:00", "08:00"), ("00:00", "24:00")])
            )
            layer["restrictions"] = [
                {
                    "days": draw(st.sampled_from(["mon-fri", "sat-sun", "fri-mon"])),
                    "start": start,
                    "end": end,
                }
            ]
        layers.append(layer)
    overrides = []
    if draw(st.booleans()):
        begin = draw(st.datetimes(dt.datetime(2023, 6, 1), dt.datetime(2025, 6, 1)))
        overrides.append(
            {
                "user": draw(st.sampled_from(USER_IDS)),
                "start": begin.isoformat(),
                "end": (begin + dt.timedelta(hours=draw(st.integers(1, 200)))).isoformat(),
            }
        )
    zone = draw(st.sampled_from(["Europe/Berlin", "America/New_York", "UTC"]))
    return Schedule.model_validate(
        {"id": schedule_id, "time_zone": zone, "layers": layers, "overrides": overrides}
    )


rules = st.fixed_dictionaries(
    {
        "users": st.lists(st.sampled_from(USER_IDS), max_size=3),
        "schedules": st.lists(st.sampled_from(SCHEDULE_IDS), max_size=3),
    }
).filter(lambda rule: bool(rule["users"] or rule["schedules"]))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Directory, EscalationPolicy, dt.datetime, int]:
    users = [User(id=u, name=u.upper(), contacts=[f"PJSIP/{u}"]) for u in USER_IDS]
    directory = Directory.build(users, [draw(schedules(s)) for s in SCHEDULE_IDS])
    policy = EscalationPolicy.model_validate(
        {
            "id": "p",
            "rules": draw(st.lists(rules, min_size=1, max_size=5)),
            "call_everyone_on_rule": draw(st.booleans()),
        }
    )
    moment = draw(
        st.datetimes(
            dt.datetime(2023, 1, 1),
            dt.datetime(2026, 1, 1),
            timezones=st.sampled_from([UTC, BERLIN, NEW_YORK]),
        )
    )
    return directory, policy, moment, draw(st.integers(0, 2**32))


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_plan_properties(world: tuple[Directory, EscalationPolicy, dt.datetime, int]) -> None:
    directory, policy, moment, seed = world
    result = plan(policy, moment, random.Random(seed), directory)
    ids = people(result)
    # Nobody twice.
    assert len(ids) == len(set(ids))
    # Rules in order.
    assert [r.rule for r in result.responders] == sorted(r.rule for r in result.responders)
    planned: set[str] = set()
    for number, rule in enumerate(policy.rules):
        on_call = {
            u for s in rule.schedules for u in who_is_on_call(directory.schedules[s], moment)
        }
        eligible = (set(rule.users) | on_call) - planned
        chosen = [r for r in result.responders if r.rule == number]
        for responder in chosen:
            # Only people on call at that moment, or named directly.
            if responder.schedule_id is None:
                assert responder.user_id in rule.users
            else:
                assert responder.schedule_id in rule.schedules
                assert responder.user_id in who_is_on_call(
                    directory.schedules[responder.schedule_id], moment
                )
        if policy.call_everyone_on_rule:
            assert {r.user_id for r in chosen} == eligible
        else:
            assert len(chosen) == (1 if eligible else 0)
        planned |= {r.user_id for r in chosen}
    # Deterministic given the seed.
    assert result == plan(policy, moment, random.Random(seed), directory)
