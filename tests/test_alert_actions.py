"""People acting on alerts (alerts/actions.py) against a real Postgres: the lifecycle never
goes backwards, concurrent actions change an alert once, and acknowledging stops escalation."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from ari_controller.alerts.actions import (
    Outcome,
    UnknownAlertError,
    acknowledge,
    escalate_now,
    resolve,
)
from tests.alert_rows import T0, insert_alert, insert_delivery, insert_escalation

NOW = T0 + timedelta(minutes=10)


async def outbox(conn: Any, alert_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    rows = await conn.fetch(
        "SELECT kind, payload FROM notification_outbox WHERE alert_id = $1 ORDER BY id", alert_id
    )
    return [(r["kind"], json.loads(r["payload"])) for r in rows]


async def log(conn: Any, alert_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    rows = await conn.fetch(
        "SELECT kind, data FROM alert_log WHERE alert_id = $1 ORDER BY id", alert_id
    )
    return [(r["kind"], json.loads(r["data"])) for r in rows]


async def test_open_acknowledged_resolved_and_never_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn)

        acked = await acknowledge(conn, alert_id, "alice", NOW, via="cli")
        assert (acked.outcome, acked.status, acked.reason) == (
            Outcome.CHANGED,
            "acknowledged",
            None,
        )
        assert acked.changed
        row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        assert (row["status"], row["acknowledged_by"], row["acknowledged_at"]) == (
            "acknowledged",
            "alice",
            NOW,
        )

        again = await acknowledge(conn, alert_id, "bob", NOW + timedelta(seconds=5))
        assert (again.outcome, again.status, again.reason) == (
            Outcome.ALREADY,
            "acknowledged",
            "already acknowledged",
        )
        assert (
            await conn.fetchval("SELECT acknowledged_by FROM alerts WHERE id = $1", alert_id)
            == "alice"
        ), "the first acknowledgement stands"

        done = await resolve(conn, alert_id, "carol", NOW + timedelta(minutes=1))
        assert (done.outcome, done.status) == (Outcome.CHANGED, "resolved")
        row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        assert (row["resolved_by"], row["resolved_at"], row["acknowledged_by"]) == (
            "carol",
            NOW + timedelta(minutes=1),
            "alice",
        )

        late_ack = await acknowledge(conn, alert_id, "dave", NOW + timedelta(minutes=2))
        assert (late_ack.outcome, late_ack.status, late_ack.reason) == (
            Outcome.REFUSED,
            "resolved",
            "the alert is resolved",
        )
        assert (await resolve(conn, alert_id, "dave", NOW)).outcome is Outcome.ALREADY
        late_escalation = await escalate_now(conn, alert_id, "dave", NOW)
        assert (late_escalation.outcome, late_escalation.reason) == (
            Outcome.REFUSED,
            "the alert is resolved",
        )
        assert await conn.fetchval("SELECT status FROM alerts WHERE id = $1", alert_id) == (
            "resolved"
        )

        events = await outbox(conn, alert_id)
        assert [kind for kind, _ in events] == ["alert.acknowledged", "alert.resolved"]
        ack_payload = events[0][1]
        assert ack_payload == {
            "alert_id": str(alert_id),
            "number": "+4930123456",
            "number_name": "Ops hotline",
            "route": "database",
            "caller_id": "+4917000001",
            "status": "acknowledged",
            "policy_id": "db-policy",
            "acknowledged_by": "alice",
            "ended_reason": "nobody_available",
            "by": "alice",
            "via": "cli",
        }
        assert events[1][1]["status"] == "resolved"
        assert events[1][1]["by"] == "carol"
        assert await log(conn, alert_id) == [
            ("alert_acknowledged", {"by": "alice", "via": "cli"}),
            ("alert_resolved", {"by": "carol", "via": "api"}),
        ]


async def test_an_open_alert_can_be_resolved_directly(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        result = await resolve(conn, alert_id, "alice", NOW)
        assert (result.outcome, result.status) == (Outcome.CHANGED, "resolved")
        row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        assert (row["status"], row["acknowledged_by"], row["acknowledged_at"]) == (
            "resolved",
            None,
            None,
        )
        assert [kind for kind, _ in await outbox(conn, alert_id)] == ["alert.resolved"]


async def test_escalate_now_counts_and_announces_a_manual_escalation(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        first = await escalate_now(conn, alert_id, "alice", NOW)
        second = await escalate_now(conn, alert_id, "alice", NOW + timedelta(minutes=1))
        assert (first.outcome, first.escalation_count) == (Outcome.CHANGED, 1)
        assert (second.outcome, second.escalation_count, second.status) == (
            Outcome.CHANGED,
            2,
            "open",
        )
        row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        assert (row["escalation_count"], row["last_escalated_at"], row["status"]) == (
            2,
            NOW + timedelta(minutes=1),
            "open",
        )
        events = await outbox(conn, alert_id)
        assert [kind for kind, _ in events] == ["alert.escalated", "alert.escalated"]
        payload = events[0][1]
        assert (payload["reason"], payload["policy_id"], payload["escalation"]) == (
            "manual",
            "db-policy",
            1,
        )
        assert payload["status"] == "open"
        assert payload["hold_until"] is None
        assert [kind for kind, _ in await log(conn, alert_id)] == ["alert_escalated"] * 2

        await acknowledge(conn, alert_id, "bob", NOW)
        refused = await escalate_now(conn, alert_id, "alice", NOW)
        assert (refused.outcome, refused.reason, refused.escalation_count) == (
            Outcome.REFUSED,
            "the alert is acknowledged",
            2,
        )


async def test_acknowledging_stops_escalation_and_cancels_personal_messages(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        await insert_escalation(conn, alert_id)
        to_alice = await insert_delivery(conn, alert_id, user_id="alice")
        to_bob = await insert_delivery(conn, alert_id, user_id="bob")
        to_channel = await insert_delivery(conn, alert_id, user_id=None)  # a number's action
        already_sent = await insert_delivery(conn, alert_id, user_id="carol", state="sent")
        other_alert = await insert_alert(conn)
        await insert_escalation(conn, other_alert)
        elsewhere = await insert_delivery(conn, other_alert, user_id="alice")

        result = await acknowledge(conn, alert_id, "alice", NOW)
        assert (result.escalation_stopped, result.deliveries_cancelled) == (True, 2)

        states = dict(await conn.fetch("SELECT id, state FROM deliveries"))
        assert states == {
            to_alice: "cancelled",
            to_bob: "cancelled",
            to_channel: "pending",
            already_sent: "sent",
            elsewhere: "pending",
        }
        escalations = dict(await conn.fetch("SELECT alert_id, state FROM alert_escalations"))
        assert escalations == {alert_id: "stopped", other_alert: "active"}
        updated = await conn.fetchval(
            "SELECT updated_at FROM alert_escalations WHERE alert_id = $1", alert_id
        )
        assert updated == NOW


async def test_resolving_stops_a_held_escalation(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        await insert_escalation(conn, alert_id, state="held")
        await insert_delivery(conn, alert_id, user_id="alice")
        result = await resolve(conn, alert_id, "alice", NOW)
        assert (result.escalation_stopped, result.deliveries_cancelled) == (True, 1)
        assert (
            await conn.fetchval("SELECT state FROM alert_escalations WHERE alert_id = $1", alert_id)
            == "stopped"
        )
        # A finished escalation stays as it is.
        done_alert = await insert_alert(conn)
        await insert_escalation(conn, done_alert, state="done")
        result = await acknowledge(conn, done_alert, "alice", NOW)
        assert (result.changed, result.escalation_stopped) == (True, False)
        assert (
            await conn.fetchval(
                "SELECT state FROM alert_escalations WHERE alert_id = $1", done_alert
            )
            == "done"
        )


async def test_concurrent_acknowledges_change_the_alert_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        await insert_escalation(conn, alert_id)

    async def ack(who: str) -> Outcome:
        async with pool.acquire() as conn:
            return (await acknowledge(conn, alert_id, who, NOW)).outcome

    people = [f"person-{n}" for n in range(6)]
    outcomes = await asyncio.gather(*(ack(who) for who in people))
    assert sorted(outcomes) == sorted([Outcome.CHANGED] + [Outcome.ALREADY] * 5)
    async with pool.acquire() as conn:
        events = await outbox(conn, alert_id)
        assert [kind for kind, _ in events] == ["alert.acknowledged"]
        winner = events[0][1]["by"]
        assert winner in people
        assert (
            await conn.fetchval("SELECT acknowledged_by FROM alerts WHERE id = $1", alert_id)
            == winner
        )
        assert [kind for kind, _ in await log(conn, alert_id)] == ["alert_acknowledged"]


async def test_concurrent_acknowledge_and_resolve_never_go_backwards(pool: asyncpg.Pool) -> None:
    """Whichever comes first, the alert ends resolved, with events in a valid order."""
    async with pool.acquire() as conn:
        alerts = [await insert_alert(conn) for _ in range(5)]

    async def act(alert_id: uuid.UUID, which: str) -> None:
        async with pool.acquire() as conn:
            action = acknowledge if which == "ack" else resolve
            await action(conn, alert_id, which, NOW)

    await asyncio.gather(
        *(act(alert_id, which) for alert_id in alerts for which in ("resolve", "ack"))
    )
    async with pool.acquire() as conn:
        for alert_id in alerts:
            assert await conn.fetchval("SELECT status FROM alerts WHERE id = $1", alert_id) == (
                "resolved"
            )
            kinds = [kind for kind, _ in await outbox(conn, alert_id)]
            assert kinds in (["alert.resolved"], ["alert.acknowledged", "alert.resolved"])


async def test_an_unknown_alert_is_an_error_and_writes_nothing(pool: asyncpg.Pool) -> None:
    missing = uuid.uuid4()
    async with pool.acquire() as conn:
        for action in (acknowledge, resolve, escalate_now):
            with pytest.raises(UnknownAlertError, match=str(missing)):
                await action(conn, missing, "alice", NOW)
        assert await conn.fetchval("SELECT count(*) FROM notification_outbox") == 0
        assert await conn.fetchval("SELECT count(*) FROM alert_log") == 0


async def test_a_caller_transaction_that_rolls_back_undoes_the_action(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                assert (await acknowledge(conn, alert_id, "alice", NOW)).changed
                raise RuntimeError("the caller gives up")
        assert await conn.fetchval("SELECT status FROM alerts WHERE id = $1", alert_id) == "open"
        assert await outbox(conn, alert_id) == []
