"""How often a caller has called a number, whether the number is flooded, and the caller's
open alert: what screening needs to know about the past, shared by every daemon through
Postgres.

Screening must never keep a caller out because the database is away. Every query here is
bounded by a short timeout; when Postgres does not answer, the counts come from this daemon's
memory (`shared=False`: the caller is let through on what this daemon alone has seen, and the
log and the call's timeline say so).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog

from ari_controller.screening.flood import NO_FLOOD, FloodState
from ari_controller.screening.history import ArrivalCounts, FloodStep

log = structlog.get_logger(__name__)

# What "Postgres does not answer" looks like: refused or cut connections, errors of the
# server, a pool not open yet (calls can arrive before it is), and the timeout.
_UNREACHABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

# A caller waits for these queries before hearing anything: past this, count in memory.
QUERY_TIMEOUT_S = 1.0
# Arrivals older than this are never counted again (no window is longer); they are deleted
# now and then by the arrivals themselves.
ARRIVALS_KEPT = dt.timedelta(days=1)
_PRUNE_EVERY = 500
FLOOD_WINDOW = dt.timedelta(minutes=1)


class _Memory:
    """Arrivals this daemon has seen, for when Postgres does not answer."""

    def __init__(self) -> None:
        self.by_caller: dict[tuple[str, str], deque[dt.datetime]] = defaultdict(deque)
        self.by_number: dict[str, deque[dt.datetime]] = defaultdict(deque)
        self.floods: dict[str, FloodState] = {}

    def add(self, did: str, caller_key: str, at: dt.datetime) -> None:
        self.by_caller[(did, caller_key)].append(at)
        self.by_number[did].append(at)
        oldest = at - ARRIVALS_KEPT
        for times in (self.by_caller[(did, caller_key)], self.by_number[did]):
            while times and times[0] < oldest:
                times.popleft()

    def counts(
        self, did: str, caller_key: str, at: dt.datetime, window: dt.timedelta
    ) -> ArrivalCounts:
        caller = sum(1 for t in self.by_caller[(did, caller_key)] if t > at - window)
        number = sum(1 for t in self.by_number[did] if t > at - FLOOD_WINDOW)
        return ArrivalCounts(caller, number, shared=False)


class StoredCallerHistory:
    """Arrivals counted, floods tracked and open alerts found in Postgres (or in memory):
    the store's side of `screening.history.CallerHistory`."""

    def __init__(self, db: asyncpg.Pool, timeout_s: float = QUERY_TIMEOUT_S) -> None:
        self._db = db
        self._timeout_s = timeout_s
        self._memory = _Memory()
        self._arrivals = 0

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction, all of it bounded: a caller waits on it before
        hearing anything (expiry: Postgres is too slow, and the counts come from memory)."""
        async with asyncio.timeout(self._timeout_s), self._db.acquire() as conn:
            async with conn.transaction():
                yield conn

    async def arrived(
        self,
        arrival_id: uuid.UUID,
        did: str,
        caller_key: str,
        at: dt.datetime,
        window: dt.timedelta,
    ) -> ArrivalCounts:
        """Count this call, then how many calls the caller and the number have made."""
        self._memory.add(did, caller_key, at)
        self._arrivals += 1
        prune = self._arrivals % _PRUNE_EVERY == 0
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    "INSERT INTO call_arrivals (id, did, caller_key, arrived_at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                    arrival_id,
                    did,
                    caller_key,
                    at,
                )
                row = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE caller_key = $2 AND arrived_at > $3)"
                    " AS caller_calls,"
                    " count(*) FILTER (WHERE arrived_at > $4) AS number_calls"
                    " FROM call_arrivals WHERE did = $1 AND arrived_at > least($3, $4)"
                    " AND arrived_at <= $5",
                    did,
                    caller_key,
                    at - window,
                    at - FLOOD_WINDOW,
                    at,
                )
                if prune:
                    await conn.execute(
                        "DELETE FROM call_arrivals WHERE arrived_at < $1", at - ARRIVALS_KEPT
                    )
        except _UNREACHABLE as exc:
            log.warning("screening_counts_in_memory", did=did, error=str(exc) or type(exc).__name__)
            return self._memory.counts(did, caller_key, at, window)
        assert row is not None
        return ArrivalCounts(int(row["caller_calls"]), int(row["number_calls"]), shared=True)

    async def flood(self, did: str, step: FloodStep) -> FloodState:
        """The number's flood state after this call, moved on by `step` under a row lock so
        that two daemons taking calls at once move it once each, in turn."""
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    "INSERT INTO number_floods (did, active, updated_at)"
                    " VALUES ($1, false, now()) ON CONFLICT (did) DO NOTHING",
                    did,
                )
                row = await conn.fetchrow(
                    "SELECT active, since, calm_since FROM number_floods WHERE did = $1 FOR UPDATE",
                    did,
                )
                after = step(_flood_state(row))
                await conn.execute(
                    "UPDATE number_floods SET active = $2, since = $3, calm_since = $4,"
                    " updated_at = now() WHERE did = $1",
                    did,
                    after.active,
                    after.since,
                    after.calm_since,
                )
        except _UNREACHABLE as exc:
            log.warning("screening_flood_in_memory", did=did, error=str(exc) or type(exc).__name__)
            after = step(self._memory.floods.get(did, NO_FLOOD))
        self._memory.floods[did] = after
        return after

    async def open_alert(
        self, dids: tuple[str, ...], caller_key: str, since: dt.datetime
    ) -> uuid.UUID | None:
        """The caller's newest alert on the number that is not resolved and was opened since
        `since`; None when there is none, or when Postgres does not answer (the call then
        opens an alert of its own: nothing is lost, the repeat is not recognised)."""
        try:
            async with asyncio.timeout(self._timeout_s):  # expiry: Postgres is too slow
                async with self._db.acquire() as conn:
                    found = await conn.fetchval(
                        "SELECT id FROM alerts WHERE number_did = ANY($1::text[])"
                        " AND caller_key = $2 AND status <> 'resolved' AND created_at >= $3"
                        " ORDER BY created_at DESC LIMIT 1",
                        list(dids),
                        caller_key,
                        since,
                    )
        except _UNREACHABLE as exc:
            log.warning("repeat_call_not_checked", error=str(exc) or type(exc).__name__)
            return None
        return found if isinstance(found, uuid.UUID) else None


def _flood_state(row: Any) -> FloodState:
    if row is None:
        return NO_FLOOD
    return FloodState(bool(row["active"]), row["since"], row["calm_since"])
