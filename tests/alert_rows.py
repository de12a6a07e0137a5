"""Alerts put straight into a test database, as the store and the alert engine leave them:
an alert, its call with legs and timeline, a voicemail, an escalation timer, deliveries."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


async def insert_alert(
    conn: Any,
    *,
    created_at: datetime = T0,
    number: str = "+4930123456",
    status: str = "open",
    policy_id: str | None = "db-policy",
    route: str | None = "database",
    ended_reason: str | None = "nobody_available",
    alert_id: uuid.UUID | None = None,
) -> uuid.UUID:
    alert_id = alert_id or uuid.uuid4()
    acknowledged_at = created_at + timedelta(minutes=1) if status == "acknowledged" else None
    resolved_at = created_at + timedelta(minutes=2) if status == "resolved" else None
    await conn.execute(
        "INSERT INTO alerts (id, number_did, number_name, route, policy_id, caller_id, status,"
        " acknowledged_by, acknowledged_at, resolved_at, created_at, ended_reason)"
        " VALUES ($1, $2, 'Ops hotline', $3, $4, '+4917000001', $5, $6, $7, $8, $9, $10)",
        alert_id,
        number,
        route,
        policy_id,
        status,
        "bob" if acknowledged_at else None,
        acknowledged_at,
        resolved_at,
        created_at,
        ended_reason,
    )
    return alert_id


async def insert_call(
    conn: Any, alert_id: uuid.UUID, *, at: datetime = T0, audio: bytes | None = None
) -> uuid.UUID:
    """A call with two legs (busy, no answer), a short timeline and, with audio, a voicemail."""
    call_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO calls (id, alert_id, caller_channel_id, did, caller_id, started_at,"
        " ended_at, outcome) VALUES ($1, $2, $3, '+4930123456', '+4917000001', $4, $5, $6)",
        call_id,
        alert_id,
        f"chan-{call_id.hex[:8]}",
        at,
        at + timedelta(seconds=40),
        "voicemail" if audio else "nobody_available",
    )
    for attempt, (user, outcome, cause) in enumerate(
        [("alice", "busy", 17), ("carol", "no_answer", 19)], start=1
    ):
        await conn.execute(
            "INSERT INTO call_legs (id, call_id, user_id, contact, mode, attempt, placed_at,"
            " ended_at, outcome, hangup_cause)"
            " VALUES ($1, $2, $3, $4, 'sequential', $5, $6, $6, $7, $8)",
            f"leg-{call_id.hex[:8]}-{attempt}",
            call_id,
            user,
            f"PJSIP/{user}",
            attempt,
            at + timedelta(seconds=5 * attempt),
            outcome,
            cause,
        )
    for seq, kind in enumerate(["call_started", "route_chosen", "call_ended"], start=1):
        await conn.execute(
            "INSERT INTO call_events (call_id, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5)",
            call_id,
            seq,
            at + timedelta(seconds=seq),
            kind,
            json.dumps({"n": seq}),
        )
    if audio is not None:
        voicemail_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO voicemails (id, call_id, alert_id, recording_name, duration_s, format,"
            " audio, created_at) VALUES ($1, $2, $3, 'vm-1', 4.5, 'wav', $4, $5)",
            voicemail_id,
            call_id,
            alert_id,
            audio,
            at + timedelta(seconds=30),
        )
        await conn.execute(
            "UPDATE alerts SET voicemail_id = $2 WHERE id = $1", alert_id, voicemail_id
        )
    return call_id


async def insert_escalation(conn: Any, alert_id: uuid.UUID, *, state: str = "active") -> None:
    await conn.execute(
        "INSERT INTO alert_escalations (alert_id, policy_id, reason, due_at, state, created_at,"
        " updated_at) VALUES ($1, 'db-policy', 'nobody_available', $2, $3, $4, $4)",
        alert_id,
        T0 + timedelta(minutes=5),
        state,
        T0,
    )


async def insert_delivery(
    conn: Any, alert_id: uuid.UUID, *, user_id: str | None, state: str = "pending"
) -> uuid.UUID:
    delivery_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO deliveries (id, alert_id, event, destination, user_id, payload, state,"
        " due_at, created_at, sent_at) VALUES ($1, $2, 'alert.escalated', 'chat-ops', $3,"
        " '{}'::jsonb, $4, $5, $5, $6)",
        delivery_id,
        alert_id,
        user_id,
        state,
        T0,
        T0 if state == "sent" else None,
    )
    return delivery_id


class ManualClock:
    """Starts at the real time (receivers check webhook-timestamp against it), moves only
    when told."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now
