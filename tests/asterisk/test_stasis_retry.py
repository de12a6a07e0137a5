"""Calls that arrive while no controller is connected, on a real Asterisk with the shipped
dialplan: Stasis() fails at once (STASISSTATUS=FAILED), so from-pstn rings and tries again
(STASIS_RETRIES x STASIS_RETRY_WAIT) before its fallback. A controller that starts within
that time (a restart, a standby taking over) gets the call; without one the call still
reaches the fallback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ari_controller.simulator.localcalls import STASIS_RETRIES, STASIS_RETRY_WAIT
from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import RealStack, wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]

RETRYING_S = STASIS_RETRIES * STASIS_RETRY_WAIT

SECTIONS: dict[str, Any] = {
    "users": [{"id": "ana", "name": "Ana", "contacts": [responder("accepts")]}],
    "escalation_policies": [{"id": "desk", "name": "Desk", "rules": [{"users": ["ana"]}]}],
    "numbers": [
        {
            "did": "5500",
            "name": "Retry Desk",
            "routes": [{"label": "the desk", "policy": "desk"}],
            "responders": {"accept_keys": "1"},
            "voicemail": {"enabled": False},
        }
    ],
}


def phones(_durations: Durations) -> str:
    return dialplan(
        {
            CALLERS: {"waits": "Answer > Wait(25) > Hangup"},
            RESPONDERS: {"accepts": "Answer > Wait(1) > SendDTMF(1) > Wait(3) > Hangup"},
        }
    )


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("retry", SECTIONS, phones) as stack:
        yield stack


def test_a_call_arriving_during_a_restart_reaches_the_new_controller(stack: RealStack) -> None:
    assert stack.daemon.terminate() == 0
    caller = stack.place_call("waits", "5500", "early")
    time.sleep(2.0)  # the controller is away this long (a restart takes about that)
    started = time.time()
    stack.daemon.start()
    view = stack.wait_call_done(caller, 60)
    assert view.alert["ended_reason"] == "connected", view.outcomes
    assert "fallback" not in stack.observer.contexts(caller)
    # The controller stamps a call when it takes it from its StasisStart.
    taken = view.call["started_at"].timestamp() - started
    print(f"the waiting call was taken {taken:.2f} s after the controller was started")
    assert taken < RETRYING_S
    stack.check_call(caller, view)


def test_without_a_controller_the_call_falls_back_after_the_retries(stack: RealStack) -> None:
    assert stack.daemon.terminate() == 0
    try:
        placed = time.monotonic()
        caller = stack.place_call("waits", "5500", "alone")

        def in_fallback() -> bool:
            return "fallback" in stack.observer.contexts(caller)

        wait_until(in_fallback, RETRYING_S + 5, "the caller in fallback")
        waited = time.monotonic() - placed
        assert RETRYING_S - 0.5 <= waited <= RETRYING_S + 3, waited
        stack.hangup(caller)
    finally:
        stack.daemon.start()
