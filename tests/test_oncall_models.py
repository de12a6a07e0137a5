"""The on-call configuration: what is accepted, what is refused, and how bad references read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ari_controller.oncall.models import EscalationPolicy, Layer, Schedule, User, WeeklyWindow
from ari_controller.oncall.validate import validate_references

DATA = Path(__file__).parent / "data" / "oncall"


def load_example(
    base_dir: Path = DATA,
) -> tuple[list[User], list[Schedule], list[EscalationPolicy]]:
    data = yaml.safe_load((DATA / "example.yaml").read_text())
    context = {"base_dir": base_dir}
    return (
        [User.model_validate(u, context=context) for u in data["users"]],
        [Schedule.model_validate(s, context=context) for s in data["schedules"]],
        [EscalationPolicy.model_validate(p, context=context) for p in data["escalation_policies"]],
    )


def error_text(model: type[Any], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return str(info.value)


def test_the_example_configuration_is_valid_and_its_references_sound() -> None:
    users, schedules, policies = load_example()
    assert [u.id for u in users] == ["alice", "bob", "carol", "dave"]
    assert users[1].language == "en"  # the default
    assert schedules[0].layers[1].restrictions[0].days == ["mon", "tue", "wed", "thu", "fri"]
    assert schedules[1].ical_path == DATA / "network-oncall.ics"
    assert policies[0].rules[0].escalation_delay_minutes == 15
    assert validate_references(users, schedules, policies) == []


def test_a_contact_must_be_an_asterisk_dial_string() -> None:
    text = error_text(User, {"id": "a", "name": "A", "contacts": ["0170 12345"]})
    assert "'0170 12345' is not an Asterisk dial string" in text
    assert "at least 1 item" in error_text(User, {"id": "a", "name": "A", "contacts": []})
    user = User(id="a", name="A", contacts=["PJSIP/+4917012345@trunk", "Local/accept@responders"])
    assert user.contacts[1] == "Local/accept@responders"


def test_unknown_keys_are_refused_not_ignored() -> None:
    text = error_text(User, {"id": "a", "name": "A", "contacts": ["PJSIP/a"], "phone": "1"})
    assert "phone" in text and "Extra inputs are not permitted" in text


def test_a_schedule_names_a_real_time_zone() -> None:
    text = error_text(Schedule, {"id": "s", "time_zone": "Europe/Berlinn"})
    assert "unknown time zone 'Europe/Berlinn'" in text


def test_shift_lengths() -> None:
    base = {"members": ["a"], "start": "2024-01-01T09:00:00"}
    assert Layer.model_validate({**base, "shift_length": "12h"}).shift_length == 12
    assert Layer.model_validate({**base, "shift_length": 8}).shift_length == 8
    assert Layer.model_validate({**base, "shift_length": "Weekly"}).shift_length == "weekly"
    text = error_text(Layer, {**base, "shift_length": "fortnightly"})
    assert "'fortnightly' is not a shift length" in text
    assert "greater than 0" in error_text(Layer, {**base, "shift_length": 0})


def test_restriction_days_as_ranges_and_windows_past_midnight() -> None:
    assert WeeklyWindow.model_validate({"days": "fri-mon"}).days == ["fri", "sat", "sun", "mon"]
    assert WeeklyWindow.model_validate({"days": "mon,wed"}).days == ["mon", "wed"]
    night = WeeklyWindow.model_validate({"days": ["fri"], "start": "18:00", "end": "08:00"})
    assert night.end == "08:00"
    assert "not a time of day" in error_text(WeeklyWindow, {"days": ["mon"], "start": "9am"})
    assert "would be empty" in error_text(
        WeeklyWindow, {"days": ["mon"], "start": "09:00", "end": "09:00"}
    )
    assert "not a range of days" in error_text(WeeklyWindow, {"days": "mon-fry"})


def test_a_rule_names_someone_and_a_schedule_has_one_source() -> None:
    assert "at least one user or schedule" in error_text(
        EscalationPolicy, {"id": "p", "rules": [{"escalation_delay_minutes": 5}]}
    )
    text = error_text(
        Schedule,
        {
            "id": "s",
            "ical": "x.ics",
            "layers": [{"members": ["a"], "start": "2024-01-01T00:00:00", "shift_length": "daily"}],
        },
    )
    assert "either layers or ical, not both" in text


def test_ical_path_is_relative_to_the_configuration_file(tmp_path: Path) -> None:
    schedule = Schedule.model_validate(
        {"id": "s", "ical": "cal/x.ics"}, context={"base_dir": tmp_path}
    )
    assert schedule.ical_path == tmp_path / "cal" / "x.ics"


def test_every_bad_reference_is_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "stranger.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Zoe\r\n"
        "DTSTART:20240101T090000Z\r\nDTEND:20240102T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    (tmp_path / "broken.ics").write_bytes((DATA / "broken.ics").read_bytes())
    users = [
        User(id="alice", name="Alice", contacts=["PJSIP/alice"]),
        User(id="alice", name="Alice again", contacts=["PJSIP/alice2"]),
    ]
    layer = {"start": "2024-01-01T09:00:00", "shift_length": "daily"}
    context = {"base_dir": tmp_path}
    schedules = [
        Schedule.model_validate(
            {"id": "empty", "layers": [{**layer, "members": []}]}, context=context
        ),
        Schedule.model_validate({"id": "missing", "ical": "nowhere.ics"}, context=context),
        Schedule.model_validate(
            {
                "id": "web",
                "layers": [{**layer, "members": ["alice", "bob"]}],
                "overrides": [
                    {"user": "carol", "start": "2024-01-01T00:00", "end": "2024-01-02T00:00"}
                ],
            },
            context=context,
        ),
        Schedule.model_validate({"id": "broken", "ical": "broken.ics"}, context=context),
        Schedule.model_validate({"id": "stranger", "ical": "stranger.ics"}, context=context),
        Schedule.model_validate({"id": "web", "layers": [{**layer, "members": ["alice"]}]}),
    ]
    policies = [
        EscalationPolicy(id="db", rules=[{"users": ["alice"]}, {"schedules": ["dba-primary"]}]),  # type: ignore[list-item]
        EscalationPolicy(id="db", rules=[{"users": ["alice", "zed"], "schedules": ["web"]}]),  # type: ignore[list-item]
    ]
    problems = validate_references(users, schedules, policies)
    by_path = dict(problems)
    assert (
        "escalation_policies[0].rules[1].schedules[0]",
        "unknown schedule 'dba-primary'",
    ) in problems
    assert ("schedules[2].layers[0].members[1]", "unknown user 'bob'") in problems
    assert ("schedules[2].overrides[0].user", "unknown user 'carol'") in problems
    assert ("escalation_policies[1].rules[0].users[1]", "unknown user 'zed'") in problems
    assert ("schedules[0].layers[0].members", "a rotation with no members") in problems
    assert by_path["users[1].id"] == "duplicate user id 'alice' (also users[0])"
    assert by_path["schedules[5].id"] == "duplicate schedule id 'web' (also schedules[2])"
    assert by_path["escalation_policies[1].id"].startswith("duplicate escalation policy id 'db'")
    assert by_path["schedules[1].ical"].startswith("cannot read")
    assert "nowhere.ics" in by_path["schedules[1].ical"]
    assert by_path["schedules[3].ical"].startswith("not a valid iCalendar file")
    assert "names no known user" in by_path["schedules[4].ical"]
    assert "'Zoe'" in by_path["schedules[4].ical"]
    assert len(problems) == 11
