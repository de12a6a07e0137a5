"""ARI JSON shapes, as Asterisk 22 writes them (see tests/ari_traces)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

ASTERISK_ID = "02:fc:00:00:00:01"

CAUSE_TEXT = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    32: "Circuit/channel congestion",
    34: "Circuit/channel congestion",
}


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


def event(kind: str, application: str, timestamp: str, **fields: Any) -> JSON:
    return {
        "type": kind,
        "application": application,
        "asterisk_id": ASTERISK_ID,
        "timestamp": timestamp,
        **fields,
    }


def caller_id(name: str, number: str) -> JSON:
    return {"name": name, "number": number}


def parse_caller_id(text: str) -> tuple[str, str]:
    """`Caller <+4930...>` -> ("Caller", "+4930..."); a bare number has no name."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return name.strip().strip('"'), number.strip()
    return "", text
