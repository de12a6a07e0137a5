"""The schema and its migrations, against a real Postgres."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from ari_controller.store.migrate import SCHEMA_PATH, MigrationError, migrate, parse_schema
from tests.fixtures_postgres import dsn_with_database

NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
async def empty_database(postgres_dsn: str) -> AsyncIterator[str]:
    name = f"test_empty_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield dsn_with_database(postgres_dsn, name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_migrate_applies_once_even_when_two_processes_race(empty_database: str) -> None:
    first, second = await asyncio.gather(migrate(empty_database), migrate(empty_database))
    assert sorted([first, second]) == [[], ["0001", "0002", "0003", "0004", "0005", "0006"]]
    assert await migrate(empty_database) == []
    conn = await asyncpg.connect(empty_database)
    try:
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    finally:
        await conn.close()
    assert [r["version"] for r in versions] == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert {"alerts", "calls", "call_legs", "call_events", "voicemails"} <= tables
    assert {"notification_outbox", "schema_migrations"} <= tables


async def test_migrate_applies_a_new_section_and_refuses_an_edited_one(
    database: str, tmp_path: Path
) -> None:
    schema = SCHEMA_PATH.read_text()
    grown = tmp_path / "grown.sql"
    grown.write_text(
        schema + "\n-- migration: 9001 a note on alerts\nALTER TABLE alerts ADD COLUMN note text;\n"
    )
    assert await migrate(database, schema_path=grown) == ["9001"]
    assert await migrate(database, schema_path=grown) == []

    edited = tmp_path / "edited.sql"
    edited.write_text(grown.read_text().replace("route             text,", "route text NOT NULL,"))
    assert edited.read_text() != grown.read_text()
    with pytest.raises(MigrationError, match="0001 changed"):
        await migrate(database, schema_path=edited)
    # A database that is ahead of this version of the code is refused too.
    with pytest.raises(MigrationError, match="does not know"):
        await migrate(database)


async def test_alerts_accepted_before_the_lifecycle_migration_are_acknowledged_after_it(
    empty_database: str, tmp_path: Path
) -> None:
    schema = SCHEMA_PATH.read_text()
    first_only = tmp_path / "0001.sql"
    first_only.write_text(schema[: schema.index("-- migration: 0002")])
    assert await migrate(empty_database, schema_path=first_only) == ["0001"]
    conn = await asyncpg.connect(empty_database)
    try:
        accepted, still_open = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO alerts (id, number_did, number_name, status, created_at, accepted_at,"
            " accepted_by) VALUES ($1, '+1', 'Ops', 'accepted', $2, $2, 'ana'),"
            " ($3, '+1', 'Ops', 'open', $2, NULL, NULL)",
            accepted,
            NOW,
            still_open,
        )
        assert await migrate(empty_database) == ["0002", "0003", "0004", "0005", "0006"]
        rows = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, status, acknowledged_by, acknowledged_at FROM alerts"
            )
        }
        assert (rows[accepted]["status"], rows[accepted]["acknowledged_by"]) == (
            "acknowledged",
            "ana",
        )
        assert rows[accepted]["acknowledged_at"] == NOW
        assert rows[still_open]["status"] == "open"
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE alerts SET status = 'accepted' WHERE id = $1", still_open)
    finally:
        await conn.close()


def test_schema_file_parses_into_ordered_migrations() -> None:
    preamble, migrations = parse_schema(SCHEMA_PATH.read_text())
    assert "schema_migrations" in preamble
    assert [m.version for m in migrations] == ["0001", "0002", "0003", "0004", "0005", "0006"]
    with pytest.raises(MigrationError, match="duplicate"):
        parse_schema("-- migration: 1 a\nSELECT 1;\n-- migration: 1 b\nSELECT 2;\n")


async def _insert_alert(conn: asyncpg.Connection, status: str = "open") -> uuid.UUID:
    alert_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO alerts (id, number_did, number_name, status, created_at, acknowledged_at,"
        " resolved_at) VALUES ($1, '+1', 'Ops', $2, $3, $3, $3)",
        alert_id,
        status,
        NOW,
    )
    return alert_id


async def test_constraints_reject_bad_data(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        alert_id = await _insert_alert(conn)
        with pytest.raises(asyncpg.CheckViolationError):
            await _insert_alert(conn, status="snoozed")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE alerts SET status = 'resolved', resolved_at = NULL WHERE id = $1",
                alert_id,
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO calls (id, alert_id, caller_channel_id, did, started_at)"
                " VALUES ($1, $2, 'chan', '+1', $3)",
                uuid.uuid4(),
                uuid.uuid4(),
                NOW,
            )
        call_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO calls (id, alert_id, caller_channel_id, did, started_at)"
            " VALUES ($1, $2, 'chan', '+1', $3)",
            call_id,
            alert_id,
            NOW,
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO call_legs (id, call_id, user_id, contact, mode, attempt, placed_at,"
                " outcome) VALUES ('leg', $1, 'u', 'PJSIP/u', 'sequential', 1, $2, 'maybe')",
                call_id,
                NOW,
            )
        with pytest.raises(asyncpg.NotNullViolationError):
            await conn.execute(
                "INSERT INTO call_legs (id, call_id, user_id, contact, mode, attempt, placed_at)"
                " VALUES ('leg', $1, 'u', NULL, 'sequential', 1, $2)",
                call_id,
                NOW,
            )
        event = "INSERT INTO call_events (call_id, seq, at, kind) VALUES ($1, 1, $2, 'x')"
        await conn.execute(event, call_id, NOW)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(event, call_id, NOW)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO call_events (call_id, seq, at, kind, data)"
                " VALUES ($1, 2, $2, 'x', '[1]')",
                call_id,
                NOW,
            )
        # Deleting an alert takes its whole record with it, voicemail included.
        vm_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO voicemails (id, call_id, alert_id, recording_name, format, created_at)"
            " VALUES ($1, $2, $3, 'vm', 'wav', $4)",
            vm_id,
            call_id,
            alert_id,
            NOW,
        )
        await conn.execute("UPDATE alerts SET voicemail_id = $1 WHERE id = $2", vm_id, alert_id)
        await conn.execute("DELETE FROM alerts WHERE id = $1", alert_id)
        left = await conn.fetchval(
            "SELECT (SELECT count(*) FROM calls) + (SELECT count(*) FROM call_events)"
            " + (SELECT count(*) FROM voicemails)"
        )
    finally:
        await conn.close()
    assert left == 0
