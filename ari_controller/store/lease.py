"""The lease that says which daemon drives a Stasis application's calls, in Postgres.

Times are the database's (`now()`): every host compares against the same clock. A lease is
taken only when there is none or it has expired; each new holder's fencing number is one
higher than the last. Renewing needs the holder's name and fencing number, so a daemon whose
lease was taken over finds out at its next renewal (None) and never extends someone else's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["active", "standby"]


@dataclass(frozen=True, slots=True)
class Renewal:
    """A lease renewed: until when (database time), and whether a handover was asked for."""

    expires_at: dt.datetime
    handover_requested: bool


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    app: str
    holder: str
    fencing: int
    acquired_at: dt.datetime
    expires_at: dt.datetime
    expired: bool
    released: bool  # given up by its holder (a clean stop, a handover), not merely expired
    handover_requested_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Member:
    member: str
    role: Role
    version: str
    started_at: dt.datetime
    seen_at: dt.datetime
    seen_ago_s: float


async def _lock_timeout(conn: Any, timeout_s: float) -> None:
    """Within the caller's transaction: waiting for the lease row longer than this fails
    (LockNotAvailableError) rather than hanging: a frozen daemon's write batch may hold it."""
    await conn.execute(f"SET LOCAL lock_timeout = {max(10, int(timeout_s * 500))}")


async def acquire(
    conn: Any, app: str, member: str, ttl_s: float, *, timeout_s: float = 2.0
) -> int | None:
    """The lease for `member` when it is free or expired: its new fencing number; None when
    another daemon holds an unexpired one."""
    async with conn.transaction():
        await _lock_timeout(conn, timeout_s)
        return await _acquire(conn, app, member, ttl_s, timeout_s)


async def _acquire(conn: Any, app: str, member: str, ttl_s: float, timeout_s: float) -> int | None:
    fencing = await conn.fetchval(
        "INSERT INTO controller_leases AS l (app, holder, fencing, acquired_at, renewed_at,"
        " expires_at) VALUES ($1, $2, 1, now(), now(), now() + make_interval(secs => $3))"
        " ON CONFLICT (app) DO UPDATE SET holder = EXCLUDED.holder, fencing = l.fencing + 1,"
        " acquired_at = now(), renewed_at = now(), expires_at = EXCLUDED.expires_at,"
        " handover_requested_at = NULL"
        " WHERE l.expires_at <= now()"
        " RETURNING fencing",
        app,
        member,
        ttl_s,
        timeout=timeout_s,
    )
    return int(fencing) if fencing is not None else None


async def renew(
    conn: Any, app: str, member: str, fencing: int, ttl_s: float, *, timeout_s: float = 2.0
) -> Renewal | None:
    """Extends the lease by `ttl_s` from now; None when it is no longer this holder's (taken
    over after it expired). An expired lease nobody took yet is still renewed: its holder
    kept serving, and nobody else drives the app."""
    async with conn.transaction():
        await _lock_timeout(conn, timeout_s)
        return await _renew(conn, app, member, fencing, ttl_s, timeout_s)


async def _renew(
    conn: Any, app: str, member: str, fencing: int, ttl_s: float, timeout_s: float
) -> Renewal | None:
    row = await conn.fetchrow(
        "UPDATE controller_leases SET renewed_at = now(),"
        " expires_at = now() + make_interval(secs => $4)"
        " WHERE app = $1 AND holder = $2 AND fencing = $3"
        " RETURNING expires_at, handover_requested_at IS NOT NULL AS handover",
        app,
        member,
        fencing,
        ttl_s,
        timeout=timeout_s,
    )
    if row is None:
        return None
    return Renewal(row["expires_at"], bool(row["handover"]))


async def release(
    conn: Any, app: str, member: str, fencing: int, *, timeout_s: float = 2.0
) -> bool:
    """Gives the lease up at once (it expires now): a standby may take it at its next try."""
    status = await conn.execute(
        "UPDATE controller_leases SET expires_at = now(), renewed_at = now()"
        " WHERE app = $1 AND holder = $2 AND fencing = $3",
        app,
        member,
        fencing,
        timeout=timeout_s,
    )
    return str(status) == "UPDATE 1"


async def request_handover(conn: Any, app: str, *, timeout_s: float = 2.0) -> str | None:
    """Asks the holder of an unexpired lease to hand its calls over; its name, or None."""
    holder = await conn.fetchval(
        "UPDATE controller_leases SET handover_requested_at = now()"
        " WHERE app = $1 AND expires_at > now() RETURNING holder",
        app,
        timeout=timeout_s,
    )
    return str(holder) if holder is not None else None


async def current(conn: Any, app: str, *, timeout_s: float = 2.0) -> LeaseInfo | None:
    row = await conn.fetchrow(
        "SELECT app, holder, fencing, acquired_at, expires_at, expires_at <= now() AS expired,"
        " expires_at <= renewed_at AS released, handover_requested_at"
        " FROM controller_leases WHERE app = $1",
        app,
        timeout=timeout_s,
    )
    return LeaseInfo(**dict(row)) if row is not None else None


async def present(
    conn: Any,
    app: str,
    member: str,
    role: Role,
    version: str,
    started_at: dt.datetime,
    *,
    timeout_s: float = 2.0,
) -> None:
    """This daemon is there, in this role (a heartbeat)."""
    await conn.execute(
        "INSERT INTO controller_members (app, member, role, version, started_at, seen_at)"
        " VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (app, member) DO UPDATE"
        " SET role = EXCLUDED.role, version = EXCLUDED.version,"
        " started_at = EXCLUDED.started_at, seen_at = now()",
        app,
        member,
        role,
        version,
        started_at,
        timeout=timeout_s,
    )


async def leave(conn: Any, app: str, member: str, *, timeout_s: float = 2.0) -> None:
    await conn.execute(
        "DELETE FROM controller_members WHERE app = $1 AND member = $2",
        app,
        member,
        timeout=timeout_s,
    )


async def members(conn: Any, app: str, *, timeout_s: float = 2.0) -> list[Member]:
    """The daemons of the app, the most recently seen first, with how long ago."""
    rows = await conn.fetch(
        "SELECT member, role, version, started_at, seen_at,"
        " extract(epoch FROM now() - seen_at)::float8 AS seen_ago_s"
        " FROM controller_members WHERE app = $1 ORDER BY seen_at DESC",
        app,
        timeout=timeout_s,
    )
    return [Member(**dict(row)) for row in rows]
