"""Bearer tokens of the HTTP API: created, listed, revoked, and checked on each request.

A token is shown once, when it is created ("crt_" and 43 random URL-safe characters); the
database keeps only its SHA-256 (hex), so a copy of the database lets nobody in. A `read`
token lists and shows alerts; a `write` token also acknowledges, resolves and escalates.
Names are unique for good, revoked tokens included, so a name in the alert log always means
one token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
TOKEN_PREFIX = "crt_"
# A token's last use is written at most this often (not on every request).
LAST_USED_EVERY = dt.timedelta(minutes=1)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}")
_MAX_TOKEN_CHARS = 200


class TokenError(ValueError):
    """A token cannot be created or changed as asked (bad name or scope, name taken)."""


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: `secret` is the only time the plain token exists."""

    name: str
    scope: Scope
    secret: str


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never its secret."""

    name: str
    scope: Scope
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a valid token says is calling."""

    name: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        return needed == "read" or self.scope == "write"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise TokenError(
            f"token name {name!r}: 1-64 letters, digits or . _ @ : - (starting with a letter "
            "or digit)"
        )
    return name


def check_scope(scope: str) -> Scope:
    if scope == "read":
        return "read"
    if scope == "write":
        return "write"
    raise TokenError(f"scope {scope!r}: read or write")


async def create_token(
    conn: Any, name: str, scope: str, now: dt.datetime, *, timeout_s: float = 10.0
) -> NewToken:
    """A new token; its secret is returned here and stored nowhere."""
    name, checked = check_name(name), check_scope(scope)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        async with conn.transaction():  # a savepoint inside a caller's transaction
            await conn.execute(
                "INSERT INTO api_tokens (id, name, token_hash, scope, created_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                uuid.uuid4(),
                name,
                hash_token(secret),
                checked,
                now,
                timeout=timeout_s,
            )
    except asyncpg.UniqueViolationError:
        revoked = await conn.fetchval(
            "SELECT revoked_at IS NOT NULL FROM api_tokens WHERE name = $1",
            name,
            timeout=timeout_s,
        )
        state = " (revoked; names are not reused)" if revoked else ""
        raise TokenError(f"a token named {name!r} exists{state}") from None
    return NewToken(name, checked, secret)


async def list_tokens(conn: Any, *, timeout_s: float = 10.0) -> list[TokenInfo]:
    """Every token, active and revoked, oldest first; never a secret (none is stored)."""
    rows = await conn.fetch(
        "SELECT name, scope, created_at, revoked_at, last_used_at FROM api_tokens"
        " ORDER BY created_at, name",
        timeout=timeout_s,
    )
    return [
        TokenInfo(
            r["name"], check_scope(r["scope"]), r["created_at"], r["revoked_at"], r["last_used_at"]
        )
        for r in rows
    ]


async def revoke_token(conn: Any, name: str, now: dt.datetime, *, timeout_s: float = 10.0) -> bool:
    """Revoke the named token at once; False when no active token has that name."""
    status = await conn.execute(
        "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
        name,
        now,
        timeout=timeout_s,
    )
    return str(status) == "UPDATE 1"


async def authenticate(
    conn: Any, token: str, now: dt.datetime, *, timeout_s: float = 10.0
) -> Caller | None:
    """The caller an active token stands for, or None (unknown, revoked or malformed).

    The token is looked up by its hash, so no secret is compared (and none needs a
    constant-time comparison). Its last use is written at most once a minute.
    """
    if not token or len(token) > _MAX_TOKEN_CHARS:
        return None
    row = await conn.fetchrow(
        "SELECT id, name, scope, last_used_at FROM api_tokens"
        " WHERE token_hash = $1 AND revoked_at IS NULL",
        hash_token(token),
        timeout=timeout_s,
    )
    if row is None:
        return None
    last_used = row["last_used_at"]
    if last_used is None or now - last_used >= LAST_USED_EVERY:
        await conn.execute(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1"
            " AND (last_used_at IS NULL OR last_used_at <= $3)",
            row["id"],
            now,
            now - LAST_USED_EVERY,
            timeout=timeout_s,
        )
    return Caller(row["name"], check_scope(row["scope"]))


async def authorize(
    conn: Any, token: str, needed_scope: Scope, now: dt.datetime, *, timeout_s: float = 10.0
) -> str | None:
    """The token's name when it is active and its scope covers `needed_scope`, else None."""
    caller = await authenticate(conn, token, now, timeout_s=timeout_s)
    return caller.name if caller is not None and caller.allows(needed_scope) else None
