"""The console in a real browser: headless Chromium (Debian's package) driven by Playwright,
against the daemon on the simulator with a real Postgres. Scripted calls are placed while the
pages are open; each page is also fetched with JavaScript off. Screenshots of every page are
saved (build/console-screenshots, or CONSOLE_SCREENSHOTS) for the README."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from ari_controller.config import parse_config
from ari_controller.console import accounts
from ari_controller.testing.harness import Stack, running_stack
from tests.browser import chromium_path, screenshots_dir
from tests.fixtures_postgres import migrated_database

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

    async def shot(self, page: Any, name: str, *, whole: bool = True) -> None:
        """The page (`whole`: all of it, else what the window shows) as <name>.png."""
        await page.screenshot(path=str(self.shots / f"{name}.png"), full_page=whole)

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
def browser_database(postgres_dsn: str, schema_template: str) -> Iterator[str]:
    with migrated_database(postgres_dsn, schema_template, "test_browser") as dsn:
        yield dsn


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


async def insert_calls(world: World, count: int) -> list[str]:
    """`count` finished calls on number 100, one a minute from 2026-11-02 08:00 UTC, callers
    +49301000000, +49301000001, ...; their alerts open. Returns the alert ids, oldest first."""
    conn = await asyncpg.connect(world.dsn)
    ids = []
    try:
        start = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
        for n in range(count):
            at = start + dt.timedelta(minutes=n)
            alert_id, call_id = uuid.uuid4(), uuid.uuid4()
            caller = f"+4930100{n:04d}"
            await conn.execute(
                "INSERT INTO alerts (id, number_did, number_name, route, caller_id, status,"
                " created_at, ended_reason) VALUES ($1, '100', 'Acme Operations',"
                " 'the database team', $2, 'open', $3, 'nobody_available')",
                alert_id,
                caller,
                at,
            )
            await conn.execute(
                "INSERT INTO calls (id, alert_id, caller_channel_id, did, caller_id, started_at,"
                " ended_at, outcome) VALUES ($1, $2, $3, '100', $4, $5, $6, 'nobody_available')",
                call_id,
                alert_id,
                f"chan-{n}",
                caller,
                at,
                at + dt.timedelta(seconds=40),
            )
            ids.append(str(alert_id))
    finally:
        await conn.close()
    return ids


async def state_of(world: World, alert_id: str) -> str:
    rows = await world.sql("SELECT status FROM alerts WHERE id = $1", uuid.UUID(alert_id))
    return str(rows[0]["status"])


async def test_acknowledge_alerts_and_see_their_state_change(world: World) -> None:
    first, second, third = await insert_calls(world, 3)
    page = await world.page("rita")
    await page.goto(f"{world.base}/console/alerts?state=open")
    await world.shot(page, "alerts")
    await page.get_by_label("Select the alert from +49301000000").check()
    await page.get_by_label("Select the alert from +49301000001").check()
    await page.get_by_role("button", name="Acknowledge selected").click()
    assert "2" in await page.get_by_role("status").first.inner_text()
    assert (await state_of(world, first), await state_of(world, second)) == (
        "acknowledged",
        "acknowledged",
    )
    await page.goto(f"{world.base}/console/alerts/{third}")
    await page.get_by_role("button", name="Resolve").click()
    heading = await page.get_by_role("heading", level=1).inner_text()
    assert "(resolved)" in heading
    assert await state_of(world, third) == "resolved"
    acknowledged_by = await world.sql(
        "SELECT acknowledged_by FROM alerts WHERE id = $1", uuid.UUID(first)
    )
    assert acknowledged_by[0]["acknowledged_by"] == "rita"


async def test_a_viewer_is_refused_and_a_forged_form_is_refused(world: World) -> None:
    (alert_id,) = await insert_calls(world, 1)
    viewer = await world.page("vera")
    await viewer.goto(f"{world.base}/console/alerts?state=open")
    assert await viewer.get_by_role("button", name="Acknowledge selected").count() == 0
    await viewer.goto(f"{world.base}/console/alerts/{alert_id}")
    assert await viewer.get_by_role("button", name="Acknowledge").count() == 0
    token = await viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = await viewer.request.post(
        f"{world.base}/console/alerts/{alert_id}/acknowledge", form={"csrf_token": token}
    )
    assert refused.status == 403
    assert "may not" in await refused.text()
    responder = await world.page("rita")
    forged = await responder.request.post(
        f"{world.base}/console/alerts/act", form={"alert": alert_id, "action": "acknowledge"}
    )
    assert forged.status == 403
    assert await state_of(world, alert_id) == "open"


async def test_play_a_voicemail_in_the_browser(world: World) -> None:
    channel = await world.stack.place_call("browser_voicemail", "200", "Night <+4930777>")
    await world.stack.wait_calls_done(30)
    await world.stack.daemon.writer.flush(5)
    rows = await world.sql(
        "SELECT c.alert_id, octet_length(v.audio) AS size FROM calls c"
        " JOIN voicemails v ON v.call_id = c.id WHERE c.caller_channel_id = $1",
        channel,
    )
    assert rows and rows[0]["size"] > 0
    page = await world.page("rita")
    await page.goto(f"{world.base}/console/alerts/{rows[0]['alert_id']}")
    player = page.locator("audio")
    duration = await player.evaluate(
        """async (audio) => {
            if (audio.readyState < 1) {
                await new Promise((done, failed) => {
                    audio.addEventListener("loadedmetadata", done, {once: true});
                    audio.addEventListener("error", () => failed(audio.error), {once: true});
                    audio.load();
                });
            }
            return audio.duration;
        }"""
    )
    assert duration > 0.5
    await world.shot(page, "alert")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Download").click()
    saved = await (await download.value).path()
    assert (await asyncio.to_thread(Path(saved).read_bytes))[:4] == b"RIFF"


async def test_page_filter_and_export_the_call_log(world: World) -> None:
    await insert_calls(world, 55)
    page = await world.page("rita")
    await page.goto(f"{world.base}/console/calls")
    await page.get_by_label("Number").select_option("100")
    await page.get_by_role("button", name="Show calls").click()
    assert "Calls 1\u201350" in await page.get_by_role("heading", level=2).first.inner_text()
    assert "Europe/Berlin" in await page.locator("table").first.inner_text()
    await world.shot(page, "call-log", whole=False)
    await page.get_by_role("link", name="Next 50").click()
    assert "Calls 51\u2013" in await page.get_by_role("heading", level=2).first.inner_text()
    await page.goto(f"{world.base}/console/calls")
    await page.get_by_label("Caller contains").fill("+4930100000")
    await page.get_by_role("button", name="Show calls").click()
    table = await page.locator("table").first.inner_text()
    assert "+49301000007" in table and "+49301000017" not in table
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Export CSV").click()
    exported = Path(await (await download.value).path())
    lines = (await asyncio.to_thread(exported.read_text)).splitlines()
    assert lines[0].startswith("started,")
    callers = [line for line in lines[1:] if "4930100" in line]
    assert len(callers) == len(lines) - 1 >= 10


async def test_the_on_call_view_names_who_is_on_call_at_two_moments(world: World) -> None:
    page = await world.page("vera")
    seen = []
    for day in ("2026-01-05T10:00", "2026-01-06T10:00"):
        await page.goto(f"{world.base}/console/oncall")
        await page.get_by_label("Moment", exact=True).fill(day)
        await page.get_by_label("Time zone of the moment").select_option("Europe/Berlin")
        await page.get_by_role("button", name="Show").click()
        section = page.get_by_role("region", name="Database team")
        seen.append(await section.locator("ol").first.inner_text())
    assert "Ana Alvarez" in seen[0] and "Ben Brandt" not in seen[0]
    assert "Ben Brandt" in seen[1] and "Ana Alvarez" not in seen[1]
    await world.shot(page, "on-call")


async def test_every_page_shows_its_content_without_javascript(world: World) -> None:
    (alert_id,) = await insert_calls(world, 1)
    page = await world.page("olivia", javascript=False)
    expected = {
        "/console/": ("Live calls", "In this step"),
        "/console/alerts": ("Alerts", "Acknowledge selected"),
        f"/console/alerts/{alert_id}": ("Alert from", "The call"),
        "/console/calls": ("Call log", "Export CSV"),
        "/console/oncall": ("On call", "Database team"),
        "/console/numbers": ("Numbers", "Acme After Hours"),
        "/console/health": ("Health", "Database"),
        "/console/admin": ("Admin", "olivia"),
    }
    for path, (heading, content) in expected.items():
        await page.goto(world.base + path)
        assert heading in await page.get_by_role("heading", level=1).inner_text(), path
        assert content in await page.locator("main").inner_text(), path
    for path, name in (("/console/numbers", "numbers"), ("/console/health", "health"),
                       ("/console/admin", "admin")):  # fmt: skip
        await page.goto(world.base + path)
        await world.shot(page, name)
    phone = await world.browser.new_context(viewport={"width": 390, "height": 844})
    small = await phone.new_page()
    await sign_in(small, world.base, "rita")
    await small.goto(f"{world.base}/console/alerts")
    await world.shot(small, "alerts-phone", whole=False)
    width = await small.evaluate("document.documentElement.scrollWidth")
    assert width <= 400  # nothing runs off a phone's screen
