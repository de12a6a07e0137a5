"""What screening knows about the past, against a real Postgres: calls counted per caller and
per number and shared by daemons, the flood state moved once per call even when daemons race,
the caller's open alert found, and counting in memory when Postgres does not answer."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg

from ari_controller.calls.records import AlertOpened, AlertStatusChanged
from ari_controller.screening.flood import FloodState
from ari_controller.store.callers import StoredCallerHistory as CallerHistory
from ari_controller.store.statements import apply_record
from ari_controller.testing.postgres import free_port

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
TEN_MINUTES = dt.timedelta(minutes=10)
DID = "+4930123456"
ANNA = "+4917000001"


async def test_calls_are_counted_per_caller_within_the_window_and_per_number_per_minute(
    pool: asyncpg.Pool,
) -> None:
    history = CallerHistory(pool)
    at = [T0 + dt.timedelta(seconds=s) for s in (0, 30, 50, 610)]
    counts = [await history.arrived(uuid.uuid4(), DID, ANNA, t, TEN_MINUTES) for t in at]
    assert [c.caller_calls for c in counts] == [1, 2, 3, 3]  # the first fell out of the window
    assert [c.number_calls for c in counts] == [1, 2, 3, 1]  # calls within the last minute
    assert all(c.shared for c in counts)
    # Another caller on the number: counted for the number, not as Anna.
    other = await history.arrived(uuid.uuid4(), DID, "withheld", at[3], TEN_MINUTES)
    assert (other.caller_calls, other.number_calls) == (1, 2)
    # Another number: apart.
    elsewhere = await history.arrived(uuid.uuid4(), "+4940999", ANNA, at[3], TEN_MINUTES)
    assert (elsewhere.caller_calls, elsewhere.number_calls) == (1, 1)


async def test_two_daemons_share_the_counts(pool: asyncpg.Pool) -> None:
    a, b = CallerHistory(pool), CallerHistory(pool)
    await a.arrived(uuid.uuid4(), DID, ANNA, T0, TEN_MINUTES)
    await b.arrived(uuid.uuid4(), DID, ANNA, T0 + dt.timedelta(seconds=5), TEN_MINUTES)
    third = await a.arrived(uuid.uuid4(), DID, ANNA, T0 + dt.timedelta(seconds=9), TEN_MINUTES)
    assert third.caller_calls == 3


async def test_the_same_arrival_counted_twice_counts_once(pool: asyncpg.Pool) -> None:
    history = CallerHistory(pool)
    same = uuid.uuid4()
    await history.arrived(same, DID, ANNA, T0, TEN_MINUTES)
    again = await history.arrived(same, DID, ANNA, T0, TEN_MINUTES)
    assert again.caller_calls == 1


async def test_without_postgres_the_counts_come_from_memory() -> None:
    gone = await asyncpg.create_pool(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none", min_size=0, max_size=1
    )
    try:
        history = CallerHistory(gone, timeout_s=0.5)
        first = await history.arrived(uuid.uuid4(), DID, ANNA, T0, TEN_MINUTES)
        second = await history.arrived(
            uuid.uuid4(), DID, ANNA, T0 + dt.timedelta(seconds=1), TEN_MINUTES
        )
        assert not first.shared and not second.shared
        assert (second.caller_calls, second.number_calls) == (2, 2)
        flood = await history.flood(DID, lambda before: FloodState(True, T0, None))
        assert flood.active
        assert await history.open_alert((DID,), ANNA, T0 - dt.timedelta(hours=1)) is None
    finally:
        await gone.close()


async def test_racing_daemons_move_the_flood_state_once_per_call(pool: asyncpg.Pool) -> None:
    """Each step counts the calls it saw in `since`'s seconds: every one of 12 concurrent
    calls from two daemons must be seen, none lost to a race."""

    def step(before: FloodState) -> FloodState:
        seen = 0 if before.since is None else int(before.since.timestamp())
        return FloodState(seen + 1 > 10, dt.datetime.fromtimestamp(seen + 1, dt.UTC), None)

    a, b = CallerHistory(pool, timeout_s=5), CallerHistory(pool, timeout_s=5)
    rows = await asyncio.gather(*(h.flood(DID, step) for h in [a, b] * 6))
    final = max(rows, key=lambda r: r.since or T0)
    assert final.since is not None and int(final.since.timestamp()) == 12
    assert final.active


async def test_the_callers_open_alert_is_found_and_a_resolved_one_is_not(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        older, newer, resolved, someone_else = (uuid.uuid4() for _ in range(4))
        for alert_id, minutes, caller in (
            (older, 50, ANNA),
            (newer, 20, ANNA),
            (resolved, 5, ANNA),
            (someone_else, 1, "+4917000002"),
        ):
            opened = T0 - dt.timedelta(minutes=minutes)
            await apply_record(
                conn, AlertOpened(alert_id, DID, "Ops", None, caller, opened, caller)
            )
        await apply_record(conn, AlertStatusChanged(resolved, "resolved", T0, None))
    history = CallerHistory(pool)
    assert await history.open_alert((DID,), ANNA, T0 - dt.timedelta(hours=1)) == newer
    assert await history.open_alert((DID, "030123456"), ANNA, T0 - dt.timedelta(hours=1)) == newer
    # Outside the window: a new alert.
    assert await history.open_alert((DID,), ANNA, T0 - dt.timedelta(minutes=10)) is None
    assert await history.open_alert(("+4940999",), ANNA, T0 - dt.timedelta(hours=1)) is None
