"""The console's live page following a call on a real Asterisk: each step the caller and the
responder go through shows on the page's event stream, and within a second of Asterisk's own
event for it (the observer application's clock and the stream reader's are the same)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest

from ari_controller.console import accounts
from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import RealStack

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]

PASSWORD = "a console password"
# From Asterisk's event to the step on the page, at most.
SHOWN_WITHIN_S = 1.0

SECTIONS: dict[str, Any] = {
    "users": [{"id": "ana", "name": "Ana Alvarez", "contacts": [responder("accepts")]}],
    "escalation_policies": [{"id": "db", "name": "Database", "rules": [{"users": ["ana"]}]}],
    "numbers": [
        {
            "did": "5400",
            "name": "Console Desk",
            "routes": [
                {"label": "the database team", "policy": "db"},
                {"label": "the same team again", "policy": "db"},
            ],
            "responders": {"accept_keys": "1", "ring_timeout_s": 30},
            "voicemail": {"enabled": False},
        }
    ],
}


def phones(durations: Durations) -> str:
    whisper = durations.responder_prompt("5400")
    return dialplan(
        {
            CALLERS: {"chooses": "Answer > Wait(2) > SendDTMF(1) > Wait(30) > Hangup"},
            RESPONDERS: {
                # Rings 2 s, listens to the whisper a moment, accepts, talks 4 s, hangs up.
                "accepts": f"Ringing > Wait(2) > Answer > Wait({min(whisper, 2.0):.1f})"
                " > SendDTMF(1) > Wait(4) > Hangup"
            },
        }
    )


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("console", SECTIONS, phones) as stack:
        yield stack


@dataclass
class Watch:
    """The live page's event stream, read in the suite's loop: each step change and when."""

    steps: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic, step, detail)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


async def _signed_in(base: str, dsn: str) -> aiohttp.ClientSession:
    conn = await asyncpg.connect(dsn)
    try:
        await accounts.add(conn, "watcher", PASSWORD, "viewer", None, dt.datetime.now(dt.UTC))
    finally:
        await conn.close()
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(f"{base}/console/login") as reply:
        token = re.search(r'name="csrf_token" value="([^"]+)"', await reply.text())
    assert token is not None
    form = {"csrf_token": token.group(1), "name": "watcher", "password": PASSWORD}
    async with session.post(f"{base}/console/login", data=form) as reply:
        assert reply.status == 200 and reply.url.path == "/console/", reply.url
    return session


async def _watch(base: str, dsn: str) -> Watch:
    session = await _signed_in(base, dsn)
    watch = Watch()
    opened = asyncio.Event()

    async def read() -> None:
        try:
            async with session.get(f"{base}/console/live/events") as reply:
                opened.set()
                data = ""
                async for raw in reply.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("data:"):
                        data += line.removeprefix("data:").strip()
                    elif line == "" and data:
                        calls = json.loads(data)["calls"]
                        data = ""
                        for call in calls[:1]:
                            if not watch.steps or watch.steps[-1][1] != call["step"]:
                                watch.steps.append((time.monotonic(), call["step"], call["detail"]))
                            if call["step"] == "ended":
                                watch.ended.set()
                                return
        finally:
            await session.close()

    watch.task = asyncio.create_task(read())
    await asyncio.wait_for(opened.wait(), 10)
    return watch


def test_the_live_page_follows_a_real_call_step_by_step(stack: RealStack) -> None:
    base = f"http://127.0.0.1:{stack.daemon.http_port}"
    watch = stack.loop.run(_watch(base, stack.dsn))
    caller = stack.place_call("chooses", "5400", "watched")
    stack.loop.run(asyncio.wait_for(watch.ended.wait(), 60), 65)
    view = stack.wait_call_done(caller, 30)
    assert view.alert["ended_reason"] == "connected"
    stack.check_call(caller, view)
    steps = [step for _, step, _ in watch.steps]
    assert [s for s in steps if s in ("menu", "ringing", "asking", "connected", "ended")] == [
        "menu",
        "ringing",
        "asking",
        "connected",
        "ended",
    ], watch.steps
    shown = {step: at for at, step, _ in watch.steps}
    details = {step: detail for _, step, detail in watch.steps}
    assert details["ringing"] == "Ana Alvarez" and details["connected"] == "with Ana Alvarez"
    observer = stack.observer
    (leg,) = [str(leg["id"]) for leg in view.legs]
    happened = {
        "ringing": observer.when("ChannelCreated", leg),
        "asking": next(
            e.at for e in observer.about_channel(leg) if e.raw["channel"].get("state") == "Up"
        ),
        "connected": observer.when("ChannelEnteredBridge", leg),
        "ended": observer.when("ChannelDestroyed", caller),
    }
    late = {step: round(shown[step] - at, 3) for step, at in happened.items()}
    print(f"console step shown after Asterisk's event (s): {late}")
    assert all(-0.5 < delay < SHOWN_WITHIN_S for delay in late.values()), late
