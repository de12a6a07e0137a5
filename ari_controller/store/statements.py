"""How a record is applied to Postgres: its SQL statements, and running them on a connection.

The one place that maps a call record (`calls/records.py`) to SQL. Every statement is
idempotent (a record applied twice, or an older record after newer ones, changes nothing), so
the writer may retry and replay freely. Pure except `apply_record`/`apply_records`, which
take the connection to use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ari_controller.calls.records import (
    AlertEscalated,
    AlertOpened,
    AlertRouted,
    AlertStatusChanged,
    CallEnded,
    CallScreened,
    CallStarted,
    LegAnswered,
    LegEnded,
    LegPlaced,
    NotificationQueued,
    Record,
    TimelineEvent,
    VoicemailStored,
)

Statement = tuple[str, tuple[Any, ...]]
"""One SQL statement and its arguments."""


def statements(record: Record) -> list[Statement]:
    """The statements that apply `record`, in order; pure (no I/O), so they can be grouped.

    Every statement is written so that applying the same record again, or an older record
    after newer ones (a replayed spool), leaves the database as it was. A record of several
    statements must be applied atomically (`apply_record` and the batches do so).
    """
    match record:
        case AlertOpened():
            return [
                (
                    "INSERT INTO alerts (id, number_did, number_name, route, caller_id,"
                    " created_at, caller_key) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        record.alert_id,
                        record.number_did,
                        record.number_name,
                        record.route,
                        record.caller_id,
                        record.created_at,
                        record.caller_key,
                    ),
                )
            ]
        case AlertRouted():
            return [
                (
                    "UPDATE alerts SET route = $2, policy_id = coalesce($3, policy_id)"
                    " WHERE id = $1 AND route IS DISTINCT FROM $2",
                    (record.alert_id, record.route, record.policy_id),
                )
            ]
        case CallStarted():
            return [
                (
                    "INSERT INTO calls (id, alert_id, caller_channel_id, did, caller_id,"
                    " started_at, answered_at, app) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        record.call_id,
                        record.alert_id,
                        record.caller_channel_id,
                        record.did,
                        record.caller_id,
                        record.started_at,
                        record.answered_at,
                        record.app,
                    ),
                )
            ]
        case CallScreened():
            return [
                (
                    "INSERT INTO screened_calls (id, caller_channel_id, did, number_name,"
                    " caller_id, caller_key, verdict, rule, started_at, alert_id, detail)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)"
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        record.screened_id,
                        record.caller_channel_id,
                        record.did,
                        record.number_name,
                        record.caller_id,
                        record.caller_key,
                        record.verdict,
                        record.rule,
                        record.started_at,
                        record.alert_id,
                        json.dumps(dict(record.detail), default=str),
                    ),
                )
            ]
        case TimelineEvent():
            return [
                (
                    "INSERT INTO call_events (call_id, seq, at, kind, data)"
                    " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (call_id, seq) DO NOTHING",
                    (
                        record.call_id,
                        record.seq,
                        record.at,
                        record.kind,
                        json.dumps(dict(record.data), default=str),
                    ),
                )
            ]
        case LegPlaced():
            return [
                (
                    "INSERT INTO call_legs (id, call_id, user_id, contact, mode, attempt,"
                    " placed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                    (
                        record.leg_id,
                        record.call_id,
                        record.user_id,
                        record.contact,
                        record.mode,
                        record.attempt,
                        record.placed_at,
                    ),
                )
            ]
        case LegAnswered():
            return [
                (
                    "UPDATE call_legs SET answered_at = $2 WHERE id = $1 AND answered_at IS NULL",
                    (record.leg_id, record.answered_at),
                )
            ]
        case LegEnded():
            # A leg ends once: the first end recorded wins.
            return [
                (
                    "UPDATE call_legs SET ended_at = $2, outcome = $3, hangup_cause = $4,"
                    " answered_at = COALESCE(answered_at, $5)"
                    " WHERE id = $1 AND ended_at IS NULL",
                    (
                        record.leg_id,
                        record.ended_at,
                        record.outcome.value,
                        record.hangup_cause,
                        record.answered_at,
                    ),
                )
            ]
        case AlertStatusChanged(status="acknowledged"):
            return [
                (
                    "UPDATE alerts SET status = 'acknowledged', acknowledged_at = $2,"
                    " acknowledged_by = $3"
                    " WHERE id = $1 AND status = 'open'",
                    (record.alert_id, record.at, record.by_user_id),
                )
            ]
        case AlertStatusChanged():
            return [
                (
                    "UPDATE alerts SET status = 'resolved', resolved_at = $2, resolved_by = $3"
                    " WHERE id = $1 AND status <> 'resolved'",
                    (record.alert_id, record.at, record.by_user_id),
                )
            ]
        case AlertEscalated():
            return [
                (
                    "UPDATE alerts SET escalation_count = $2, last_escalated_at = $3"
                    " WHERE id = $1 AND escalation_count < $2",
                    (record.alert_id, record.escalation, record.at),
                )
            ]
        case VoicemailStored():
            return [
                (
                    "INSERT INTO voicemails (id, call_id, alert_id, recording_name, duration_s,"
                    " format, audio, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        record.voicemail_id,
                        record.call_id,
                        record.alert_id,
                        record.recording_name,
                        record.duration_s,
                        record.format,
                        record.audio,
                        record.created_at,
                    ),
                ),
                (
                    "UPDATE alerts SET voicemail_id = $2 WHERE id = $1 AND voicemail_id IS NULL",
                    (record.alert_id, record.voicemail_id),
                ),
            ]
        case CallEnded():
            return [
                (
                    "UPDATE calls SET ended_at = $2, outcome = $3"
                    " WHERE id = $1 AND ended_at IS NULL",
                    (record.call_id, record.ended_at, record.outcome),
                ),
                (
                    "UPDATE alerts SET ended_reason = $2 WHERE id = $1 AND ended_reason IS NULL",
                    (record.alert_id, record.outcome),
                ),
            ]
        case NotificationQueued():
            return [
                (
                    "INSERT INTO notification_outbox (notification_id, alert_id, kind, payload,"
                    " created_at) VALUES ($1, $2, $3, $4::jsonb, $5)"
                    " ON CONFLICT (notification_id) DO NOTHING",
                    (
                        record.notification_id,
                        record.alert_id,
                        record.kind,
                        json.dumps(dict(record.payload), default=str),
                        record.created_at,
                    ),
                )
            ]
        case _:
            raise TypeError(f"not a store record: {record!r}")


def group_statements(records: Iterable[Record]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The records' statements in order, consecutive runs of the same SQL merged into one
    (sql, [args, ...]) each: one `executemany`, one round trip, per run.

    Only neighbours are merged, so every statement still runs after all those before it
    (a call's row before its legs and events, an UPDATE after the INSERT it depends on).
    """
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    for record in records:
        for sql, args in statements(record):
            if runs and runs[-1][0] == sql:
                runs[-1][1].append(args)
            else:
                runs.append((sql, [args]))
    return runs


async def apply_record(conn: Any, record: Record, *, timeout_s: float = 10.0) -> bool:
    """Apply one record; True if it changed the database, False if it was already applied."""
    (sql, args), *more = statements(record)
    if not more:
        status = await conn.execute(sql, *args, timeout=timeout_s)
    else:
        async with conn.transaction():
            status = await conn.execute(sql, *args, timeout=timeout_s)
            for sql, args in more:
                await conn.execute(sql, *args, timeout=timeout_s)
    # asyncpg returns the command tag, e.g. "INSERT 0 1" or "UPDATE 0".
    return not str(status).endswith(" 0")


async def apply_records(conn: Any, records: Iterable[Record], *, timeout_s: float = 10.0) -> None:
    """Apply records in order, each run of the same statement as one `executemany`.

    Call it inside a transaction: a run is applied as a whole or not at all, and a record of
    several statements is atomic only within the caller's transaction.
    """
    for sql, rows in group_statements(records):
        if len(rows) == 1:
            await conn.execute(sql, *rows[0], timeout=timeout_s)
        else:
            await conn.executemany(sql, rows, timeout=timeout_s)
