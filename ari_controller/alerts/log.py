"""The alert's own rows that several parts write: its log (what happened outside its call)
and stopping its escalation when someone has it or it is over."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any


async def log_alert(
    conn: Any,
    alert_id: uuid.UUID,
    at: dt.datetime,
    kind: str,
    data: dict[str, Any],
    *,
    timeout_s: float = 10.0,
) -> None:
    """One entry on the alert's own timeline (`alert_log`)."""
    await conn.execute(
        "INSERT INTO alert_log (alert_id, at, kind, data) VALUES ($1, $2, $3, $4::jsonb)",
        alert_id,
        at,
        kind,
        json.dumps(data, default=str),
        timeout=timeout_s,
    )


async def stop_escalation(
    conn: Any, alert_id: uuid.UUID, status: str, now: dt.datetime, *, timeout_s: float = 10.0
) -> tuple[bool, int]:
    """Stop the alert's escalation timer and cancel the messages still waiting to notify
    people of it (a number's own actions, user_id NULL, still announce the change). Whether
    an escalation was stopped, and how many messages were cancelled."""
    stopped = await conn.fetchval(
        "UPDATE alert_escalations SET state = 'stopped', updated_at = $2"
        " WHERE alert_id = $1 AND state IN ('active', 'held') RETURNING alert_id",
        alert_id,
        now,
        timeout=timeout_s,
    )
    # A phone call in progress is left to end itself: the person on the line may be the one
    # acting through it, and the call stops ringing further contacts once the alert is taken.
    cancelled = await conn.fetchval(
        "WITH c AS (UPDATE deliveries SET state = 'cancelled', last_error = 'alert ' || $2"
        " WHERE alert_id = $1 AND state = 'pending' AND user_id IS NOT NULL"
        " AND NOT (destination = 'phone' AND claimed_until IS NOT NULL AND claimed_until > $3)"
        " RETURNING 1) SELECT count(*) FROM c",
        alert_id,
        status,
        now,
        timeout=timeout_s,
    )
    return stopped is not None, int(cancelled)
