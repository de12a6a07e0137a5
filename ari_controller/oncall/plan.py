"""Whom to call, in which order, for an escalation policy at a given moment.

The rules are walked in order. Each rule's candidates are its named users (in the order
written) followed by whoever is on call in its schedules at that moment; anyone already in the
plan from an earlier rule, or unknown to the directory, is dropped first (a person appearing
twice is called once: the first place wins). Of the remaining candidates one is picked at
random; with the policy's `call_everyone_on_rule: true` the others follow, in random order,
before the next rule.

Pure: the moment and the random source are arguments; `Directory.build` is the one place that
reads files (iCalendar schedules), once at start-up.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from ari_controller.oncall.ical import read_calendar
from ari_controller.oncall.models import EscalationPolicy, Rule, Schedule, User
from ari_controller.oncall.schedules import OnCallSchedule


@dataclass(frozen=True, slots=True)
class Responder:
    """One person to call, with the contacts to try in order and why they are in the plan."""

    user_id: str
    name: str
    language: str
    contacts: tuple[str, ...]
    rule: int  # 0-based index of the rule they came from
    schedule_id: str | None  # the schedule that put them on call, None when named directly
    reason: str  # "on call in schedule 'DBA primary'" or "named in rule 2"


@dataclass(frozen=True, slots=True)
class CallPlan:
    policy_id: str
    at: dt.datetime
    responders: tuple[Responder, ...]

    @property
    def empty(self) -> bool:
        """Nobody to call: go to voicemail, or tell the caller no one is available."""
        return not self.responders


@dataclass(frozen=True)
class Directory:
    """Users and compiled schedules by id: what `plan` looks people up in."""

    users: Mapping[str, User]
    schedules: Mapping[str, OnCallSchedule] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        users: Iterable[User],
        schedules: Iterable[Schedule] = (),
    ) -> Directory:
        """Compile every schedule. Reads the .ics file of each `ical` schedule (resolved against
        the config file's directory); raises ical.CalendarError if one cannot be read."""
        user_list = list(users)
        by_id = {u.id: u for u in user_list}
        compiled: dict[str, OnCallSchedule] = {}
        for schedule in schedules:
            path = schedule.ical_path
            shifts = read_calendar(path, schedule.zone) if path is not None else None
            compiled[schedule.id] = OnCallSchedule.from_config(schedule, user_list, shifts)
        return cls(users=by_id, schedules=compiled)


def _responder(user: User, rule: int, schedule: OnCallSchedule | None) -> Responder:
    reason = f"on call in schedule '{schedule.name}'" if schedule else f"named in rule {rule + 1}"
    return Responder(
        user_id=user.id,
        name=user.name,
        language=user.language,
        contacts=tuple(user.contacts),
        rule=rule,
        schedule_id=schedule.id if schedule else None,
        reason=reason,
    )


def on_rule(
    rule: Rule, at: dt.datetime, directory: Directory
) -> Iterator[tuple[User, OnCallSchedule | None]]:
    """Everyone a rule names at `at`, in order: its users, then whoever is on call in its
    schedules, each with the schedule that put them there (None: named directly). A person
    may come more than once; unknown people and schedules are skipped."""
    for user_id in rule.users:
        user = directory.users.get(user_id)
        if user is not None:
            yield user, None
    for schedule_id in rule.schedules:
        schedule = directory.schedules.get(schedule_id)
        if schedule is None:
            continue
        for user_id in schedule.on_call(at):
            user = directory.users.get(user_id)
            if user is not None:
                yield user, schedule


def plan(
    policy: EscalationPolicy,
    at: dt.datetime,
    rng: random.Random,
    directory: Directory,
) -> CallPlan:
    """The ordered responders to call for `policy` at `at` (aware), random picks from `rng`."""
    if at.tzinfo is None:
        raise ValueError("the moment must carry a time zone")
    planned: set[str] = set()
    responders: list[Responder] = []
    for number, rule in enumerate(policy.rules):
        candidates: dict[str, Responder] = {}
        for user, schedule in on_rule(rule, at, directory):
            if user.id not in planned and user.id not in candidates:
                candidates[user.id] = _responder(user, number, schedule)
        if not candidates:
            continue
        pool = list(candidates.values())
        if policy.call_everyone_on_rule:
            rng.shuffle(pool)
            chosen = pool
        else:
            chosen = [pool[rng.randrange(len(pool))]]
        for responder in chosen:
            planned.add(responder.user_id)
            responders.append(responder)
    return CallPlan(policy_id=policy.id, at=at, responders=tuple(responders))
