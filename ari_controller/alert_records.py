"""A call's facts as store records: the alert, its call, legs, timeline, voicemail, outbox.

Implements the call flow's `StoreSink`: every method builds records and hands them to the
store writer, which queues them (it never blocks and never raises into a call).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, cast

import structlog

from ari_controller.calls.journal import AlertSummary, LegRecord, TimelineEntry
from ari_controller.store import records as r

log = structlog.get_logger(__name__)

Submit = Callable[[r.Record], None]


class AlertRecords:
    def __init__(self, submit: Submit) -> None:
        self._submit = submit

    def _put(self, record_factory: Callable[[], r.Record]) -> None:
        # A record that cannot even be built is a bug worth a loud log, never a dropped call.
        try:
            record = record_factory()
        except (ValueError, TypeError) as exc:
            log.error("record_rejected", error=str(exc))
            return
        self._submit(record)

    def _notify(self, alert: AlertSummary, kind: str, at: dt.datetime, **extra: Any) -> None:
        payload = {
            "alert_id": alert.alert_id,
            "number": alert.did,
            "number_name": alert.number_name,
            "route": alert.route,
            "caller_id": alert.caller_id,
            "status": alert.status,
            "accepted_by": alert.accepted_by,
            **extra,
        }
        self._put(
            lambda: r.NotificationQueued(uuid.uuid4(), uuid.UUID(alert.alert_id), kind, payload, at)
        )

    def alert_opened(self, alert: AlertSummary) -> None:
        alert_id, call_id = uuid.UUID(alert.alert_id), uuid.UUID(alert.call_id)
        self._put(
            lambda: r.AlertOpened(
                alert_id,
                alert.did,
                alert.number_name,
                alert.route,
                alert.caller_id,
                alert.opened_at,
            )
        )
        self._put(
            lambda: r.CallStarted(
                call_id,
                alert_id,
                alert.caller_channel,
                alert.did,
                alert.caller_id,
                alert.opened_at,
                alert.opened_at,
            )
        )
        self._notify(alert, "alert_opened", alert.opened_at)

    def timeline(self, call_id: str, entry: TimelineEntry) -> None:
        self._put(
            lambda: r.TimelineEvent(uuid.UUID(call_id), entry.seq, entry.at, entry.kind, entry.data)
        )

    def leg_placed(self, call_id: str, leg: LegRecord) -> None:
        mode: r.LegMode = "simultaneous" if leg.mode == "simultaneous" else "sequential"
        self._put(
            lambda: r.LegPlaced(
                leg.leg_id,
                uuid.UUID(call_id),
                leg.user_id,
                leg.contact,
                mode,
                leg.order,
                leg.placed_at,
            )
        )

    def leg_ended(self, call_id: str, leg: LegRecord) -> None:
        assert leg.outcome is not None and leg.ended_at is not None
        outcome = leg.outcome
        ended_at = leg.ended_at
        self._put(
            lambda: r.LegEnded(
                leg.leg_id,
                ended_at,
                outcome,
                leg.hangup_cause,
                leg.answered_at,
            )
        )

    def route_chosen(self, alert: AlertSummary) -> None:
        if alert.route is not None:
            route = alert.route
            self._put(lambda: r.AlertRouted(uuid.UUID(alert.alert_id), route))

    def alert_status(self, alert: AlertSummary, at: dt.datetime) -> None:
        if alert.status not in ("accepted", "resolved"):
            return
        status = cast(r.AlertStatus, alert.status)
        self._put(
            lambda: r.AlertStatusChanged(
                uuid.UUID(alert.alert_id),
                status,
                at,
                alert.accepted_by,
            )
        )
        self._notify(alert, f"alert_{status}", at)

    def alert_escalated(self, alert: AlertSummary, at: dt.datetime, reason: str) -> None:
        count = alert.escalations
        self._put(lambda: r.AlertEscalated(uuid.UUID(alert.alert_id), count, at))
        self._notify(alert, "alert_escalated", at, reason=reason, escalation=count)

    def voicemail(
        self,
        alert: AlertSummary,
        name: str,
        duration_s: float | None,
        audio: bytes | None,
        at: dt.datetime,
    ) -> None:
        self._put(
            lambda: r.VoicemailStored(
                uuid.uuid4(),
                uuid.UUID(alert.call_id),
                uuid.UUID(alert.alert_id),
                name,
                duration_s,
                "wav",
                audio,
                at,
            )
        )

    def call_ended(self, alert: AlertSummary, at: dt.datetime) -> None:
        reason = alert.ended_reason or "ended"
        self._put(
            lambda: r.CallEnded(uuid.UUID(alert.call_id), uuid.UUID(alert.alert_id), at, reason)
        )
