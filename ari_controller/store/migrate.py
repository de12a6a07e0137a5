"""Bring a database up to the schema in ari_controller/schema.sql.

schema.sql is a preamble (run every time, idempotent) followed by "-- migration: <version>
<description>" sections. Each section not yet in schema_migrations is applied in its own
transaction, in file order, under an advisory lock so that two processes migrating at once
apply each section exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.sql"

# Arbitrary, fixed: every migrating process must use the same key.
_ADVISORY_LOCK_KEY = 0x61_72_69_5F_6D_69_67  # "ari_mig"

_SECTION = re.compile(r"^-- migration: (?P<version>\S+) (?P<description>.+)$", re.MULTILINE)


class MigrationError(RuntimeError):
    """The schema file or the database's migration history is not what migrate expects."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    description: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.strip().encode("utf-8")).hexdigest()


def parse_schema(text: str) -> tuple[str, list[Migration]]:
    """Split schema text into its preamble and its ordered migrations."""
    marks = list(_SECTION.finditer(text))
    preamble = text[: marks[0].start()] if marks else text
    migrations: list[Migration] = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        migrations.append(
            Migration(mark["version"], mark["description"].strip(), text[mark.end() : end])
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in schema: {versions}")
    return preamble, migrations


async def migrate(
    dsn: str, *, schema_path: Path = SCHEMA_PATH, statement_timeout_s: float = 60.0
) -> list[str]:
    """Apply pending migrations; return the versions applied (empty when up to date).

    statement_timeout_s bounds every statement, including the wait for another migrator.
    """
    text = await asyncio.to_thread(schema_path.read_text, encoding="utf-8")
    preamble, migrations = parse_schema(text)
    conn = await asyncpg.connect(
        dsn, timeout=min(statement_timeout_s, 10.0), command_timeout=statement_timeout_s
    )
    try:
        # Waits for a concurrent migrator to finish; command_timeout bounds the wait.
        await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
        try:
            await conn.execute(preamble)
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
            applied = {row["version"]: row["checksum"] for row in rows}
            known = {m.version for m in migrations}
            unknown = sorted(set(applied) - known)
            if unknown:
                raise MigrationError(
                    f"database has migrations this version does not know: {unknown}; "
                    "is an older controller running against a newer database?"
                )
            done: list[str] = []
            for migration in migrations:
                recorded = applied.get(migration.version)
                if recorded is not None:
                    if recorded != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} changed after it was applied; "
                            "add a new migration section instead of editing a shipped one"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, description, checksum)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.description,
                        migration.checksum,
                    )
                done.append(migration.version)
            return done
        finally:
            # Closing the session releases the lock too, so a failure here changes nothing.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    finally:
        await conn.close(timeout=5.0)
