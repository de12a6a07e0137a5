"""Store records: the spool's JSON round trip, validation, and the retry schedule. Pure."""

from __future__ import annotations

import enum
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ari_controller.calls.outcomes import LegOutcome
from ari_controller.calls.records import (
    RECORD_TYPES,
    AlertStatusChanged,
    CallEnded,
    LegEnded,
    LegPlaced,
    TimelineEvent,
    VoicemailStored,
)
from ari_controller.store.spool import from_json, to_json
from ari_controller.store.writer import retry_delay
from tests.test_store_writer import call_records

T0 = datetime(2025, 3, 4, 2, 17, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
ONE = uuid.UUID(int=1)
AT = "2025-01-01T00:00:00+00:00"


def test_every_record_survives_the_spool_round_trip() -> None:
    records = call_records(start=T0) + call_records(start=T0, voicemail=True)
    assert {type(r).__name__ for r in records} == set(RECORD_TYPES)
    for record in records:
        line = to_json(record)
        assert "\n" not in line
        assert from_json(line) == record
    vm = next(r for r in records if isinstance(r, VoicemailStored))
    assert from_json(to_json(vm)).audio == b"RIFF\x00\xff"  # type: ignore[union-attr]
    assert from_json(to_json(vm)).created_at.utcoffset() == timedelta(hours=1)  # type: ignore[union-attr]


def test_timeline_data_that_json_cannot_hold_is_spooled_as_text() -> None:
    class Outcome(enum.StrEnum):
        BUSY = "busy"

    event = TimelineEvent(uuid.uuid4(), 3, T0, "leg_ended", {"outcome": Outcome.BUSY, "at": T0})
    assert from_json(to_json(event)).data == {"outcome": "busy", "at": str(T0)}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "line",
    [
        "",
        "[1, 2]",
        '{"type": "Nope"}',
        f'{{"type": "AlertEscalated", "alert_id": "not-a-uuid", "escalation": 1, "at": "{AT}"}}',
        f'{{"type": "AlertEscalated", "alert_id": "{ONE}", "escalation": 1}}',
        f'{{"type": "AlertEscalated", "alert_id": "{ONE}", "escalation": 1, "at": "{AT}", "x": 1}}',
        f'{{"type": "AlertEscalated", "alert_id": "{ONE}", "escalation": 1, "at": "2025-01-01"}}',
        f'{{"type": "LegEnded", "leg_id": "l", "ended_at": "{AT}", "outcome": "maybe", '
        '"hangup_cause": null}',
    ],
)
def test_a_bad_spool_line_is_a_value_error(line: str) -> None:
    with pytest.raises(ValueError):
        from_json(line)


def test_records_refuse_values_the_schema_would_refuse() -> None:
    call_id, alert_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        TimelineEvent(call_id, 1, datetime(2025, 1, 1), "x", {})
    with pytest.raises(ValueError, match="outcome"):
        LegEnded("leg", now, "maybe", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hangup_cause"):
        LegEnded("leg", now, LegOutcome.BUSY, 300)
    with pytest.raises(ValueError, match="mode"):
        LegPlaced("leg", call_id, "u", "PJSIP/u", "round_robin", 1, now)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        AlertStatusChanged(alert_id, "open", now, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lower_snake_case"):
        CallEnded(call_id, alert_id, now, "Nobody Available")


def test_retry_delay_backs_off_with_jitter_up_to_the_maximum() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, 0.2, 5.0, rng) for n in range(1, 12)]
    assert 0.1 <= delays[0] <= 0.2
    assert all(
        0.5 * min(5.0, 0.2 * 2**i) <= d <= min(5.0, 0.2 * 2**i) for i, d in enumerate(delays)
    )
    assert max(delays) <= 5.0 and delays[-1] >= 2.5
    # A database down for a long time: thousands of failures in a row stay at the maximum.
    assert all(2.5 <= retry_delay(n, 0.2, 5.0, rng) <= 5.0 for n in (1025, 5000, 10**9))
