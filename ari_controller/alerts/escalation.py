"""Who an escalated alert notifies, how, and when the next rule comes. Pure: the moment and
the directory are arguments.

An escalation walks its policy's rules: rule n notifies everyone on it (its users and whoever
is on call in its schedules at that moment), each through their own notification rules; after
the rule's `escalation_delay_minutes` the next rule follows, until someone acknowledges. With
`repeat: N` the whole policy runs N more times. Unlike the live hunt (which calls one person
per rule and ignores the delays, because a caller is waiting), nobody here is picked at random:
an alert is not a phone that only one person can answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ari_controller.oncall.models import EscalationPolicy, NotifyMethod, User
from ari_controller.oncall.plan import Directory, on_rule


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one person through one destination, due at a moment."""

    user_id: str
    user_name: str
    method: NotifyMethod
    destination: str
    mention: str | None
    due_at: dt.datetime
    rule: int  # 0-based index of the policy rule that notified them


@dataclass(frozen=True, slots=True)
class Step:
    """What notifying one rule means: who, the messages, and what comes after it."""

    at: dt.datetime
    rule: int
    round: int
    people: tuple[str, ...]  # user ids, in the rule's order
    notifications: tuple[Notification, ...]
    # The rule and round of the next step and when it is due; None when this was the last.
    next_rule: int | None
    next_round: int | None
    next_due: dt.datetime | None


def people_on_rule(
    policy: EscalationPolicy, rule: int, at: dt.datetime, directory: Directory
) -> list[User]:
    """Everyone the rule names: its users, then whoever is on call in its schedules at `at`."""
    if at.tzinfo is None:
        raise ValueError("the moment must carry a time zone")
    chosen: dict[str, User] = {}
    for user, _schedule in on_rule(policy.rules[rule], at, directory):
        chosen.setdefault(user.id, user)
    return list(chosen.values())


def notifications_for(user: User, rule: int, at: dt.datetime) -> list[Notification]:
    """The messages a person's notification rules make of being notified at `at`."""
    return [
        Notification(
            user.id,
            user.name,
            notify.method,
            notify.destination,
            notify.mention,
            at + dt.timedelta(minutes=notify.after_minutes),
            rule,
        )
        for notify in user.notify
    ]


def step(
    policy: EscalationPolicy,
    rule: int,
    round_: int,
    at: dt.datetime,
    directory: Directory,
    default_delay_minutes: float,
) -> Step:
    """Notify rule `rule` of round `round_` at `at`, and say what follows."""
    people = people_on_rule(policy, rule, at, directory)
    notifications = [n for user in people for n in notifications_for(user, rule, at)]
    delay = policy.rules[rule].escalation_delay_minutes
    next_due = at + dt.timedelta(minutes=default_delay_minutes if delay is None else delay)
    if rule + 1 < len(policy.rules):
        next_rule, next_round = rule + 1, round_
    elif round_ < policy.repeat:
        next_rule, next_round = 0, round_ + 1
    else:
        return Step(
            at, rule, round_, tuple(u.id for u in people), tuple(notifications), None, None, None
        )
    return Step(
        at,
        rule,
        round_,
        tuple(u.id for u in people),
        tuple(notifications),
        next_rule,
        next_round,
        next_due,
    )


def whole_escalation(
    policy: EscalationPolicy, at: dt.datetime, directory: Directory, default_delay_minutes: float
) -> list[Step]:
    """Every step of an escalation that starts at `at` and that nobody acknowledges (what
    `explain` shows): each rule at its moment, with who is on call then."""
    steps = [step(policy, 0, 0, at, directory, default_delay_minutes)]
    while True:
        last = steps[-1]
        if last.next_due is None or last.next_rule is None or last.next_round is None:
            return steps
        steps.append(
            step(
                policy,
                last.next_rule,
                last.next_round,
                last.next_due,
                directory,
                default_delay_minutes,
            )
        )
