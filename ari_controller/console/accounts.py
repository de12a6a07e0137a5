"""Console users: created, changed, removed, and checked at sign-in.

Passwords are stored as argon2id hashes (argon2-cffi's defaults); a copy of the database lets
nobody in. Wrong passwords in a row lock the account for a while (in Postgres, so every daemon
sees the same count). An unknown name costs the same hashing work as a known one, so timing
does not tell which names exist.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["viewer", "responder", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "responder", "admin")
# What each role may do, on top of what the roles before it may.
_RANK: dict[str, int] = {"viewer": 0, "responder": 1, "admin": 2}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024

_hasher = PasswordHasher()
# Verified against when the name is unknown, so that both answers take as long.
_DUMMY_HASH = _hasher.hash("not a password of anyone")
# Hashing takes tens of milliseconds of a core and 64 MiB: it runs in a thread, never on the
# event loop that drives the calls, and one at a time, so that a flood of sign-ins cannot
# take the CPU the calls need.
_hashing = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="console-argon2")


async def _in_thread(work: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_hashing, work, *args)


async def hash_password(password: str) -> str:
    return str(await _in_thread(_hasher.hash, check_password(password)))


class AccountError(ValueError):
    """A console user cannot be created or changed as asked."""


@dataclass(frozen=True, slots=True)
class Account:
    """A console user as the console sees it: never the password hash."""

    name: str
    role: Role
    person: str | None
    created_at: dt.datetime
    locked_until: dt.datetime | None
    last_sign_in_at: dt.datetime | None
    password_changed_at: dt.datetime

    def may(self, role: Role) -> bool:
        """Whether this account may do what `role` may."""
        return _RANK[self.role] >= _RANK[role]

    @property
    def actor(self) -> str:
        """Who an action is recorded as: the person of the configuration, else the account."""
        return self.person or self.name


@dataclass(frozen=True, slots=True)
class SignIn:
    """How a sign-in went: `account` when it succeeded, else why not (said to the person in
    general words only: a locked account and a wrong password look alike to a guesser)."""

    account: Account | None
    locked_until: dt.datetime | None = None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise AccountError(
            f"{name!r} is not a console user name: 1-64 letters, digits, '.', '_', '@', '-',"
            " starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise AccountError(
            f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    return password


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise AccountError(f"{role!r} is not a role: one of {', '.join(ROLES)}")
    return role


_COLUMNS = "name, role, person, created_at, locked_until, last_sign_in_at, password_changed_at"


def _account(row: Any) -> Account:
    return Account(
        row["name"],
        row["role"],
        row["person"],
        row["created_at"],
        row["locked_until"],
        row["last_sign_in_at"],
        row["password_changed_at"],
    )


async def add(
    conn: Any,
    name: str,
    password: str,
    role: str,
    person: str | None,
    now: dt.datetime,
    *,
    timeout_s: float = 10.0,
) -> Account:
    check_name(name)
    check_role(role)
    password_hash = await hash_password(password)
    try:
        row = await conn.fetchrow(
            "INSERT INTO console_users (name, password_hash, role, person, created_at,"
            f" password_changed_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {_COLUMNS}",
            name,
            password_hash,
            role,
            person,
            now,
            timeout=timeout_s,
        )
    except asyncpg.UniqueViolationError:
        raise AccountError(f"there is already a console user {name!r}") from None
    return _account(row)


async def set_password(
    conn: Any, name: str, password: str, now: dt.datetime, *, timeout_s: float = 10.0
) -> bool:
    """A new password; it also lifts a lock-out. False if there is no such user."""
    password_hash = await hash_password(password)
    status = await conn.execute(
        "UPDATE console_users SET password_hash = $2, password_changed_at = $3,"
        " failed_attempts = 0, locked_until = NULL WHERE name = $1",
        name,
        password_hash,
        now,
        timeout=timeout_s,
    )
    return str(status) == "UPDATE 1"


async def change(
    conn: Any,
    name: str,
    *,
    role: str | None = None,
    person: str | None = None,
    clear_person: bool = False,
    timeout_s: float = 10.0,
) -> bool:
    """A new role and/or person; False if there is no such user."""
    if role is not None:
        check_role(role)
    status = await conn.execute(
        "UPDATE console_users SET role = coalesce($2, role),"
        " person = CASE WHEN $4 THEN NULL ELSE coalesce($3, person) END WHERE name = $1",
        name,
        role,
        person,
        clear_person,
        timeout=timeout_s,
    )
    return str(status) == "UPDATE 1"


async def remove(conn: Any, name: str, *, timeout_s: float = 10.0) -> bool:
    status = await conn.execute(
        "DELETE FROM console_users WHERE name = $1", name, timeout=timeout_s
    )
    return str(status) == "DELETE 1"


async def list_accounts(conn: Any, *, timeout_s: float = 10.0) -> list[Account]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM console_users ORDER BY name", timeout=timeout_s
    )
    return [_account(row) for row in rows]


async def find(conn: Any, name: str, *, timeout_s: float = 10.0) -> Account | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM console_users WHERE name = $1", name, timeout=timeout_s
    )
    return _account(row) if row is not None else None


async def sign_in(
    conn: Any,
    name: str,
    password: str,
    now: dt.datetime,
    *,
    lockout_failures: int,
    lockout: dt.timedelta,
    timeout_s: float = 10.0,
) -> SignIn:
    """Checks a password. The row is locked while it is checked, so that failures counted by
    two daemons at once add up."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS}, password_hash, failed_attempts FROM console_users"
            " WHERE name = $1 FOR UPDATE",
            name[:200],
            timeout=timeout_s,
        )
        if row is None:
            await _verify(_DUMMY_HASH, password)
            return SignIn(None)
        if row["locked_until"] is not None and row["locked_until"] > now:
            await _verify(_DUMMY_HASH, password)
            return SignIn(None, row["locked_until"])
        if not await _verify(row["password_hash"], password):
            failures = row["failed_attempts"] + 1
            locked_until = now + lockout if failures >= lockout_failures else None
            await conn.execute(
                "UPDATE console_users SET failed_attempts = $2, locked_until = $3 WHERE name = $1",
                name,
                0 if locked_until is not None else failures,
                locked_until,
                timeout=timeout_s,
            )
            return SignIn(None, locked_until)
        rehash = _hasher.check_needs_rehash(row["password_hash"])
        await conn.execute(
            "UPDATE console_users SET failed_attempts = 0, locked_until = NULL,"
            " last_sign_in_at = $2, password_hash = coalesce($3, password_hash)"
            " WHERE name = $1",
            name,
            now,
            await hash_password(password) if rehash else None,
            timeout=timeout_s,
        )
        return SignIn(_account({**dict(row), "locked_until": None, "last_sign_in_at": now}))


async def _verify(password_hash: str, password: str) -> bool:
    return bool(await _in_thread(_matches, password_hash, password[:MAX_PASSWORD_CHARS]))


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
