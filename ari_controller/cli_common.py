"""What every `ari-controller` command shares: exit codes, reading the configuration, and
working on the database."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ari_controller.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DB_TIMEOUT_S = 10.0


def load_or_exit(path: str) -> Config:
    """The configuration, or its problems on stderr and exit 2."""
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def on_database(
    dsn: str,
    work: Callable[[Any], Awaitable[int]],
    *,
    what: str,
    usage_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run `work` on one connection. A database that cannot be reached, or has no `what`
    tables yet, is one line on stderr and exit 1; `usage_errors` are said and exit 2."""
    import asyncpg

    async def run() -> int:
        conn = await asyncpg.connect(dsn, timeout=DB_TIMEOUT_S)
        try:
            return await work(conn)
        finally:
            await conn.close(timeout=DB_TIMEOUT_S)

    try:
        return asyncio.run(run())
    except usage_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except asyncpg.UndefinedTableError:
        print(
            f"error: the database has no {what} yet: run `ari-controller migrate`", file=sys.stderr
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"error: database: {str(exc) or type(exc).__name__}", file=sys.stderr)
    return EXIT_FAILED
