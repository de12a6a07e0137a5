"""ARI's events websocket: staying connected, and handing each event to the call it is about.

Three parts, each answering one question:

- `Mailbox`: one leg's ordered inbox, and how the leg waits on it.
- `EventRouter`: which mailbox an event belongs to (synchronous, a few dict lookups).
- `EventConnection`: keeping one websocket to Asterisk open, reconnecting with backoff.

The reader never awaits anything but the socket: Asterisk closes a websocket whose reader falls
behind (100 ms write timeout), and every event in the gap is lost. So events go into unbounded
queues, and the `on_connected` reconcile hook runs in its own task beside the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, Literal

import aiohttp
import structlog

from ari_controller.ari.client import basic_auth_header
from ari_controller.ari.models import AriEvent, resource_id

log = structlog.get_logger(__name__)

_CONNECT_TIMEOUT_S: Final = 5.0
_CLOSE_TIMEOUT_S: Final = 1.0


class Mailbox:
    """One leg's ordered inbox: every event about the ids routed to it, in websocket order.

    A deque and the futures of whoever waits, rather than an asyncio.Queue: a call has several
    mailboxes (one per leg) for its whole life, and a Queue with its three deques, its Event and
    its bookkeeping costs a few KB each, most of a call's memory; its put and get are slower too.
    """

    __slots__ = ("_ids", "_items", "_waiters", "label")

    def __init__(self, label: str = "") -> None:
        self.label = label  # for logs: the id of the leg it serves
        self._items: deque[AriEvent] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._ids: set[str] = set()

    def put(self, event: AriEvent) -> None:
        self._items.append(event)
        self._wake_one()

    def _wake_one(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _take(self) -> AriEvent:
        """The next event of `_items`, waiting for one (unbounded: callers bound it)."""
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                # Woken and cancelled at once (a timeout): the event is still here, so the
                # next waiter must have it.
                if self._items and not waiter.cancelled():
                    self._wake_one()
                raise
            finally:
                self._waiters.remove(waiter)
        return self._items.popleft()

    async def get(self, timeout: float) -> AriEvent:
        """The next event; asyncio.TimeoutError when none comes within `timeout` seconds."""
        if self._items:
            return self._items.popleft()
        async with asyncio.timeout(timeout):
            return await self._take()

    def pending(self) -> int:
        """How many events are waiting."""
        return len(self._items)

    def ids(self) -> set[str]:
        """The ids currently routed here (a copy)."""
        return set(self._ids)

    def __repr__(self) -> str:
        return f"Mailbox({self.label!r}, ids={sorted(self._ids)!r}, pending={self.pending()})"


def routing_ids(event: AriEvent) -> Iterator[str]:
    """The ids an event is about, most specific first.

    A playback or recording event is about that playback/recording first, then its target; a
    bridge membership event is about the channel before the bridge; Dial is about the dialled
    leg (`peer`) and then the channel that dialled (`caller`).
    """
    raw = event.raw
    playback = raw.get("playback")
    if isinstance(playback, dict):
        yield from _id_and_target(playback, "id")
    recording = raw.get("recording")
    if isinstance(recording, dict):
        yield from _id_and_target(recording, "name")
    if event.type == "Dial":
        for key in ("peer", "caller"):
            party = raw.get(key)
            if isinstance(party, dict) and isinstance(party.get("id"), str):
                yield party["id"]
    else:
        channel = raw.get("channel")
        if isinstance(channel, dict) and isinstance(channel.get("id"), str):
            yield channel["id"]
    bridge = raw.get("bridge")
    if isinstance(bridge, dict) and isinstance(bridge.get("id"), str):
        yield bridge["id"]


def _id_and_target(resource: dict[str, object], key: str) -> Iterator[str]:
    ident = resource.get(key)
    if isinstance(ident, str):
        yield ident
    target = resource.get("target_uri")
    if isinstance(target, str):
        parsed = resource_id(target)
        if parsed is not None:
            yield parsed[1]


class EventRouter:
    """Hands each event to the call that owns the id it is about, in websocket order.

    Ids are channel ids, bridge ids, playback ids and recording names; Asterisk keeps them in
    separate namespaces, but the ids a controller chooses are made from a unique call or channel
    id plus a mark of their kind (`-leg2`, `-bridge`, `-pb-7`), so they never collide: one map.
    Register an id before the REST request that creates it: its first events can arrive before
    the REST answer.
    """

    def __init__(
        self,
        *,
        on_new_channel: Callable[[AriEvent], None] | None = None,
        on_unrouted: Callable[[AriEvent], None] | None = None,
    ) -> None:
        self._owners: dict[str, Mailbox] = {}
        self.on_new_channel = on_new_channel  # StasisStart for a channel nobody registered
        self.on_unrouted = on_unrouted  # anything else no mailbox wants
        self.dispatched = 0
        self.unrouted = 0

    def register(self, mailbox: Mailbox, *ids: str) -> None:
        """Route events about `ids` to `mailbox` (taking them over from any previous owner)."""
        for ident in ids:
            previous = self._owners.get(ident)
            if previous is not None and previous is not mailbox:
                previous._ids.discard(ident)
            self._owners[ident] = mailbox
            mailbox._ids.add(ident)

    def unregister(self, *ids: str) -> None:
        for ident in ids:
            mailbox = self._owners.pop(ident, None)
            if mailbox is not None:
                mailbox._ids.discard(ident)

    def unregister_mailbox(self, mailbox: Mailbox) -> None:
        """Forget every id of `mailbox` (the call is over)."""
        self.unregister(*mailbox._ids)

    def owner(self, ident: str) -> Mailbox | None:
        return self._owners.get(ident)

    def __len__(self) -> int:
        return len(self._owners)

    def dispatch(self, event: AriEvent) -> None:
        """Deliver `event` to the mailbox of its most specific registered id. Never blocks."""
        self.dispatched += 1
        owners = self._owners
        for ident in routing_ids(event):
            mailbox = owners.get(ident)
            if mailbox is not None:
                mailbox.put(event)
                return
        if event.type == "StasisStart" and self.on_new_channel is not None:
            self.on_new_channel(event)
            return
        self.unrouted += 1
        if self.on_unrouted is not None:
            self.on_unrouted(event)


def backoff_delay(attempt: int, initial: float, maximum: float, rand: float) -> float:
    """Seconds to wait before reconnect attempt `attempt` (0-based), with jitter.

    Exponential up to `maximum`, then scaled into its upper half by `rand` in [0, 1): never
    zero, so a flapping Asterisk is not hammered, and spread so that several controllers do not
    reconnect in lockstep.
    """
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 32))
    return ceiling * (0.5 + 0.5 * rand)


ReplacedPolicy = Literal["stop", "reclaim"]


class EventConnection:
    """Keeps the events websocket for `app` open and feeds every event to `router`.

    `run()` connects, reads, and on any disconnect (error, or a clean close by Asterisk)
    reconnects after a jittered exponential backoff, until `stop()`. After each connection
    `on_connected(is_reconnect)` runs in its own task, beside the reader: on a reconnect it is
    the place to reconcile (`GET /applications/{app}`, `/channels`, `/bridges`), since events in
    the gap are lost.

    ApplicationReplaced means another controller opened a websocket for the same app, and
    Asterisk now sends it our events. Fighting back would make the two steal the app from each
    other forever, so with `replaced_policy="stop"` (the default) `run()` returns after
    `on_replaced`; with "reclaim" it reconnects only after `backoff_max`.

    `may_connect`, when set, is asked before every connection: a daemon that no longer holds
    its app's lease must not open a websocket, which would take the app from the one that
    does; refused, `run()` returns.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str,
        router: EventRouter,
        *,
        subscribe_all: bool = False,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        on_connected: Callable[[bool], Awaitable[None]] | None = None,
        on_disconnected: Callable[[str], None] | None = None,
        on_replaced: Callable[[], None] | None = None,
        replaced_policy: ReplacedPolicy = "stop",
        heartbeat: float | None = 10.0,
        stable_after: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._url = base_url.rstrip("/") + "/events"
        self._auth = basic_auth_header(username, password)
        self.app = app
        self.router = router
        self._subscribe_all = subscribe_all
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.on_replaced = on_replaced
        self.replaced_policy: ReplacedPolicy = replaced_policy
        self.may_connect: Callable[[], Awaitable[bool]] | None = None
        # Pings find a half-open connection (Asterisk gone without a FIN) within ~2 heartbeats.
        self._heartbeat = heartbeat
        # A connection that lasted this long resets the backoff; a shorter one (accepted, then
        # closed at once) keeps growing it.
        self._stable_after = stable_after
        self._rand = rand
        self._connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._run_task: asyncio.Task[object] | None = None
        self._ever_connected = False
        self.reconnects = 0
        self.replaced = False
        self.malformed = 0

    @property
    def connected(self) -> asyncio.Event:
        return self._connected

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> None:
        """Until the websocket is up; asyncio.TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def run(self) -> None:
        """Connect, read forever, reconnect with backoff until `stop()` (or ApplicationReplaced)."""
        self._finished.clear()
        self._run_task = asyncio.current_task()
        attempt = 0
        try:
            async with aiohttp.ClientSession(headers={"Authorization": self._auth}) as session:
                while not self._stopping.is_set():
                    started = time.monotonic()
                    reason = await self._connect_and_read(session)
                    if self._stopping.is_set():
                        break
                    if self.replaced:
                        if self.replaced_policy == "stop":
                            break
                        delay = self.backoff_max
                    else:
                        if time.monotonic() - started >= self._stable_after:
                            attempt = 0
                        delay = backoff_delay(
                            attempt, self.backoff_initial, self.backoff_max, self._rand()
                        )
                        attempt += 1
                    log.info("ari_events_reconnect_wait", reason=reason, delay_s=round(delay, 3))
                    await self._sleep_unless_stopped(delay)
        finally:
            self._connected.clear()
            self._finished.set()

    async def stop(self) -> None:
        """Close the websocket and make `run()` return (waits up to a second for it)."""
        self._stopping.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await ws.close()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self._finished.wait()
        except TimeoutError:
            # A close handshake Asterisk never answered: stop reading regardless.
            if self._run_task is not None and not self._run_task.done():
                self._run_task.cancel()
        for task in list(self._hook_tasks):
            task.cancel()

    async def _sleep_unless_stopped(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopping.wait()

    async def _connect_and_read(self, session: aiohttp.ClientSession) -> str:
        """One connection's life; returns why it ended."""
        params = {"app": self.app, "subscribeAll": "true" if self._subscribe_all else "false"}
        if self.may_connect is not None and not await self.may_connect():
            log.warning("ari_events_not_connecting", why="this controller no longer drives the app")
            self._stopping.set()
            return "not ours to drive"
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                ws = await session.ws_connect(
                    self._url, params=params, heartbeat=self._heartbeat, autoping=True
                )
        except aiohttp.WSServerHandshakeError as exc:
            log.warning("ari_events_refused", status=exc.status, message=exc.message)
            return f"handshake refused: {exc.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("ari_events_connect_failed", error=repr(exc))
            return f"connect failed: {exc!r}"
        self._ws = ws
        if self._stopping.is_set():  # stop() ran while we were connecting
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await ws.close()
            self._ws = None
            return "stopped"
        self.replaced = False
        is_reconnect = self._ever_connected
        self._ever_connected = True
        if is_reconnect:
            self.reconnects += 1
        self._connected.set()
        log.info("ari_events_connected", app=self.app, reconnect=is_reconnect)
        self._start_hook(is_reconnect)
        try:
            reason = await self._read(ws)
        finally:
            self._ws = None
            self._connected.clear()
            if not ws.closed:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                        await ws.close()
        if not self._stopping.is_set():
            log.warning("ari_events_disconnected", reason=reason)
            if self.on_disconnected is not None:
                self._call_safely(self.on_disconnected, reason)
        return reason

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        dispatch = self.router.dispatch
        while True:
            # Bounded by the heartbeat: a silent dead peer ends receive() with an error.
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                data: str | bytes = msg.data
            elif msg.type is aiohttp.WSMsgType.BINARY:
                data = msg.data
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                return f"closed by server ({ws.close_code})"
            elif msg.type is aiohttp.WSMsgType.CLOSED:
                return "closed"
            elif msg.type is aiohttp.WSMsgType.ERROR:
                return f"error: {ws.exception()!r}"
            else:
                continue
            event = self._parse(data)
            if event is None:
                continue
            if event.type == "ApplicationReplaced":
                self.replaced = True
                if self.on_replaced is not None:
                    self._call_safely(self.on_replaced)  # the owner says what it means
                else:
                    log.error("ari_application_replaced", app=self.app)
                return "application replaced"
            try:
                dispatch(event)
            except Exception:
                # A faulty callback must not cost every other call its events.
                log.exception("ari_event_dispatch_failed", event_type=event.type)

    def _parse(self, data: str | bytes) -> AriEvent | None:
        try:
            return AriEvent.from_json(json.loads(data))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self.malformed += 1
            log.warning("ari_event_malformed", error=str(exc), data=_preview(data))
            return None

    def _start_hook(self, is_reconnect: bool) -> None:
        if self.on_connected is None:
            return
        task = asyncio.create_task(self._run_hook(self.on_connected, is_reconnect))
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

    async def _run_hook(self, hook: Callable[[bool], Awaitable[None]], is_reconnect: bool) -> None:
        try:
            await hook(is_reconnect)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ari_on_connected_failed", reconnect=is_reconnect)

    @staticmethod
    def _call_safely(callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("ari_event_callback_failed")


def _preview(data: str | bytes) -> str:
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return text[:200]
