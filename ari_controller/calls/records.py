"""A call's facts as the store takes them: one small immutable record per change.

Each record carries every id it needs (chosen by the controller, never by the database), so
applying it is idempotent and it can be retried, spooled to disk and replayed after a restart.
Pure: validation only (a bad value fails where it is made, not later in the background writer).

The call's journal (`journal.py`) is the one place that makes these records; the SQL each
becomes is `store/statements.py`, their line in the spool file `store/spool.py`. A new fact
about a call is a new record here, emitted by the journal, given its statements there (and a
migration in `schema.sql` if it needs a column).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias
from uuid import UUID

from ari_controller.calls.outcomes import LegOutcome

AlertStatus: TypeAlias = Literal["acknowledged", "resolved"]
LegMode: TypeAlias = Literal["sequential", "simultaneous"]

LEG_MODES: frozenset[str] = frozenset(typing.get_args(LegMode))
ALERT_STATUSES: frozenset[str] = frozenset(typing.get_args(AlertStatus))


def _require_aware(**moments: datetime | None) -> None:
    # A naive datetime would be read as UTC by the driver, silently shifting local times.
    for name, moment in moments.items():
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {moment!r}")


_WORD = re.compile(r"[a-z][a-z0-9_]*")


def _require_word(name: str, value: str | None) -> None:
    # Mirrors the schema's shape check on outcome/ended_reason so a bad value fails where it
    # is made, not later in the background writer.
    if value is not None and not _WORD.fullmatch(value):
        raise ValueError(f"{name} must be a lower_snake_case word, got {value!r}")


@dataclass(frozen=True, slots=True)
class AlertOpened:
    alert_id: UUID
    number_did: str
    number_name: str
    route: str | None
    caller_id: str | None
    created_at: datetime
    # The caller as screening compares callers (E.164, "withheld", or the digits as they
    # came): a repeat call finds the alert by it.
    caller_key: str | None = None

    def __post_init__(self) -> None:
        _require_aware(created_at=self.created_at)


@dataclass(frozen=True, slots=True)
class AlertRouted:
    """The caller chose (or was given) a route in the menu."""

    alert_id: UUID
    route: str
    policy_id: str | None = None  # the route's escalation policy


@dataclass(frozen=True, slots=True)
class CallStarted:
    call_id: UUID
    alert_id: UUID
    caller_channel_id: str
    did: str
    caller_id: str | None
    started_at: datetime
    answered_at: datetime | None = None
    app: str | None = None  # the Stasis application running the call

    def __post_init__(self) -> None:
        _require_aware(started_at=self.started_at, answered_at=self.answered_at)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One step of a call's timeline; seq is the call's own counter (the journal counts from 1;
    the schema accepts 0 too)."""

    call_id: UUID
    seq: int
    at: datetime
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_aware(at=self.at)
        if self.seq < 0:
            raise ValueError(f"seq must be >= 0, got {self.seq}")
        if not self.kind:
            raise ValueError("kind must not be empty")


@dataclass(frozen=True, slots=True)
class LegPlaced:
    leg_id: str
    """The leg's ARI channel id."""
    call_id: UUID
    user_id: str
    contact: str
    mode: LegMode
    attempt: int
    placed_at: datetime

    def __post_init__(self) -> None:
        _require_aware(placed_at=self.placed_at)
        if not self.leg_id:
            raise ValueError("leg_id must not be empty")
        if self.mode not in LEG_MODES:
            raise ValueError(f"mode must be one of {sorted(LEG_MODES)}, got {self.mode!r}")
        if self.attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {self.attempt}")


@dataclass(frozen=True, slots=True)
class LegAnswered:
    """The responder's phone answered (the leg goes on: whisper, accept or not)."""

    leg_id: str
    answered_at: datetime

    def __post_init__(self) -> None:
        _require_aware(answered_at=self.answered_at)


@dataclass(frozen=True, slots=True)
class LegEnded:
    leg_id: str
    ended_at: datetime
    outcome: LegOutcome
    hangup_cause: int | None
    answered_at: datetime | None = None
    """Set when the leg was answered; an answer time already stored is kept."""

    def __post_init__(self) -> None:
        _require_aware(ended_at=self.ended_at, answered_at=self.answered_at)
        if not isinstance(self.outcome, LegOutcome):
            raise ValueError(f"outcome must be one of {sorted(LegOutcome)}, got {self.outcome!r}")
        if self.hangup_cause is not None and not 0 <= self.hangup_cause <= 127:
            raise ValueError(f"hangup_cause must be a Q.850 cause 0..127, got {self.hangup_cause}")


@dataclass(frozen=True, slots=True)
class AlertStatusChanged:
    """open -> accepted -> resolved (or open -> resolved); never moves backwards."""

    alert_id: UUID
    status: AlertStatus
    at: datetime
    by_user_id: str | None

    def __post_init__(self) -> None:
        _require_aware(at=self.at)
        if self.status not in ALERT_STATUSES:
            raise ValueError(f"status must be one of {sorted(ALERT_STATUSES)}, got {self.status!r}")


@dataclass(frozen=True, slots=True)
class AlertEscalated:
    """The alert's n-th escalation (1, 2, ...): a count, not an increment, so replays are safe."""

    alert_id: UUID
    escalation: int
    at: datetime

    def __post_init__(self) -> None:
        _require_aware(at=self.at)
        if self.escalation < 1:
            raise ValueError(f"escalation must be >= 1, got {self.escalation}")


@dataclass(frozen=True, slots=True)
class VoicemailStored:
    voicemail_id: UUID
    call_id: UUID
    alert_id: UUID
    recording_name: str
    duration_s: float | None
    format: str
    audio: bytes | None
    created_at: datetime

    def __post_init__(self) -> None:
        _require_aware(created_at=self.created_at)
        if self.duration_s is not None and self.duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {self.duration_s}")


@dataclass(frozen=True, slots=True)
class CallEnded:
    """Ends the call; the outcome also becomes the alert's ended_reason if it has none yet."""

    call_id: UUID
    alert_id: UUID
    ended_at: datetime
    outcome: str

    def __post_init__(self) -> None:
        _require_aware(ended_at=self.ended_at)
        _require_word("outcome", self.outcome)


@dataclass(frozen=True, slots=True)
class NotificationQueued:
    notification_id: UUID
    alert_id: UUID
    kind: str
    payload: Mapping[str, Any]
    created_at: datetime

    def __post_init__(self) -> None:
        _require_aware(created_at=self.created_at)
        if not self.kind:
            raise ValueError("kind must not be empty")


@dataclass(frozen=True, slots=True)
class CallScreened:
    """A call screening ended before any alert was opened (a blocked caller, one past the rate
    limit, a wrong PIN, a flood). `alert_id`: the caller's open alert the call is counted on."""

    screened_id: UUID
    caller_channel_id: str
    did: str
    number_name: str
    caller_id: str | None
    caller_key: str
    verdict: str
    rule: str | None
    started_at: datetime
    alert_id: UUID | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_aware(started_at=self.started_at)
        _require_word("verdict", self.verdict)


Record: TypeAlias = (
    AlertOpened
    | AlertRouted
    | CallStarted
    | TimelineEvent
    | LegPlaced
    | LegAnswered
    | LegEnded
    | AlertStatusChanged
    | AlertEscalated
    | VoicemailStored
    | CallEnded
    | NotificationQueued
    | CallScreened
)

RECORD_TYPES: dict[str, type[Record]] = {cls.__name__: cls for cls in typing.get_args(Record)}
