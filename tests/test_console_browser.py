"""The console in a real browser: headless Chromium (Debian's package) driven by Playwright,
against the daemon on the simulator with a real Postgres. Scripted calls are placed while the
pages are open; each page is also fetched with JavaScript off. Screenshots of every page are
saved (build/console-screenshots, or CONSOLE_SCREENSHOTS) for the README."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from ari_controller.config import parse_config
from ari_controller.console import accounts
from ari_controller.store.migrate import migrate
from ari_controller.testing.harness import Stack, running_stack
from tests.browser import chromium_path, screenshots_dir
from tests.fixtures_postgres import create_database, drop_database, dsn_with_database, run_async

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

PASSWORD = "a long console password"
TIME_SCALE = 2.0
# Callers and phones of these tests (script times are divided by TIME_SCALE).
SCRIPTS: dict[str, list[Any]] = {
    # presses 1 in the menu, talks a while once connected, hangs up
    "browser_caller": ["answer", {"wait": 3}, {"dtmf": "1"}, {"wait": 16}, "hangup"],
    # rings a while, answers, presses 1 to accept
    "browser_responder": ["ring", {"wait": 3}, "answer", {"wait": 3}, {"dtmf": "1"},
                          {"wait": 300}, "hangup"],
    # leaves a voicemail after hours: speaks, then hangs up
    "browser_voicemail": ["answer", {"wait": 2}, {"speak": "tt-monkeys"}, "hangup"],
}  # fmt: skip

CONFIG: dict[str, Any] = {
    "users": [
        {"id": "ana", "name": "Ana Alvarez", "contacts": ["Local/browser_responder@responders"]},
        {"id": "ben", "name": "Ben Brandt", "contacts": ["Local/browser_responder@responders"]},
    ],
    "schedules": [
        {
            "id": "db-rota",
            "name": "Database daily rota",
            "time_zone": "Europe/Berlin",
            "layers": [
                {
                    "members": ["ana", "ben"],
                    "start": "2026-01-05T09:00:00",
                    "shift_length": "daily",
                }
            ],
        }
    ],
    "escalation_policies": [
        {"id": "database", "name": "Database team", "rules": [{"schedules": ["db-rota"]}]}
    ],
    "numbers": [
        {
            "did": "100",
            "name": "Acme Operations",
            "time_zone": "Europe/Berlin",
            "routes": [{"label": "the database team", "policy": "database"}],
            "responders": {"ring_timeout_s": 30, "accept_window_s": 8, "accept_keys": "1"},
            "voicemail": {"enabled": False},
            "resolution": "leave_open",
        },
        {
            "did": "200",
            "name": "Acme After Hours",
            "routes": [{"label": "operations", "policy": "database"}],
            "support_hours": {"time_zone": "Europe/Berlin", "windows": []},
            "outside_hours": {"action": "voicemail"},
            "voicemail": {"enabled": True, "max_duration_s": 30, "max_silence_s": 3},
        },
    ],
}


@dataclass
class World:
    stack: Stack
    base: str
    browser: Any  # playwright Browser
    dsn: str
    shots: Path

    async def page(self, user: str | None, *, javascript: bool = True) -> Any:
        context = await self.browser.new_context(
            java_script_enabled=javascript, viewport={"width": 1100, "height": 800}
        )
        page = await context.new_page()
        page.set_default_timeout(10_000)
        if user is not None:
            await sign_in(page, self.base, user)
        return page

    async def shot(self, page: Any, name: str) -> None:
        await page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    async def sql(self, query: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()


async def sign_in(page: Any, base: str, user: str) -> None:
    await page.goto(f"{base}/console/login")
    await page.get_by_label("Name").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/console/")


@pytest.fixture(scope="module")
def browser_database(postgres_dsn: str) -> Iterator[str]:
    name = f"test_browser_{secrets.token_hex(4)}"
    run_async(lambda: create_database(postgres_dsn, name))
    dsn = dsn_with_database(postgres_dsn, name)
    try:
        run_async(lambda: migrate(dsn))
        yield dsn
    finally:
        run_async(lambda: drop_database(postgres_dsn, name))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    browser_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    chromium = chromium_path()
    if chromium is None:
        pytest.skip(
            "no Chromium here: install Debian's `chromium` package (.ci/run does) or set"
            " CHROMIUM to a Chromium executable"
        )
    config = parse_config(CONFIG)
    work = tmp_path_factory.mktemp("console-browser")
    async with running_stack(config, browser_database, work, time_scale=TIME_SCALE) as stack:
        for name, steps in SCRIPTS.items():
            stack.sim.register_script(name, steps)
        conn = await asyncpg.connect(browser_database)
        try:
            now = dt.datetime.now(dt.UTC)
            for user, role in (("olivia", "admin"), ("rita", "responder"), ("vera", "viewer")):
                await accounts.add(conn, user, PASSWORD, role, None, now)
        finally:
            await conn.close()
        async with playwright_api.async_playwright() as driver:
            browser = await driver.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            try:
                yield World(
                    stack,
                    f"http://127.0.0.1:{stack.daemon.http_port}",
                    browser,
                    browser_database,
                    screenshots_dir(),
                )
            finally:
                await browser.close()


async def test_sign_in_and_out(world: World) -> None:
    page = await world.page(None)
    await page.goto(f"{world.base}/console/alerts")
    assert "/console/login" in page.url
    await world.shot(page, "sign-in")
    await page.get_by_label("Name").fill("rita")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    assert "wrong" in await page.get_by_role("alert").inner_text()
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{world.base}/console/alerts*")
    assert "rita" in await page.locator("header").inner_text()
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/login?signed_out=1")
    assert "You are signed out" in await page.content()
    await page.goto(f"{world.base}/console/")
    assert "/console/login" in page.url  # the old session is gone


async def test_a_live_call_appears_changes_step_and_ends(world: World) -> None:
    page = await world.page("rita")
    await page.wait_for_selector("#live-status:has-text('Live')")
    channel = await world.stack.place_call("browser_caller", "100", "Caller <+4930111222>")
    seen = []
    for step in ("menu", "ringing", "asking", "connected", "ended"):
        row = await page.wait_for_selector(f"#live-calls tr[data-step='{step}']", timeout=15_000)
        seen.append(step)
        text = await row.inner_text()
        assert "+4930111222" in text and "Acme Operations" in text
        if step == "ringing":
            assert "Ana Alvarez" in text or "Ben Brandt" in text
        if step == "connected":
            assert "with " in text
            await asyncio.sleep(1.2)  # the time in the step counts up in the page
            counted = await row.query_selector("[data-since]")
            assert counted is not None and (await counted.inner_text()).endswith(" s")
            await world.shot(page, "live-calls")
    assert seen == ["menu", "ringing", "asking", "connected", "ended"]
    await world.stack.wait_calls_done(20)
    assert channel
