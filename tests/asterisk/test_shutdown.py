"""SIGTERM with calls in progress, on a real Asterisk: calls not yet connected go back to the
dialplan's `fallback` context, a connected conversation goes on in its bridge, the daemon
writes what it has and exits 0. Then the daemon is started again on the same Asterisk and
database (the hooks a daemon killed mid-call will be tested with)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import RealStack, summarise, wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]

DRAIN_S = 2.0
SWEEP_S = 1.0
# The conversation goes on this long after the accept, through the stop and the restart.
TALK_S = 20.0

SECTIONS: dict[str, Any] = {
    "asterisk": {"sweep_interval_s": SWEEP_S},
    "users": [
        {"id": "ringer", "name": "Ringer", "contacts": [responder("noanswer")]},
        {"id": "talker", "name": "Talker", "contacts": [responder("talks_long")]},
    ],
    "escalation_policies": [
        {"id": "ringer", "name": "Ringer", "rules": [{"users": ["ringer"]}]},
        {"id": "talker", "name": "Talker", "rules": [{"users": ["talker"]}]},
    ],
    "numbers": [
        {
            "did": "3001",
            "name": "Menu Desk",
            "routes": [
                {"label": "alpha", "policy": "ringer"},
                {"label": "bravo", "policy": "talker"},
            ],
            "menu": {"input_timeout_s": 30},
            "voicemail": {"enabled": False},
        },
        {
            "did": "3002",
            "name": "Ring Desk",
            "routes": [{"label": "ringing", "policy": "ringer"}],
            "responders": {"ring_timeout_s": 60},
            "voicemail": {"enabled": False},
        },
        {
            "did": "3003",
            "name": "Talk Desk",
            "routes": [{"label": "talking", "policy": "talker"}],
            "responders": {"accept_keys": "1"},
            "voicemail": {"enabled": False},
        },
    ],
}


def phones(_d: Durations) -> str:
    return dialplan(
        {
            CALLERS: {"hold": "Answer > Wait(240) > Hangup"},
            RESPONDERS: {
                "noanswer": "Ringing > Wait(600) > Hangup",
                "talks_long": (
                    "Ringing > Wait(1) > Answer > Wait(1.5) > SendDTMF(1)"
                    f" > Wait({TALK_S:.2f}) > Hangup"
                ),
            },
        }
    )


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("shutdown", SECTIONS, phones, drain_s=DRAIN_S) as stack:
        yield stack


@pytest.fixture(scope="module")
def calls(stack: RealStack) -> dict[str, str]:
    """In the menu, on hold while a phone rings, and connected; then SIGTERM."""
    placed = {
        "menu": stack.place_call("hold", "3001", "in-menu"),
        "ringing": stack.place_call("hold", "3002", "ringing"),
        "talking": stack.place_call("hold", "3003", "talking"),
    }
    observer = stack.observer
    wait_until(
        lambda: observer.first("ChannelEnteredBridge", placed["talking"]), 30, "the conversation"
    )
    return placed


def leg_of(stack: RealStack, caller: str) -> str:
    """The (first) responder leg of a caller's call, from the store."""

    def legs() -> list[dict[str, Any]] | None:
        view = stack.alert_of(caller)
        return view.legs if view is not None else None

    return str(wait_until(legs, 10, f"a leg of {caller} in the store")[0]["id"])


def test_sigterm_hands_back_waiting_calls_and_leaves_the_conversation_talking(
    stack: RealStack, calls: dict[str, str]
) -> None:
    observer = stack.observer
    ringing_leg = leg_of(stack, calls["ringing"])
    talking_leg = leg_of(stack, calls["talking"])
    assert observer.destroyed(ringing_leg) is None  # still ringing
    stopped_at = time.monotonic()
    stack.daemon.signal(signal.SIGTERM)
    status = stack.daemon.wait(DRAIN_S + 20)
    assert status == 0, stack.daemon.log_tail()
    story = summarise(observer.snapshot(), [*calls.values(), ringing_leg, talking_leg])

    # Not connected: back in the dialplan, in `fallback`, after the drain.
    for name in ("menu", "ringing"):
        caller = calls[name]
        assert observer.destroyed(caller) is None, story

        def in_fallback(c: str = caller) -> bool:
            return "fallback" in observer.contexts(c)

        wait_until(in_fallback, 5, f"{name} in fallback")
        assert observer.contexts(caller)[-2:] == ["from-pstn", "fallback"], story
        entered = next(
            e.at
            for e in observer.about_channel(caller)
            if e.type == "ChannelDialplan" and e.dialplan_context == "fallback"
        )
        assert entered - stopped_at >= DRAIN_S - 0.2, story
    # The phone that was ringing for the handed-back caller was hung up.
    assert observer.destroyed(ringing_leg) is not None, story

    # Connected: still talking, in the same bridge, with the daemon gone.
    time.sleep(1.0)
    bridges = stack.loop.run(stack.rest.get("/bridges"))
    assert [sorted(b["channels"]) for b in bridges] == [sorted([calls["talking"], talking_leg])], (
        story
    )
    for channel in (calls["talking"], talking_leg):
        assert observer.destroyed(channel) is None, story

    # The store has every call's end, written before the daemon exited.
    stopped = stack.daemon.logged("daemon_stopped")
    assert stopped and stopped[-1]["handed_back"] == 2 and stopped[-1]["all_written"] is True
    menu, ringing, talking = (stack.alert_of(calls[n]) for n in ("menu", "ringing", "talking"))
    assert menu is not None and ringing is not None and talking is not None
    stack.check_call(calls["menu"], menu)
    stack.check_call(calls["ringing"], ringing)
    assert menu.alert["ended_reason"] == "handed_back"
    assert "handed_back_to_dialplan" in menu.kinds()
    assert ringing.alert["ended_reason"] == "handed_back"
    assert ringing.legs[0]["ended_at"] is not None
    # The conversation's call is not over: the next start picks it up and ends it.
    assert talking.alert["ended_reason"] is None
    assert "left_connected_at_shutdown" in talking.kinds()
    assert talking.outcomes == ["accepted"]

    # The handed-back callers are the dialplan's now (a message, then Asterisk's voicemail);
    # the test hangs them up.
    for name in ("menu", "ringing"):
        stack.hangup(calls[name])


def test_a_leg_hung_up_at_shutdown_is_not_recorded_as_abandoned_by_the_caller(
    stack: RealStack, calls: dict[str, str]
) -> None:
    if stack.daemon.running:
        pytest.skip("needs the SIGTERM test before it")
    ringing = stack.alert_of(calls["ringing"])
    assert ringing is not None and ringing.legs[0]["ended_at"] is not None
    assert ringing.outcomes == ["cancelled"], ringing.legs  # not "abandoned": the caller is alive


def test_a_restarted_daemon_picks_the_conversation_up_and_leaves_it_talking(
    stack: RealStack, calls: dict[str, str]
) -> None:
    if stack.daemon.running:
        pytest.skip("needs the SIGTERM test before it")
    stack.daemon.start()
    talking_leg = leg_of(stack, calls["talking"])
    time.sleep(3 * SWEEP_S + 0.5)  # reconcile at connect, then sweeps
    bridges = stack.loop.run(stack.rest.get("/bridges"))
    assert [sorted(b["channels"]) for b in bridges] == [sorted([calls["talking"], talking_leg])]
    assert stack.daemon.logged("channel_adopted") == []
    resumed = stack.daemon.logged("calls_resumed")
    assert resumed and resumed[-1]["steps"] == ["connected"], resumed


def test_when_the_left_conversation_ends_the_caller_is_released(
    stack: RealStack, calls: dict[str, str]
) -> None:
    observer = stack.observer
    caller = calls["talking"]
    talking_leg = leg_of(stack, caller)
    try:
        wait_until(lambda: observer.destroyed(talking_leg), TALK_S + 20, "the responder to hang up")
        # A caller alone in a bridge with nobody to talk to is hung up, and the bridge goes.
        wait_until(lambda: observer.destroyed(caller), 4 * SWEEP_S + 5, "the caller to be released")
        assert stack.wait_nothing_left(5)["bridges"] == []
        # The call picked up after the restart is completed: one alert, ended as connected.
        talking = stack.wait_call_done(caller, 10)
        assert talking.alert["ended_reason"] == "connected"
        assert "call_resumed" in talking.kinds() and talking.outcomes == ["accepted"]
    finally:
        # What the daemon left: the test cleans it up so the next checks start clean.
        stack.hangup(caller)
        for bridge in stack.loop.run(stack.rest.get("/bridges")):
            stack.loop.run(stack.rest.request("DELETE", f"/bridges/{bridge['id']}"))


def test_the_daemon_can_be_killed_and_restarted(stack: RealStack) -> None:
    """The hooks for testing a daemon killed mid-call: SIGKILL, then a fresh start against the
    same Asterisk and database, ready again."""
    daemon = stack.daemon
    if not daemon.running:
        daemon.start()
    first = daemon.pid
    assert daemon.kill() == -signal.SIGKILL
    assert not daemon.running
    daemon.restart()
    assert daemon.running and daemon.pid != first
    assert "callrouting_ari_connected 1.0" in daemon.metrics()


def test_afterwards_nothing_is_left_in_asterisk(stack: RealStack, calls: dict[str, str]) -> None:
    stack.observer.wait_gone(calls.values(), 30)
    assert stack.wait_nothing_left(10) == {"channels": [], "bridges": [], "recordings": []}
    assert stack.observer.disconnects == []
