"""A call's timeline and facts: every step, in order, kept in memory and handed to the store.

The same entries are the audit record in Postgres and what the demo prints. Every fact goes
to the store as typed records (`records.py`) through one callable, `emit`, which must not
block and must not raise (the store writer's `submit` queues). This module is the one place
that says which records a call fact becomes; `store/statements.py` says what SQL each is.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import structlog

from ari_controller.calls import records as r
from ari_controller.calls.outcomes import LegOutcome
from ari_controller.speech.utterances import UtteranceResult

log = structlog.get_logger(__name__)

Clock = Callable[[], dt.datetime]
Emit = Callable[[r.Record], None]
"""Where a call's records go, in order: queues them, never blocks, never raises."""

# The alert statuses the store records (an alert is "open" from its AlertOpened on).
_STORED_STATUSES: dict[str, r.AlertStatus] = {
    "acknowledged": "acknowledged",
    "resolved": "resolved",
}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Party: TypeAlias = Literal["caller", "responder"]
# What became of one utterance (see speech.utterances).
HeardResult: TypeAlias = UtteranceResult


@dataclass(frozen=True, slots=True)
class SpeechHeard:
    """One utterance listened to on this call and what became of it: the `speech_heard`
    timeline entry and the speech metrics are both made from this value."""

    party: Party
    leg: str | None  # the responder's leg; None for the caller
    result: HeardResult
    phrase: str | None
    confidence: float
    detail: str
    decode_ms: int

    @property
    def decoded(self) -> bool:
        """A decoder ran on it (so its decoding time means something)."""
        return self.result not in ("silence", "unreadable")

    def timeline_data(self) -> dict[str, Any]:
        where: dict[str, Any] = {"party": self.party}
        if self.leg is not None:
            where["leg"] = self.leg
        return {
            **where,
            "result": self.result,
            "phrase": self.phrase,
            "confidence": self.confidence,
            "detail": self.detail,
            "decode_ms": self.decode_ms,
        }


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    seq: int
    at: dt.datetime
    kind: str
    data: dict[str, Any]


@dataclass(slots=True)
class LegRecord:
    leg_id: str
    user_id: str
    user_name: str
    contact: str
    order: int
    mode: str
    placed_at: dt.datetime
    answered_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    outcome: LegOutcome | None = None
    hangup_cause: int | None = None


@dataclass(slots=True)
class AlertSummary:
    alert_id: str
    call_id: str
    did: str
    number_name: str
    caller_id: str
    caller_channel: str
    opened_at: dt.datetime
    route: str | None = None
    policy_id: str | None = None  # the escalation policy an escalation notifies
    status: str = "open"
    acknowledged_by: str | None = None
    ended_reason: str | None = None
    voicemail_name: str | None = None
    escalations: int = 0
    app: str | None = None  # the Stasis application running the call
    # The caller as screening knows them (E.164, "withheld", or the digits as they came).
    caller_key: str | None = None
    # This call joined an alert the same caller opened earlier (a repeat call): the alert
    # is not opened again, nor announced again.
    repeat: bool = False


@dataclass
class CallJournal:
    """One call's facts: its timeline (`entries`, numbered from 1), its responder legs, and the
    alert summary; and the store records they become, handed to `emit` as each fact happens.

    Owns: the order and numbering of the timeline, the alert's status/route/escalation count
    as the store sees them, the utterances heard (`heard`, typed, for the metrics), and the one
    mapping from a call fact to store records (alert, call, legs, timeline events, voicemail,
    notification outbox). Must not touch: Asterisk,
    the database or the disk (it only emits records), any clock but `clock`; and it never
    raises into the call or waits: a record that cannot be built is logged and dropped.
    """

    alert: AlertSummary
    emit: Emit
    clock: Clock = utc_now
    entries: list[TimelineEntry] = field(default_factory=list)
    legs: list[LegRecord] = field(default_factory=list)
    heard: list[SpeechHeard] = field(default_factory=list)
    # How many timeline entries an earlier run of the controller already wrote for this call
    # (a call picked up after a restart goes on numbering after them).
    earlier_entries: int = 0
    # Screening's verdict for the call, and whether its counts came from Postgres (for the
    # metrics); None for a call picked up after a restart (screened by the earlier run).
    screening: str | None = None
    screening_shared: bool | None = None
    flood_active: bool | None = None  # the number's flood state as this call saw it

    def open(self, repeat_of: uuid.UUID | None = None) -> None:
        """The call begins: a new alert, or (`repeat_of`) another call on the caller's open
        alert, which keeps its status and its escalation."""
        alert = self.alert
        if repeat_of is not None:
            alert.alert_id = str(repeat_of)
            alert.repeat = True
        else:
            self._emit(
                lambda: r.AlertOpened(
                    uuid.UUID(alert.alert_id),
                    alert.did,
                    alert.number_name,
                    alert.route,
                    alert.caller_id,
                    alert.opened_at,
                    alert.caller_key,
                )
            )
        self._emit(
            lambda: r.CallStarted(
                uuid.UUID(alert.call_id),
                uuid.UUID(alert.alert_id),
                alert.caller_channel,
                alert.did,
                alert.caller_id,
                alert.opened_at,
                alert.opened_at,
                alert.app,
            )
        )
        if alert.repeat:
            self.note("call_started", caller_id=alert.caller_id, did=alert.did, repeat=True)
        else:
            self._notify("alert.created", alert.opened_at)
            self.note("call_started", caller_id=alert.caller_id, did=alert.did)

    def screened(
        self,
        verdict: str,
        rule: str | None,
        detail: dict[str, Any],
        counted_on: uuid.UUID | None = None,
    ) -> None:
        """Screening ended the call before any alert: kept apart (screened_calls), paging
        nobody; `counted_on`: the caller's open alert the call counts on."""
        alert = self.alert
        alert.ended_reason = "screened"
        self._emit(
            lambda: r.CallScreened(
                uuid.UUID(alert.call_id),
                alert.caller_channel,
                alert.did,
                alert.number_name,
                alert.caller_id,
                alert.caller_key or "",
                verdict,
                rule,
                alert.opened_at,
                counted_on,
                detail,
            )
        )

    def note(self, kind: str, **data: Any) -> TimelineEntry:
        entry = TimelineEntry(
            self.earlier_entries + len(self.entries) + 1, self.clock(), kind, data
        )
        self.entries.append(entry)
        call_id = self.alert.call_id
        self._emit(lambda: r.TimelineEvent(uuid.UUID(call_id), entry.seq, entry.at, kind, data))
        return entry

    def route_chosen(self, digit: str, label: str, how: str, policy_id: str) -> None:
        self.alert.route = label
        self.alert.policy_id = policy_id
        self.note("route_chosen", digit=digit, route=label, how=how)
        alert_id = self.alert.alert_id
        self._emit(lambda: r.AlertRouted(uuid.UUID(alert_id), label, policy_id))

    def speech_heard(self, heard: SpeechHeard) -> None:
        """An utterance listened to: on the timeline (`speech_heard`) and kept for the metrics."""
        self.heard.append(heard)
        self.note("speech_heard", **heard.timeline_data())

    def leg_placed(self, leg: LegRecord) -> None:
        self.legs.append(leg)
        mode: r.LegMode = "simultaneous" if leg.mode == "simultaneous" else "sequential"
        call_id = self.alert.call_id
        self._emit(
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
        self.note(
            "leg_placed",
            leg=leg.leg_id,
            user=leg.user_id,
            contact=leg.contact,
            order=leg.order,
            mode=leg.mode,
        )

    def leg_answered(self, leg: LegRecord) -> None:
        answered_at = leg.answered_at = self.clock()
        self._emit(lambda: r.LegAnswered(leg.leg_id, answered_at))
        self.note("leg_answered", leg=leg.leg_id, user=leg.user_id)

    def leg_ended(self, leg: LegRecord, outcome: LegOutcome, cause: int | None) -> None:
        if leg.outcome is not None:
            return  # a leg ends once; later hang-up events add nothing
        ended_at = self.clock()
        leg.ended_at = ended_at
        leg.outcome = outcome
        leg.hangup_cause = cause
        answered_at = leg.answered_at
        self._emit(lambda: r.LegEnded(leg.leg_id, ended_at, outcome, cause, answered_at))
        self.note(
            "leg_ended",
            leg=leg.leg_id,
            user=leg.user_id,
            contact=leg.contact,
            outcome=outcome.value,
            cause=cause,
            ring_s=round(((leg.answered_at or leg.ended_at) - leg.placed_at).total_seconds(), 3),
        )

    def set_status(self, status: str, acknowledged_by: str | None = None) -> None:
        if self.alert.status == status:
            return
        self.alert.status = status
        if acknowledged_by is not None:
            self.alert.acknowledged_by = acknowledged_by
        now = self.clock()
        self.note("alert_" + status, by=acknowledged_by)
        stored = _STORED_STATUSES.get(status)
        if stored is None:
            return
        alert_id, by = self.alert.alert_id, self.alert.acknowledged_by
        self._emit(lambda: r.AlertStatusChanged(uuid.UUID(alert_id), stored, now, by))
        self._notify(f"alert.{stored}", now)

    def escalate(
        self, reason: str, policy_id: str | None, hold_until: dt.datetime | None = None
    ) -> None:
        """The alert goes to `policy_id`'s people, rule by rule, until acknowledged (by the
        alert engine, after the call); `hold_until`: not before the number's hours begin."""
        self.alert.escalations += 1
        now = self.clock()
        held = hold_until.isoformat() if hold_until is not None else None
        self.note("alert_escalated", reason=reason, policy=policy_id, hold_until=held)
        count, alert_id = self.alert.escalations, self.alert.alert_id
        self._emit(lambda: r.AlertEscalated(uuid.UUID(alert_id), count, now))
        self._notify(
            "alert.escalated",
            now,
            reason=reason,
            escalation=count,
            policy_id=policy_id,
            hold_until=held,
        )

    def voicemail(self, name: str, duration_s: float | None, audio: bytes | None) -> None:
        self.alert.voicemail_name = name
        now = self.clock()
        self.note(
            "voicemail_stored",
            recording=name,
            duration_s=duration_s,
            bytes=len(audio) if audio else 0,
        )
        call_id, alert_id = self.alert.call_id, self.alert.alert_id
        self._emit(
            lambda: r.VoicemailStored(
                uuid.uuid4(),
                uuid.UUID(call_id),
                uuid.UUID(alert_id),
                name,
                duration_s,
                "wav",
                audio,
                now,
            )
        )
        self._notify("voicemail.created", now, recording=name, duration_s=duration_s)

    def end(self, reason: str) -> None:
        if self.alert.ended_reason is not None:
            return
        self.alert.ended_reason = reason
        now = self.clock()
        self.note("call_ended", reason=reason)
        call_id, alert_id, outcome = self.alert.call_id, self.alert.alert_id, reason or "ended"
        self._emit(lambda: r.CallEnded(uuid.UUID(call_id), uuid.UUID(alert_id), now, outcome))

    # ---- the records ------------------------------------------------------------------------

    def _emit(self, build: Callable[[], r.Record]) -> None:
        # A record that cannot even be built is a bug worth a loud log, never a dropped call.
        try:
            record = build()
        except (ValueError, TypeError) as exc:
            log.error("record_rejected", error=str(exc))
            return
        self.emit(record)

    def _notify(self, kind: str, at: dt.datetime, **extra: Any) -> None:
        """Queue an alert change for webhooks and chat (the notification outbox)."""
        alert = self.alert
        payload = {
            "alert_id": alert.alert_id,
            "number": alert.did,
            "number_name": alert.number_name,
            "route": alert.route,
            "caller_id": alert.caller_id,
            "status": alert.status,
            "policy_id": alert.policy_id,
            "acknowledged_by": alert.acknowledged_by,
            "ended_reason": alert.ended_reason,
            **extra,
        }
        self._emit(
            lambda: r.NotificationQueued(uuid.uuid4(), uuid.UUID(alert.alert_id), kind, payload, at)
        )
