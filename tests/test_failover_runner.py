"""The lease runner of one daemon (daemon/failover.py) against a real Postgres: a standby
becomes active only once the lease is free; an active one whose database is unreachable goes
on (unconfirmed) rather than stopping its calls; one taken over finds out before its next
request; one cut off from Asterisk for longer than the lease gives it up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from ari_controller.config import FailoverSettings
from ari_controller.daemon.failover import Failover
from ari_controller.store import lease
from ari_controller.testing.postgres import free_port

SETTINGS = FailoverSettings(enabled=True, lease_s=0.6, renew_every_s=0.1, member="a")


class Runner:
    def __init__(self, dsn: str, member: str = "a") -> None:
        self.dsn = dsn
        self.asterisk_up = True
        self.became_active: list[int] = []
        self.lost: list[str] = []
        self.failover = Failover(
            lambda: self.dsn,
            "callrouting",
            SETTINGS.model_copy(update={"member": member}),
            "test",
            on_active=self.became_active.append,
            on_lost=self.lost.append,
            asterisk_connected=lambda: self.asterisk_up,
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.failover.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@pytest.fixture
async def runner(database: str) -> AsyncIterator[Runner]:
    running = Runner(database)
    running.start()
    try:
        yield running
    finally:
        await running.stop()


async def until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (the runner has no event to wait on)
            await asyncio.sleep(0.02)


async def test_a_standby_waits_for_the_lease_and_then_becomes_active(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        assert await lease.acquire(conn, "callrouting", "someone-else", 0.8) == 1
        waiting = Runner(database)
        waiting.start()
        try:
            await asyncio.sleep(0.4)
            assert waiting.failover.role == "standby" and not waiting.became_active
            assert not await waiting.failover.confirm()  # a standby may not touch calls
            await until(lambda: waiting.became_active == [2])
            assert waiting.failover.holds() and await waiting.failover.confirm()
        finally:
            await waiting.stop()
    finally:
        await conn.close()


async def test_an_active_daemon_without_its_database_goes_on_serving(runner: Runner) -> None:
    await until(lambda: runner.failover.role == "active")
    runner.dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/none"  # Postgres is away
    conn = runner.failover._conn
    if conn is not None:
        conn.terminate()
    await asyncio.sleep(SETTINGS.lease_s + 0.3)  # past its local deadline
    assert not runner.failover.holds()
    assert await runner.failover.confirm()  # unconfirmed, but its calls go on
    assert runner.failover.lost is None and not runner.lost


async def test_a_daemon_taken_over_finds_out_before_its_next_request(
    runner: Runner, database: str
) -> None:
    await until(lambda: runner.failover.role == "active")
    await runner.stop()  # frozen: no renewals
    await asyncio.sleep(SETTINGS.lease_s + 0.2)
    conn = await asyncpg.connect(database)
    try:
        assert await lease.acquire(conn, "callrouting", "b", 5) == 2
    finally:
        await conn.close()
    assert not await runner.failover.confirm()  # woken: the request is refused
    assert runner.lost == ["another controller took the lease over"]


async def test_an_active_daemon_cut_off_from_asterisk_gives_the_lease_up(
    runner: Runner, database: str
) -> None:
    await until(lambda: runner.failover.role == "active")
    runner.asterisk_up = False
    await until(lambda: bool(runner.lost), SETTINGS.lease_s * 3)
    assert runner.lost == ["Asterisk was unreachable for longer than the lease"]
    conn = await asyncpg.connect(database)
    try:
        assert await lease.acquire(conn, "callrouting", "b", 5) == 2  # free at once
    finally:
        await conn.close()


async def test_after_an_outage_of_the_database_the_holder_keeps_its_lease(
    runner: Runner, database: str
) -> None:
    await until(lambda: runner.failover.role == "active")
    standby = Runner(database, member="b")
    standby.start()
    try:
        await until(lambda: standby.failover.standby_present or runner.failover.standby_present)
        nowhere = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
        for each in (runner, standby):  # Postgres goes away for both
            each.dsn = nowhere
            if each.failover._conn is not None:
                each.failover._conn.terminate()
        await asyncio.sleep(SETTINGS.lease_s * 2)  # the lease expires meanwhile
        assert await runner.failover.confirm()  # the active one serves on, unconfirmed
        # Postgres is back, and the standby reaches it first: having seen the lease expire
        # only now, it leaves the holder a lease's time to renew it, and the holder does.
        standby.dsn = database
        await asyncio.sleep(SETTINGS.renew_every_s * 2)
        runner.dsn = database
        await asyncio.sleep(SETTINGS.lease_s * 3)
        assert (runner.failover.role, runner.failover.fencing) == ("active", 1)
        assert standby.failover.role == "standby" and not standby.became_active
        assert not runner.lost
        # A holder that really is gone is still taken over.
        await runner.stop()
        await until(lambda: standby.became_active == [2], SETTINGS.lease_s * 4)
    finally:
        await standby.stop()
