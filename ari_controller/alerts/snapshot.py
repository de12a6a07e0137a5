"""What a message says about an alert: its fields as they are in the database now, who was
tried on its call, its voicemail, and a link when the hotline has a public address."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import asyncpg


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def alert_snapshot(
    conn: asyncpg.Connection, alert_id: UUID, public_base_url: str | None
) -> dict[str, Any] | None:
    """The alert as webhooks and chat see it (`data.alert`); None when it does not exist."""
    row = await conn.fetchrow(
        "SELECT a.id, a.number_did, a.number_name, a.caller_id, a.route, a.policy_id, a.status,"
        " a.ended_reason, a.acknowledged_by, a.acknowledged_at, a.resolved_by, a.resolved_at,"
        " a.created_at, a.escalation_count, v.id AS voicemail_id, v.duration_s"
        " FROM alerts a LEFT JOIN voicemails v ON v.id = a.voicemail_id WHERE a.id = $1",
        alert_id,
    )
    if row is None:
        return None
    tried = await conn.fetch(
        "SELECT l.user_id, l.outcome FROM call_legs l JOIN calls c ON c.id = l.call_id"
        " WHERE c.alert_id = $1 ORDER BY c.started_at, l.attempt",
        alert_id,
    )
    voicemail = (
        {"id": str(row["voicemail_id"]), "duration_s": row["duration_s"]}
        if row["voicemail_id"] is not None
        else None
    )
    url = f"{public_base_url.rstrip('/')}/alerts/{alert_id}" if public_base_url else None
    return {
        "id": str(row["id"]),
        "number": row["number_did"],
        "number_name": row["number_name"],
        "caller_id": row["caller_id"],
        "route": row["route"],
        "policy_id": row["policy_id"],
        "status": row["status"],
        "ended_reason": row["ended_reason"],
        "acknowledged_by": row["acknowledged_by"],
        "acknowledged_at": _iso(row["acknowledged_at"]),
        "resolved_by": row["resolved_by"],
        "resolved_at": _iso(row["resolved_at"]),
        "created_at": _iso(row["created_at"]),
        "escalation_count": row["escalation_count"],
        "voicemail": voicemail,
        "tried": [{"user": t["user_id"], "outcome": t["outcome"]} for t in tried],
        "url": url,
    }
