"""Does every reference in the on-call configuration point at something that exists, once?

Each problem is (path, message), the path spelled as in the configuration file, e.g.
("escalation_policies[0].rules[1].schedules[0]", "unknown schedule 'dba-primary'").
Reads the .ics file of each `ical` schedule to check it can be used.
"""

from __future__ import annotations

from collections.abc import Sequence

from ari_controller.oncall.ical import CalendarError, read_calendar, user_index, users_of
from ari_controller.oncall.models import EscalationPolicy, Schedule, User

Problem = tuple[str, str]


def _duplicates(kind: str, section: str, ids: Sequence[str]) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for i, item_id in enumerate(ids):
        if item_id in first:
            problems.append(
                (
                    f"{section}[{i}].id",
                    f"duplicate {kind} id '{item_id}' (also {section}[{first[item_id]}])",
                )
            )
        else:
            first[item_id] = i
    return problems


def _calendar_problems(path: str, schedule: Schedule, users: Sequence[User]) -> list[Problem]:
    ics = schedule.ical_path
    if ics is None:
        return []
    try:
        shifts = read_calendar(ics, schedule.zone)
    except CalendarError as exc:
        return [(path, str(exc))]
    index = user_index(users)
    problems: list[Problem] = []
    for shift in shifts:
        if not users_of(shift, index):
            named = ", ".join(f"'{n}'" for n in shift.names) or "nobody"
            problems.append(
                (path, f"{shift.describe()} names no known user ({shift.source}: {named})")
            )
    return problems


def validate_references(
    users: Sequence[User],
    schedules: Sequence[Schedule],
    policies: Sequence[EscalationPolicy],
) -> list[tuple[str, str]]:
    """Every bad reference as (path, message); an empty list means the references are sound."""
    problems: list[Problem] = []
    problems += _duplicates("user", "users", [u.id for u in users])
    problems += _duplicates("schedule", "schedules", [s.id for s in schedules])
    problems += _duplicates("escalation policy", "escalation_policies", [p.id for p in policies])
    user_ids = {u.id for u in users}
    schedule_ids = {s.id for s in schedules}

    for s, schedule in enumerate(schedules):
        where = f"schedules[{s}]"
        for l, layer in enumerate(schedule.layers):  # noqa: E741
            if not layer.members:
                problems.append((f"{where}.layers[{l}].members", "a rotation with no members"))
            for m, member in enumerate(layer.members):
                if member not in user_ids:
                    problems.append(
                        (f"{where}.layers[{l}].members[{m}]", f"unknown user '{member}'")
                    )
        for o, override in enumerate(schedule.overrides):
            if override.user not in user_ids:
                problems.append((f"{where}.overrides[{o}].user", f"unknown user '{override.user}'"))
        problems += _calendar_problems(f"{where}.ical", schedule, users)

    for p, policy in enumerate(policies):
        for r, rule in enumerate(policy.rules):
            where = f"escalation_policies[{p}].rules[{r}]"
            for u, user_id in enumerate(rule.users):
                if user_id not in user_ids:
                    problems.append((f"{where}.users[{u}]", f"unknown user '{user_id}'"))
            for k, schedule_id in enumerate(rule.schedules):
                if schedule_id not in schedule_ids:
                    problems.append(
                        (f"{where}.schedules[{k}]", f"unknown schedule '{schedule_id}'")
                    )
    return problems
