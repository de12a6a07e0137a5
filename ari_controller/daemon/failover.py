"""Active and standby: which of an application's daemons drives its calls.

Asterisk lets one websocket drive a Stasis application (a newcomer replaces the old one,
which gets ApplicationReplaced); who may try is decided by the lease in Postgres
(store/lease.py). A standby tries to take the lease every `renew_every_s` and connects to
Asterisk only once it holds it; the active one renews it as often. Each holder keeps a local
deadline (the lease's length from when it asked, a little less): past it, before any request
or write, the lease is confirmed first, so a daemon that was frozen and wakes up finds out it
was taken over before it touches a call. Postgres unreachable: the active one keeps serving
(its records wait in the spool) unless replaced; Asterisk unreachable for longer than the
lease: the active one gives the lease up so that a standby may do better. A standby takes an
expired lease only after it has itself reached Postgres for a whole lease: after an outage of
the database both come back with the lease expired, and the holder, which kept serving, must
get the first chance to renew it (else its spooled records would be fenced off).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg
import structlog

from ari_controller.config import FailoverSettings
from ari_controller.store import lease

log = structlog.get_logger(__name__)

Role = Literal["active", "standby"]
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# The local deadline stops this much before the lease does (clocks drift, replies travel).
DEADLINE_MARGIN = 0.2
# How long confirming the lease may take before a request goes ahead unconfirmed.
CONFIRM_S = 1.0
# A standby counts as present when seen within this many renewals.
PRESENT_RENEWALS = 4


def default_member() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class FailoverStatus:
    role: Role
    member: str
    fencing: int | None
    active_since: dt.datetime | None
    standby_present: bool


class Failover:
    """Takes, renews and gives up the lease for one daemon; tells it when it becomes active
    (`on_active`, with the fencing number) and when it lost the lease (`on_lost`, why)."""

    def __init__(
        self,
        dsn: Callable[[], str],
        app: str,
        settings: FailoverSettings,
        version: str,
        *,
        on_active: Callable[[int], None],
        on_lost: Callable[[str], None],
        asterisk_connected: Callable[[], bool],
        on_handover: Callable[[], None] = lambda: None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._dsn = dsn
        self.app = app
        self.settings = settings
        self.member = settings.member or default_member()
        self._version = version
        self._on_active = on_active
        self._on_lost = on_lost
        self._on_handover = on_handover
        self._handing_over = False
        self._asterisk_connected = asterisk_connected
        self._now = now
        self.role: Role = "standby"
        self.fencing: int | None = None
        self.active_since: dt.datetime | None = None
        self.lost: str | None = None  # why this daemon stopped driving, once it did
        self.standby_present = False
        self._deadline = 0.0  # time.monotonic() until which the lease is surely ours
        # Postgres unreachable at the last try: requests go ahead unconfirmed until then
        # rather than each waiting for another failed connection.
        self._unconfirmed_until = 0.0
        # Since when (time.monotonic()) this daemon's lease statements have been answered
        # without a break; None while the database is unreachable.
        self._database_since: float | None = None
        self._started_at = now()
        self._asterisk_lost_at: float | None = None
        self._conn: asyncpg.Connection | None = None
        self._confirming: asyncio.Future[bool] | None = None
        self._using_database = asyncio.Lock()  # asyncpg: one statement at a time per connection
        # Each lease statement: an answer slower than two renewals is as good as none.
        self._timeout = max(0.5, settings.renew_every_s * 2)

    def status(self) -> FailoverStatus:
        return FailoverStatus(
            self.role, self.member, self.fencing, self.active_since, self.standby_present
        )

    def holds(self) -> bool:
        """Surely ours right now (no database round trip)."""
        return self.role == "active" and self.lost is None and time.monotonic() < self._deadline

    async def confirm(self) -> bool:
        """Whether this daemon may touch calls: at once while the deadline holds; else after
        a renewal (one for every caller waiting). Postgres unreachable: yes, unconfirmed
        (Asterisk's ApplicationReplaced still stops a daemon that was replaced)."""
        if self.lost is not None or self.role != "active":
            return False
        if time.monotonic() < max(self._deadline, self._unconfirmed_until):
            return True
        if self._confirming is None or self._confirming.done():
            self._confirming = asyncio.ensure_future(self._renew_now())
        try:
            # Expiry: the database is slow; go ahead as when it is away.
            return await asyncio.wait_for(asyncio.shield(self._confirming), CONFIRM_S)
        except TimeoutError:
            return self.lost is None

    async def run(self) -> None:
        """Until cancelled: every `renew_every_s`, take or renew the lease and say we are here."""
        try:
            while self.lost is None:
                began = time.monotonic()
                async with self._using_database:
                    await self._step(began)
                await self._check_asterisk()
                spent = time.monotonic() - began
                await asyncio.sleep(max(0.0, self.settings.renew_every_s - spent))
        finally:
            await self._drop_connection()

    async def _step(self, began: float) -> None:
        """Take or renew the lease, and say we are here."""
        try:
            if self.role == "standby":
                await self._try_to_take(began)
            elif self.lost is None:
                await self._renew(began)
            await self._heartbeat()
        except asyncpg.LockNotAvailableError:
            # The lease row is held by a write of the holder that froze mid-batch: Postgres
            # ends that session within a lease (idle_in_transaction_session_timeout).
            log.info("lease_row_busy", role=self.role)
        except DATABASE_ERRORS as exc:
            await self._database_unreachable()
            log.warning(
                "lease_database_unreachable", role=self.role, error=str(exc) or type(exc).__name__
            )

    async def release(self) -> None:
        """Gives the lease up (a clean stop, a handover: a standby takes over at its next
        try) and takes it no more."""
        if self.role == "active" and self.fencing is not None and self.lost is None:
            async with self._using_database:
                await self._release_lease()
        self.lost = self.lost or "stopped"
        self.role = "standby"

    async def _release_lease(self) -> None:
        assert self.fencing is not None
        with contextlib.suppress(*DATABASE_ERRORS):
            conn = await self._connection()
            await lease.release(conn, self.app, self.member, self.fencing, timeout_s=self._timeout)
            await lease.leave(conn, self.app, self.member, timeout_s=self._timeout)
            log.info("lease_released", app=self.app, fencing=self.fencing)

    # ---- steps ------------------------------------------------------------------------------

    async def _try_to_take(self, began: float) -> None:
        conn = await self._connection()
        seen = await lease.current(conn, self.app, timeout_s=self._timeout)
        if seen is not None and not seen.expired:
            return
        if seen is not None and not seen.released and not self._reached_database_for_a_lease():
            # Expired while we could not see it: the holder may have been cut off from
            # Postgres like us and still be serving; it renews within a lease if it is.
            return
        fencing = await lease.acquire(
            conn, self.app, self.member, self.settings.lease_s, timeout_s=self._timeout
        )
        if fencing is None:
            return
        self.role, self.fencing, self.active_since = "active", fencing, self._now()
        self._deadline = began + self.settings.lease_s - DEADLINE_MARGIN
        self._asterisk_lost_at = None
        log.info("lease_taken", app=self.app, member=self.member, fencing=fencing)
        self._on_active(fencing)

    async def _renew(self, began: float) -> None:
        assert self.fencing is not None
        conn = await self._connection()
        renewed = await lease.renew(
            conn,
            self.app,
            self.member,
            self.fencing,
            self.settings.lease_s,
            timeout_s=self._timeout,
        )
        if renewed is None:
            self._lose("another controller took the lease over")
            return
        self._deadline = began + self.settings.lease_s - DEADLINE_MARGIN
        if renewed.handover_requested and not self._handing_over:
            if self.standby_present:
                self._handing_over = True
                log.info("handover_requested", app=self.app, member=self.member)
                self._on_handover()
            else:
                log.warning("handover_refused", why="no standby seen: nobody would take the calls")

    async def _renew_now(self) -> bool:
        # One statement at a time on the lease's connection: the loop may be renewing too
        # (both wake together after a freeze); its renewal, if it went through, is enough.
        async with self._using_database:
            if self.lost is not None or time.monotonic() < self._deadline:
                return self.lost is None
            began = time.monotonic()
            try:
                await self._renew(began)
            except asyncpg.LockNotAvailableError:
                log.info("lease_row_busy", role=self.role)
            except DATABASE_ERRORS as exc:
                await self._database_unreachable()
                log.warning("lease_unconfirmed", error=str(exc) or type(exc).__name__)
            return self.lost is None

    async def _heartbeat(self) -> None:
        conn = await self._connection()
        await lease.present(conn, self.app, self.member, self.role, self._version, self._started_at)
        if self.role == "active":
            fresh = self.settings.renew_every_s * PRESENT_RENEWALS
            self.standby_present = any(
                m.role == "standby" and m.member != self.member and m.seen_ago_s < fresh
                for m in await lease.members(conn, self.app, timeout_s=self._timeout)
            )

    async def _check_asterisk(self) -> None:
        """Active but cut off from Asterisk for longer than a lease: let a standby try."""
        if self.role != "active" or self.lost is not None:
            return
        if self._asterisk_connected():
            self._asterisk_lost_at = None
            return
        now = time.monotonic()
        if self._asterisk_lost_at is None:
            self._asterisk_lost_at = now
        elif now - self._asterisk_lost_at > self.settings.lease_s:
            async with self._using_database:
                await self._release_lease()
            self._lose("Asterisk was unreachable for longer than the lease")

    def lose(self, why: str) -> None:
        """Told from outside (Asterisk replaced our websocket): another daemon drives now."""
        self._lose(why)

    def _lose(self, why: str) -> None:
        if self.lost is not None:
            return
        self.lost = why
        self.role = "standby"
        log.error("lease_lost", app=self.app, member=self.member, fencing=self.fencing, why=why)
        self._on_lost(why)

    def _reached_database_for_a_lease(self) -> bool:
        since = self._database_since
        return since is not None and time.monotonic() - since >= self.settings.lease_s

    async def _database_unreachable(self) -> None:
        self._database_since = None
        self._unconfirmed_until = time.monotonic() + self.settings.renew_every_s
        await self._drop_connection()

    async def _connection(self) -> asyncpg.Connection:
        # A connection of its own: a busy pool must not cost the lease.
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn(), timeout=self.settings.renew_every_s * 2)
            self._database_since = time.monotonic()
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*DATABASE_ERRORS):
                await conn.close(timeout=1)
