"""Reading alerts back: for the CLI, the HTTP API, the demo, tests and the notifier's outbox."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

_ALERT_COLUMNS = (
    "id, number_did, number_name, route, policy_id, caller_id, status, acknowledged_by,"
    " resolved_by,"
    " created_at, acknowledged_at, resolved_at, ended_reason, escalation_count,"
    " last_escalated_at, voicemail_id"
)


@contextlib.asynccontextmanager
async def _snapshot(db: Any, timeout_s: float) -> AsyncIterator[Any]:
    """One connection and, when we own it, one consistent read-only snapshot."""
    if hasattr(db, "acquire"):
        async with (
            db.acquire(timeout=timeout_s) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn
    elif db.is_in_transaction():
        yield db
    else:
        async with db.transaction(isolation="repeatable_read", readonly=True):
            yield db


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def get_alert(
    db: Any, alert_id: UUID | str, *, include_audio: bool = False, timeout_s: float = 10.0
) -> dict[str, Any] | None:
    """The alert with its calls; each call with its legs (in attempt order) and its timeline
    (in seq order); its voicemail (audio only with include_audio); what happened to it outside
    its call (`log`: escalation steps, people acting, in order) and its `deliveries` (without
    their payloads). None if unknown.

    `db` is an asyncpg pool or connection.
    """
    alert_id = UUID(str(alert_id))
    async with _snapshot(db, timeout_s) as conn:
        row = await conn.fetchrow(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = $1", alert_id, timeout=timeout_s
        )
        if row is None:
            return None
        alert: dict[str, Any] = dict(row)
        calls = [
            dict(r)
            for r in await conn.fetch(
                "SELECT id, alert_id, caller_channel_id, did, caller_id, started_at, answered_at,"
                " ended_at, outcome FROM calls WHERE alert_id = $1 ORDER BY started_at, id",
                alert_id,
                timeout=timeout_s,
            )
        ]
        call_ids = [call["id"] for call in calls]
        legs = await conn.fetch(
            "SELECT id, call_id, user_id, contact, mode, attempt, placed_at, answered_at,"
            " ended_at, outcome, hangup_cause FROM call_legs WHERE call_id = ANY($1::uuid[])"
            " ORDER BY attempt, placed_at, id",
            call_ids,
            timeout=timeout_s,
        )
        events = await conn.fetch(
            "SELECT call_id, seq, at, kind, data FROM call_events"
            " WHERE call_id = ANY($1::uuid[]) ORDER BY call_id, seq",
            call_ids,
            timeout=timeout_s,
        )
        voicemail_row = await conn.fetchrow(
            "SELECT id, call_id, alert_id, recording_name, duration_s, format, created_at,"
            " octet_length(audio) AS audio_bytes"
            + (", audio" if include_audio else "")
            + " FROM voicemails WHERE alert_id = $1"
            " ORDER BY (id = $2) DESC, created_at LIMIT 1",
            alert_id,
            alert["voicemail_id"],
            timeout=timeout_s,
        )
        log_rows = await conn.fetch(
            "SELECT id, at, kind, data FROM alert_log WHERE alert_id = $1 ORDER BY id",
            alert_id,
            timeout=timeout_s,
        )
        delivery_rows = await conn.fetch(
            "SELECT id, event, destination, user_id, state, attempts, due_at, last_error,"
            " created_at, sent_at FROM deliveries WHERE alert_id = $1 ORDER BY created_at, id",
            alert_id,
            timeout=timeout_s,
        )
    for call in calls:
        call["legs"] = [dict(leg) for leg in legs if leg["call_id"] == call["id"]]
        call["timeline"] = [
            {**dict(event), "data": _json(event["data"])}
            for event in events
            if event["call_id"] == call["id"]
        ]
    alert["calls"] = calls
    alert["voicemail"] = dict(voicemail_row) if voicemail_row is not None else None
    alert["log"] = [{**dict(entry), "data": _json(entry["data"])} for entry in log_rows]
    alert["deliveries"] = [dict(delivery) for delivery in delivery_rows]
    return alert


async def list_alerts(
    db: Any,
    limit: int = 50,
    *,
    status: str | None = None,
    number: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, UUID] | None = None,
    offset: int = 0,
    timeout_s: float = 10.0,
) -> list[dict[str, Any]]:
    """The newest alerts first, without their timelines: optionally only one status, one
    number (its DID), created at or after `since` and before `until`.

    Paging: `after` is the (created_at, id) of the last alert of the previous page (a cursor
    that stays right while new alerts arrive); `offset` skips that many rows instead.
    """
    after_at, after_id = after if after is not None else (None, None)
    rows = await db.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts"
        " WHERE ($1::text IS NULL OR status = $1)"
        " AND ($2::text IS NULL OR number_did = $2)"
        " AND ($3::timestamptz IS NULL OR created_at >= $3)"
        " AND ($4::timestamptz IS NULL OR created_at < $4)"
        " AND ($5::timestamptz IS NULL OR created_at < $5 OR (created_at = $5 AND id > $6))"
        " ORDER BY created_at DESC, id LIMIT $7 OFFSET $8",
        status,
        number,
        since,
        until,
        after_at,
        after_id,
        limit,
        offset,
        timeout=timeout_s,
    )
    return [dict(row) for row in rows]


async def voicemail_audio(
    db: Any, alert_id: UUID | str, *, timeout_s: float = 10.0
) -> dict[str, Any] | None:
    """The alert's voicemail audio: {"format", "audio", "recording_name"}, where `format` is
    None when the alert has no voicemail and `audio` None when it stayed in Asterisk's
    recordings directory. None if the alert is unknown."""
    row = await db.fetchrow(
        "SELECT a.id, v.format, v.audio, v.recording_name FROM alerts a"
        " LEFT JOIN voicemails v ON v.alert_id = a.id WHERE a.id = $1"
        " ORDER BY (v.id = a.voicemail_id) DESC NULLS LAST, v.created_at LIMIT 1",
        UUID(str(alert_id)),
        timeout=timeout_s,
    )
    if row is None:
        return None
    return {"format": row["format"], "audio": row["audio"], "recording_name": row["recording_name"]}


async def pending_notifications(
    db: Any, limit: int = 100, *, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """Queued notifications not sent yet, oldest first."""
    rows = await db.fetch(
        "SELECT id, notification_id, alert_id, kind, payload, created_at, attempts, last_error"
        " FROM notification_outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
        limit,
        timeout=timeout_s,
    )
    return [{**dict(row), "payload": _json(row["payload"])} for row in rows]


async def mark_notification_sent(
    db: Any, outbox_id: int, at: datetime, *, timeout_s: float = 10.0
) -> bool:
    """Record a successful send; False if it was already marked sent."""
    status = await db.execute(
        "UPDATE notification_outbox SET sent_at = $2, attempts = attempts + 1"
        " WHERE id = $1 AND sent_at IS NULL",
        outbox_id,
        at,
        timeout=timeout_s,
    )
    return str(status) == "UPDATE 1"


async def mark_notification_failed(
    db: Any, outbox_id: int, error: str, *, timeout_s: float = 10.0
) -> None:
    """Record a failed send attempt; the notification stays pending."""
    await db.execute(
        "UPDATE notification_outbox SET attempts = attempts + 1, last_error = $2"
        " WHERE id = $1 AND sent_at IS NULL",
        outbox_id,
        error,
        timeout=timeout_s,
    )
