"""The SIGKILL, SIGSTOP and websocket-cut rows of the fault matrix (tests/faults) on a real
Asterisk, and SIGTERM: an active and a standby daemon (`failover`, lease 1.5 s renewed every
0.25 s) as processes, and seven calls, one in each phase (greeting, menu, ringing one
responder, ringing two at once, a responder hearing the whisper, a conversation, a message
being recorded) when the active one is killed, stopped (with a standby there, SIGTERM is a
handover), cut off from its events websocket for 5 s (through a proxy: daemon a only) or
frozen for 10 s. The standby must take the lease, connect (Asterisk replaces the old
websocket, if any) and carry every call on as it would have gone without the fault; a frozen
or cut-off one must step aside without touching a call.

"Without a driver" is measured as in the matrix, from what Asterisk told: the time a caller
had no prompt, hold music (Asterisk's verbose log), recording or bridge, from the fault until
the standby drove the calls and, if the caller had nothing going just then, until it gave
them something. No responder answers inside the gap: on a real Asterisk a leg answered while
the app has no websocket fails Stasis() and is hung up (a known limit, README).
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import yaml

from ari_controller.testing.postgres import free_port
from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import CallView, DaemonProcess, RealStack, summarise, wait_until
from tests.asterisk.test_restart import (
    call_id_of,
    ended_in_store,
    hearing_whisper,
    media_intervals,
    recording,
    ringing,
)
from tests.restart_sections import dialplan_responders, restart_sections

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(300)]

LEASE_S = 1.5
RENEW_S = 0.25
TAKEOVER_LIMIT_S = 3.0
UNDRIVEN_LIMIT_S = 3.0
FROZEN_S = 10.0
CUT_S = 5.0
# Phones act this long after they start: well after the fault (about 12 s in) and takeover.
LATER_S = 22.0
VERBOSE_LOG = "failover-verbose.log"

DESK, MESSAGES = "5600", "5601"
SECTIONS: dict[str, Any] = {
    "failover": {"enabled": True, "lease_s": LEASE_S, "renew_every_s": RENEW_S, "member": "a"},
    **restart_sections(responder, DESK, MESSAGES),
}


def phones(_durations: Durations) -> str:
    later = f"{LATER_S:.2f}"
    talk = f"{LATER_S + 12:.2f}"
    return dialplan(
        {
            CALLERS: {
                # Hears the greeting at the fault; chooses 1 after the takeover.
                "in_greeting": f"Answer > Wait({later}) > SendDTMF(1) > Wait(8) > Hangup",
                # Waits in the menu through the fault (the menu is said again), then chooses.
                "in_menu": f"Answer > Wait({LATER_S + 8:.2f}) > SendDTMF(1) > Wait(8) > Hangup",
                "to_slow": f"Answer > Wait(1) > SendDTMF(2) > Wait({talk}) > Hangup",
                "to_both": f"Answer > Wait(1) > SendDTMF(3) > Wait({talk}) > Hangup",
                "to_whisper": f"Answer > Wait(1) > SendDTMF(4) > Wait({talk}) > Hangup",
                "to_quick": f"Answer > Wait(1) > SendDTMF(1) > Wait({later}) > Hangup",
                # Speaks (hold music from the phone) through the fault, ends the message with #.
                "leaves_message": (
                    f"Answer > Wait(1) > SendDTMF(1) > MusicOnHold(default,{LATER_S:.0f})"
                    " > SendDTMF(#) > Wait(15) > Hangup"
                ),
            },
            RESPONDERS: dialplan_responders(LATER_S),
        }
    )


# phase: (caller script, DID, how the call ends without a fault)
CALLS = {
    "menu": ("in_menu", DESK, "connected"),
    "ringing sequentially": ("to_slow", DESK, "connected"),
    "ringing simultaneously": ("to_both", DESK, "connected"),
    "whisper": ("to_whisper", DESK, "connected"),
    "connected": ("to_quick", DESK, "connected"),
    "recording voicemail": ("leaves_message", MESSAGES, "voicemail"),
    "greeting": ("in_greeting", DESK, "connected"),  # placed last, just before the fault
}


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    # Daemon a reaches Asterisk through a proxy that can cut its events websocket.
    with start_stack("failover", SECTIONS, phones, drain_s=2.0, proxy=True) as stack:
        # Hold music has no ARI event; Asterisk logs when it starts and stops (verbosity 3).
        stack.asterisk.cli(f"logger add channel {VERBOSE_LOG} verbose(3)")
        yield stack


@pytest.fixture(scope="module")
def second(stack: RealStack) -> Iterator[DaemonProcess]:
    """Daemon b: the same configuration with its own name, port and spool."""
    first = stack.daemon
    home = first.config_path.parent / "b"
    home.mkdir()
    config = yaml.safe_load(first.config_path.read_text())
    port = free_port()
    config["failover"]["member"] = "b"
    config["http"]["port"] = port
    config["database"]["spool_dir"] = str(home / "spool")
    config["asterisk"]["url"] = stack.asterisk.ari_url  # not through a's proxy
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = DaemonProcess(path, home / "daemon.log", port, first.env, drain_s=2.0)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def readyz(daemon: DaemonProcess) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{daemon.http_port}/readyz", timeout=2
        ) as reply:
            body: dict[str, Any] = json.loads(reply.read())
    except urllib.error.HTTPError as refused:
        body = json.loads(refused.read())
    return body


def roles(*daemons: DaemonProcess) -> tuple[DaemonProcess, DaemonProcess]:
    """(the active one, the standby), once both are up, the active one serves and has seen
    its standby."""

    def settled() -> bool:
        seen = [readyz(d) for d in daemons if d.running]
        return len(seen) == 2 and sorted(s["role"] for s in seen) == ["active", "standby"]

    wait_until(settled, 15, "one active daemon and one standby")
    active = next(d for d in daemons if readyz(d)["role"] == "active")
    wait_until(lambda: bool(readyz(active).get("ready")), 10, "the active daemon ready")
    wait_until(lambda: bool(readyz(active).get("standby_present")), 5, "the standby seen")
    return active, next(d for d in daemons if d is not active)


def driving(standby: DaemonProcess) -> bool:
    seen = readyz(standby)
    return seen["role"] == "active" and bool(seen.get("ready"))


def calls_in_their_phases(stack: RealStack) -> dict[str, str]:
    """Places the seven calls; returns once each is in its phase (phase -> caller id)."""
    observer = stack.observer
    calls: dict[str, str] = {}
    for phase, (script, did, _) in CALLS.items():
        if phase != "greeting":
            calls[phase] = stack.place_call(script, did, phase.replace(" ", "-"))
    call_ids = {
        phase: wait_until(partial(call_id_of, stack, caller), 15, f"the call of {phase}")
        for phase, caller in calls.items()
    }
    wait_until(lambda: ringing(stack, calls["ringing sequentially"], "sam"), 30, "sam ringing")
    wait_until(lambda: ringing(stack, calls["ringing simultaneously"], "nora"), 30, "nora")
    wait_until(lambda: ringing(stack, calls["ringing simultaneously"], "sue"), 30, "sue")
    wait_until(lambda: hearing_whisper(stack, calls["whisper"], "wendy"), 30, "the whisper")
    wait_until(
        lambda: observer.first("ChannelEnteredBridge", calls["connected"]) is not None,
        30,
        "a conversation",
    )
    wait_until(partial(recording, stack, call_ids["recording voicemail"]), 30, "a message")

    def menu_said() -> bool:
        """Every prompt played and none for a moment (the menu is several playbacks, one
        after the other)."""
        started = {str(e.raw["playback"]["id"]) for e in observer.playbacks(calls["menu"])}
        finished = {
            str(e.raw["playback"]["id"]): e.at
            for e in observer.snapshot()
            if e.type == "PlaybackFinished"
        }
        if not started or not started <= set(finished):
            return False
        return time.monotonic() - max(finished[p] for p in started) > 0.5

    wait_until(menu_said, 30, "the menu said to the menu caller")
    script, did, _ = CALLS["greeting"]
    calls["greeting"] = stack.place_call(script, did, "greeting")
    wait_until(lambda: observer.playbacks(calls["greeting"]), 15, "the greeting")
    time.sleep(0.5)
    view = stack.alert_of(calls["greeting"])
    assert view is not None and "route_chosen" not in view.kinds()
    menu = stack.alert_of(calls["menu"])
    assert menu is not None and "route_chosen" not in menu.kinds(), "the menu caller chose"
    return calls


def undriven(
    intervals: list[tuple[str, float, float | None]], fault_at: float, back_at: float
) -> float:
    """A caller's time with nothing going from the fault until the driver was back, and on
    until something came if nothing went on at that moment (as in tests/faults/matrix.py)."""

    def going(at: float) -> bool:
        return any(start <= at and (end is None or end > at) for _kind, start, end in intervals)

    step = 0.02
    total, at = 0.0, fault_at
    while at < back_at:
        total += 0.0 if going(at) else step
        at += step
    if not going(back_at):
        later = [start for _kind, start, _end in intervals if start > back_at]
        total += (min(later) - back_at) if later else float("inf")
    return round(total, 2)


def strike(
    stack: RealStack,
    second: DaemonProcess,
    fault: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    active, standby = roles(stack.daemon, second)
    calls = calls_in_their_phases(stack)
    fault_at = time.monotonic()
    offset = time.time() - fault_at
    if fault == "SIGKILL":
        active.kill()
    elif fault == "websocket cut":
        # a's events websocket dropped and kept away for CUT_S, its REST untouched
        assert active is stack.daemon and stack.proxy is not None
        assert stack.loop.run(stack.proxy.cut(CUT_S)) == 1
    elif fault == "SIGTERM":
        active.signal(signal.SIGTERM)  # systemctl stop: with a standby there, a handover
    else:
        active.signal(signal.SIGSTOP)
    wait_until(partial(driving, standby), TAKEOVER_LIMIT_S + 3, "the standby driving")
    back_at = time.monotonic()
    if fault == "SIGSTOP":
        time.sleep(max(0.0, fault_at + FROZEN_S - time.monotonic()))
        active.signal(signal.SIGCONT)
        assert active.wait(15) == 1  # woken: it steps aside, for systemd to restart it
        assert active.logged("controller_stepping_aside")
    if fault == "websocket cut":
        # Cut off for longer than its lease, it gave the lease up and left, and never took
        # the app back (a websocket of its would have taken the calls from the standby).
        connections = stack.proxy.events_connections if stack.proxy else 0
        assert active.wait(15) == 1
        assert active.logged("controller_stepping_aside")
        time.sleep(max(0.0, fault_at + CUT_S + 1 - time.monotonic()))
        assert stack.proxy is not None and stack.proxy.events_connections == connections
    if fault == "SIGTERM":
        assert active.wait(15) == 0
        assert [e["all_written"] for e in active.logged("handed_over")] == [True]
    views: dict[str, CallView] = {}
    for phase, caller in calls.items():
        try:
            views[phase] = wait_until(partial(ended_in_store, stack, caller), 90, phase, step=0.3)
        except AssertionError as exc:
            seen = summarise(stack.observer.snapshot(), [caller])
            raise AssertionError(f"{exc}\n{seen}\n{standby.log_tail(30)}") from None
    silent = {
        phase: undriven(media_intervals(stack, caller, offset, VERBOSE_LOG), fault_at, back_at)
        for phase, caller in calls.items()
    }
    with capsys.disabled():
        print(
            f"\n[failover] real Asterisk, {fault}: takeover {back_at - fault_at:.2f} s;"
            f" time without a driver per phase (s): {silent}"
        )
    assert back_at - fault_at < TAKEOVER_LIMIT_S
    for phase, view in views.items():
        story = "\n".join(f"{e['at']} {e['kind']} {e['data']}" for e in view.timeline)
        assert view.alert["ended_reason"] == CALLS[phase][2], f"{phase}\n{story}"
        assert "controller_error" not in view.kinds(), f"{phase}\n{story}"
        assert view.kinds().count("call_ended") == 1, f"{phase}\n{story}"
        stack.check_call(calls[phase], view)
    # One alert per call, never two (a caller taken for a new call would make a second).
    assert len({view.alert["id"] for view in views.values()}) == len(calls)
    assert not standby.logged("channel_adopted")
    for phase, value in silent.items():
        assert value < UNDRIVEN_LIMIT_S, (phase, silent)
    assert stack.wait_nothing_left(15) == {"channels": [], "bridges": [], "recordings": []}
    active.start()  # back, as the standby (systemd's Restart=on-failure)


# In this order: each fault finds daemon a or b active as the one before left them (a, the
# one behind the proxy, must be active for the cut).
@pytest.mark.parametrize("fault", ["SIGKILL", "SIGTERM", "websocket cut", "SIGSTOP"])
def test_the_standby_carries_every_call_on(
    stack: RealStack, second: DaemonProcess, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    strike(stack, second, fault, capsys)
