"""The console over real HTTP and a real Postgres, without the rest of the daemon: a server on
a free port with the console mounted at /console, console users, and a signed-in client that
posts forms the way a browser does (with the page's CSRF token)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from ari_controller.config import Config, load_config
from ari_controller.console import accounts
from ari_controller.console.services import ConsoleServices
from ari_controller.console.web import console_app
from ari_controller.daemon.http import StatusServer
from ari_controller.numbers import Number

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
KEY = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Page:
    status: int
    text: str
    url: str
    headers: Any

    @property
    def csrf(self) -> str:
        found = _CSRF.search(self.text)
        assert found, f"no CSRF token on {self.url}"
        return found.group(1)


@dataclass
class Browser:
    """One person's cookie jar against the console."""

    base: str
    session: aiohttp.ClientSession

    async def get(self, path: str, **params: str) -> Page:
        async with self.session.get(self.base + path, params=params or None) as reply:
            return Page(reply.status, await reply.text(), str(reply.url), reply.headers)

    async def get_bytes(self, path: str) -> tuple[int, bytes, Any]:
        async with self.session.get(self.base + path) as reply:
            return reply.status, await reply.read(), reply.headers

    async def post(
        self,
        path: str,
        data: dict[str, Any] | list[tuple[str, str]],
        *,
        csrf_from: str | None = None,
    ) -> Page:
        """Posts a form with the CSRF token of the page at `csrf_from` (default: `path`)."""
        token = (await self.get(csrf_from or path)).csrf
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        async with self.session.post(
            self.base + path, data=[("csrf_token", token), *fields]
        ) as reply:
            return Page(reply.status, await reply.text(), str(reply.url), reply.headers)

    async def post_raw(self, path: str, data: dict[str, str]) -> Page:
        async with self.session.post(self.base + path, data=data) as reply:
            return Page(reply.status, await reply.text(), str(reply.url), reply.headers)

    async def sign_in(self, name: str, password: str = PASSWORD) -> Page:
        return await self.post("/console/login", {"name": name, "password": password})


@dataclass
class Console:
    base: str
    pool: asyncpg.Pool
    clock: Clock
    config: Config
    health: dict[str, Any]
    server: StatusServer
    browsers: list[Browser] = field(default_factory=list)

    async def add_user(self, name: str, role: str, person: str | None = None) -> None:
        async with self.pool.acquire() as conn:
            await accounts.add(conn, name, PASSWORD, role, person, self.clock())

    async def browser(self, signed_in_as: str | None = None, role: str = "responder") -> Browser:
        session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=20),
            headers={"Accept": "text/html"},
        )
        browser = Browser(self.base, session)
        self.browsers.append(browser)
        if signed_in_as is not None:
            await self.add_user(signed_in_as, role)
            page = await browser.sign_in(signed_in_as)
            assert page.status == 200 and "Sign in" not in page.text.split("<h1>")[1][:20], (
                page.text[:500]
            )
        return browser


async def _greeting(number: Number) -> bytes:
    return b"RIFF" + number.did.encode()


@pytest.fixture
async def console(database: str) -> AsyncIterator[Console]:
    config = load_config(DEMO_CONFIG)
    pool = await asyncpg.create_pool(database, min_size=1, max_size=6)
    clock = Clock()
    health: dict[str, Any] = {
        "ari_connected": True,
        "owns_app": True,
        "calls_picked_up": True,
        "accepting_calls": True,
        "database": True,
        "spool_backlog": 0,
        "calls_in_progress": 0,
        "app": "callrouting",
        "version": "0.1.0",
        "config_digest": "abc123",
        "config_loaded_at": clock(),
    }

    async def current_health() -> dict[str, Any]:
        return dict(health)

    services = ConsoleServices(
        pool=lambda: pool,
        dsn=lambda: database,
        config=lambda: config,
        clock=clock,
        health=current_health,
        greeting_audio=_greeting,
    )
    server = StatusServer(
        "127.0.0.1",
        0,
        checks=_no_checks,
        status=dict,
        metrics=bytes,
        subapps={"/console": console_app(services, KEY)},
    )
    await server.start()
    running = Console(f"http://127.0.0.1:{server.port}", pool, clock, config, health, server)
    try:
        yield running
    finally:
        for browser in running.browsers:
            await browser.session.close()
        await server.close()
        await pool.close()


async def _no_checks() -> dict[str, bool]:
    return {}


Maker = Callable[..., Awaitable[Any]]
