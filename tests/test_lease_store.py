"""The lease that says which daemon drives an application, against a real Postgres: taken only
when free or expired (by the database's clock), a higher fencing number for each new holder,
renewals refused to a holder that was taken over, a release that lets a standby in at once,
handover requests, and who is present."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from ari_controller.calls.journal import CallJournal
from ari_controller.store import lease
from ari_controller.store.writer import StoreWriter
from tests.test_resume import T0, summary

APP = "callrouting"


async def test_the_lease_is_taken_once_renewed_by_its_holder_and_taken_over_when_expired(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        assert await lease.acquire(conn, APP, "a", 0.4) == 1
        assert await lease.acquire(conn, APP, "b", 0.4) is None  # a holds it
        assert await lease.acquire(conn, "another-app", "b", 0.4) == 1  # apps are apart
        renewed = await lease.renew(conn, APP, "a", 1, 0.4)
        assert renewed is not None and not renewed.handover_requested
        assert await lease.renew(conn, APP, "b", 1, 0.4) is None  # not b's
        await asyncio.sleep(0.5)  # a is frozen: its lease runs out
        assert await lease.acquire(conn, APP, "b", 0.4) == 2
        assert await lease.renew(conn, APP, "a", 1, 0.4) is None  # a finds out it lost
        info = await lease.current(conn, APP)
        assert info is not None and (info.holder, info.fencing, info.expired) == ("b", 2, False)


async def test_an_expired_lease_nobody_took_is_renewed_by_its_holder(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await lease.acquire(conn, APP, "a", 0.1) == 1
        await asyncio.sleep(0.2)
        assert await lease.renew(conn, APP, "a", 1, 1.0) is not None
        assert await lease.acquire(conn, APP, "b", 1.0) is None


async def test_a_release_lets_a_standby_in_at_once_with_a_higher_fencing_number(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        assert await lease.acquire(conn, APP, "a", 30) == 1
        assert await lease.request_handover(conn, APP) == "a"
        renewed = await lease.renew(conn, APP, "a", 1, 30)
        assert renewed is not None and renewed.handover_requested
        assert await lease.release(conn, APP, "a", 1)
        assert await lease.acquire(conn, APP, "b", 30) == 2
        renewed = await lease.renew(conn, APP, "b", 2, 30)
        assert renewed is not None and not renewed.handover_requested  # the request was a's
        assert not await lease.release(conn, APP, "a", 1)  # a stale holder changes nothing


async def test_of_many_standbys_racing_for_an_expired_lease_exactly_one_wins(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        assert await lease.acquire(conn, APP, "old", 0.1) == 1
    await asyncio.sleep(0.2)

    async def race(name: str) -> int | None:
        async with pool.acquire() as conn:
            return await lease.acquire(conn, APP, name, 5)

    won = await asyncio.gather(*(race(f"standby-{n}") for n in range(6)))
    assert sorted(w for w in won if w is not None) == [2]


async def test_members_say_they_are_there_and_in_which_role(pool: asyncpg.Pool) -> None:
    started = dt.datetime.now(dt.UTC)
    async with pool.acquire() as conn:
        await lease.present(conn, APP, "a", "active", "0.1.0", started)
        await lease.present(conn, APP, "b", "standby", "0.1.0", started)
        await lease.present(conn, APP, "b", "active", "0.2.0", started)
        found = {m.member: m for m in await lease.members(conn, APP)}
        assert (found["a"].role, found["b"].role, found["b"].version) == (
            "active",
            "active",
            "0.2.0",
        )
        assert all(m.seen_ago_s < 5 for m in found.values())
        await lease.leave(conn, APP, "a")
        assert [m.member for m in await lease.members(conn, APP)] == ["b"]


async def test_a_write_frozen_mid_batch_holds_a_takeover_up_for_one_idle_timeout_at_most(
    pool: asyncpg.Pool, database: str
) -> None:
    """The holder's write batches read the lease row FOR SHARE; a holder frozen inside one
    must not block the standby for ever: its session ends after the idle timeout it sets."""
    async with pool.acquire() as conn:
        assert await lease.acquire(conn, APP, "a", 0.2) == 1
    frozen = await asyncpg.connect(
        database, server_settings={"idle_in_transaction_session_timeout": "800"}
    )
    try:
        transaction = frozen.transaction()
        await transaction.start()
        await frozen.execute("SELECT 1 FROM controller_leases WHERE app = $1 FOR SHARE", APP)
        await asyncio.sleep(0.3)  # a's lease expired, its batch still open
        async with pool.acquire() as conn:
            began = asyncio.get_running_loop().time()
            with pytest.raises(asyncpg.LockNotAvailableError):
                await lease.acquire(conn, APP, "b", 5, timeout_s=0.4)
            assert asyncio.get_running_loop().time() - began < 1.0  # refused, not hung
            await asyncio.sleep(0.8)  # the idle timeout ends the frozen session
            assert await lease.acquire(conn, APP, "b", 5, timeout_s=0.4) == 2
    finally:
        frozen.terminate()


async def test_a_released_lease_fences_its_holders_writes_an_expired_one_does_not(
    pool: asyncpg.Pool, database: str, tmp_path: Path
) -> None:
    """The store writer of a holder: a lease that only expired (Postgres was away) still
    takes its spooled records; after a release (a handover, a daemon cut off from Asterisk)
    nothing more of its goes in, even before anyone took the lease."""
    async with pool.acquire() as conn:
        assert await lease.acquire(conn, APP, "a", 0.1) == 1
    writer = StoreWriter(database, tmp_path)
    writer.fence = (APP, "a", 1)
    await writer.start()
    try:
        await asyncio.sleep(0.2)  # expired, nobody took it
        CallJournal(summary(), writer.submit, lambda: T0).open()
        assert await writer.flush(2.0) and writer.fenced == 0
        async with pool.acquire() as conn:
            assert await lease.release(conn, APP, "a", 1)
        CallJournal(summary(), writer.submit, lambda: T0).open()
        assert await writer.flush(2.0)
        assert writer.fenced >= 1
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM calls") == 1
    finally:
        await writer.close()
