"""Fixtures of the real-Asterisk suite (`make test-asterisk`, marker `asterisk`).

Each test module gets its own stack from `start_stack`: a throwaway Asterisk built from
ASTERISK_PREFIX (default /opt/asterisk) with the project's configuration and the module's
scripted phones, a fresh database on the session's Postgres (created by `ari-controller
migrate`), the daemon as a subprocess (`ari-controller run`, ARI password from the
environment), and the observer application. Without an Asterisk build every test is skipped,
saying why.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ari_controller.announcements import (
    greeting_and_menu,
    prepare_announcements,
    responder_sentences,
)
from ari_controller.config import parse_config
from ari_controller.daemon.setup import make_library
from ari_controller.numbers import Number, numbered_routes
from ari_controller.prompts.catalogue import render
from ari_controller.prompts.library import PromptLibrary
from ari_controller.testing.asterisk import (
    AsteriskNotFoundError,
    ThrowawayAsterisk,
    find_asterisk_prefix,
)
from ari_controller.testing.postgres import free_port
from tests.asterisk.stack import (
    AriRest,
    DaemonProcess,
    EventsProxy,
    LoopThread,
    Observer,
    RealStack,
    daemon_command,
    write_config,
)
from tests.fixtures_postgres import create_database, drop_database, dsn_with_database

ARI_PASSWORD_ENV = "SUITE_ARI_PASSWORD"
# Set to a directory to keep each module's daemon log and Asterisk logs there.
KEEP_LOGS_ENV = "ASTERISK_SUITE_LOGS"


_skipped_because: list[str] = []


@pytest.fixture(scope="session")
def asterisk_prefix() -> Path:
    try:
        return find_asterisk_prefix()
    except AsteriskNotFoundError as exc:
        reason = f"real-Asterisk suite skipped: {exc}"
        _skipped_because.append(reason)
        pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Why the suite was skipped, once (rather than once per test with -rs)."""
    if _skipped_because:
        terminalreporter.write_line(_skipped_because[0], yellow=True, bold=True)


@pytest.fixture(scope="session")
def suite_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture(scope="session")
def prompts_dir() -> Iterator[Path]:
    """Rendered prompts, shared by every module's Asterisk (as its sounds/callrouting)."""
    path = Path(tempfile.mkdtemp(prefix="suite-prompts-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Durations:
    """How long the rendered prompts of the module's numbers play, to time the phones."""

    library: PromptLibrary
    numbers: dict[str, Number]
    language: str = "en"

    def of(self, *texts: str) -> float:
        return sum(self.library.duration(text, self.language) for text in texts)

    def say(self, key: str) -> float:
        return self.of(render(key, self.language))

    def greeting_and_menu(self, did: str) -> float:
        number = self.numbers[did]
        return self.of(*greeting_and_menu(number, numbered_routes(number.routes)))

    def menu_options(self, did: str) -> float:
        number = self.numbers[did]
        return self.of(*greeting_and_menu(number, numbered_routes(number.routes))[1:])

    def responder_prompt(self, did: str) -> float:
        return self.of(*responder_sentences(self.numbers[did]))


def _keep_logs(name: str, work: Path, asterisk: ThrowawayAsterisk) -> None:
    keep = os.environ.get(KEEP_LOGS_ENV)
    if not keep or asterisk.root is None:
        return
    target = Path(keep) / name
    target.mkdir(parents=True, exist_ok=True)
    for source in (
        work / "daemon.log",
        asterisk.log_file,
        asterisk.root / "log" / "console.log",
    ):
        if source.exists():
            shutil.copy(source, target / source.name)


StackFactory = Callable[..., contextlib.AbstractContextManager[RealStack]]


@pytest.fixture(scope="session")
def start_stack(
    asterisk_prefix: Path, suite_loop: LoopThread, prompts_dir: Path, postgres_dsn: str
) -> StackFactory:
    """`with start_stack(name, sections, dialplan, ...) as stack:` one module's stack.

    `sections`: the configuration's users, schedules, policies and numbers (and optionally
    `asterisk` settings such as `sweep_interval_s`); connection sections are filled in.
    `dialplan(durations)`: the extra dialplan (the module's scripted phones), timed by the
    rendered prompts. `proxy=True` puts an `EventsProxy` between the daemon and Asterisk;
    `session_limit` sets Asterisk's http.conf sessionlimit.
    """

    @contextlib.contextmanager
    def start(
        name: str,
        sections: dict[str, Any],
        dialplan: Callable[[Durations], str],
        *,
        proxy: bool = False,
        drain_s: float = 30.0,
        session_limit: int | None = None,
    ) -> Iterator[RealStack]:
        work = Path(tempfile.mkdtemp(prefix=f"suite-{name}-"))
        # The prompts, rendered here first: the phones' timings depend on how long they play.
        checked = parse_config({**sections, "prompts": {"cache_dir": str(prompts_dir)}}, name)
        library = make_library(checked, work)
        suite_loop.run(prepare_announcements(library, checked.numbers, work), 120)
        durations = Durations(library, {n.did: n for n in checked.numbers})

        asterisk = ThrowawayAsterisk(
            asterisk_prefix, extra_dialplan=dialplan(durations), session_limit=session_limit
        )
        database = f"suite_{name}_{secrets.token_hex(4)}"
        stack: RealStack | None = None
        daemon: DaemonProcess | None = None
        try:
            asterisk.start()
            (asterisk.sounds_dir / "callrouting").symlink_to(prompts_dir)
            suite_loop.run(create_database(postgres_dsn, database))
            dsn = dsn_with_database(postgres_dsn, database)

            events_proxy: EventsProxy | None = None
            ari_url = asterisk.ari_url
            if proxy:
                events_proxy = EventsProxy(asterisk.port)
                suite_loop.run(events_proxy.start())
                ari_url = f"http://127.0.0.1:{events_proxy.port}/ari"
            http_port = free_port()
            config_path = write_config(
                work / "config.yaml",
                {
                    **sections,
                    "asterisk": {
                        **sections.get("asterisk", {}),
                        "url": ari_url,
                        "username": asterisk.ari_user,
                        "password_env": ARI_PASSWORD_ENV,
                    },
                    "database": {"dsn": dsn, "spool_dir": str(work / "spool")},
                    "http": {"host": "127.0.0.1", "port": http_port},
                    "prompts": {
                        "media": "sound",
                        "cache_dir": str(asterisk.sounds_dir / "callrouting"),
                    },
                },
            )
            env = {**os.environ, ARI_PASSWORD_ENV: asterisk.ari_password}
            subprocess.run(
                [*daemon_command(), "migrate", "--config", str(config_path)],
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )

            rest = AriRest(asterisk.ari_url, asterisk.ari_user, asterisk.ari_password)
            observer = Observer(asterisk.ari_url, asterisk.ari_user, asterisk.ari_password)
            suite_loop.run(observer.start())
            daemon = DaemonProcess(
                config_path, work / "daemon.log", http_port, env, drain_s=drain_s
            )
            stack = RealStack(
                asterisk, suite_loop, rest, observer, daemon, dsn, library, proxy=events_proxy
            )
            daemon.start()
            yield stack
        finally:
            if daemon is not None:
                daemon.stop()
            if stack is not None:
                stack.close()
            _keep_logs(name, work, asterisk)
            asterisk.stop()
            with contextlib.suppress(Exception):
                suite_loop.run(drop_database(postgres_dsn, database))
            shutil.rmtree(work, ignore_errors=True)

    return start
