"""How a responder leg ended, from what Asterisk said about it. Pure."""

from __future__ import annotations

from enum import StrEnum


class LegOutcome(StrEnum):
    ACCEPTED = "accepted"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    FAILED = "failed"
    TAKEN_BY_OTHER = "taken_by_other"
    ABANDONED = "abandoned"  # the caller hung up while this leg was ringing or answering
    CANCELLED = "cancelled"  # the controller stopped hunting: it is shutting down
    # The leg ended while no controller was watching (it was restarting): how is not known.
    UNOBSERVED = "unobserved"


# Q.850 cause codes Asterisk reports on ChannelDestroyed / ChannelHangupRequest.
_CAUSES = {
    16: LegOutcome.DECLINED,  # normal clearing before an accept: the responder hung up
    17: LegOutcome.BUSY,
    18: LegOutcome.NO_ANSWER,  # no user responding
    19: LegOutcome.NO_ANSWER,  # no answer (alerting)
    21: LegOutcome.DECLINED,  # call rejected
}

# Dial.dialstatus is more specific than the cause on the `;1` half of a Local channel, which
# Asterisk reports as 0 for a busy responder (see the sequential_hunt trace).
_DIALSTATUS = {
    "BUSY": LegOutcome.BUSY,
    "NOANSWER": LegOutcome.NO_ANSWER,
    "CANCEL": LegOutcome.NO_ANSWER,
    "CONGESTION": LegOutcome.FAILED,
    "CHANUNAVAIL": LegOutcome.FAILED,
}


def unanswered_outcome(dialstatus: str | None, cause: int | None) -> LegOutcome:
    """The outcome of a leg that was destroyed before it answered."""
    if dialstatus and dialstatus in _DIALSTATUS:
        return _DIALSTATUS[dialstatus]
    if cause is not None and cause in _CAUSES:
        return _CAUSES[cause]
    return LegOutcome.FAILED
