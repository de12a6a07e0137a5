"""Screening on real Asterisk 22. Machines told from people: talk detection (TALK_DETECT) on
the caller's channel while the menu is offered; a recorded announcement talking through the
menu is asked "If you are a person, press any key now." and goes to voicemail only, a silent
caller never is. A blocked caller with no message is rejected unanswered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import RealStack, wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]

SECTIONS: dict[str, Any] = {
    "users": [{"id": "ana", "name": "Ana", "contacts": [responder("accepts")]}],
    "escalation_policies": [{"id": "ops", "name": "Ops", "rules": [{"users": ["ana"]}]}],
    "numbers": [
        {
            "did": "7001",
            "name": "Machine Desk",
            "routes": [
                {"label": "operations", "policy": "ops"},
                {"label": "security", "policy": "ops"},
            ],
            "menu": {"max_attempts": 1, "input_timeout_s": 3, "default": {"action": "goodbye"}},
            "voicemail": {"enabled": True, "max_duration_s": 20, "max_silence_s": 2},
            "screening": {"machines": {"enabled": True, "min_talk_s": 4, "confirm_s": 2}},
        },
        {
            "did": "7002",
            "name": "Blocking Desk",
            "routes": [{"label": "operations", "policy": "ops"}],
            "screening": {"block": ["+4930555*"]},  # every caller the suite places
        },
    ],
}


def phones(_d: Durations) -> str:
    return dialplan(
        {
            CALLERS: {
                # A recorded announcement: 16 s of continuous sound, then a little silence.
                "announcement": "Answer > Playback(tt-monkeys) > Wait(12) > Hangup",
                "silent": "Answer > Wait(25) > Hangup",
            },
            RESPONDERS: {"accepts": "Answer > Wait(1) > SendDTMF(1) > Wait(30) > Hangup"},
        }
    )


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("machines", SECTIONS, phones) as stack:
        yield stack


def test_an_announcement_goes_to_voicemail_and_a_silent_caller_is_never_asked(
    stack: RealStack,
) -> None:
    machine = stack.place_call("announcement", "7001", "machine")
    silent = stack.place_call("silent", "7001", "silent")
    machine_call = stack.wait_call_done(machine, 60)
    silent_call = stack.wait_call_done(silent, 60)

    [check] = machine_call.entries("machine_check")
    assert check["pressed"] is False
    assert check["talked_s"] >= 4, check  # Asterisk's talk detection heard the announcement
    assert machine_call.alert["ended_reason"] == "voicemail"
    assert machine_call.legs == []  # nobody was woken

    assert silent_call.entries("machine_check") == []
    assert silent_call.alert["ended_reason"] == "no_choice"


def test_a_blocked_caller_is_rejected_unanswered_and_pages_nobody(stack: RealStack) -> None:
    caller = stack.place_call("silent", "7002", "blocked")
    destroyed = wait_until(lambda: stack.observer.destroyed(caller), 20, "the caller rejected")
    # Hung up with "call rejected", before anything was played to the caller.
    assert destroyed.raw["cause"] == 21
    assert stack.observer.playbacks(caller) == []
    rows = wait_until(
        lambda: stack.sql(
            "SELECT verdict FROM screened_calls WHERE caller_channel_id = $1", caller
        ),
        10,
        "the screened call on record",
    )
    assert rows == [{"verdict": "blocked"}]
    assert stack.alert_of(caller) is None
