"""An active and a standby daemon (`failover`) on a real Asterisk, as processes: the active
one SIGKILLed, then one frozen (SIGSTOP) past its lease and woken again. The standby must
take the lease, connect (Asterisk replaces the old websocket, if any) and carry every call on;
the frozen one must step aside without touching a call. Lease 1.5 s, renewed every 0.25 s."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from ari_controller.testing.postgres import free_port
from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import DaemonProcess, RealStack, wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(240)]

LEASE_S = 1.5
RENEW_S = 0.25
TAKEOVER_LIMIT_S = 3.0

SECTIONS: dict[str, Any] = {
    "failover": {"enabled": True, "lease_s": LEASE_S, "renew_every_s": RENEW_S, "member": "a"},
    "users": [{"id": "ana", "name": "Ana", "contacts": [responder("accepts")]}],
    "escalation_policies": [{"id": "desk", "name": "Desk", "rules": [{"users": ["ana"]}]}],
    "numbers": [
        {
            "did": "5600",
            "name": "Failover Desk",
            "routes": [
                {"label": "the desk", "policy": "desk"},
                {"label": "the desk again", "policy": "desk"},
            ],
            "responders": {"accept_keys": "1", "ring_timeout_s": 30},
            "voicemail": {"enabled": False},
        }
    ],
}


def phones(_durations: Durations) -> str:
    return dialplan(
        {
            CALLERS: {
                # Chooses at once and talks through the takeover.
                "talks": "Answer > Wait(1) > SendDTMF(1) > Wait(16) > Hangup",
                # Listens through the takeover (the menu is said again), then chooses.
                "chooses_late": "Answer > Wait(13) > SendDTMF(1) > Wait(4) > Hangup",
            },
            RESPONDERS: {"accepts": "Answer > Wait(1) > SendDTMF(1) > Wait(60) > Hangup"},
        }
    )


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("failover", SECTIONS, phones, drain_s=2.0) as stack:
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
    """(the active one, the standby), once both are up and the active one serves."""

    def settled() -> bool:
        seen = [readyz(d) for d in daemons if d.running]
        return len(seen) == 2 and sorted(s["role"] for s in seen) == ["active", "standby"]

    wait_until(settled, 15, "one active daemon and one standby")
    active = next(d for d in daemons if readyz(d)["role"] == "active")
    wait_until(lambda: bool(readyz(active).get("ready")), 10, "the active daemon ready")
    return active, next(d for d in daemons if d is not active)


def bridged(stack: RealStack, caller: str) -> bool:
    """The call is a conversation (a key pressed while no daemon drives a call is lost, so
    the faults come once the responder has accepted)."""
    view = stack.alert_of(caller)
    return view is not None and any(e["kind"] == "bridged" for e in view.call["timeline"])


def takes_over(standby: DaemonProcess, since: float) -> float:
    def active() -> bool:
        seen = readyz(standby)
        return seen["role"] == "active" and bool(seen.get("ready"))

    wait_until(active, TAKEOVER_LIMIT_S + 3, "the standby driving the calls")
    return time.monotonic() - since


def test_the_standby_carries_on_when_the_active_daemon_is_killed(
    stack: RealStack, second: DaemonProcess
) -> None:
    active, standby = roles(stack.daemon, second)
    talking = stack.place_call("talks", "5600", "talker")
    choosing = stack.place_call("chooses_late", "5600", "chooser")
    wait_until(lambda: bridged(stack, talking), 15, "the talker connected")
    killed = time.monotonic()
    active.kill()
    took = takes_over(standby, killed)
    print(f"real Asterisk: takeover {took:.2f} s after the SIGKILL")
    assert took < TAKEOVER_LIMIT_S
    for caller in (talking, choosing):
        view = stack.wait_call_done(caller, 60)
        story = "\n".join(f"{e['at']} {e['kind']} {e['data']}" for e in view.call["timeline"])
        assert view.alert["ended_reason"] == "connected", f"{caller} {view.outcomes}\n{story}"
        stack.check_call(caller, view)
    active.start()  # back, as the standby


def test_a_frozen_active_daemon_steps_aside_when_it_wakes(
    stack: RealStack, second: DaemonProcess
) -> None:
    active, standby = roles(stack.daemon, second)
    talking = stack.place_call("talks", "5600", "frozen")
    wait_until(lambda: bridged(stack, talking), 15, "the caller connected")
    frozen = time.monotonic()
    active.signal(signal.SIGSTOP)
    took = takes_over(standby, frozen)
    print(f"real Asterisk: takeover {took:.2f} s after the SIGSTOP")
    time.sleep(1)
    active.signal(signal.SIGCONT)
    assert active.wait(15) == 1
    assert active.logged("controller_stepping_aside")
    view = stack.wait_call_done(talking, 60)
    assert view.alert["ended_reason"] == "connected", view.outcomes
    kinds = [event["kind"] for event in view.call["timeline"]]
    assert "controller_error" not in kinds and kinds.count("call_ended") == 1, kinds
    stack.check_call(talking, view)
    active.start()
