"""Fixtures for a real Postgres: `postgres_dsn` (the server) and `database` (a fresh database).

With DATABASE_URL set, tests use that server (the role needs CREATEDB); otherwise one throwaway
server is started from the installed binaries for the whole session. Both fixtures are
synchronous (their async work runs on a private loop in a worker thread), so sync and async
tests of any loop scope can use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ari_controller.store.migrate import migrate
from ari_controller.testing.postgres import PostgresNotFoundError, ThrowawayPostgres

T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion outside whatever loop pytest-asyncio is running."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


def dsn_with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a server where tests may create databases."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    try:
        server = ThrowawayPostgres().start()
    except PostgresNotFoundError as exc:
        pytest.skip(f"no Postgres for this test: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


async def create_database(admin_dsn: str, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{copy}', timeout=30)
    finally:
        await conn.close(timeout=5)


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        # FORCE: a test that failed half-way may have left connections open.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout=30)
    finally:
        await conn.close(timeout=5)


@pytest.fixture(scope="session")
def schema_template(postgres_dsn: str) -> Iterator[str]:
    """A database with the schema applied once per session: each test's database is a copy
    of it (CREATE DATABASE ... TEMPLATE: about 40 ms, where migrating anew took 300)."""
    name = f"template_{secrets.token_hex(6)}"
    run_async(lambda: create_database(postgres_dsn, name))
    try:
        run_async(lambda: migrate(dsn_with_database(postgres_dsn, name)))
        yield name
    finally:
        run_async(lambda: drop_database(postgres_dsn, name))


@contextlib.contextmanager
def migrated_database(postgres_dsn: str, template: str, prefix: str = "test") -> Iterator[str]:
    """DSN of a new database with the schema applied (a copy of `template`), dropped at the
    end."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    run_async(lambda: create_database(postgres_dsn, name, template))
    try:
        yield dsn_with_database(postgres_dsn, name)
    finally:
        run_async(lambda: drop_database(postgres_dsn, name))


@pytest.fixture
def database(postgres_dsn: str, schema_template: str) -> Iterator[str]:
    """DSN of a new database with the schema applied, dropped after the test."""
    with migrated_database(postgres_dsn, schema_template) as dsn:
        yield dsn


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database, enough connections for a few workers at once."""
    opened = await asyncpg.create_pool(database, min_size=1, max_size=8)
    try:
        yield opened
    finally:
        await opened.close()
