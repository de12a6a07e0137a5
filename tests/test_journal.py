"""The call journal: which store records each call fact becomes, and the metrics made from its
typed values. Pure: a fixed clock, records collected in a list."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from types import SimpleNamespace
from typing import Any

from ari_controller.calls import records as r
from ari_controller.calls.journal import AlertSummary, CallJournal, LegRecord, SpeechHeard
from ari_controller.calls.outcomes import LegOutcome
from ari_controller.daemon.metrics import Metrics

T0 = dt.datetime(2025, 3, 4, 10, 0, tzinfo=dt.UTC)


def journal() -> tuple[CallJournal, list[r.Record]]:
    ticks = itertools.count()
    emitted: list[r.Record] = []
    alert = AlertSummary(
        str(uuid.uuid4()), str(uuid.uuid4()), "+4930", "Ops", "+49170", "chan-1", T0
    )
    clock = lambda: T0 + dt.timedelta(seconds=next(ticks))  # noqa: E731
    return CallJournal(alert, emitted.append, clock), emitted


def kinds(records: list[r.Record]) -> list[str]:
    return [
        f"TimelineEvent:{x.kind}" if isinstance(x, r.TimelineEvent) else type(x).__name__
        for x in records
    ]


def test_each_fact_is_emitted_once_as_typed_records_in_order() -> None:
    j, emitted = journal()
    j.open()
    j.route_chosen("1", "database", "digit", "db-policy")
    leg = LegRecord("leg-1", "bob", "Bob", "PJSIP/bob", 1, "sequential", T0)
    j.leg_placed(leg)
    j.leg_answered(leg)
    j.set_status("acknowledged", acknowledged_by="bob")
    j.leg_ended(leg, LegOutcome.ACCEPTED, None)
    j.leg_ended(leg, LegOutcome.FAILED, 1)  # a leg ends once
    j.escalate("nobody", "db-policy")
    j.voicemail("vm-1", 2.5, b"RIFF")
    j.set_status("resolved")
    j.end("connected")
    j.end("again")  # a call ends once
    assert kinds(emitted) == [
        "AlertOpened",
        "CallStarted",
        "NotificationQueued",
        "TimelineEvent:call_started",
        "TimelineEvent:route_chosen",
        "AlertRouted",
        "LegPlaced",
        "TimelineEvent:leg_placed",
        "LegAnswered",
        "TimelineEvent:leg_answered",
        "TimelineEvent:alert_acknowledged",
        "AlertStatusChanged",
        "NotificationQueued",
        "LegEnded",
        "TimelineEvent:leg_ended",
        "TimelineEvent:alert_escalated",
        "AlertEscalated",
        "NotificationQueued",
        "TimelineEvent:voicemail_stored",
        "VoicemailStored",
        "NotificationQueued",
        "TimelineEvent:alert_resolved",
        "AlertStatusChanged",
        "NotificationQueued",
        "TimelineEvent:call_ended",
        "CallEnded",
    ]
    events = [x for x in emitted if isinstance(x, r.TimelineEvent)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1)) == [e.seq for e in j.entries]
    (ended,) = [x for x in emitted if isinstance(x, r.LegEnded)]
    assert (ended.outcome, ended.answered_at) == (LegOutcome.ACCEPTED, leg.answered_at)
    assert events[-1].data == {"reason": "connected"}
    notes = [x for x in emitted if isinstance(x, r.NotificationQueued)]
    assert [n.kind for n in notes] == [
        "alert.created",
        "alert.acknowledged",
        "alert.escalated",
        "voicemail.created",
        "alert.resolved",
    ]
    assert notes[2].payload["escalation"] == 1 and notes[1].payload["acknowledged_by"] == "bob"
    assert notes[2].payload["policy_id"] == "db-policy" and notes[2].payload["reason"] == "nobody"
    assert notes[3].payload["recording"] == "vm-1"


def test_a_record_that_cannot_be_built_is_dropped_and_the_call_goes_on() -> None:
    j, emitted = journal()
    j.open()
    j.end("Nobody Available")  # not a word the schema accepts: no CallEnded
    assert kinds(emitted)[-2:] == ["TimelineEvent:call_started", "TimelineEvent:call_ended"]
    assert j.alert.ended_reason == "Nobody Available"


def test_speech_heard_is_one_typed_value_for_the_timeline_and_the_metrics() -> None:
    j, emitted = journal()
    j.speech_heard(SpeechHeard("caller", None, "rejected", "data", 0.4, "low", 250))
    j.speech_heard(SpeechHeard("responder", "leg-2", "silence", None, 0.0, "", 0))
    data: list[dict[str, Any]] = [dict(x.data) for x in emitted if isinstance(x, r.TimelineEvent)]
    assert data == [
        {
            "party": "caller",
            "result": "rejected",
            "phrase": "data",
            "confidence": 0.4,
            "detail": "low",
            "decode_ms": 250,
        },
        {
            "party": "responder",
            "leg": "leg-2",
            "result": "silence",
            "phrase": None,
            "confidence": 0.0,
            "detail": "",
            "decode_ms": 0,
        },
    ]
    metrics = Metrics()
    ctx: Any = SimpleNamespace(journal=j)
    metrics.call_started(ctx)
    metrics.call_finished(ctx)
    text = metrics.exposition().decode()
    assert 'callrouting_speech_utterances_total{party="caller",result="rejected"} 1.0' in text
    assert 'callrouting_speech_utterances_total{party="responder",result="silence"} 1.0' in text
    assert "callrouting_speech_decode_seconds_count 1.0" in text  # silence is not decoded
    assert "callrouting_speech_decode_seconds_sum 0.25" in text
