"""Writing call records to Postgres without ever holding up a call.

The call flow hands records to `StoreWriter.submit`, which only appends to an in-memory queue.
One background task applies them in submission order, each as idempotent statements, so a
retry after an ambiguous failure (the connection dropped after the server committed) changes
nothing. The records pending at a time go in one transaction, and each run of consecutive
records with the same statement goes in one `executemany` (one round trip). While the database
is unreachable the task retries with backoff and spools every pending record to
`<spool_dir>/pending.jsonl`; `start()` replays that file first, so records survive a controller
restart too. A record the database refuses outright (a CHECK or foreign key violation:
retrying gives the same answer) goes to `<spool_dir>/rejected.jsonl` instead of blocking every
record behind it: when a batch is refused, its records are applied one by one to find it.

What SQL a record becomes is `statements.py`; the files on disk are `spool.py`; this module is
the queue, its order, and when to retry.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from ari_controller.calls.records import Record
from ari_controller.store.spool import Spool, SpoolInUseError
from ari_controller.store.statements import apply_record, apply_records

__all__ = ["OnWrite", "SpoolInUseError", "StoreWriter", "is_refused", "retry_delay"]

_logger = structlog.get_logger(__name__)


def _log(level: str, event: str, **fields: object) -> None:
    # The writer must go on even when logging cannot (a closed stream, a broken handler):
    # the records matter more than the lines about them.
    with contextlib.suppress(Exception):
        getattr(_logger, level)(event, **fields)


OnWrite = Callable[[float, bool], None]

# SQLSTATE classes where the server understood the statement and refused the data itself:
# 22 data exception, 23 integrity constraint violation. Anything else (connection trouble,
# shutdown, a missing table before `migrate`) may pass later, so it is retried.
_REFUSED_SQLSTATE_CLASSES = frozenset({"22", "23"})


def retry_delay(failures: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Backoff before the next attempt after `failures` consecutive failures (1, 2, ...).

    Doubles from `initial` up to `maximum`, with jitter in [50%, 100%] so that several
    controllers coming back together do not hammer the database in step.
    """
    # The exponent stops growing long before it could overflow a float (after ~1024 failures).
    base = min(maximum, initial * 2.0 ** min(max(0, failures - 1), 60))
    return base * (0.5 + 0.5 * rng.random())


def is_refused(exc: BaseException) -> bool:
    """True when the database rejected the record itself, so retrying cannot help."""
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        return True  # the driver could not encode an argument (asyncpg's client DataError)
    sqlstate = getattr(exc, "sqlstate", None)
    return (
        isinstance(exc, asyncpg.PostgresError)
        and isinstance(sqlstate, str)
        and sqlstate[:2] in _REFUSED_SQLSTATE_CLASSES
    )


@dataclass(slots=True)
class _Pending:
    record: Record
    spooled: bool


Fence = tuple[str, str, int]  # (app, holder, fencing number)


class FencedOff(Exception):
    """The lease this daemon's writes need is another daemon's now."""


class StoreWriter:
    """Applies records to Postgres in order, in the background; see the module docstring.

    All methods are to be called from the event loop's thread. `on_write(latency_s, ok)` is
    called after each write (one transaction holding the records pending at that moment, up
    to `batch_max`) and after each failed attempt: the hook for metrics.
    """

    def __init__(
        self,
        dsn: str,
        spool_dir: Path,
        *,
        pool_min: int = 1,
        pool_max: int = 4,
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
        connect_timeout: float = 5.0,
        statement_timeout: float = 10.0,
        batch_max: int = 100,
        on_write: OnWrite | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._dsn = dsn
        self._spool = Spool(Path(spool_dir))
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self._batch_max = batch_max
        self._on_write = on_write
        self._rng = rng or random.Random()

        self._queue: collections.deque[_Pending] = collections.deque()
        self._wake = asyncio.Event()
        # Who waits for which count of completed records (a heap: the nearest first), so a
        # completion wakes only those it concerns, however many calls wait at once.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_numbers = itertools.count()
        self._spooling = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pool: Any = None
        self._stopping = False
        self._closed = False

        self._submitted = 0
        self._completed_count = 0
        self.written = 0
        """Records applied to the database (including replays that found nothing to do)."""
        self.failures = 0
        """Attempts that failed and will be retried (database down, timeout, ...)."""
        self.rejected = 0
        """Records the database refused; kept in rejected.jsonl."""
        self.last_latency_s: float | None = None
        self.consecutive_failures = 0
        self.fence: Fence | None = None
        """With several daemons for one app: the lease this daemon's writes need (app, holder,
        fencing number). A batch is written only while the database says the lease is still
        this holder's; otherwise it is dropped: the calls are another daemon's now."""
        self.fenced = 0
        """Records dropped because the lease was no longer this daemon's."""
        self._discarding = False
        self.idle_in_transaction_s: float | None = None
        """With a fence: Postgres ends a session of ours that stays idle inside a transaction
        this long (a process frozen mid-batch), so the lease row it read FOR SHARE does not
        hold a standby's takeover up for longer than a lease."""

    # --- what the call flow and the app use ------------------------------------------------

    @property
    def pending(self) -> int:
        """Records submitted (or replayed) and not yet in the database."""
        return len(self._queue)

    @property
    def pending_path(self) -> Path:
        return self._spool.pending_path

    @property
    def rejected_path(self) -> Path:
        return self._spool.rejected_path

    def discard_from_now(self) -> None:
        """Every record submitted from now on is dropped (counted in `fenced`): this daemon
        handed its calls to another one, which writes their records from here on."""
        self._discarding = True

    def submit(self, record: Record) -> None:
        """Queue a record for writing. Returns at once, never raises."""
        if self._discarding:
            self.fenced += 1
            return
        try:
            self._queue.append(_Pending(record, spooled=False))
            self._submitted += 1
            if self._closed:
                # Too late for the background task: keep it for the next start instead.
                _log("warning", "store_submit_after_close", record=type(record).__name__)
                self._spool_now_blocking()
            else:
                self._wake.set()
        except Exception:
            _log("exception", "store_submit_failed", record=type(record).__name__)

    async def start(self) -> None:
        """Replay the spool from an earlier run, then start writing. Never waits for Postgres."""
        if self._task is not None:
            return
        self._closed = False
        self._stopping = False
        replayed = await asyncio.to_thread(self._open_spool)
        # After an earlier close() of this writer, its spooled records are in the file too.
        in_file = sum(1 for entry in self._queue if entry.spooled)
        if in_file:
            self._queue = collections.deque(e for e in self._queue if not e.spooled)
            self._submitted -= in_file
        if replayed:
            _log("info", "store_spool_replayed", records=len(replayed))
        # Spooled records are older than anything submitted before start(): they go first.
        self._queue.extendleft(_Pending(r, spooled=True) for r in reversed(replayed))
        self._submitted += len(replayed)
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def flush(self, timeout: float) -> bool:
        """Wait until everything submitted so far is written (or rejected); False on timeout."""
        target = self._submitted
        if self._completed_count >= target:
            return True
        done = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (target, next(self._waiter_numbers), done))
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            return False
        return True

    async def durable(self, timeout: float) -> str:
        """Wait until everything submitted so far would outlive this process: written to
        Postgres (every host sees it), or else in the spool file (a restart on this host
        replays it first). "database", "spool", or "memory" when even the file failed.

        While the database is failing, nothing waits for it: the records go to the file."""
        if self.consecutive_failures == 0 and await self.flush(timeout):
            return "database"
        return "spool" if await self._spool_pending() else "memory"

    async def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to `timeout`, then stop; what is still pending stays in the spool."""
        flushed = await self.flush(timeout) if self._task is not None else not self._queue
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._closed = True  # from here on, submit() spools directly
        if self._queue:
            await self._spool_pending()
        elif self._spool.has_lines:
            await asyncio.to_thread(self._spool.truncate)
        await self._close_pool()
        self._spool.release()
        if self._queue:
            _log("warning", "store_closed_with_pending", pending=len(self._queue))
        return flushed

    # --- the background task ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                if self._queue:
                    await self._write_queue()
                    continue
                if self._spool.has_lines:
                    # Everything in the spool is in the database now.
                    await asyncio.to_thread(self._spool.truncate)
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Whatever went wrong, this task must live on: the records depend on it.
                self.failures += 1
                self.consecutive_failures += 1
                self._report(time.monotonic() - started, ok=False)
                delay = retry_delay(
                    self.consecutive_failures, self._retry_initial, self._retry_max, self._rng
                )
                _log(
                    "warning",
                    "store_write_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    pending=len(self._queue),
                    retry_in_s=round(delay, 3),
                )
                await self._wait_for_retry(delay)

    async def _wait_for_retry(self, delay: float) -> None:
        """Sleep until the next attempt, keeping every pending record on disk meanwhile."""
        deadline = time.monotonic() + delay
        while True:
            self._wake.clear()
            await self._spool_pending()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wake.wait()

    async def _write_queue(self) -> None:
        pool = await self._ensure_pool()
        async with pool.acquire(timeout=self._connect_timeout) as conn:
            while self._queue:
                # Several records per transaction: one commit (one WAL flush) for a burst,
                # and one round trip for each run of records with the same statement.
                batch = list(itertools.islice(self._queue, self._batch_max))
                started = time.monotonic()
                try:
                    async with conn.transaction():
                        await self._check_fence(conn)
                        await apply_records(
                            conn,
                            (entry.record for entry in batch),
                            timeout_s=self._statement_timeout,
                        )
                except FencedOff:
                    self.fenced += len(batch)
                    _log("error", "store_write_fenced", records=len(batch), fence=self.fence)
                    await self._completed(len(batch), written=False)
                    continue
                except Exception as exc:
                    if not is_refused(exc):
                        raise
                    # Find the refused record(s): the rest of the batch must still go in. The
                    # whole batch was rolled back, so each record is applied alone now.
                    await self._write_one_by_one(conn, batch)
                    continue
                self._report(time.monotonic() - started, ok=True)
                await self._completed(len(batch), written=True)

    async def _check_fence(self, conn: Any) -> None:
        """Inside the batch's transaction: the lease row is read FOR SHARE, so a takeover
        (which updates it) waits for this commit; no write of ours lands after it, nor after
        we gave the lease up (a release leaves it expiring when it was renewed). A lease that
        merely expired while Postgres was away is still ours: what we kept in the spool then
        goes in."""
        if self.fence is None:
            return
        app, holder, fencing = self.fence
        ours = await conn.fetchval(
            "SELECT true FROM controller_leases WHERE app = $1 AND holder = $2 AND fencing = $3"
            " AND expires_at > renewed_at FOR SHARE",
            app,
            holder,
            fencing,
            timeout=self._statement_timeout,
        )
        if not ours:
            raise FencedOff(f"the lease of {app} is no longer {holder}'s (fencing {fencing})")

    async def _write_one_by_one(self, conn: Any, batch: list[_Pending]) -> None:
        for entry in batch:
            started = time.monotonic()
            try:
                await apply_record(conn, entry.record, timeout_s=self._statement_timeout)
            except Exception as exc:
                if not is_refused(exc):
                    raise
                await self._reject(entry, exc)
                await self._completed(1, written=False)
            else:
                self._report(time.monotonic() - started, ok=True)
                await self._completed(1, written=True)

    async def _ensure_pool(self) -> Any:
        if self._pool is None:
            self._pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    self._dsn,
                    min_size=self._pool_min,
                    max_size=self._pool_max,
                    timeout=self._connect_timeout,
                    command_timeout=self._statement_timeout,
                    server_settings=self._server_settings(),
                ),
                timeout=self._connect_timeout * 2,
            )
        return self._pool

    def _server_settings(self) -> dict[str, str]:
        if self.idle_in_transaction_s is None:
            return {}
        ms = max(100, int(self.idle_in_transaction_s * 1000))
        return {"idle_in_transaction_session_timeout": str(ms)}

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self._connect_timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pool.terminate()

    async def _completed(self, count: int, *, written: bool) -> None:
        """The `count` records at the head of the queue are done (written or rejected)."""
        for _ in range(count):
            self._queue.popleft()
        if written:
            self.written += count
            self.consecutive_failures = 0
        else:
            self.rejected += count
        self._completed_count += count
        waiters = self._waiters
        while waiters and waiters[0][0] <= self._completed_count:
            done = heapq.heappop(waiters)[2]
            if not done.done():  # (one whose wait timed out is cancelled)
                done.set_result(None)

    def _report(self, latency_s: float, *, ok: bool) -> None:
        if ok:
            self.last_latency_s = latency_s
        if self._on_write is None:
            return
        try:
            self._on_write(latency_s, ok)
        except Exception:
            _log("exception", "store_on_write_hook_failed")

    async def _reject(self, entry: _Pending, exc: BaseException) -> None:
        _log(
            "error",
            "store_record_rejected",
            record=type(entry.record).__name__,
            sqlstate=getattr(exc, "sqlstate", None),
            error=str(exc),
            kept_in=str(self.rejected_path),
        )
        await asyncio.to_thread(self._spool.reject, entry.record, exc)

    # --- the spool ----------------------------------------------------------------------------
    # Invariant: the queue is [records already in pending.jsonl] + [records only in memory].
    # pending.jsonl may also hold records written since (replaying them is harmless); it is
    # emptied whenever the queue drains.

    async def _spool_pending(self) -> bool:
        """Every pending record into the spool file; False when the file could not take them."""
        # One at a time: calls waiting for durability and the retry loop all come here.
        async with self._spooling:
            unspooled = [entry for entry in self._queue if not entry.spooled]
            if not unspooled:
                return True
            try:
                await asyncio.to_thread(self._spool_unspooled, unspooled)
            except Exception as exc:
                # The records are still in memory; the next attempt spools them again.
                _log("error", "store_spool_failed", error=str(exc), pending=len(self._queue))
                return False
            return True

    def _spool_unspooled(self, entries: list[_Pending]) -> None:
        todo = [entry for entry in entries if not entry.spooled]
        if not todo:
            return
        self._spool.append([entry.record for entry in todo])
        for entry in todo:
            entry.spooled = True

    def _spool_now_blocking(self) -> None:
        try:
            self._spool_unspooled(list(self._queue))
        except Exception as exc:
            _log("error", "store_spool_failed", error=str(exc), pending=len(self._queue))

    def _open_spool(self) -> list[Record]:
        """Take the spool directory for this writer and read what an earlier run left."""
        records, unreadable = self._spool.open()
        for number, error in unreadable:
            _log("error", "store_spool_line_unreadable", line=number, error=error)
        self.rejected += len(unreadable)
        return records
