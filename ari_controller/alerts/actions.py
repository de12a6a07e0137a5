"""People acting on an alert: acknowledge, resolve, escalate now.

Each action is one transaction that locks the alert row (`SELECT ... FOR UPDATE`), so two
people acting at once are put in order: the first changes the alert, the second sees what the
first did. An alert never goes backwards (open -> acknowledged -> resolved, or open ->
resolved); an action that is already done is a no-op that says so, one that can no longer
apply is refused with its reason.

A change writes, in the same transaction: the alert row, an `alert_log` entry (the alert's
timeline outside its call) and the matching event in `notification_outbox`, which the alert
engine expands into escalation steps and deliveries (webhooks, chat). Acknowledging or
resolving also stops the alert's escalation at once and cancels the messages still waiting
to notify people of it; the engine does the same when it reads the event, this only makes
sure nothing more goes out in between.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from ari_controller.alerts.log import log_alert, stop_escalation

Action = Literal["acknowledge", "resolve", "escalate"]


class Outcome(enum.StrEnum):
    CHANGED = "changed"
    ALREADY = "already"  # asked again: nothing to do, and that is fine (idempotent)
    REFUSED = "refused"  # cannot apply to the alert as it is (e.g. acknowledge a resolved one)


class UnknownAlertError(LookupError):
    """No alert has this id."""

    def __init__(self, alert_id: uuid.UUID) -> None:
        super().__init__(f"no alert {alert_id}")
        self.alert_id = alert_id


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did to one alert."""

    alert_id: uuid.UUID
    action: Action
    outcome: Outcome
    status: str  # the alert's status afterwards
    reason: str | None = None  # why nothing changed
    escalation_count: int = 0
    escalation_stopped: bool = False
    deliveries_cancelled: int = 0

    @property
    def changed(self) -> bool:
        return self.outcome is Outcome.CHANGED

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": str(self.alert_id),
            "action": self.action,
            "outcome": self.outcome.value,
            "changed": self.changed,
            "status": self.status,
            "reason": self.reason,
            "escalation_count": self.escalation_count,
            "escalation_stopped": self.escalation_stopped,
            "deliveries_cancelled": self.deliveries_cancelled,
        }


_LOCK_ALERT = (
    "SELECT id, number_did, number_name, route, caller_id, status, policy_id, acknowledged_by,"
    " resolved_by, ended_reason, escalation_count FROM alerts WHERE id = $1 FOR UPDATE"
)


async def acknowledge(
    conn: Any,
    alert_id: uuid.UUID | str,
    by: str,
    now: dt.datetime,
    *,
    via: str = "api",
    timeout_s: float = 10.0,
) -> ActionResult:
    """open -> acknowledged; the escalation stops and pending personal messages are cancelled.
    Already acknowledged: nothing to do. Resolved: refused (never backwards)."""
    alert_id = _alert_uuid(alert_id)
    async with conn.transaction():
        alert = await _lock(conn, alert_id, timeout_s)
        status = alert["status"]
        if status == "acknowledged":
            return _unchanged(alert, "acknowledge", Outcome.ALREADY, "already acknowledged")
        if status == "resolved":
            return _unchanged(alert, "acknowledge", Outcome.REFUSED, "the alert is resolved")
        alert, stopped, cancelled = await _close(
            conn, alert, "acknowledged", by, via, now, timeout_s
        )
    return _changed(alert, "acknowledge", stopped, cancelled)


async def resolve(
    conn: Any,
    alert_id: uuid.UUID | str,
    by: str,
    now: dt.datetime,
    *,
    via: str = "api",
    timeout_s: float = 10.0,
) -> ActionResult:
    """open or acknowledged -> resolved; the escalation stops and pending personal messages
    are cancelled. Already resolved: nothing to do."""
    alert_id = _alert_uuid(alert_id)
    async with conn.transaction():
        alert = await _lock(conn, alert_id, timeout_s)
        if alert["status"] == "resolved":
            return _unchanged(alert, "resolve", Outcome.ALREADY, "already resolved")
        alert, stopped, cancelled = await _close(conn, alert, "resolved", by, via, now, timeout_s)
    return _changed(alert, "resolve", stopped, cancelled)


async def escalate_now(
    conn: Any,
    alert_id: uuid.UUID | str,
    by: str,
    now: dt.datetime,
    *,
    via: str = "api",
    timeout_s: float = 10.0,
) -> ActionResult:
    """Escalate an open alert to its policy again, now (an `alert.escalated` event with reason
    "manual"). An acknowledged alert has someone on it and a resolved one is over: refused."""
    alert_id = _alert_uuid(alert_id)
    async with conn.transaction():
        alert = await _lock(conn, alert_id, timeout_s)
        status = alert["status"]
        if status != "open":
            why = "the alert is resolved" if status == "resolved" else "the alert is acknowledged"
            return _unchanged(alert, "escalate", Outcome.REFUSED, why)
        count = await conn.fetchval(
            "UPDATE alerts SET escalation_count = escalation_count + 1, last_escalated_at = $2"
            " WHERE id = $1 RETURNING escalation_count",
            alert_id,
            now,
            timeout=timeout_s,
        )
        alert = {**alert, "escalation_count": count}
        extra = {
            "reason": "manual",
            "escalation": count,
            "policy_id": alert["policy_id"],
            "hold_until": None,
        }
        await _record(conn, alert, "escalated", by, via, now, timeout_s, extra)
    return _changed(alert, "escalate", False, 0)


def _alert_uuid(alert_id: uuid.UUID | str) -> uuid.UUID:
    return alert_id if isinstance(alert_id, uuid.UUID) else uuid.UUID(str(alert_id))


async def _lock(conn: Any, alert_id: uuid.UUID, timeout_s: float) -> dict[str, Any]:
    row = await conn.fetchrow(_LOCK_ALERT, alert_id, timeout=timeout_s)
    if row is None:
        raise UnknownAlertError(alert_id)
    return dict(row)


async def _close(
    conn: Any,
    alert: dict[str, Any],
    status: Literal["acknowledged", "resolved"],
    by: str,
    via: str,
    now: dt.datetime,
    timeout_s: float,
) -> tuple[dict[str, Any], bool, int]:
    """Someone has the alert (or it is over): its new status, its escalation stopped, its
    unsent personal messages cancelled, the change recorded. The locked alert as it is now,
    whether an escalation was stopped, how many messages were cancelled."""
    # The column names come from the literal status, never from the caller's text.
    await conn.execute(
        f"UPDATE alerts SET status = $2, {status}_by = $3, {status}_at = $4 WHERE id = $1",
        alert["id"],
        status,
        by,
        now,
        timeout=timeout_s,
    )
    alert = {**alert, "status": status, f"{status}_by": by}
    stopped, cancelled = await stop_escalation(conn, alert["id"], status, now, timeout_s=timeout_s)
    await _record(conn, alert, status, by, via, now, timeout_s)
    return alert, stopped, cancelled


async def _record(
    conn: Any,
    alert: dict[str, Any],
    change: str,
    by: str,
    via: str,
    now: dt.datetime,
    timeout_s: float,
    extra: dict[str, Any] | None = None,
) -> None:
    """The alert_log entry (`alert_<change>`) and the outbox event (`alert.<change>`) of one
    change."""
    alert_id = alert["id"]
    extra = extra or {}
    await log_alert(
        conn, alert_id, now, f"alert_{change}", {"by": by, "via": via, **extra}, timeout_s=timeout_s
    )
    payload = {
        "alert_id": str(alert_id),
        "number": alert["number_did"],
        "number_name": alert["number_name"],
        "route": alert["route"],
        "caller_id": alert["caller_id"],
        "status": alert["status"],
        "policy_id": alert["policy_id"],
        "acknowledged_by": alert["acknowledged_by"],
        "ended_reason": alert["ended_reason"],
        "by": by,
        "via": via,
        **extra,
    }
    await conn.execute(
        "INSERT INTO notification_outbox (notification_id, alert_id, kind, payload, created_at)"
        " VALUES ($1, $2, $3, $4::jsonb, $5)",
        uuid.uuid4(),
        alert_id,
        f"alert.{change}",
        json.dumps(payload),
        now,
        timeout=timeout_s,
    )


def _unchanged(alert: dict[str, Any], action: Action, outcome: Outcome, why: str) -> ActionResult:
    return ActionResult(
        alert["id"], action, outcome, alert["status"], why, alert["escalation_count"]
    )


def _changed(alert: dict[str, Any], action: Action, stopped: bool, cancelled: int) -> ActionResult:
    return ActionResult(
        alert["id"],
        action,
        Outcome.CHANGED,
        alert["status"],
        None,
        alert["escalation_count"],
        stopped,
        cancelled,
    )


def _count(command_status: str) -> int:
    """The row count of an asyncpg command status ("UPDATE 3" -> 3)."""
    try:
        return int(str(command_status).rsplit(" ", 1)[-1])
    except ValueError:
        return 0
