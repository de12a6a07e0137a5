"""A call's timeline: every step, in order, kept in memory and handed to the store.

The same entries are the audit record in Postgres and what the demo prints. Handing them to
the store never blocks the call: the sink is synchronous and queues.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ari_controller.calls.outcomes import LegOutcome

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
    status: str = "open"
    accepted_by: str | None = None
    ended_reason: str | None = None
    voicemail_name: str | None = None
    escalations: int = 0


class StoreSink(Protocol):
    """Where a call's facts go; implementations must not block and must not raise."""

    def alert_opened(self, alert: AlertSummary) -> None: ...
    def timeline(self, call_id: str, entry: TimelineEntry) -> None: ...
    def leg_placed(self, call_id: str, leg: LegRecord) -> None: ...
    def leg_ended(self, call_id: str, leg: LegRecord) -> None: ...
    def route_chosen(self, alert: AlertSummary) -> None: ...
    def alert_status(self, alert: AlertSummary, at: dt.datetime) -> None: ...
    def alert_escalated(self, alert: AlertSummary, at: dt.datetime, reason: str) -> None: ...
    def voicemail(
        self,
        alert: AlertSummary,
        name: str,
        duration_s: float | None,
        audio: bytes | None,
        at: dt.datetime,
    ) -> None: ...
    def call_ended(self, alert: AlertSummary, at: dt.datetime) -> None: ...


@dataclass
class CallJournal:
    alert: AlertSummary
    sink: StoreSink
    clock: Clock = utc_now
    entries: list[TimelineEntry] = field(default_factory=list)
    legs: list[LegRecord] = field(default_factory=list)

    def open(self) -> None:
        self.sink.alert_opened(self.alert)
        self.note("call_started", caller_id=self.alert.caller_id, did=self.alert.did)

    def note(self, kind: str, **data: Any) -> TimelineEntry:
        entry = TimelineEntry(len(self.entries) + 1, self.clock(), kind, data)
        self.entries.append(entry)
        self.sink.timeline(self.alert.call_id, entry)
        return entry

    def route_chosen(self, digit: str, label: str, how: str) -> None:
        self.alert.route = label
        self.note("route_chosen", digit=digit, route=label, how=how)
        self.sink.route_chosen(self.alert)

    def leg_placed(self, leg: LegRecord) -> None:
        self.legs.append(leg)
        self.sink.leg_placed(self.alert.call_id, leg)
        self.note(
            "leg_placed",
            leg=leg.leg_id,
            user=leg.user_id,
            contact=leg.contact,
            order=leg.order,
            mode=leg.mode,
        )

    def leg_answered(self, leg: LegRecord) -> None:
        leg.answered_at = self.clock()
        self.note("leg_answered", leg=leg.leg_id, user=leg.user_id)

    def leg_ended(self, leg: LegRecord, outcome: LegOutcome, cause: int | None) -> None:
        if leg.outcome is not None:
            return  # a leg ends once; later hang-up events add nothing
        leg.ended_at = self.clock()
        leg.outcome = outcome
        leg.hangup_cause = cause
        self.sink.leg_ended(self.alert.call_id, leg)
        self.note(
            "leg_ended",
            leg=leg.leg_id,
            user=leg.user_id,
            contact=leg.contact,
            outcome=outcome.value,
            cause=cause,
            ring_s=round(((leg.answered_at or leg.ended_at) - leg.placed_at).total_seconds(), 3),
        )

    def set_status(self, status: str, accepted_by: str | None = None) -> None:
        if self.alert.status == status:
            return
        self.alert.status = status
        if accepted_by is not None:
            self.alert.accepted_by = accepted_by
        now = self.clock()
        self.note("alert_" + status, by=accepted_by)
        self.sink.alert_status(self.alert, now)

    def escalate(self, reason: str) -> None:
        self.alert.escalations += 1
        now = self.clock()
        self.note("alert_escalated", reason=reason)
        self.sink.alert_escalated(self.alert, now, reason)

    def voicemail(self, name: str, duration_s: float | None, audio: bytes | None) -> None:
        self.alert.voicemail_name = name
        now = self.clock()
        self.note(
            "voicemail_stored",
            recording=name,
            duration_s=duration_s,
            bytes=len(audio) if audio else 0,
        )
        self.sink.voicemail(self.alert, name, duration_s, audio, now)

    def end(self, reason: str) -> None:
        if self.alert.ended_reason is not None:
            return
        self.alert.ended_reason = reason
        now = self.clock()
        self.note("call_ended", reason=reason)
        self.sink.call_ended(self.alert, now)
