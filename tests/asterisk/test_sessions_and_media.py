"""Two faults real Asterisk showed and the simulator once hid, on a real Asterisk.

- Asterisk's HTTP server serves at most http.conf `sessionlimit` connections, shared by every
  ARI client, and closes any connection beyond it at once. With another client holding most
  of them, originates, plays and hang-ups were lost together and callers ended in the wrong
  place; now what may safely be sent again is sent again, and every call connects.
- Responder legs were originated without `originator`: Asterisk then gave the Local legs an
  expensive format and a call of their own. Each leg now takes the caller's formats and
  linkedid, as Dial does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import RealStack, wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(240)]

CALLERS_AT_ONCE = 12
SESSION_LIMIT = 50
# Connections another ARI client keeps open (Asterisk counts an idle one for 30 s): the
# daemon, the suite's observer and its own REST client share what is left.
HELD_BY_OTHERS = 42
TALK_S = 4

SECTIONS: dict[str, Any] = {
    "users": [
        {"id": "ana", "name": "Ana", "contacts": [responder("accepts")]},
        {"id": "lou", "name": "Lou", "contacts": [responder("listens")]},
        {"id": "rey", "name": "Rey", "contacts": [responder("rings")]},
        {"id": "ray", "name": "Ray", "contacts": [responder("rings")]},
    ],
    "escalation_policies": [
        {
            "id": "everyone",
            "name": "Everyone",
            "rules": [{"users": ["ana", "lou", "rey", "ray"]}],
            "call_everyone_on_rule": True,
        }
    ],
    "numbers": [
        {
            "did": "5001",
            "name": "Busy Desk",
            "mode": "simultaneous",
            "routes": [{"label": "everyone", "policy": "everyone"}],
            "responders": {"accept_keys": "1"},
            "voicemail": {"enabled": False},
        }
    ],
}


def phones(durations: Durations) -> str:
    whisper = durations.responder_prompt("5001")
    return dialplan(
        {
            CALLERS: {"talks": "Answer > Wait(120) > Hangup"},
            RESPONDERS: {
                # Accepts during the prompt, talks, hangs up.
                "accepts": f"Answer > Wait(1) > SendDTMF(1) > Wait({TALK_S}) > Hangup",
                # Answers and listens: told the call was taken.
                "listens": f"Answer > Wait({whisper + 30:.1f}) > Hangup",
                "rings": "Ringing > Wait(60) > Hangup",
            },
        }
    )


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("sessions", SECTIONS, phones, session_limit=SESSION_LIMIT) as stack:
        yield stack


async def _hold_sessions(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    return writers


async def _release(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()


def test_every_call_connects_while_other_clients_hold_most_sessions(stack: RealStack) -> None:
    callers = [stack.place_call("talks", "5001", f"crowd{i}") for i in range(CALLERS_AT_ONCE)]
    held = stack.loop.run(_hold_sessions(stack.asterisk.port, HELD_BY_OTHERS))
    try:
        views = {caller: stack.wait_call_done(caller, 90) for caller in callers}
    finally:
        stack.loop.run(_release(held))
    refused = len(re.findall(r"HTTP session count exceeded", stack.asterisk.log_tail(100_000)))
    metrics = stack.daemon.metrics()
    assert refused > 0, "the test never put the daemon past Asterisk's session limit"
    for caller, view in views.items():
        assert view.alert["ended_reason"] == "connected", (caller, view.outcomes)
        assert view.alert["acknowledged_by"] == "ana"
        assert sorted(view.outcomes) == ["accepted"] + ["taken_by_other"] * 3, view.outcomes
        stack.check_call(caller, view)
    repeated = _counter(metrics, "callrouting_ari_closed_connections_total", "repeated")
    gave_up = _counter(metrics, "callrouting_ari_closed_connections_total", "gave_up")
    assert repeated > 0 and gave_up == 0, (repeated, gave_up)


def test_a_responder_leg_takes_the_callers_formats_and_call(stack: RealStack) -> None:
    caller = stack.place_call("talks", "5001", "linked")
    observer = stack.observer

    def an_answered_leg() -> str | None:
        for leg in observer.channels_named(""):
            if re.search(r"-leg\d+$", leg) and observer.answered(leg):
                if _variable(stack, leg, "CHANNEL(linkedid)", missing_ok=True) is not None:
                    return leg
        return None

    leg = wait_until(an_answered_leg, 30, "a responder leg that answered")
    assert leg is not None
    linkedid = {c: _variable(stack, c, "CHANNEL(linkedid)") for c in (caller, leg)}
    formats = {c: _variable(stack, c, "CHANNEL(audionativeformat)") for c in (caller, leg)}
    stack.wait_call_done(caller, 60)
    assert linkedid[leg] == linkedid[caller] != ""
    assert formats[leg] == formats[caller] == "(ulaw)"  # a trunk's ulaw, not a costly pick


def _variable(stack: RealStack, channel: str, name: str, *, missing_ok: bool = False) -> Any:
    """A channel variable or function; None for a channel gone already with `missing_ok`."""
    status, body = stack.loop.run(
        stack.rest.request("GET", f"/channels/{channel}/variable", {"variable": name})
    )
    if status == 404 and missing_ok:
        return None
    assert status == 200, (channel, name, status, body)
    return str(body["value"])


def _counter(metrics: str, name: str, result: str) -> float:
    match = re.search(rf'^{name}{{result="{result}"}} (\S+)$', metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
