"""Who is on call: for each escalation policy, who a call would reach at a moment, and when
that changes over the following days. Pure: the configuration's compiled directory and the
moment are arguments.

A call picks at random among several people of one rule (oncall/plan.py); this view does not
draw: it shows each rule's people in the order the planner considers them, and says where a
call picks. The candidates come from `plan.on_rule`, the same lookup the planner makes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ari_controller.config import Config
from ari_controller.oncall.models import EscalationPolicy
from ari_controller.oncall.plan import Directory, on_rule
from ari_controller.oncall.schedules import OnCallSchedule

# A schedule with hourly shifts hands off 168 times a week; this stops a pathological one
# (minutes-long overrides back to back) from making the page endless.
MAX_HANDOFFS = 500


@dataclass(frozen=True, slots=True)
class Person:
    user_id: str
    name: str
    reason: str  # as the planner words it: "on call in schedule 'X'" or "named in rule 2"


@dataclass(frozen=True, slots=True)
class RuleNow:
    number: int  # 1-based, as people speak of rules
    people: tuple[Person, ...]  # in the planner's order, each person once

    @property
    def summary(self) -> str:
        return " or ".join(p.name for p in self.people)


@dataclass(frozen=True, slots=True)
class PolicyNow:
    policy_id: str
    name: str
    at: dt.datetime
    call_everyone_on_rule: bool
    rules: tuple[RuleNow, ...]  # only rules with someone to call

    @property
    def nobody(self) -> bool:
        return not self.rules

    @property
    def order(self) -> str:
        """'Bea Busy, then Dan Declines or Ana Accepts' ('nobody' when empty)."""
        joiner = " and " if self.call_everyone_on_rule else " or "
        parts = [joiner.join(p.name for p in rule.people) for rule in self.rules]
        return ", then ".join(parts) or "nobody"


@dataclass(frozen=True, slots=True)
class Handoff:
    at: dt.datetime  # in the zone of the view it belongs to
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class ScheduleWeek:
    schedule_id: str
    name: str
    time_zone: str
    now: str  # who is on call at the start
    handoffs: tuple[Handoff, ...]


@dataclass(frozen=True, slots=True)
class PolicyView:
    now: PolicyNow
    time_zone: str  # its first schedule's, else UTC: where its hand-offs are shown
    schedules: tuple[ScheduleWeek, ...]
    handoffs: tuple[Handoff, ...]  # when who a call would reach changes


def _names(user_ids: list[str], directory: Directory) -> str:
    names = [directory.users[u].name if u in directory.users else u for u in user_ids]
    return ", ".join(names) or "nobody"


def policy_now(policy: EscalationPolicy, at: dt.datetime, directory: Directory) -> PolicyNow:
    """Each rule's people at `at`, as the planner would consider them.

    The planner skips a person already planned by an earlier rule; here that is someone an
    earlier rule calls for certain (its only person, or everyone on it); a person who is
    one of several an earlier rule picks from stays listed, since the pick may go elsewhere.
    """
    certain: set[str] = set()
    rules: list[RuleNow] = []
    for index, rule in enumerate(policy.rules):
        people: dict[str, Person] = {}
        for user, schedule in on_rule(rule, at, directory):
            if user.id in certain or user.id in people:
                continue
            reason = (
                f"on call in schedule '{schedule.name}'"
                if schedule is not None
                else f"named in rule {index + 1}"
            )
            people[user.id] = Person(user.id, user.name, reason)
        if not people:
            continue
        if len(people) == 1 or policy.call_everyone_on_rule:
            certain.update(people)
        rules.append(RuleNow(index + 1, tuple(people.values())))
    return PolicyNow(
        policy_id=policy.id,
        name=policy.display_name,
        at=at,
        call_everyone_on_rule=policy.call_everyone_on_rule,
        rules=tuple(rules),
    )


def schedule_handoffs(
    schedule: OnCallSchedule, directory: Directory, start: dt.datetime, end: dt.datetime
) -> tuple[Handoff, ...]:
    """Every moment in [start, end) at which someone else goes on call, in the schedule's
    zone, with who was on before and who is after."""
    handoffs: list[Handoff] = []
    before = schedule.on_call(start)
    at = start
    while len(handoffs) < MAX_HANDOFFS:
        change = schedule.next_handoff(at)
        if change is None or change >= end:
            break
        after = schedule.on_call(change)
        handoffs.append(
            Handoff(
                change.astimezone(schedule.zone),
                _names(before, directory),
                _names(after, directory),
            )
        )
        before, at = after, change
    return tuple(handoffs)


def _policy_schedules(policy: EscalationPolicy, directory: Directory) -> list[OnCallSchedule]:
    found: dict[str, OnCallSchedule] = {}
    for rule in policy.rules:
        for schedule_id in rule.schedules:
            schedule = directory.schedules.get(schedule_id)
            if schedule is not None:
                found.setdefault(schedule_id, schedule)
    return list(found.values())


def policy_view(
    policy: EscalationPolicy, directory: Directory, start: dt.datetime, days: int = 7
) -> PolicyView:
    """Who a call reaches at `start`, and the hand-offs of the next `days` days: of each
    schedule the policy uses, and of the policy as a whole (only those that change who a call
    reaches: a schedule handing over to someone an earlier rule calls anyway is not one)."""
    if start.tzinfo is None:
        raise ValueError("the moment must carry a time zone")
    end = start + dt.timedelta(days=days)
    schedules = _policy_schedules(policy, directory)
    tz = schedules[0].zone if schedules else dt.UTC
    weeks = tuple(
        ScheduleWeek(
            schedule_id=schedule.id,
            name=schedule.name,
            time_zone=schedule.config.time_zone,
            now=_names(schedule.on_call(start), directory),
            handoffs=schedule_handoffs(schedule, directory, start, end),
        )
        for schedule in schedules
    )
    moments = sorted({h.at.astimezone(dt.UTC) for week in weeks for h in week.handoffs})
    now = policy_now(policy, start, directory)
    handoffs: list[Handoff] = []
    before = now
    for moment in moments:
        after = policy_now(policy, moment, directory)
        if after.rules != before.rules:
            handoffs.append(Handoff(moment.astimezone(tz), before.order, after.order))
            before = after
    return PolicyView(
        now=now,
        time_zone=schedules[0].config.time_zone if schedules else "UTC",
        schedules=weeks,
        handoffs=tuple(handoffs),
    )


def oncall_views(
    config: Config, directory: Directory, start: dt.datetime, days: int = 7
) -> list[PolicyView]:
    """Every escalation policy of the configuration, in its order."""
    return [policy_view(p, directory, start, days) for p in config.escalation_policies]
