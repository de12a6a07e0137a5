"""The confirmation page behind the e-mail links, on a real HTTP server and a real Postgres:
GET shows the alert and a button and changes nothing (a mail scanner fetching the link
acknowledges nothing); POST with a valid link acknowledges or resolves as the link's person
(the escalation stops); expired, forged and unsigned links are refused with nothing changed."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from ari_controller.alerts.links import make_link
from ari_controller.config import AlertsSettings
from ari_controller.daemon.confirm import confirm_routes
from tests.alert_rows import T0, insert_alert, insert_delivery, insert_escalation

SECRET = "confirm-test-secret"
NOW = T0 + dt.timedelta(minutes=10)
SETTINGS = AlertsSettings(public_base_url="https://oncall.example.com", link_secret_env="LINK_KEY")


@dataclass
class Site:
    base: str
    session: aiohttp.ClientSession
    pool: asyncpg.Pool

    def link(
        self,
        alert_id: uuid.UUID,
        action: str = "acknowledge",
        *,
        user: str = "alice",
        expires: dt.datetime = NOW + dt.timedelta(hours=24),
        secret: str = SECRET,
    ) -> tuple[str, dict[str, str]]:
        """The path and the fields of a link as the mail has it."""
        link = make_link(self.base, str(alert_id), action, user, expires, secret)  # type: ignore[arg-type]
        parts = urlsplit(link)
        return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

    async def state(self, alert_id: uuid.UUID) -> tuple[str, str | None, str | None, int]:
        row = await self.pool.fetchrow(
            "SELECT a.status, a.acknowledged_by,"
            " (SELECT state FROM alert_escalations e WHERE e.alert_id = a.id) AS escalation,"
            " (SELECT count(*) FROM alert_log l WHERE l.alert_id = a.id) AS log"
            " FROM alerts a WHERE a.id = $1",
            alert_id,
        )
        assert row is not None
        return row["status"], row["acknowledged_by"], row["escalation"], row["log"]


@pytest.fixture
async def site(database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Site]:
    monkeypatch.setenv("LINK_KEY", SECRET)
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    app = web.Application()
    app.add_routes(confirm_routes(lambda: pool, lambda: SETTINGS, lambda: NOW))
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    session = aiohttp.ClientSession()
    try:
        yield Site(f"http://{host}:{port}", session, pool)
    finally:
        await session.close()
        await runner.cleanup()
        await pool.close()


async def _open_alert(site: Site) -> uuid.UUID:
    async with site.pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        await insert_escalation(conn, alert_id)
        await insert_delivery(conn, alert_id, user_id="carol")
    return alert_id


async def test_get_shows_the_alert_and_a_form_and_changes_nothing(site: Site) -> None:
    alert_id = await _open_alert(site)
    path, fields = site.link(alert_id)
    before = await site.state(alert_id)
    for _ in range(3):  # a scanner, a preview, the person
        async with site.session.get(site.base + path, params=fields) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            page = await response.text()
    assert before == await site.state(alert_id) == ("open", None, "active", 0)
    assert "Acknowledge the alert?" in page and "+4917000001" in page and "Ops hotline" in page
    assert "<form method='post'>" in page
    hidden = dict(re.findall(r"name='(\w+)' value='([^']*)'", page))
    assert hidden == fields


async def test_post_acknowledges_as_the_links_person_and_stops_the_escalation(
    site: Site,
) -> None:
    alert_id = await _open_alert(site)
    path, fields = site.link(alert_id)
    async with site.session.post(site.base + path, data=fields) as response:
        assert response.status == 200
        page = await response.text()
    assert "The alert is acknowledged by alice. Its escalation has stopped." in page
    status, by, escalation, _ = await site.state(alert_id)
    assert (status, by, escalation) == ("acknowledged", "alice", "stopped")
    entry = await site.pool.fetchrow(
        "SELECT data FROM alert_log WHERE alert_id = $1 AND kind = 'alert_acknowledged'", alert_id
    )
    assert entry is not None and '"via": "email"' in entry["data"]
    assert await site.pool.fetchval("SELECT state FROM deliveries") == "cancelled"
    # Again: nothing to do, said so.
    async with site.session.post(site.base + path, data=fields) as response:
        assert response.status == 200 and "Nothing to do" in await response.text()

    # The resolve link resolves it.
    path, fields = site.link(alert_id, "resolve", user="bob")
    async with site.session.post(site.base + path, data=fields) as response:
        assert response.status == 200 and "resolved by bob" in await response.text()
    assert (await site.state(alert_id))[0] == "resolved"
    # Acknowledging a resolved alert is refused.
    path, fields = site.link(alert_id)
    async with site.session.post(site.base + path, data=fields) as response:
        assert response.status == 409 and "the alert is resolved" in await response.text()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"expires": NOW - dt.timedelta(seconds=1)}, "The link has expired"),
        ({"user": "mallory"}, "The link's signature is not valid"),
        ({"secret": "guessed"}, "The link's signature is not valid"),
        ({"action": "resolve"}, "The link's signature is not valid"),
    ],
)
async def test_expired_or_forged_links_are_refused_and_change_nothing(
    site: Site, change: dict[str, object], reason: str
) -> None:
    alert_id = await _open_alert(site)
    path, fields = site.link(alert_id)
    if "expires" in change:
        path, fields = site.link(alert_id, expires=change["expires"])  # type: ignore[arg-type]
    elif "secret" in change:
        path, fields = site.link(alert_id, secret="guessed")
    elif "user" in change:
        fields["user"] = "mallory"  # signed for alice
    else:
        path = path.replace("/acknowledge", "/resolve")  # signed for acknowledging
    for method in ("GET", "POST"):
        async with site.session.request(method, site.base + path, data=fields, params=fields) as r:
            assert r.status == 403
            assert reason in html.unescape(await r.text())
    assert await site.state(alert_id) == ("open", None, "active", 0)
    assert await site.pool.fetchval("SELECT state FROM deliveries") == "pending"


async def test_unknown_alert_no_secret_and_bad_paths(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, fields = site.link(uuid.uuid4())
    async with site.session.post(site.base + path, data=fields) as response:
        assert response.status == 404
    async with site.session.get(site.base + path, params=fields) as response:
        assert response.status == 404
    async with site.session.post(site.base + "/alerts/not-a-uuid/acknowledge") as response:
        assert response.status == 404
    async with site.session.post(site.base + path.replace("acknowledge", "escalate")) as r:
        assert r.status == 404  # no such route: links only acknowledge or resolve

    alert_id = await _open_alert(site)
    path, fields = site.link(alert_id)
    monkeypatch.delenv("LINK_KEY")  # no secret: no link works
    async with site.session.post(site.base + path, data=fields) as response:
        assert response.status == 403
        assert "not enabled" in await response.text()
    assert (await site.state(alert_id))[0] == "open"
