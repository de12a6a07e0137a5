"""The alerts API (daemon/api.py) over real HTTP and a real Postgres: bearer tokens and their
scopes, list filters and paging, show, voicemail audio, the actions and their conflicts, a
database that is away; and the API as the daemon serves it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from ari_controller.alerts.tokens import create_token, revoke_token
from ari_controller.config import parse_config
from ari_controller.daemon.api import api_routes
from ari_controller.testing.harness import running_stack
from ari_controller.testing.postgres import free_port
from tests.alert_rows import T0, insert_alert, insert_call, insert_delivery, insert_escalation

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40))


@dataclass
class Clock:
    now: datetime = T0 + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    """An API server on a free port, a pool, tokens, and a client."""

    url: str
    pool: Any
    clock: Clock
    session: aiohttp.ClientSession
    tokens: dict[str, str] = field(default_factory=dict)

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "write",
        body: Any = None,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        async with self.session.request(
            method, self.url + path, headers=sent, data=data, params=params
        ) as reply:
            if reply.content_type == "application/json":
                return reply.status, await reply.json(), reply
            return reply.status, await reply.read(), reply


async def serve(routes: list[web.RouteDef]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def api(database: str) -> AsyncIterator[Api]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    clock = Clock()
    runner, url = await serve(api_routes(pool, clock))
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    try:
        running = Api(url, pool, clock, session)
        async with pool.acquire() as conn:
            for scope in ("read", "write"):
                made = await create_token(conn, f"{scope}-bot", scope, T0)
                running.tokens[scope] = made.secret
        yield running
    finally:
        await session.close()
        await runner.cleanup()
        await pool.close()


# ---- tokens and scopes ------------------------------------------------------------------------


async def test_no_token_or_a_bad_one_is_401(api: Api) -> None:
    status, body, reply = await api.call("GET", "/api/alerts", token=None)
    assert (status, body["status"]) == (401, 401)
    assert "bearer token" in body["error"]
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Basic dXNlcjpwdw==", "Bearer", "Bearer ", "bearer"):
        status, _, _ = await api.call(
            "GET", "/api/alerts", token=None, headers={"Authorization": header}
        )
        assert status == 401, header
    status, body, reply = await api.call("GET", "/api/alerts", token="crt_not-a-token")
    assert status == 401
    assert "invalid_token" in reply.headers["WWW-Authenticate"]
    status, _, _ = await api.call("POST", f"/api/alerts/{uuid.uuid4()}/acknowledge", token=None)
    assert status == 401


async def test_a_revoked_token_is_401_at_once(api: Api) -> None:
    assert (await api.call("GET", "/api/alerts", token="read"))[0] == 200
    async with api.pool.acquire() as conn:
        assert await revoke_token(conn, "read-bot", api.clock())
    status, body, _ = await api.call("GET", "/api/alerts", token="read")
    assert (status, body["error"]) == (401, "the token is not valid (unknown or revoked)")


async def test_a_read_token_reads_but_may_not_act(api: Api) -> None:
    async with api.pool.acquire() as conn:
        alert_id = await insert_alert(conn)
    assert (await api.call("GET", "/api/alerts", token="read"))[0] == 200
    assert (await api.call("GET", f"/api/alerts/{alert_id}", token="read"))[0] == 200
    for action in ("acknowledge", "resolve", "escalate"):
        status, body, _ = await api.call("POST", f"/api/alerts/{alert_id}/{action}", token="read")
        assert status == 403
        assert body["error"] == "token 'read-bot' has read scope; write needed"
    async with api.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM alerts WHERE id = $1", alert_id) == "open"


async def test_tokens_are_stored_hashed_and_last_use_is_written_once_a_minute(api: Api) -> None:
    async with api.pool.acquire() as conn:
        alert_id = await insert_alert(conn)
    await api.call("POST", f"/api/alerts/{alert_id}/acknowledge", token="write")
    async with api.pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        for secret in api.tokens.values():
            assert secret.startswith("crt_")
            for (table,) in tables:
                found = await conn.fetchval(
                    f"SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0", secret
                )
                assert found == 0, f"the plain token is in {table}"
        first_use = await conn.fetchval(
            "SELECT last_used_at FROM api_tokens WHERE name = 'write-bot'"
        )
        assert first_use == api.clock.now

        api.clock.now += timedelta(seconds=30)
        await api.call("GET", "/api/alerts", token="write")
        assert (
            await conn.fetchval("SELECT last_used_at FROM api_tokens WHERE name = 'write-bot'")
            == first_use
        ), "not again within a minute"
        api.clock.now += timedelta(seconds=31)
        await api.call("GET", "/api/alerts", token="write")
        assert (
            await conn.fetchval("SELECT last_used_at FROM api_tokens WHERE name = 'write-bot'")
            == api.clock.now
        )


# ---- list -------------------------------------------------------------------------------------


async def test_list_filters_by_status_number_and_time(api: Api) -> None:
    async with api.pool.acquire() as conn:
        made = {
            "a": await insert_alert(conn, created_at=T0, number="+491"),
            "b": await insert_alert(conn, created_at=T0 + timedelta(minutes=1), number="+492"),
            "c": await insert_alert(
                conn, created_at=T0 + timedelta(minutes=2), number="+491", status="acknowledged"
            ),
            "d": await insert_alert(
                conn, created_at=T0 + timedelta(minutes=3), number="+491", status="resolved"
            ),
        }
    names = {str(v): k for k, v in made.items()}

    async def listed(**params: str) -> list[str]:
        status, body, _ = await api.call("GET", "/api/alerts", token="read", params=params)
        assert status == 200, body
        assert body["count"] == len(body["alerts"])
        return [names[a["id"]] for a in body["alerts"]]

    assert await listed() == ["d", "c", "b", "a"], "newest first"
    assert await listed(status="open") == ["b", "a"]
    assert await listed(status="acknowledged") == ["c"]
    assert await listed(number="+491") == ["d", "c", "a"]
    assert await listed(number="+491", status="open") == ["a"]
    assert await listed(since=(T0 + timedelta(minutes=1)).isoformat()) == ["d", "c", "b"]
    assert await listed(until=(T0 + timedelta(minutes=2)).isoformat()) == ["b", "a"]
    # A moment without a zone is UTC.
    assert await listed(since="2026-03-02T09:02:00", until="2026-03-02T09:03:00") == ["c"]

    _, body, _ = await api.call("GET", "/api/alerts", token="read", params={"status": "open"})
    first = body["alerts"][0]
    assert first["number_did"] == "+492"
    assert first["status"] == "open"
    assert first["created_at"] == (T0 + timedelta(minutes=1)).isoformat()
    assert "calls" not in first


async def test_list_pages_by_cursor_and_by_offset(api: Api) -> None:
    async with api.pool.acquire() as conn:
        # Several alerts share a moment: the cursor must still not skip or repeat any.
        ids = [
            str(await insert_alert(conn, created_at=T0 + timedelta(minutes=n // 3)))
            for n in range(11)
        ]
    seen: list[str] = []
    params = {"limit": "4"}
    pages = 0
    while True:
        status, body, _ = await api.call("GET", "/api/alerts", token="read", params=params)
        assert status == 200
        assert body["limit"] == 4
        seen += [a["id"] for a in body["alerts"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        params = {"limit": "4", "cursor": body["next_cursor"]}
    assert pages == 3
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == set(ids)
    created = [await _created_at(api, alert_id) for alert_id in seen]
    assert created == sorted(created, reverse=True)

    _, everything, _ = await api.call("GET", "/api/alerts", token="read")
    _, page, _ = await api.call(
        "GET", "/api/alerts", token="read", params={"limit": "3", "offset": "6"}
    )
    assert [a["id"] for a in page["alerts"]] == [a["id"] for a in everything["alerts"]][6:9]
    _, exact, _ = await api.call("GET", "/api/alerts", token="read", params={"limit": "11"})
    assert (exact["count"], exact["next_cursor"]) == (11, None)


async def _created_at(api: Api, alert_id: str) -> datetime:
    async with api.pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT created_at FROM alerts WHERE id = $1", uuid.UUID(alert_id)
        )  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "accepted"}, "status: 'accepted' is not one of open, acknowledged, resolved"),
        ({"limit": "0"}, "limit: 0 is not between 1 and 200"),
        ({"limit": "201"}, "limit: 201 is not between 1 and 200"),
        ({"limit": "ten"}, "limit: 'ten' is not a whole number"),
        ({"offset": "-1"}, "offset: -1 is not between 0 and 100000"),
        ({"since": "yesterday"}, "since: 'yesterday' is not an ISO-8601 date-time"),
        ({"cursor": "not-a-cursor"}, "cursor: not a next_cursor this API gave"),
        ({"cursor": "WzEsMl0", "offset": "2"}, "cursor and offset: give one or the other"),
        ({"state": "open"}, "unknown parameter(s): state"),
    ],
)
async def test_bad_list_parameters_are_400(api: Api, params: dict[str, str], message: str) -> None:
    status, body, _ = await api.call("GET", "/api/alerts", token="read", params=params)
    assert status == 400
    assert body["error"].startswith(message)


# ---- show and voicemail ----------------------------------------------------------------------


async def test_show_has_calls_legs_timeline_voicemail_log_and_deliveries(api: Api) -> None:
    async with api.pool.acquire() as conn:
        alert_id = await insert_alert(conn, ended_reason="voicemail")
        await insert_call(conn, alert_id, audio=WAV)
        await insert_escalation(conn, alert_id)
        await insert_delivery(conn, alert_id, user_id="alice")
    await api.call("POST", f"/api/alerts/{alert_id}/acknowledge", body={"by": "alice"})

    status, alert, _ = await api.call("GET", f"/api/alerts/{alert_id}", token="read")
    assert status == 200
    assert (alert["id"], alert["status"], alert["acknowledged_by"]) == (
        str(alert_id),
        "acknowledged",
        "alice",
    )
    (call,) = alert["calls"]
    assert [(leg["user_id"], leg["outcome"], leg["hangup_cause"]) for leg in call["legs"]] == [
        ("alice", "busy", 17),
        ("carol", "no_answer", 19),
    ]
    assert [e["kind"] for e in call["timeline"]] == ["call_started", "route_chosen", "call_ended"]
    assert call["timeline"][0]["data"] == {"n": 1}
    voicemail = alert["voicemail"]
    assert (voicemail["format"], voicemail["audio_bytes"], voicemail["duration_s"]) == (
        "wav",
        len(WAV),
        4.5,
    )
    assert voicemail["audio_url"] == f"/api/alerts/{alert_id}/voicemail"
    assert "audio" not in voicemail
    assert [(e["kind"], e["data"]) for e in alert["log"]] == [
        ("alert_acknowledged", {"by": "alice", "via": "api"})
    ]
    assert [(d["user_id"], d["state"], d["destination"]) for d in alert["deliveries"]] == [
        ("alice", "cancelled", "chat-ops")
    ]

    status, audio, reply = await api.call("GET", f"/api/alerts/{alert_id}/voicemail", token="read")
    assert (status, reply.content_type, audio) == (200, "audio/wav", WAV)


async def test_show_and_voicemail_of_unknown_or_bad_ids(api: Api) -> None:
    async with api.pool.acquire() as conn:
        no_voicemail = await insert_alert(conn)
    missing = uuid.uuid4()
    status, body, _ = await api.call("GET", f"/api/alerts/{missing}", token="read")
    assert (status, body["error"]) == (404, f"no alert {missing}")
    status, body, _ = await api.call("GET", "/api/alerts/42", token="read")
    assert (status, body["error"]) == (400, "'42' is not an alert id (a UUID)")
    status, body, _ = await api.call("GET", f"/api/alerts/{missing}/voicemail", token="read")
    assert status == 404
    status, body, _ = await api.call("GET", f"/api/alerts/{no_voicemail}/voicemail", token="read")
    assert (status, body["error"]) == (404, f"alert {no_voicemail} has no voicemail")
    status, body, _ = await api.call("GET", f"/api/alerts/{no_voicemail}", token="read")
    assert (status, body["voicemail"], body["calls"], body["log"]) == (200, None, [], [])


# ---- actions ---------------------------------------------------------------------------------


async def test_acknowledge_resolve_and_the_conflicts(api: Api) -> None:
    async with api.pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        await insert_escalation(conn, alert_id)
    base = f"/api/alerts/{alert_id}"

    status, body, _ = await api.call("POST", f"{base}/acknowledge")
    assert status == 200
    assert (body["changed"], body["status"], body["outcome"]) == (True, "acknowledged", "changed")
    assert body["escalation_stopped"] is True
    async with api.pool.acquire() as conn:
        by = await conn.fetchval("SELECT acknowledged_by FROM alerts WHERE id = $1", alert_id)
    assert by == "write-bot", "by defaults to the token's name"

    status, body, _ = await api.call("POST", f"{base}/acknowledge", body={"by": "alice"})
    assert (status, body["changed"], body["reason"]) == (200, False, "already acknowledged")
    status, body, _ = await api.call("POST", f"{base}/escalate")
    assert (status, body["error"]) == (409, "the alert is acknowledged")

    status, body, _ = await api.call("POST", f"{base}/resolve", body={"by": "alice"})
    assert (status, body["changed"], body["status"]) == (200, True, "resolved")
    status, body, _ = await api.call("POST", f"{base}/acknowledge")
    assert (status, body["error"], body["status"]) == (409, "the alert is resolved", 409)
    assert (body["result"]["outcome"], body["result"]["status"]) == ("refused", "resolved")
    status, body, _ = await api.call("POST", f"{base}/resolve")
    assert (status, body["changed"]) == (200, False)

    async with api.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, payload FROM notification_outbox WHERE alert_id = $1 ORDER BY id",
            alert_id,
        )
        assert [r["kind"] for r in rows] == ["alert.acknowledged", "alert.resolved"]
        assert json.loads(rows[1]["payload"])["by"] == "alice"
        resolved = await conn.fetchrow(
            "SELECT resolved_by, resolved_at FROM alerts WHERE id = $1", alert_id
        )
        assert tuple(resolved) == ("alice", api.clock.now)


async def test_escalate_now_through_the_api(api: Api) -> None:
    async with api.pool.acquire() as conn:
        alert_id = await insert_alert(conn)
    status, body, _ = await api.call("POST", f"/api/alerts/{alert_id}/escalate", body={})
    assert (status, body["changed"], body["escalation_count"]) == (200, True, 1)
    async with api.pool.acquire() as conn:
        payload = json.loads(
            await conn.fetchval(
                "SELECT payload FROM notification_outbox WHERE alert_id = $1", alert_id
            )
        )
    assert (payload["reason"], payload["policy_id"], payload["by"]) == (
        "manual",
        "db-policy",
        "write-bot",
    )


async def test_actions_on_unknown_alerts_and_bad_bodies(api: Api) -> None:
    async with api.pool.acquire() as conn:
        alert_id = await insert_alert(conn)
    missing = uuid.uuid4()
    status, body, _ = await api.call("POST", f"/api/alerts/{missing}/resolve")
    assert (status, body["error"]) == (404, f"no alert {missing}")
    status, body, _ = await api.call("POST", "/api/alerts/nope/resolve")
    assert status == 400
    url = f"/api/alerts/{alert_id}/acknowledge"
    for raw, message in [
        (b"{not json", "the body is not JSON"),
        (b'["alice"]', "the body must be a JSON object"),
        (b'{"by": "alice", "note": "x"}', "unknown field(s) in the body: note"),
        (b'{"by": ""}', '"by" must be a non-empty string'),
        (b'{"by": 7}', '"by" must be a non-empty string'),
    ]:
        status, body, _ = await api.call("POST", url, raw=raw)
        assert (status, body["error"][: len(message)]) == (400, message), raw
    async with api.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM alerts WHERE id = $1", alert_id) == "open"
    status, _, _ = await api.call("GET", url)
    assert status == 405


# ---- a database that is away -------------------------------------------------------------------


async def test_a_database_that_is_away_is_503_and_the_server_goes_on() -> None:
    pool = await asyncpg.create_pool(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none", min_size=0, max_size=2, timeout=2
    )
    runner, url = await serve([*api_routes(pool, Clock()), web.get("/healthz", _alive)])
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for method, path in [
                ("GET", "/api/alerts"),
                ("GET", f"/api/alerts/{uuid.uuid4()}"),
                ("POST", f"/api/alerts/{uuid.uuid4()}/acknowledge"),
            ]:
                async with session.request(
                    method, url + path, headers={"Authorization": "Bearer crt_x"}
                ) as reply:
                    assert reply.status == 503
                    assert await reply.json() == {
                        "error": "the database is not available, try again",
                        "status": 503,
                    }
            async with session.get(url + "/healthz") as reply:
                assert reply.status == 200
    finally:
        await runner.cleanup()
        await pool.close()


async def _alive(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


# ---- the daemon serves it --------------------------------------------------------------------


DAEMON_CONFIG = {
    "users": [{"id": "bea", "name": "Bea", "contacts": ["Local/busy@responders"]}],
    "escalation_policies": [{"id": "ops", "name": "Ops", "rules": [{"users": ["bea"]}]}],
    "numbers": [
        {
            "did": "201",
            "name": "Acme Operations",
            "routes": [{"label": "ops", "policy": "ops"}],
            "voicemail": {"enabled": False},
        }
    ],
}


@pytest.mark.timeout(60)
async def test_the_daemon_serves_the_api_on_its_http_port(database: str, tmp_path: Path) -> None:
    config = parse_config(DAEMON_CONFIG)
    async with running_stack(config, database, tmp_path, time_scale=10.0) as stack:
        stack.sim.register_script("stay", ["answer", {"wait": 100}, "hangup"])
        await stack.place_call("stay", "201")
        await stack.wait_calls_done(30)
        (alert,) = await stack.alerts()
        conn = await asyncpg.connect(database)
        try:
            token = (await create_token(conn, "ops-tool", "write", T0)).secret
        finally:
            await conn.close()
        url = f"http://127.0.0.1:{stack.daemon.http_port}/api/alerts"
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(url) as reply:
                assert reply.status == 401
            async with session.get(url, headers=auth) as reply:
                assert reply.status == 200
                listed = await reply.json()
            assert [a["id"] for a in listed["alerts"]] == [str(alert["id"])]
            async with session.post(
                f"{url}/{alert['id']}/acknowledge", headers=auth, json={"by": "bea"}
            ) as reply:
                assert reply.status == 200, await reply.text()
                assert (await reply.json())["status"] == "acknowledged"
            async with session.get(f"{url}/{alert['id']}", headers=auth) as reply:
                shown = await reply.json()
        assert (shown["status"], shown["acknowledged_by"]) == ("acknowledged", "bea")
        assert shown["calls"][0]["legs"][0]["outcome"] == "busy"
        assert [e["kind"] for e in shown["log"]][-1] == "alert_acknowledged"
