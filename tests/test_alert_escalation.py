"""Who an escalated alert notifies, and when: pure, on the example on-call configuration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ari_controller.alerts.escalation import people_on_rule, step, whole_escalation
from ari_controller.oncall.models import EscalationPolicy, Schedule, User
from ari_controller.oncall.plan import Directory

DATA = Path(__file__).parent / "data" / "oncall"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def example() -> tuple[Directory, dict[str, EscalationPolicy]]:
    data = yaml.safe_load((DATA / "example.yaml").read_text())
    context = {"base_dir": DATA}
    users = []
    for raw in data["users"]:
        # Everyone gets a chat message at once and a webhook after 5 minutes.
        notify = [
            {"method": "chat", "to": "team-chat"},
            {"method": "webhook", "to": "pager", "after_minutes": 5},
        ]
        users.append(User.model_validate({**raw, "notify": notify}, context=context))
    schedules = [Schedule.model_validate(s, context=context) for s in data["schedules"]]
    policies = [
        EscalationPolicy.model_validate(p, context=context) for p in data["escalation_policies"]
    ]
    return Directory.build(users, schedules), {p.id: p for p in policies}


def test_a_rule_notifies_whoever_is_on_call_in_its_schedules_at_that_moment(
    example: tuple[Directory, dict[str, EscalationPolicy]],
) -> None:
    directory, policies = example
    office = dt.datetime(2024, 1, 3, 11, 0, tzinfo=BERLIN)
    evening = dt.datetime(2024, 1, 3, 20, 0, tzinfo=BERLIN)
    assert [u.id for u in people_on_rule(policies["database"], 0, office, directory)] == ["dave"]
    assert [u.id for u in people_on_rule(policies["database"], 0, evening, directory)] == ["alice"]
    # Everyone on a rule, nobody picked at random (unlike the live hunt).
    network = [u.id for u in people_on_rule(policies["network"], 1, office, directory)]
    assert network == ["bob", "dave"]


def test_each_person_is_notified_by_their_own_rules_and_the_next_rule_follows_its_delay(
    example: tuple[Directory, dict[str, EscalationPolicy]],
) -> None:
    directory, policies = example
    at = dt.datetime(2024, 1, 3, 11, 0, tzinfo=BERLIN)
    first = step(policies["database"], 0, 0, at, directory, default_delay_minutes=7)
    assert [(n.user_id, n.method, n.destination, n.due_at - at) for n in first.notifications] == [
        ("dave", "chat", "team-chat", dt.timedelta(0)),
        ("dave", "webhook", "pager", dt.timedelta(minutes=5)),
    ]
    assert (first.next_rule, first.next_round) == (1, 0)
    assert first.next_due == at + dt.timedelta(minutes=15)  # the rule's own delay
    last = step(policies["database"], 1, 0, first.next_due, directory, default_delay_minutes=7)
    assert last.people == ("alice",) and last.next_due is None


def test_the_whole_escalation_repeats_the_policy_and_sees_the_schedule_change(
    example: tuple[Directory, dict[str, EscalationPolicy]],
) -> None:
    directory, policies = example
    repeating = policies["database"].model_copy(update={"repeat": 2})
    # Wednesday 16:50 Berlin: the office layer ends at 17:00, the weekly rotation takes over.
    at = dt.datetime(2024, 1, 3, 16, 50, tzinfo=BERLIN)
    steps = whole_escalation(repeating, at, directory, default_delay_minutes=10)
    assert [(s.round, s.rule, s.people) for s in steps] == [
        (0, 0, ("dave",)),
        (0, 1, ("alice",)),
        (1, 0, ("alice",)),  # 17:15: the rotation's person now
        (1, 1, ("alice",)),
        (2, 0, ("alice",)),
        (2, 1, ("alice",)),
    ]
    assert [s.at - at for s in steps] == [dt.timedelta(minutes=m) for m in (0, 15, 25, 40, 50, 65)]
