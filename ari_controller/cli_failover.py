"""`ari-controller handover`: the active daemon of an application gives its calls to a
standby (for an upgrade), and the command waits until the standby drives them."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import asyncpg

from ari_controller.cli_common import EXIT_FAILED, EXIT_OK
from ari_controller.cli_common import load_or_exit as _load
from ari_controller.store import lease

DB_TIMEOUT_S = 5.0
POLL_S = 0.1


def add_failover_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    handover = sub.add_parser(
        "handover",
        help="have the active daemon hand its calls to a standby (config failover)",
    )
    handover.add_argument("--config", required=True)
    handover.add_argument(
        "--wait", type=float, default=15.0, help="seconds to wait for the standby (default 15)"
    )
    handover.set_defaults(func=cmd_handover)


def cmd_handover(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if not config.failover.enabled:
        print("error: failover is not enabled in this configuration", file=sys.stderr)
        return EXIT_FAILED
    fresh_s = config.failover.renew_every_s * 4
    try:
        return asyncio.run(
            _hand_over(config.database.resolved_dsn(), config.asterisk.app, fresh_s, args.wait)
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"error: database: {exc or type(exc).__name__}", file=sys.stderr)
        return EXIT_FAILED


async def _hand_over(dsn: str, app: str, fresh_s: float, wait_s: float) -> int:
    conn = await asyncpg.connect(dsn, timeout=DB_TIMEOUT_S)
    try:
        before = await lease.current(conn, app, timeout_s=DB_TIMEOUT_S)
        if before is None or before.expired:
            print(f"error: no daemon drives {app!r} now: nothing to hand over", file=sys.stderr)
            return EXIT_FAILED
        standbys = [
            m
            for m in await lease.members(conn, app, timeout_s=DB_TIMEOUT_S)
            if m.role == "standby" and m.member != before.holder and m.seen_ago_s < fresh_s
        ]
        if not standbys:
            print(
                f"error: no standby of {app!r} was seen in the last {fresh_s:g} s: nobody would"
                " take the calls",
                file=sys.stderr,
            )
            return EXIT_FAILED
        asked = time.monotonic()
        await lease.request_handover(conn, app, timeout_s=DB_TIMEOUT_S)
        print(f"asked {before.holder} (fencing {before.fencing}) to hand {app!r} over")
        while time.monotonic() - asked < wait_s:
            now = await lease.current(conn, app, timeout_s=DB_TIMEOUT_S)
            if now is not None and now.fencing > before.fencing and not now.expired:
                took = time.monotonic() - asked
                print(f"{now.holder} drives {app!r} now (fencing {now.fencing}), {took:.1f} s")
                return EXIT_OK
            await asyncio.sleep(POLL_S)
        print(f"error: no standby took {app!r} over within {wait_s:g} s", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await conn.close(timeout=DB_TIMEOUT_S)
