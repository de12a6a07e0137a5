"""The alert engine: what alert events and escalation timers turn into, in the database.

Two rounds, each in its own short transaction, run every `poll_interval_s` by any number of
daemons on one database (rows are claimed with FOR UPDATE SKIP LOCKED, so each thing is done
by exactly one of them, and a transaction that dies half-way is undone as a whole):

1. Alert events (the `notification_outbox` rows the calls and the API write in the same
   transaction as the change they announce) become deliveries to the number's configured
   destinations; `alert.escalated` starts (or restarts) the alert's escalation;
   `alert.acknowledged`/`alert.resolved` stop it and cancel messages not yet sent to people.
2. Escalations that are due notify their policy's next rule: one delivery per person and
   notification rule, each due after the rule's `after_minutes`; then the next rule is timed.

Deliveries are sent by alerts/delivery.py. The timers live in Postgres: a restart loses none
and fires none twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from ari_controller.alerts.escalation import step
from ari_controller.alerts.log import log_alert, stop_escalation
from ari_controller.alerts.snapshot import alert_snapshot
from ari_controller.config import Config
from ari_controller.oncall.plan import Directory

log = structlog.get_logger(__name__)

Clock = Callable[[], dt.datetime]

# Rows taken per round; the rest wait for the next round (a fraction of a second later).
EVENTS_PER_ROUND = 100
ESCALATIONS_PER_ROUND = 50
# One round's statements must not hang on a stalled database.
STATEMENT_TIMEOUT_S = 10.0


def _payload(event: str, at: dt.datetime, alert: dict[str, Any], **extra: Any) -> str:
    """The Standard Webhooks body every destination's message is made from."""
    return json.dumps(
        {"type": event, "timestamp": at.isoformat(), "data": {"alert": alert, **extra}},
        default=str,
    )


class AlertEngine:
    """Owns the expansion of alert events and the escalation timers. Does not send anything
    (alerts/delivery.py does) and never touches a call."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: Callable[[], Config],
        clock: Clock,
    ) -> None:
        self.pool = pool
        self.config = config  # the configuration in use now (a reload swaps it)
        self.clock = clock
        self._directory: tuple[Config, Directory] | None = None

    def directory(self) -> Directory:
        config = self.config()
        if self._directory is None or self._directory[0] is not config:
            self._directory = (config, Directory.build(config.users, config.schedules))
        return self._directory[1]

    async def run(self) -> None:
        """Every `poll_interval_s`: one round of events, one of escalations. A failing round
        (the database away) is logged and tried again; nothing is lost, it is all in rows."""
        while True:
            settings = self.config().alerts.engine
            try:
                now = self.clock()
                while await self.expand_events(now) == EVENTS_PER_ROUND:
                    pass
                while await self.escalate_due(now) == ESCALATIONS_PER_ROUND:
                    pass
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("alert_engine_round_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(settings.poll_interval_s)

    # ---- 1. alert events ----------------------------------------------------------------------

    async def expand_events(self, now: dt.datetime) -> int:
        """Turn waiting alert events into deliveries and escalation changes; how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, alert_id, kind, payload, created_at FROM notification_outbox"
                " WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                EVENTS_PER_ROUND,
                timeout=STATEMENT_TIMEOUT_S,
            )
            for row in rows:
                payload = row["payload"]
                extra = json.loads(payload) if isinstance(payload, str) else dict(payload or {})
                await self._expand(
                    conn, row["alert_id"], row["kind"], extra, row["created_at"], now
                )
            if rows:
                await conn.execute(
                    "UPDATE notification_outbox SET sent_at = $2, attempts = attempts + 1"
                    " WHERE id = ANY($1::bigint[])",
                    [row["id"] for row in rows],
                    now,
                )
            return len(rows)

    async def _expand(
        self,
        conn: asyncpg.Connection,
        alert_id: uuid.UUID,
        event: str,
        extra: dict[str, Any],
        at: dt.datetime,
        now: dt.datetime,
    ) -> None:
        config = self.config()
        did = extra.get("number")
        if did is None:  # events from an older daemon may not say
            did = await conn.fetchval("SELECT number_did FROM alerts WHERE id = $1", alert_id)
        number = config.number(str(did))
        targets = [
            action.destination
            for action in (number.alerts.actions if number is not None else [])
            if event in action.events
        ]
        # Most events go to no destination: the alert is read only for those that do.
        if targets:
            alert = await alert_snapshot(conn, alert_id, config.alerts.public_base_url)
            if alert is not None:
                details = {k: extra[k] for k in ("reason", "escalation", "by") if k in extra}
                payload = _payload(event, at, alert, **details)
                for destination in targets:
                    await self._deliver(conn, alert_id, event, destination, None, payload, now)
        if event == "alert.escalated":
            await self._start_escalation(conn, alert_id, extra, now)
        elif event in ("alert.acknowledged", "alert.resolved"):
            await self._stop_escalation(conn, alert_id, event, now)

    async def _deliver(
        self,
        conn: asyncpg.Connection,
        alert_id: uuid.UUID,
        event: str,
        destination: str,
        user_id: str | None,
        payload: str,
        due_at: dt.datetime,
    ) -> None:
        await conn.execute(
            "INSERT INTO deliveries (id, alert_id, event, destination, user_id, payload, due_at,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
            uuid.uuid4(),
            alert_id,
            event,
            destination,
            user_id,
            payload,
            due_at,
            self.clock(),
        )

    async def _start_escalation(
        self,
        conn: asyncpg.Connection,
        alert_id: uuid.UUID,
        extra: dict[str, Any],
        now: dt.datetime,
    ) -> None:
        alert = await conn.fetchrow("SELECT status, policy_id FROM alerts WHERE id = $1", alert_id)
        if alert is None:
            return
        if alert["status"] != "open":
            await log_alert(
                conn, alert_id, now, "escalation_not_started", {"status": alert["status"]}
            )
            return
        policy_id = extra.get("policy_id") or alert["policy_id"]
        policies = {p.id for p in self.config().escalation_policies}
        if policy_id not in policies:
            await log_alert(
                conn,
                alert_id,
                now,
                "escalation_not_started",
                {"policy": policy_id, "why": "no such escalation policy in the configuration"},
            )
            return
        hold_until = extra.get("hold_until")
        due = dt.datetime.fromisoformat(hold_until) if hold_until else now
        state = "held" if due > now else "active"
        reason = str(extra.get("reason") or "escalated")
        # A second escalation of the same alert (escalate now, another ending) starts over.
        await conn.execute(
            "INSERT INTO alert_escalations (alert_id, policy_id, reason, next_rule, round,"
            " due_at, state, created_at, updated_at) VALUES ($1, $2, $3, 0, 0, $4, $5, $6, $6)"
            " ON CONFLICT (alert_id) DO UPDATE SET policy_id = $2, reason = $3, next_rule = 0,"
            " round = 0, due_at = $4, state = $5, updated_at = $6",
            alert_id,
            policy_id,
            reason,
            due,
            state,
            now,
        )
        await log_alert(
            conn,
            alert_id,
            now,
            "escalation_started",
            {
                "policy": policy_id,
                "reason": reason,
                "due_at": due.isoformat(),
                "held": state == "held",
            },
        )

    async def _stop_escalation(
        self, conn: asyncpg.Connection, alert_id: uuid.UUID, event: str, now: dt.datetime
    ) -> None:
        status = event.removeprefix("alert.")
        stopped, cancelled = await stop_escalation(conn, alert_id, status, now)
        if stopped or cancelled:
            data = {"by_event": event, "cancelled_messages": cancelled}
            await log_alert(conn, alert_id, now, "escalation_stopped", data)

    # ---- 2. escalation timers ---------------------------------------------------------------

    async def escalate_due(self, now: dt.datetime) -> int:
        """Notify the next rule of every escalation that is due; how many steps were taken."""
        config = self.config()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT e.alert_id, e.policy_id, e.reason, e.next_rule, e.round, e.state,"
                " a.status FROM alert_escalations e JOIN alerts a ON a.id = e.alert_id"
                " WHERE e.state IN ('active', 'held') AND e.due_at <= $1"
                " ORDER BY e.due_at LIMIT $2 FOR UPDATE OF e SKIP LOCKED",
                now,
                ESCALATIONS_PER_ROUND,
                timeout=STATEMENT_TIMEOUT_S,
            )
            policies = {p.id: p for p in config.escalation_policies}
            for row in rows:
                alert_id = row["alert_id"]
                policy = policies.get(row["policy_id"])
                if row["status"] != "open" or policy is None:
                    why = "alert " + row["status"] if policy is not None else "policy removed"
                    await self._finish(conn, alert_id, "stopped", now, why)
                    continue
                rule = min(row["next_rule"], len(policy.rules) - 1)
                taken = step(
                    policy,
                    rule,
                    row["round"],
                    now,
                    self.directory(),
                    config.alerts.engine.default_escalation_delay_minutes,
                )
                alert = await alert_snapshot(conn, alert_id, config.alerts.public_base_url)
                if alert is None:
                    continue
                users = {u.id: u for u in config.users}
                for note in taken.notifications:
                    person = {
                        "id": note.user_id,
                        "name": note.user_name,
                        "mention": note.mention,
                    }
                    payload = _payload(
                        "alert.escalated",
                        now,
                        alert,
                        reason=row["reason"],
                        rule=rule,
                        user=person,
                    )
                    await self._deliver(
                        conn,
                        alert_id,
                        "alert.escalated",
                        note.destination,
                        note.user_id,
                        payload,
                        note.due_at,
                    )
                await log_alert(
                    conn,
                    alert_id,
                    now,
                    "escalation_rule_notified",
                    {
                        "policy": policy.id,
                        "rule": rule + 1,
                        "round": row["round"] + 1,
                        "people": list(taken.people),
                        "messages": len(taken.notifications),
                        "without_rules": [p for p in taken.people if not users[p].notify],
                    },
                )
                if taken.next_due is None:
                    await self._finish(conn, alert_id, "done", now, "every rule notified")
                    continue
                await conn.execute(
                    "UPDATE alert_escalations SET next_rule = $2, round = $3, due_at = $4,"
                    " state = 'active', updated_at = $5 WHERE alert_id = $1",
                    alert_id,
                    taken.next_rule,
                    taken.next_round,
                    taken.next_due,
                    now,
                )
            return len(rows)

    async def _finish(
        self, conn: asyncpg.Connection, alert_id: uuid.UUID, state: str, now: dt.datetime, why: str
    ) -> None:
        await conn.execute(
            "UPDATE alert_escalations SET state = $2, updated_at = $3 WHERE alert_id = $1",
            alert_id,
            state,
            now,
        )
        await log_alert(conn, alert_id, now, f"escalation_{state}", {"why": why})
