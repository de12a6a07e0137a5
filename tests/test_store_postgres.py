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
    with pytest.raises(PostgresNotFoundError, match="DATABASE_URL"):
        postgres.find_postgres_bindir()
    with pytest.raises(PostgresNotFoundError, match="no initdb"):
        ThrowawayPostgres(bindir=tmp_path).start()
    assert os.listdir(tmp_path) == []
