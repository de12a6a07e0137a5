"""`ari-controller explain` against config.example.yaml at pinned moments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ari_controller.cli import main

EXAMPLE = str(Path(__file__).resolve().parent.parent / "config.example.yaml")


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["explain", "--config", EXAMPLE, "--json", *args]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def users(report: dict[str, object]) -> list[str]:
    plan = report["plan"]
    assert isinstance(plan, list)
    return [p["user"] for p in plan]


def test_weekday_office_hours_database_team(capsys: pytest.CaptureFixture[str]) -> None:
    # Tuesday 10:00 Berlin: Carol's office-hours layer overrides the weekly rotation.
    report = explain(
        capsys, "--number", "+4930123456", "--at", "2026-11-24T10:00:00+01:00", "--choice", "1"
    )
    assert report["in_support_hours"] is True
    assert report["greeting"] == "You have reached Acme Operations."
    assert report["menu"] == [
        "For the database team, press 1.",
        "For site reliability, press 2.",
        "To hear these options again, press star.",
    ]
    assert report["route"] == {"digit": "1", "label": "the database team", "policy": "dba"}
    assert report["mode"] == "sequential"
    assert users(report) == ["carol", "erin"]
    assert report["plan"][0]["contacts"] == ["PJSIP/carol", "PJSIP/+4917033333333@trunk"]  # type: ignore[index]


def test_evening_outside_hours_takes_the_urgent_route(capsys: pytest.CaptureFixture[str]) -> None:
    # Saturday 22:00: outside hours; the only outside route; Alice holds the weekly rotation.
    report = explain(capsys, "--number", "+4930123456", "--at", "2026-11-28T22:00:00+01:00")
    assert report["in_support_hours"] is False
    assert report["route"]["label"] == "urgent database problems"  # type: ignore[index]
    assert users(report) == ["alice", "erin"]


def test_next_week_hands_over_to_bob_and_christmas_override(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = explain(capsys, "--number", "+4930123456", "--at", "2026-12-05T22:00:00+01:00")
    assert users(report) == ["bob", "erin"]
    report = explain(capsys, "--number", "+4930123456", "--at", "2026-12-25T10:00:00+01:00")
    assert report["in_support_hours"] is False  # holiday
    assert users(report) == ["dave", "erin"]  # the override wins


def test_simultaneous_route_from_the_calendar(capsys: pytest.CaptureFixture[str]) -> None:
    report = explain(
        capsys, "--number", "+4930123456", "--at", "2026-11-24T10:00:00+01:00", "--choice", "2"
    )
    assert report["mode"] == "simultaneous"
    assert users(report)[0] == "carol"  # the .ics shift of that week
    assert set(users(report)[1:]) == {"alice", "dave"}


def test_german_number_with_only_a_greeting(capsys: pytest.CaptureFixture[str]) -> None:
    report = explain(capsys, "--number", "+4940555000", "--at", "2026-11-24T10:00:00+01:00")
    assert report["greeting"] == "Willkommen bei der Acme Hotline." and report["menu"] == []
    report = explain(capsys, "--number", "+4940555000", "--at", "2026-11-24T19:00:00+01:00")
    assert report["outcome"] == "message" and report["plan"] == []


def test_unknown_number_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--config", EXAMPLE, "--number", "999"]) == 2
    assert "no number with did '999'" in capsys.readouterr().err


def test_who_an_escalated_alert_would_notify_and_when(capsys: pytest.CaptureFixture[str]) -> None:
    # Saturday 22:00: Alice (weekly rotation) is rule 1 and the only one with a chat rule.
    report = explain(capsys, "--number", "+4930123456", "--at", "2026-11-28T22:00:00+01:00")
    steps = report["escalation"]
    assert isinstance(steps, list)
    assert [(s["rule"], s["people"]) for s in steps] == [(1, ["alice"]), (2, ["erin"])]
    assert steps[0]["at"] == "2026-11-28T22:00:00+01:00"
    assert steps[0]["messages"] == [
        {"user": "alice", "method": "chat", "to": "team-chat", "at": "2026-11-28T22:00:00+01:00"}
    ]
    assert steps[1]["messages"] == []  # Erin has no notification rules
    # The text form says the same.
    assert (
        main(
            [
                "explain",
                "--config",
                EXAMPLE,
                "--number",
                "+4930123456",
                "--at",
                "2026-11-28T22:00:00+01:00",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "If its alert escalated now and nobody acknowledged:" in text
    assert "alice by chat to team-chat" in text
