"""What the benchmark measures inside the controller's own process, and how it hooks in.

The controller's code is left as it is: `Instruments.install()` wraps a few methods of the ARI
layer (event parsing and routing, a call task taking an event from its mailbox, a REST request)
and the store writer's `on_write` hook. Reaction time is the span from an event's arrival (its
websocket message about to be parsed) to the REST request the call task that took the event
sends before it next suspends; a task that waits for anything else first (another event, a
timer, another task) was not reacting to that event, so its mark expires. A new call's first
reaction is its StasisStart to its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import resource
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ari_controller.ari.client import AriClient
from ari_controller.ari.events import EventConnection, EventRouter, Mailbox
from ari_controller.ari.models import AriEvent

# Where an event's arrival time rides along: its raw dict is ours to annotate, and the
# controller never reads keys it does not know.
ARRIVAL_KEY = "__bench_arrived"
LOOP_TICK_S = 0.01
SAMPLE_EVERY_TICKS = 5  # memory and call count every ~50 ms
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

_Mark = tuple[float, str, float]  # arrival, event type, when the task was free to take it


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rss_kb() -> int:
    """This process's resident memory now (not the peak getrusage reports)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE_KB


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def caller_of_request(path: str, params: Mapping[str, Any] | None) -> str | None:
    """The caller's channel id when a request connects a call: the bridge that joins caller
    and responder (caller first), or the recording that takes a voicemail."""
    if path.endswith("/addChannel") and params:
        channels = str(params.get("channel") or "")
        return channels.split(",", 1)[0] or None
    if path.startswith("/channels/") and path.endswith("/record"):
        return path.split("/")[2]
    return None


@dataclass
class Instruments:
    """Collects while `recording` is true; `calls_in_progress` is read for each memory sample."""

    calls_in_progress: Callable[[], int] = lambda: 0
    recording: bool = False
    reaction_s: list[float] = field(default_factory=list)
    # From when the call could look at the event: later than its arrival when the call was
    # still waiting for a REST answer (its flow is sequential) as the event came.
    reaction_ready_s: list[float] = field(default_factory=list)
    setup_s: list[float] = field(default_factory=list)
    rest_s: list[float] = field(default_factory=list)  # a REST request, sent to answered
    connected_at: list[float] = field(default_factory=list)
    first_call_at: float | None = None
    loop_lag_s: list[float] = field(default_factory=list)
    db_write_s: list[float] = field(default_factory=list)
    db_write_failures: int = 0
    memory: list[tuple[int, int]] = field(default_factory=list)  # (rss_kb, calls in progress)
    gc_pauses: list[tuple[int, float]] = field(default_factory=list)  # (generation, seconds)
    calls_started: int = 0
    events: int = 0
    requests: int = 0

    def __post_init__(self) -> None:
        # task -> (arrival, event type, when the task was free to take it) of its last event
        self._marks: weakref.WeakKeyDictionary[asyncio.Task[Any], _Mark] = (
            weakref.WeakKeyDictionary()
        )
        self._waits: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self.slowest: list[tuple[float, str, str]] = []  # (seconds, event type, request)
        self._arrived: dict[str, float] = {}  # caller channel id -> its StasisStart arrival
        self._new_calls: dict[str, float] = {}  # the same, until the call is answered
        self._undo: list[Callable[[], None]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._gc_started = 0.0

    def reset(self) -> None:
        """Forget everything counted so far (after a warm-up)."""
        for values in (
            self.reaction_s,
            self.reaction_ready_s,
            self.setup_s,
            self.rest_s,
            self.connected_at,
            self.loop_lag_s,
            self.db_write_s,
            self.memory,
            self.slowest,
            self.gc_pauses,
        ):
            values.clear()
        self._arrived.clear()
        self._new_calls.clear()
        self.first_call_at = None
        self.db_write_failures = self.calls_started = self.events = self.requests = 0

    # ---- the hooks ------------------------------------------------------------------------

    def install(self) -> None:
        """Wrap the ARI layer's methods (for every instance, so before the daemon starts)."""
        self._wrap(EventConnection, "_parse", self._wrap_parse)
        self._wrap(EventRouter, "dispatch", self._wrap_dispatch)
        self._wrap(Mailbox, "get", self._wrap_get)
        self._wrap(AriClient, "_request", self._wrap_request)

        gc.callbacks.append(self._gc)
        self._undo.append(lambda: gc.callbacks.remove(self._gc))

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """Cyclic garbage collection stops the loop: how long, and which generation."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self.recording:
            self.gc_pauses.append(
                (info.get("generation", 0), time.perf_counter() - self._gc_started)
            )

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _wrap(self, owner: type, name: str, wrapper: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, wrapper(original))
        self._undo.append(lambda: setattr(owner, name, original))

    def _wrap_parse(self, original: Any) -> Any:
        def parse(connection: EventConnection, data: str | bytes) -> AriEvent | None:
            arrived = time.perf_counter()
            event: AriEvent | None = original(connection, data)
            if event is not None:
                event.raw[ARRIVAL_KEY] = arrived
            return event

        return parse

    def _wrap_dispatch(self, original: Any) -> Any:
        instruments = self

        def dispatch(router: EventRouter, event: AriEvent) -> None:
            if instruments.recording:
                instruments.events += 1
                if event.type == "StasisStart" and router.owner(event.channel_id) is None:
                    arrived = event.raw.get(ARRIVAL_KEY, time.perf_counter())
                    instruments._arrived[event.channel_id] = arrived
                    instruments._new_calls[event.channel_id] = arrived
                    instruments.calls_started += 1
                    if instruments.first_call_at is None:
                        instruments.first_call_at = arrived
            original(router, event)

        return dispatch

    def _took(self, event: AriEvent) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        arrived = event.raw.get(ARRIVAL_KEY)
        if isinstance(arrived, float):
            free = self._waits.pop(task, arrived)
            mark = (arrived, event.type, max(arrived, free))
            self._marks[task] = mark
            # A reaction is what the task does before it next lets the loop run: if it
            # suspends first (for another task, a timer), this runs before it resumes.
            asyncio.get_running_loop().call_soon(self._expire, task, mark)

    def _expire(self, task: asyncio.Task[Any], mark: _Mark) -> None:
        if self._marks.get(task) is mark:
            del self._marks[task]

    def _waiting(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._marks.pop(task, None)
            self._waits[task] = time.perf_counter()

    def _wrap_get(self, original: Any) -> Any:
        async def get(mailbox: Mailbox, timeout: float) -> AriEvent:
            self._waiting()
            event: AriEvent = await original(mailbox, timeout)
            self._took(event)
            return event

        return get

    def _wrap_request(self, original: Any) -> Any:
        instruments = self

        async def request(
            client: AriClient,
            method: str,
            path: str,
            params: Mapping[str, Any] | None = None,
            **options: Any,
        ) -> Any:
            now = time.perf_counter()
            task = asyncio.current_task()
            mark = instruments._marks.pop(task, None) if task is not None else None
            if instruments.recording:
                instruments.requests += 1
                if mark is not None:
                    reaction = now - mark[0]
                    instruments.reaction_s.append(reaction)
                    instruments.reaction_ready_s.append(now - mark[2])
                    instruments._note_slow(reaction, mark[1], f"{method} {path}")
                if path.endswith("/answer"):
                    # A new call's first reaction: its task did not exist when StasisStart came.
                    started = instruments._new_calls.pop(path.split("/")[2], None)
                    if started is not None:
                        reaction = now - started
                        instruments.reaction_s.append(reaction)
                        instruments.reaction_ready_s.append(reaction)
                        instruments._note_slow(reaction, "StasisStart", f"{method} {path}")
                caller = caller_of_request(path, params)
                if caller is not None:
                    arrived = instruments._arrived.pop(caller, None)
                    if arrived is not None:
                        instruments.setup_s.append(now - arrived)
                        instruments.connected_at.append(now)
                        # Memory peaks while calls are connected: sample here too.
                        instruments.memory.append((rss_kb(), instruments.calls_in_progress()))
            try:
                return await original(client, method, path, params, **options)
            finally:
                if instruments.recording:
                    instruments.rest_s.append(time.perf_counter() - now)

        return request

    def _note_slow(self, seconds: float, event_type: str, request: str) -> None:
        """Keep the ten slowest reactions, to say what they were."""
        if len(self.slowest) < 10 or seconds > self.slowest[-1][0]:
            self.slowest.append((seconds, event_type, request))
            self.slowest.sort(reverse=True)
            del self.slowest[10:]

    def on_write(self, chained: Callable[[float, bool], None]) -> Callable[[float, bool], None]:
        """A StoreWriter on_write hook that records, then calls the daemon's own."""

        def hook(latency_s: float, ok: bool) -> None:
            if self.recording:
                if ok:
                    self.db_write_s.append(latency_s)
                else:
                    self.db_write_failures += 1
            chained(latency_s, ok)

        return hook

    # ---- the loop's own health --------------------------------------------------------------

    def start_ticker(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="bench-ticker")

    async def stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _tick(self) -> None:
        """Sleeps 10 ms at a time: any oversleep is time the loop was busy elsewhere."""
        ticks = 0
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LOOP_TICK_S)
            lag = time.perf_counter() - before - LOOP_TICK_S
            if not self.recording:
                continue
            self.loop_lag_s.append(max(0.0, lag))
            ticks += 1
            if ticks % SAMPLE_EVERY_TICKS == 0:
                self.memory.append((rss_kb(), self.calls_in_progress()))
