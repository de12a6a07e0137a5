"""Reading back the calls an earlier run of the controller started and did not end.

What a restarted controller needs to pick each call up: the alert as it stands, the timeline
entries that say how far the call got, and every leg with its outcome so far.
"""

from __future__ import annotations

import json
from typing import Any

from ari_controller.calls.journal import LegRecord
from ari_controller.calls.outcomes import LegOutcome
from ari_controller.calls.resume import Unfinished

# The timeline entries that say where a call was (see `Unfinished.step`).
STEP_KINDS = (
    "support_hours",
    "menu_gave_up",
    "route_chosen",
    "plan",
    "bridged",
    "voicemail_started",
    "voicemail_stored",
    "call_ended",
)


def _object(value: Any) -> dict[str, Any]:
    data = json.loads(value) if isinstance(value, str) else value
    return data if isinstance(data, dict) else {}


async def unfinished_calls(conn: Any, app: str) -> list[Unfinished]:
    """Every call of the Stasis application `app` with no end on record, oldest first."""
    calls = await conn.fetch(
        "SELECT c.id, c.alert_id, c.caller_channel_id, c.did, c.caller_id, c.started_at,"
        " a.number_name, a.status, a.acknowledged_by, a.escalation_count, a.route, a.policy_id"
        " FROM calls c JOIN alerts a ON a.id = c.alert_id"
        " WHERE c.ended_at IS NULL AND c.app = $1 ORDER BY c.started_at",
        app,
    )
    if not calls:
        return []
    call_ids = [row["id"] for row in calls]
    last_seq = {
        row["call_id"]: row["last"]
        for row in await conn.fetch(
            "SELECT call_id, max(seq) AS last FROM call_events"
            " WHERE call_id = ANY($1::uuid[]) GROUP BY call_id",
            call_ids,
        )
    }
    steps: dict[Any, list[tuple[str, dict[str, Any]]]] = {}
    for row in await conn.fetch(
        "SELECT call_id, kind, data FROM call_events"
        " WHERE call_id = ANY($1::uuid[]) AND kind = ANY($2::text[]) ORDER BY call_id, seq",
        call_ids,
        list(STEP_KINDS),
    ):
        steps.setdefault(row["call_id"], []).append((row["kind"], _object(row["data"])))
    names = {
        str(entry.get("user")): str(entry.get("name") or entry.get("user"))
        for entries in steps.values()
        for kind, data in entries
        if kind == "plan"
        for entry in data.get("responders", ())
        if isinstance(entry, dict)
    }
    legs: dict[Any, list[LegRecord]] = {}
    for row in await conn.fetch(
        "SELECT id, call_id, user_id, contact, mode, attempt, placed_at, answered_at, ended_at,"
        " outcome, hangup_cause FROM call_legs WHERE call_id = ANY($1::uuid[])"
        " ORDER BY call_id, attempt",
        call_ids,
    ):
        legs.setdefault(row["call_id"], []).append(
            LegRecord(
                row["id"],
                row["user_id"],
                names.get(row["user_id"], row["user_id"]),
                row["contact"],
                row["attempt"],
                row["mode"],
                row["placed_at"],
                answered_at=row["answered_at"],
                ended_at=row["ended_at"],
                outcome=LegOutcome(row["outcome"]) if row["outcome"] else None,
                hangup_cause=row["hangup_cause"],
            )
        )
    return [
        Unfinished(
            call_id=str(row["id"]),
            alert_id=str(row["alert_id"]),
            caller_channel=row["caller_channel_id"],
            did=row["did"],
            number_name=row["number_name"],
            caller_id=row["caller_id"] or "",
            opened_at=row["started_at"],
            status=row["status"],
            acknowledged_by=row["acknowledged_by"],
            escalations=row["escalation_count"],
            route=row["route"],
            policy_id=row["policy_id"],
            timeline=tuple(steps.get(row["id"], ())),
            last_seq=last_seq.get(row["id"]) or 0,
            legs=tuple(legs.get(row["id"], ())),
        )
        for row in calls
    ]
