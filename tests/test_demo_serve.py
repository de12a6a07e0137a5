"""`make demo SERVE=1` / `ari-controller demo --serve`, in pieces: the whole demo runs in
test_demo.py already, and serving it would only add waiting."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet

from ari_controller import demo
from ari_controller.cli import main
from ari_controller.config import load_config
from ari_controller.console import accounts


async def test_the_demo_console_user_is_an_admin_who_can_sign_in(database: str) -> None:
    made = await demo.add_console_user(database)
    assert (made.name, made.role, made.person) == ("demo", "admin", None)
    conn = await asyncpg.connect(database)
    try:
        signed = await accounts.sign_in(
            conn,
            demo.CONSOLE_USER,
            demo.CONSOLE_PASSWORD,
            dt.datetime.now(dt.UTC),
            lockout_failures=5,
            lockout=dt.timedelta(minutes=1),
        )
    finally:
        await conn.close()
    assert signed.account is not None and signed.account.may("admin")


def test_the_printed_line_says_where_and_how_to_sign_in() -> None:
    assert demo.console_line(8123) == (
        "Console: http://127.0.0.1:8123/console/  sign in as demo / demo-console-pass"
    )


def test_the_demo_has_a_session_key_of_its_own() -> None:
    config = demo.with_console_key(load_config(demo.DEMO_CONFIG))
    key = config.console.resolved_session_key()
    assert key is not None and Fernet(key.encode())
    assert config.console.enabled


async def test_serving_ends_on_sigterm_and_sigint() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        waiting = asyncio.ensure_future(demo.until_signalled())
        await asyncio.sleep(0)  # its handlers are in place once it waits
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(waiting, 5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_cli_runs_the_demo_with_and_without_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(demo, "main", lambda argv: calls.append(argv) or 0)
    assert main(["demo"]) == 0
    assert main(["demo", "--serve"]) == 0
    assert calls == [[], ["--serve"]]
