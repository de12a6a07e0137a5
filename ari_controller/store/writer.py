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
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import itertools
import json
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import structlog

from ari_controller.store.records import (
    AlertEscalated,
    AlertOpened,
    AlertRouted,
    AlertStatusChanged,
    CallAnswered,
    CallEnded,
    CallStarted,
    LegAnswered,
    LegEnded,
    LegPlaced,
    NotificationQueued,
    Record,
    TimelineEvent,
    VoicemailStored,
    from_json,
    to_json,
)

_logger = structlog.get_logger(__name__)


def _log(level: str, event: str, **fields: object) -> None:
    # The writer must go on even when logging cannot (a closed stream, a broken handler):
    # the records matter more than the lines about them.
    with contextlib.suppress(Exception):
        getattr(_logger, level)(event, **fields)


OnWrite = Callable[[float, bool], None]

PENDING_FILE = "pending.jsonl"
REJECTED_FILE = "rejected.jsonl"
_LOCK_FILE = "writer.lock"

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


Statement = tuple[str, tuple[Any, ...]]
"""One SQL statement and its arguments."""


def statements(record: Record) -> list[Statement]:
    """The statements that apply `record`, in order; pure (no I/O), so they can be grouped.

    Every statement is written so that applying the same record again, or an older record
    after newer ones (a replayed spool), leaves the database as it was. A record of several
    statements must be applied atomically (`apply_record` and the batches do so).
    """
    match record:
        case AlertOpened():
            return [
                (
                    "INSERT INTO alerts (id, number_did, number_name, route, caller_id,"
                    " created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                    (
                        record.alert_id,
                        record.number_did,
                        record.number_name,
                        record.route,
                        record.caller_id,
                        record.created_at,
                    ),
                )
            ]
        case AlertRouted():
            return [
                (
                    "UPDATE alerts SET route = $2 WHERE id = $1 AND route IS DISTINCT FROM $2",
                    (record.alert_id, record.route),
                )
            ]
        case CallStarted():
            return [
                (
                    "INSERT INTO calls (id, alert_id, caller_channel_id, did, caller_id,"
                    " started_at, answered_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        record.call_id,
                        record.alert_id,
                        record.caller_channel_id,
                        record.did,
                        record.caller_id,
                        record.started_at,
                        record.answered_at,
                    ),
                )
            ]
        case CallAnswered():
            return [
                (
                    "UPDATE calls SET answered_at = $2 WHERE id = $1 AND answered_at IS NULL",
                    (record.call_id, record.answered_at),
                )
            ]
        case TimelineEvent():
            return [
                (
                    "INSERT INTO call_events (call_id, seq, at, kind, data)"
                    " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (call_id, seq) DO NOTHING",
                    (
                        record.call_id,
                        record.seq,
                        record.at,
                        record.kind,
                        json.dumps(dict(record.data), default=str),
                    ),
                )
            ]
        case LegPlaced():
            return [
                (
                    "INSERT INTO call_legs (id, call_id, user_id, contact, mode, attempt,"
                    " placed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                    (
                        record.leg_id,
                        record.call_id,
                        record.user_id,
                        record.contact,
                        record.mode,
                        record.attempt,
                        record.placed_at,
                    ),
                )
            ]
        case LegAnswered():
            return [
                (
                    "UPDATE call_legs SET answered_at = $2 WHERE id = $1 AND answered_at IS NULL",
                    (record.leg_id, record.answered_at),
                )
            ]
        case LegEnded():
            # A leg ends once: the first end recorded wins.
            return [
                (
                    "UPDATE call_legs SET ended_at = $2, outcome = $3, hangup_cause = $4,"
                    " answered_at = COALESCE(answered_at, $5)"
                    " WHERE id = $1 AND ended_at IS NULL",
                    (
                        record.leg_id,
                        record.ended_at,
                        str(record.outcome),
                        record.hangup_cause,
                        record.answered_at,
                    ),
                )
            ]
        case AlertStatusChanged(status="accepted"):
            return [
                (
                    "UPDATE alerts SET status = 'accepted', accepted_at = $2, accepted_by = $3"
                    " WHERE id = $1 AND status = 'open'",
                    (record.alert_id, record.at, record.by_user_id),
                )
            ]
        case AlertStatusChanged():
            return [
                (
                    "UPDATE alerts SET status = 'resolved', resolved_at = $2, resolved_by = $3"
                    " WHERE id = $1 AND status <> 'resolved'",
                    (record.alert_id, record.at, record.by_user_id),
                )
            ]
        case AlertEscalated():
            return [
                (
                    "UPDATE alerts SET escalation_count = $2, last_escalated_at = $3"
                    " WHERE id = $1 AND escalation_count < $2",
                    (record.alert_id, record.escalation, record.at),
                )
            ]
        case VoicemailStored():
            return [
                (
                    "INSERT INTO voicemails (id, call_id, alert_id, recording_name, duration_s,"
                    " format, audio, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        record.voicemail_id,
                        record.call_id,
                        record.alert_id,
                        record.recording_name,
                        record.duration_s,
                        record.format,
                        record.audio,
                        record.created_at,
                    ),
                ),
                (
                    "UPDATE alerts SET voicemail_id = $2 WHERE id = $1 AND voicemail_id IS NULL",
                    (record.alert_id, record.voicemail_id),
                ),
            ]
        case CallEnded():
            return [
                (
                    "UPDATE calls SET ended_at = $2, outcome = $3"
                    " WHERE id = $1 AND ended_at IS NULL",
                    (record.call_id, record.ended_at, record.outcome),
                ),
                (
                    "UPDATE alerts SET ended_reason = $2 WHERE id = $1 AND ended_reason IS NULL",
                    (record.alert_id, record.outcome),
                ),
            ]
        case NotificationQueued():
            return [
                (
                    "INSERT INTO notification_outbox (notification_id, alert_id, kind, payload,"
                    " created_at) VALUES ($1, $2, $3, $4::jsonb, $5)"
                    " ON CONFLICT (notification_id) DO NOTHING",
                    (
                        record.notification_id,
                        record.alert_id,
                        record.kind,
                        json.dumps(dict(record.payload), default=str),
                        record.created_at,
                    ),
                )
            ]
        case _:
            raise TypeError(f"not a store record: {record!r}")


def group_statements(records: Iterable[Record]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The records' statements in order, consecutive runs of the same SQL merged into one
    (sql, [args, ...]) each: one `executemany`, one round trip, per run.

    Only neighbours are merged, so every statement still runs after all those before it
    (a call's row before its legs and events, an UPDATE after the INSERT it depends on).
    """
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    for record in records:
        for sql, args in statements(record):
            if runs and runs[-1][0] == sql:
                runs[-1][1].append(args)
            else:
                runs.append((sql, [args]))
    return runs


async def apply_record(conn: Any, record: Record, *, timeout_s: float = 10.0) -> bool:
    """Apply one record; True if it changed the database, False if it was already applied."""
    (sql, args), *more = statements(record)
    if not more:
        status = await conn.execute(sql, *args, timeout=timeout_s)
    else:
        async with conn.transaction():
            status = await conn.execute(sql, *args, timeout=timeout_s)
            for sql, args in more:
                await conn.execute(sql, *args, timeout=timeout_s)
    # asyncpg returns the command tag, e.g. "INSERT 0 1" or "UPDATE 0".
    return not str(status).endswith(" 0")


async def apply_records(conn: Any, records: Iterable[Record], *, timeout_s: float = 10.0) -> None:
    """Apply records in order, each run of the same statement as one `executemany`.

    Call it inside a transaction: a run is applied as a whole or not at all, and a record of
    several statements is atomic only within the caller's transaction.
    """
    for sql, rows in group_statements(records):
        if len(rows) == 1:
            await conn.execute(sql, *rows[0], timeout=timeout_s)
        else:
            await conn.executemany(sql, rows, timeout=timeout_s)


@dataclass(slots=True)
class _Pending:
    record: Record
    spooled: bool


class SpoolInUseError(RuntimeError):
    """Another writer (in this or another process) holds the spool directory."""


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
        self._spool_dir = Path(spool_dir)
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
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._pool: Any = None
        self._lock_file: IO[bytes] | None = None
        self._spool_has_lines = False
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

    # --- what the call flow and the app use ------------------------------------------------

    @property
    def pending(self) -> int:
        """Records submitted (or replayed) and not yet in the database."""
        return len(self._queue)

    @property
    def pending_path(self) -> Path:
        return self._spool_dir / PENDING_FILE

    @property
    def rejected_path(self) -> Path:
        return self._spool_dir / REJECTED_FILE

    def submit(self, record: Record) -> None:
        """Queue a record for writing. Returns at once, never raises."""
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
        try:
            async with asyncio.timeout(timeout), self._progress:
                await self._progress.wait_for(lambda: self._completed_count >= target)
        except TimeoutError:
            return False
        return True

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
        elif self._spool_has_lines:
            await asyncio.to_thread(self._truncate_spool)
        await self._close_pool()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None
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
                if self._spool_has_lines:
                    # Everything in the spool is in the database now.
                    await asyncio.to_thread(self._truncate_spool)
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
                        await apply_records(
                            conn,
                            (entry.record for entry in batch),
                            timeout_s=self._statement_timeout,
                        )
                except Exception as exc:
                    if not is_refused(exc):
                        raise
                    # Find the refused record(s): the rest of the batch must still go in. The
                    # whole batch was rolled back, so each record is applied alone now.
                    await self._write_one_by_one(conn, batch)
                    continue
                self._report(time.monotonic() - started, ok=True)
                await self._completed(len(batch), written=True)

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
                ),
                timeout=self._connect_timeout * 2,
            )
        return self._pool

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
        async with self._progress:
            self._progress.notify_all()

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
        line = json.dumps(
            {
                "rejected_at": datetime.now(UTC).isoformat(),
                "error": f"{type(exc).__name__}: {exc}",
                "sqlstate": getattr(exc, "sqlstate", None),
                "record": json.loads(to_json(entry.record)),
            },
            ensure_ascii=False,
        )
        await asyncio.to_thread(_append_lines, self.rejected_path, [line])

    # --- the spool ----------------------------------------------------------------------------
    # Invariant: the queue is [records already in pending.jsonl] + [records only in memory].
    # pending.jsonl may also hold records written since (replaying them is harmless); it is
    # emptied whenever the queue drains.

    async def _spool_pending(self) -> None:
        unspooled = [entry for entry in self._queue if not entry.spooled]
        if not unspooled:
            return
        try:
            await asyncio.to_thread(self._spool_unspooled, unspooled)
        except Exception as exc:
            # The records are still in memory; the next attempt spools them again.
            _log("error", "store_spool_failed", error=str(exc), pending=len(self._queue))

    def _spool_unspooled(self, entries: list[_Pending]) -> None:
        todo = [entry for entry in entries if not entry.spooled]
        if not todo:
            return
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        _append_lines(self.pending_path, [to_json(entry.record) for entry in todo])
        for entry in todo:
            entry.spooled = True
        self._spool_has_lines = True

    def _spool_now_blocking(self) -> None:
        try:
            self._spool_unspooled(list(self._queue))
        except Exception as exc:
            _log("error", "store_spool_failed", error=str(exc), pending=len(self._queue))

    def _truncate_spool(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pending_path.unlink()
        self._spool_has_lines = False

    def _open_spool(self) -> list[Record]:
        """Take the spool directory for this writer and read what an earlier run left."""
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        if self._lock_file is None:
            lock_file = (self._spool_dir / _LOCK_FILE).open("ab")
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock_file.close()
                raise SpoolInUseError(
                    f"spool directory {self._spool_dir} is used by another store writer"
                ) from None
            self._lock_file = lock_file
        try:
            text = self.pending_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        self._spool_has_lines = True
        records: list[Record] = []
        unreadable: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(from_json(line))
            except ValueError as exc:
                # A torn last line after a crash, or a hand-edited file: keep it aside.
                _log("error", "store_spool_line_unreadable", line=number, error=str(exc))
                unreadable.append(
                    json.dumps({"error": f"unreadable spool line: {exc}", "line": line})
                )
        if unreadable:
            _append_lines(self.rejected_path, unreadable)
            self.rejected += len(unreadable)
        return records


def _append_lines(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as spool:
        spool.write("".join(line + "\n" for line in lines))
        spool.flush()
        os.fsync(spool.fileno())
