"""The live calls page: a call's step read from its timeline (pure), and the page and its
event stream over real HTTP, fed by Postgres notifications of changes written by anyone."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any

import aiohttp

from ari_controller.console.steps import step_of
from tests.console_client import Console

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
NAMES = {"ana": "Ana Accepts", "ben": "Ben Busy"}


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_a_call_goes_from_greeting_to_menu_to_ringing_to_connected_to_ended() -> None:
    timeline: list[tuple[dt.datetime, str, dict[str, Any]]] = [
        (at(0), "call_started", {}),
        (at(0.1), "support_hours", {"in_hours": True, "action": "routes"}),
    ]
    assert step_of(timeline[:1], NAMES, T0).label == "Greeting"
    menu = step_of(timeline, NAMES, T0)
    assert (menu.key, menu.since) == ("menu", at(0.1))
    timeline += [
        (at(5), "menu_input", {"digit": "1"}),
        (at(5), "route_chosen", {"digit": "1", "route": "Database", "how": "dtmf"}),
        (at(5.2), "plan", {"responders": [{"user": "ana", "name": "Ana Accepts"}]}),
    ]
    holding = step_of(timeline, NAMES, T0)
    assert (holding.key, holding.label, holding.since) == ("holding", "On hold", at(5))
    assert "Database" in holding.detail
    timeline += [
        (at(6), "leg_placed", {"leg": "l1", "user": "ben"}),
        (at(6), "leg_placed", {"leg": "l2", "user": "ana"}),
    ]
    ringing = step_of(timeline, NAMES, T0)
    assert (ringing.label, ringing.detail, ringing.since) == (
        "Ringing",
        "Ben Busy, Ana Accepts",
        at(6),
    )
    timeline.append((at(8), "leg_ended", {"leg": "l1", "user": "ben", "outcome": "busy"}))
    still = step_of(timeline, NAMES, T0)
    assert (still.detail, still.since) == ("Ana Accepts", at(6))  # still ringing since 6 s
    timeline.append((at(12), "leg_answered", {"leg": "l2", "user": "ana"}))
    asking = step_of(timeline, NAMES, T0)
    assert (asking.key, asking.since) == ("asking", at(12))
    assert asking.detail.startswith("Ana Accepts")
    timeline.append((at(15), "bridged", {"bridge": "b", "responder": "ana"}))
    connected = step_of(timeline, NAMES, T0)
    assert (connected.label, connected.detail, connected.since) == (
        "Connected",
        "with Ana Accepts",
        at(15),
    )
    timeline.append((at(90), "call_ended", {"reason": "connected"}))
    assert step_of(timeline, NAMES, T0).key == "ended"


def test_voicemail_outside_hours_and_a_resumed_call() -> None:
    voicemail = step_of(
        [
            (at(0), "call_started", {}),
            (at(0), "support_hours", {"in_hours": False, "action": "voicemail"}),
            (at(4), "voicemail_started", {}),
        ],
        NAMES,
        T0,
    )
    assert (voicemail.label, voicemail.since) == ("Leaving a voicemail", at(4))
    resumed = step_of(
        [
            (at(0), "call_started", {}),
            (at(3), "route_chosen", {"route": "Billing"}),
            (at(4), "leg_placed", {"leg": "l1", "user": "ana"}),
            (at(20), "call_resumed", {"step": "hunting"}),
            (at(20), "leg_adopted", {"leg": "l1", "user": "ana", "answered": False}),
        ],
        NAMES,
        T0,
    )
    assert resumed.label == "Ringing"
    assert "after a restart" in resumed.detail
    ended_without_note = step_of([(at(0), "call_started", {})], NAMES, T0, at(30), "abandoned")
    assert (ended_without_note.key, ended_without_note.detail) == ("ended", "abandoned")


# ---- over HTTP, with Postgres notifications ---------------------------------------------------


async def new_call(conn: Any, number: str = "200", started: dt.datetime | None = None) -> uuid.UUID:
    alert_id, call_id = uuid.uuid4(), uuid.uuid4()
    started = started or dt.datetime.now(dt.UTC)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO alerts (id, number_did, number_name, caller_id, status, created_at)"
            " VALUES ($1, $2, 'Night desk', '+4930555', 'open', $3)",
            alert_id,
            number,
            started,
        )
        await conn.execute(
            "INSERT INTO calls (id, alert_id, caller_channel_id, did, caller_id, started_at, app)"
            " VALUES ($1, $2, 'chan-1', $3, '+4930555', $4, 'callrouting')",
            call_id,
            alert_id,
            number,
            started,
        )
        await note(conn, call_id, 1, "call_started", {})
    return call_id


async def note(conn: Any, call_id: uuid.UUID, seq: int, kind: str, data: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO call_events (call_id, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5)",
        call_id,
        seq,
        dt.datetime.now(dt.UTC),
        kind,
        json.dumps(data),
    )


class Stream:
    """An open event stream of the live page, read as a browser's EventSource would."""

    def __init__(self, reply: aiohttp.ClientResponse) -> None:
        self.reply = reply

    async def next_calls(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        event, data = "", ""
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.reply.content.readline()).decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data += line.removeprefix("data:").strip()
                elif line == "" and data:
                    if event == "calls":
                        calls: list[dict[str, Any]] = json.loads(data)["calls"]
                        return calls
                    event, data = "", ""

    async def until(self, check: Any, timeout: float = 5.0) -> tuple[list[dict[str, Any]], float]:
        """The first list of calls for which `check` holds, and how long it took to come."""
        began = time.monotonic()
        while True:
            calls = await self.next_calls(timeout - (time.monotonic() - began))
            if check(calls):
                return calls, time.monotonic() - began


async def test_the_page_follows_a_call_written_by_another_daemon_within_a_second(
    console: Console,
) -> None:
    browser = await console.browser("watcher", role="viewer")
    page = await browser.get("/console/")
    assert page.status == 200 and "No calls right now." in page.text
    async with browser.session.get(
        console.base + "/console/live/events", headers={"Accept": "text/event-stream"}
    ) as reply:
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        stream = Stream(reply)
        assert await stream.next_calls() == []
        # Another daemon on the same database: its own connection, not the console's pool.
        async with console.pool.acquire() as writer:
            call_id = await new_call(writer)
            calls, took_greeting = await stream.until(lambda c: len(c) == 1)
            assert calls[0]["step"] == "greeting" and calls[0]["number"] == "Night desk"
            assert calls[0]["started"].endswith("Europe/Berlin")
            await note(writer, call_id, 2, "route_chosen", {"route": "Database", "digit": "1"})
            await note(writer, call_id, 3, "leg_placed", {"leg": "l1", "user": "ana-accepts"})
            calls, took_ringing = await stream.until(lambda c: c[0]["step"] == "ringing")
            assert calls[0]["detail"] == "Ana Accepts"
            await note(writer, call_id, 4, "call_ended", {"reason": "abandoned"})
            await writer.execute(
                "UPDATE calls SET ended_at = now(), outcome = 'abandoned' WHERE id = $1", call_id
            )
            calls, took_end = await stream.until(lambda c: c[0]["step"] == "ended")
    print(
        f"step shown after: greeting {took_greeting * 1000:.0f} ms,"
        f" ringing {took_ringing * 1000:.0f} ms, ended {took_end * 1000:.0f} ms"
    )
    assert max(took_greeting, took_ringing, took_end) < 1.0
    page = await browser.get("/console/")
    assert "Ended" in page.text and "abandoned" in page.text


async def test_the_stream_needs_a_signed_in_viewer(console: Console) -> None:
    browser = await console.browser()
    async with browser.session.get(
        console.base + "/console/live/events", headers={"Accept": "text/event-stream"}
    ) as reply:
        assert reply.status == 401


async def test_open_pages_do_not_hold_up_a_stopping_daemon(console: Console) -> None:
    browser = await console.browser("watcher", role="viewer")
    async with browser.session.get(console.base + "/console/live/events") as reply:
        stream = Stream(reply)
        assert await stream.next_calls() == []
        began = time.monotonic()
        await console.server.close()
        took = time.monotonic() - began
        rest = await asyncio.wait_for(reply.content.read(), 2)
    assert took < 1.0, took  # not aiohttp's wait for handlers that never end
    assert b"event: calls" not in rest
