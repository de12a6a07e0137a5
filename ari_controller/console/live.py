"""The live calls page, kept current over server-sent events.

Every daemon writes its calls' timelines to Postgres, and the database announces each change
on the channel `callrouting_changes` (a trigger of migration 0004). While anyone watches,
`LiveCalls` listens on that channel over a connection of its own, reads the live calls again
(at most every MIN_INTERVAL_S, so a burst of changes costs one read), and sends the result to
every open page. A lost listening connection is opened again; meanwhile the page is refreshed
every SAFETY_REFRESH_S from the pool, so a missed notification is never a stale page for long.
Nobody watching: no connection, no reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
import asyncpg
import structlog
from aiohttp import web

from ari_controller.console.format import caller, clock_time
from ari_controller.console.security import DATABASE_ERRORS, DB_TIMEOUT_S, requires
from ari_controller.console.services import ConsoleServices
from ari_controller.console.steps import Step, TimelineEntry, step_of

log = structlog.get_logger(__name__)

CHANNEL = "callrouting_changes"
# A step shows within a second of happening: the store writes within milliseconds, and a
# burst of changes is read once per this interval.
MIN_INTERVAL_S = 0.25
SAFETY_REFRESH_S = 5.0
HEARTBEAT_S = 15.0
RECONNECT_S = (0.5, 1.0, 2.0, 5.0)
# Ended calls stay on the page this long, marked as ended, so a glance sees how they ended.
RECENTLY_ENDED = dt.timedelta(seconds=60)
# A call with no end older than this is left to the call log (a daemon that never came back).
STALE = dt.timedelta(hours=12)
MAX_CALLS = 200
QUERY_TIMEOUT_S = 5.0

_CALLS = (
    "SELECT c.id, c.alert_id, c.did, c.caller_id, c.started_at, c.ended_at, c.outcome,"
    " a.number_name, a.route, a.status FROM calls c JOIN alerts a ON a.id = c.alert_id"
    " WHERE (c.ended_at IS NULL AND c.started_at > $2) OR c.ended_at > $1"
    " ORDER BY c.started_at DESC, c.id LIMIT $3"
)
# Each call's timeline entries after the last one read (`known`, a seq number).
_NEW_ENTRIES = (
    "SELECT e.call_id, e.seq, e.at, e.kind, e.data"
    " FROM unnest($1::uuid[], $2::int[]) AS k(call_id, known)"
    " JOIN call_events e ON e.call_id = k.call_id AND e.seq > k.known"
    " ORDER BY e.call_id, e.seq"
)


@dataclass(frozen=True, slots=True)
class LiveCall:
    call_id: str
    alert_id: str
    did: str
    number_name: str
    caller: str
    route: str
    started_at: dt.datetime
    zone: str
    step: Step

    def as_json(self) -> dict[str, Any]:
        return {
            "call": self.call_id,
            "alert": self.alert_id,
            "number": self.number_name or self.did,
            "caller": self.caller,
            "route": self.route,
            "started": f"{clock_time(self.started_at, self.zone)} {self.zone}",
            "step": self.step.key,
            "label": self.step.label,
            "detail": self.step.detail,
            "since": self.step.since.isoformat(),
        }


@dataclass(eq=False)
class _Watcher:
    """One open page: the newest snapshot it has not been sent yet."""

    news: asyncio.Event = field(default_factory=asyncio.Event)
    latest: str | None = None


class LiveCalls:
    """The live calls of the database, read on change while anyone watches."""

    def __init__(self, services: ConsoleServices) -> None:
        self._services = services
        self._watchers: set[_Watcher] = set()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._latest: str | None = None
        self.closed = False
        self._config: Any = None
        self._timelines: dict[Any, list[TimelineEntry]] = {}  # call id: entries so far
        self._last_seq: dict[Any, int] = {}
        self._steps: dict[Any, tuple[tuple[Any, ...], Step]] = {}

    async def calls(self) -> list[LiveCall]:
        """The live and just-ended calls, newest first.

        Only what a call wrote since the last read is fetched: its timeline so far is kept
        here while the call is on the page, and its step worked out again only when the
        timeline or the call's end changed. Reading the whole timelines of 200 busy calls four
        times a second took 70 ms of the daemon's CPU each time; the calls come first.
        """
        now = self._services.clock()
        config = self._services.config()
        if config is not self._config:
            self._config, self._steps = config, {}  # names may have changed
        names = {user.id: user.name for user in config.users}
        async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
            rows = await conn.fetch(
                _CALLS, now - RECENTLY_ENDED, now - STALE, MAX_CALLS, timeout=QUERY_TIMEOUT_S
            )
            ids = [row["id"] for row in rows]
            known = [self._last_seq.get(call_id, 0) for call_id in ids]
            events = await conn.fetch(_NEW_ENTRIES, ids, known, timeout=QUERY_TIMEOUT_S)
        self._remember(ids, events)
        calls = []
        for row in rows:
            number = config.number(row["did"])
            calls.append(
                LiveCall(
                    call_id=str(row["id"]),
                    alert_id=str(row["alert_id"]),
                    did=row["did"],
                    number_name=row["number_name"] or "",
                    caller=caller(row["caller_id"]),
                    route=row["route"] or "",
                    started_at=row["started_at"],
                    zone=number.zone_name if number is not None else "UTC",
                    step=self._step(row, names),
                )
            )
        return calls

    def _remember(self, ids: list[Any], events: list[Any]) -> None:
        """Adds the new timeline entries; forgets calls no longer on the page."""
        on_page = set(ids)
        for gone in [call_id for call_id in self._timelines if call_id not in on_page]:
            del self._timelines[gone]
            self._last_seq.pop(gone, None)
            self._steps.pop(gone, None)
        for event in events:
            call_id, seq = event["call_id"], event["seq"]
            # Two reads that raced each other bring the same entries: each is added once.
            if seq <= self._last_seq.get(call_id, 0):
                continue
            self._last_seq[call_id] = seq
            data = event["data"]
            parsed = json.loads(data) if isinstance(data, str) else data
            self._timelines.setdefault(call_id, []).append((event["at"], event["kind"], parsed))

    def _step(self, row: Any, names: Mapping[str, str]) -> Step:
        timeline = self._timelines.get(row["id"], [])
        key = (self._last_seq.get(row["id"], 0), row["ended_at"], row["outcome"])
        cached = self._steps.get(row["id"])
        if cached is not None and cached[0] == key:
            return cached[1]
        step = step_of(timeline, names, row["started_at"], row["ended_at"], row["outcome"])
        self._steps[row["id"]] = (key, step)
        return step

    def now(self) -> dt.datetime:
        return self._services.clock()

    def payload(self, calls: list[LiveCall]) -> str:
        return json.dumps(
            {"now": self._services.clock().isoformat(), "calls": [c.as_json() for c in calls]}
        )

    # ---- watchers -----------------------------------------------------------------------------

    def watch(self) -> _Watcher:
        watcher = _Watcher()
        self._watchers.add(watcher)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name="console-live-calls")
        return watcher

    def leave(self, watcher: _Watcher) -> None:
        self._watchers.discard(watcher)
        if not self._watchers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        self.closed = True
        for watcher in self._watchers:
            watcher.news.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _publish(self, payload: str) -> None:
        if payload == self._latest:
            return
        self._latest = payload
        for watcher in self._watchers:
            watcher.latest = payload
            watcher.news.set()

    async def _follow(self) -> None:
        """Listen while anyone watches; read on each change, and every SAFETY_REFRESH_S."""
        listening = asyncio.create_task(self._listen(), name="console-live-listen")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    # Expiry: nothing changed for a while; read anyway (times, a missed note).
                    await asyncio.wait_for(self._changed.wait(), SAFETY_REFRESH_S)
                self._changed.clear()
                try:
                    calls = await self.calls()
                except DATABASE_ERRORS as exc:
                    log.warning("console_live_read_failed", error=str(exc) or type(exc).__name__)
                else:
                    self._publish(self.payload(calls))
                await asyncio.sleep(MIN_INTERVAL_S)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    async def _listen(self) -> None:
        attempt = 0
        while True:
            try:
                await self._listen_once()
                attempt = 0
                log.warning("console_live_listener_lost")
            except DATABASE_ERRORS as exc:
                log.warning("console_live_listen_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)])
            attempt += 1

    async def _listen_once(self) -> None:
        """Until the listening connection is lost."""
        conn = await asyncpg.connect(self._services.dsn(), timeout=DB_TIMEOUT_S)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_change)
            self._changed.set()  # what changed while not listening
            await lost.wait()
        finally:
            if not conn.is_closed():
                with contextlib.suppress(*DATABASE_ERRORS):
                    await conn.close(timeout=DB_TIMEOUT_S)

    def _on_change(self, *_args: Any) -> None:
        self._changed.set()


HUB = web.AppKey("console_live_calls", LiveCalls)


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    hub = LiveCalls(services)
    app[HUB] = hub

    async def close_hub(_app: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(close_hub)
    app.router.add_get("/", _page, name="live")
    app.router.add_get("/live/events", _stream, name="live-events")


@requires("viewer")
async def _page(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    calls = await hub.calls()
    return aiohttp_jinja2.render_template(
        "live.html",
        request,
        {"calls": calls, "now": hub.now()},
    )


@requires("viewer")
async def _stream(request: web.Request) -> web.StreamResponse:
    """text/event-stream: `calls` events with the whole live list, on every change."""
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # a reverse proxy must pass each event on at once
        }
    )
    await response.prepare(request)
    watcher = hub.watch()
    try:
        await response.write(b"retry: 2000\n\n")
        try:
            first = hub.payload(await hub.calls())
        except DATABASE_ERRORS:
            first = None  # the next successful read reaches this page
        if first is not None:
            await _send(response, first)
        while not hub.closed:
            try:
                # Expiry: a comment keeps proxies and the browser from closing an idle stream.
                await asyncio.wait_for(watcher.news.wait(), HEARTBEAT_S)
            except TimeoutError:
                await response.write(b": still here\n\n")
                continue
            watcher.news.clear()
            if watcher.latest is not None and not hub.closed:
                await _send(response, watcher.latest)
    except ConnectionResetError:
        pass  # the page was closed (aiohttp's ClientConnectionResetError is one)
    except Exception:
        # The answer has begun: an error page cannot follow; the browser reconnects.
        log.exception("console_live_stream_failed")
    finally:
        hub.leave(watcher)
    return response


async def _send(response: web.StreamResponse, payload: str) -> None:
    await response.write(f"event: calls\ndata: {payload}\n\n".encode())
