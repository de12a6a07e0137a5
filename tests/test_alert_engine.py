"""The alert engine on a real Postgres: events become deliveries, escalations walk their policy
rule by rule at their delays until acknowledged, and two engines never do a thing twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg

from ari_controller.alerts.engine import AlertEngine
from ari_controller.config import Config, parse_config

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


def config(**policy: Any) -> Config:
    def user(user_id: str, *notify: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": user_id,
            "name": user_id.title(),
            "contacts": [f"Local/{user_id}@responders"],
            "notify": list(notify),
        }

    return parse_config(
        {
            "users": [
                user("ana", {"method": "chat", "to": "ops-chat", "mention": "@ana"}),
                user(
                    "bob",
                    {"method": "chat", "to": "ops-chat"},
                    {"method": "webhook", "to": "pager", "after_minutes": 2},
                ),
                user("cy"),
            ],
            "escalation_policies": [
                {
                    "id": "db",
                    "rules": [
                        {"users": ["ana"], "escalation_delay_minutes": 0.05},
                        {"users": ["bob", "cy"]},
                    ],
                    **policy,
                }
            ],
            "numbers": [
                {
                    "did": "100",
                    "name": "Hotline",
                    "routes": [{"label": "database", "policy": "db"}],
                    "alerts": {"actions": [{"destination": "pager", "events": ["alert.created"]}]},
                }
            ],
            "alerts": {
                "destinations": [
                    {"id": "ops-chat", "type": "slack", "url": "http://127.0.0.1:9/chat"},
                    {
                        "id": "pager",
                        "type": "webhook",
                        "url": "http://127.0.0.1:9/hook",
                        "secret_env": "PAGER_SECRET",
                    },
                ],
                "public_base_url": "https://hotline.example",
                "engine": {"default_escalation_delay_minutes": 1},
            },
        }
    )


async def new_alert(pool: asyncpg.Pool, *events: tuple[str, dict[str, Any]]) -> uuid.UUID:
    """An open alert of number 100 routed to policy db, with alert events waiting."""
    alert_id = uuid.uuid4()
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO alerts (id, number_did, number_name, route, policy_id, caller_id,"
            " created_at) VALUES ($1, '100', 'Hotline', 'database', 'db', '+4930123', $2)",
            alert_id,
            T0,
        )
        for kind, payload in events:
            await queue(conn, alert_id, kind, payload)
    return alert_id


async def queue(conn: Any, alert_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO notification_outbox (notification_id, alert_id, kind, payload, created_at)"
        " VALUES ($1, $2, $3, $4::jsonb, $5)",
        uuid.uuid4(),
        alert_id,
        kind,
        json.dumps(payload),
        T0,
    )


async def deliveries(pool: asyncpg.Pool, alert_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT event, destination, user_id, state, due_at, payload FROM deliveries"
        " WHERE alert_id = $1 ORDER BY due_at, destination, user_id",
        alert_id,
    )
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


async def log_kinds(pool: asyncpg.Pool, alert_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM alert_log WHERE alert_id = $1 ORDER BY id", alert_id)
    return [r["kind"] for r in rows]


def engine(pool: asyncpg.Pool, cfg: Config) -> AlertEngine:
    return AlertEngine(pool, lambda: cfg, lambda: T0)


async def test_an_escalated_alert_notifies_rule_after_rule_at_its_delay(
    pool: asyncpg.Pool,
) -> None:
    cfg = config()
    alert_id = await new_alert(
        pool,
        ("alert.created", {}),
        ("alert.escalated", {"reason": "nobody_available", "policy_id": "db"}),
    )
    run = engine(pool, cfg)
    assert await run.expand_events(T0) == 2
    # The number's action: alert.created to the pager webhook, at once.
    (created,) = await deliveries(pool, alert_id)
    assert (created["event"], created["destination"], created["user_id"]) == (
        "alert.created",
        "pager",
        None,
    )
    body = created["payload"]
    assert body["type"] == "alert.created"
    assert body["data"]["alert"]["id"] == str(alert_id)
    assert body["data"]["alert"]["url"] == f"https://hotline.example/alerts/{alert_id}"

    assert await run.escalate_due(T0) == 1  # rule 1: Ana, by chat at once
    personal = [d for d in await deliveries(pool, alert_id) if d["user_id"]]
    assert [(d["user_id"], d["destination"], d["due_at"]) for d in personal] == [
        ("ana", "ops-chat", T0)
    ]
    assert personal[0]["payload"]["data"]["user"] == {"id": "ana", "name": "Ana", "mention": "@ana"}
    assert personal[0]["payload"]["data"]["reason"] == "nobody_available"

    # Rule 2 waits for rule 1's delay (0.05 min = 3 s).
    assert await run.escalate_due(T0 + dt.timedelta(seconds=2.9)) == 0
    later = T0 + dt.timedelta(seconds=3)
    assert await run.escalate_due(later) == 1
    personal = [d for d in await deliveries(pool, alert_id) if d["user_id"]]
    assert [(d["user_id"], d["destination"], d["due_at"]) for d in personal] == [
        ("ana", "ops-chat", T0),
        ("bob", "ops-chat", later),
        ("bob", "pager", later + dt.timedelta(minutes=2)),  # Bob's own rule: webhook after 2 min
    ]
    # Every rule notified: the escalation is over, and nothing more comes.
    assert await run.escalate_due(later + dt.timedelta(hours=1)) == 0
    state = await pool.fetchval("SELECT state FROM alert_escalations WHERE alert_id = $1", alert_id)
    assert state == "done"
    assert await log_kinds(pool, alert_id) == [
        "escalation_started",
        "escalation_rule_notified",
        "escalation_rule_notified",
        "escalation_done",
    ]
    sent = await pool.fetchval("SELECT count(*) FROM notification_outbox WHERE sent_at IS NULL")
    assert sent == 0


async def test_acknowledging_stops_the_escalation_and_cancels_unsent_messages(
    pool: asyncpg.Pool,
) -> None:
    cfg = config()
    alert_id = await new_alert(pool, ("alert.escalated", {"reason": "voicemail"}))
    run = engine(pool, cfg)
    await run.expand_events(T0)
    await run.escalate_due(T0)  # rule 1: Ana's chat message, not sent yet
    ack = T0 + dt.timedelta(seconds=1)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acknowledged_at = $2,"
            " acknowledged_by = 'ana' WHERE id = $1",
            alert_id,
            ack,
        )
        await queue(conn, alert_id, "alert.acknowledged", {"by": "ana"})
    await run.expand_events(ack)
    assert [(d["user_id"], d["state"]) for d in await deliveries(pool, alert_id)] == [
        ("ana", "cancelled")
    ]
    state = await pool.fetchval("SELECT state FROM alert_escalations WHERE alert_id = $1", alert_id)
    assert state == "stopped"
    # Rule 2's moment comes: nobody else is notified.
    assert await run.escalate_due(T0 + dt.timedelta(minutes=10)) == 0
    assert len(await deliveries(pool, alert_id)) == 1
    assert "escalation_stopped" in await log_kinds(pool, alert_id)


async def test_a_policy_runs_again_when_it_repeats_and_rules_use_the_default_delay(
    pool: asyncpg.Pool,
) -> None:
    cfg = config(repeat=1)
    alert_id = await new_alert(pool, ("alert.escalated", {"reason": "caller_abandoned"}))
    run = engine(pool, cfg)
    await run.expand_events(T0)
    moments = [T0, T0 + dt.timedelta(seconds=3)]
    # Rule 2 has no delay of its own: the engine's default (1 minute) before round 2.
    moments += [moments[-1] + dt.timedelta(minutes=1), moments[-1] + dt.timedelta(minutes=1.05)]
    for moment in moments:
        assert await run.escalate_due(moment) == 1
    people = [
        d["user_id"] for d in await deliveries(pool, alert_id) if d["destination"] == "ops-chat"
    ]
    assert people == ["ana", "bob", "ana", "bob"]
    assert await run.escalate_due(moments[-1] + dt.timedelta(days=1)) == 0


async def test_a_held_voicemail_escalation_waits_for_the_support_hours(
    pool: asyncpg.Pool,
) -> None:
    opening = T0 + dt.timedelta(hours=9)
    alert_id = await new_alert(
        pool, ("alert.escalated", {"reason": "voicemail", "hold_until": opening.isoformat()})
    )
    run = engine(pool, config())
    await run.expand_events(T0)
    assert await run.escalate_due(T0 + dt.timedelta(hours=8, minutes=59)) == 0
    assert await deliveries(pool, alert_id) == []
    assert await run.escalate_due(opening) == 1
    assert [d["user_id"] for d in await deliveries(pool, alert_id)] == ["ana"]


async def test_two_engines_on_one_database_take_each_step_once(pool: asyncpg.Pool) -> None:
    cfg = config()
    alerts = [await new_alert(pool, ("alert.escalated", {"reason": "r"})) for _ in range(20)]
    first, second = engine(pool, cfg), engine(pool, cfg)
    expanded = await asyncio.gather(first.expand_events(T0), second.expand_events(T0))
    assert sum(expanded) == 20
    stepped = await asyncio.gather(first.escalate_due(T0), second.escalate_due(T0))
    assert sum(stepped) == 20
    for alert_id in alerts:
        assert [d["user_id"] for d in await deliveries(pool, alert_id)] == ["ana"]


async def test_an_escalation_to_a_policy_that_does_not_exist_is_logged_not_lost(
    pool: asyncpg.Pool,
) -> None:
    alert_id = await new_alert(pool, ("alert.escalated", {"reason": "r", "policy_id": "gone"}))
    run = engine(pool, config())
    assert await run.expand_events(T0) == 1
    assert await log_kinds(pool, alert_id) == ["escalation_not_started"]
    assert await run.escalate_due(T0) == 0
