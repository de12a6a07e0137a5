"""The people, policies and numbers of the restart and failover tests, on the simulator and
on the real Asterisk alike: one number whose routes reach each kind of responder (accepts at
once, rings past the fault, hears the whisper through it, never answers), one that takes
messages; and those responders' phones, as simulator scripts or as dialplan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RESPONDER_SETTINGS = {"ring_timeout_s": 60, "accept_window_s": 30, "accept_keys": "1"}


def restart_sections(contact: Callable[[str], str], desk: str, messages: str) -> dict[str, Any]:
    """`contact(script)`: the dial string of a phone running `script`; `desk` and `messages`:
    the DIDs of the two numbers."""

    def user(user_id: str, script: str) -> dict[str, Any]:
        return {"id": user_id, "name": user_id.title(), "contacts": [contact(script)]}

    return {
        "users": [
            user("quinn", "quick"),
            user("sam", "slow"),
            user("sue", "slow"),
            user("nora", "rings_on"),
            user("wendy", "whisperer"),
            user("rob", "rejects"),
        ],
        "escalation_policies": [
            {"id": "quick", "name": "Quick", "rules": [{"users": ["quinn"]}]},
            {"id": "slow", "name": "Slow", "rules": [{"users": ["sam"]}]},
            {"id": "both", "name": "Both", "rules": [{"users": ["nora"]}, {"users": ["sue"]}]},
            {"id": "whisper", "name": "Whisper", "rules": [{"users": ["wendy"]}]},
            {"id": "nobody", "name": "Nobody", "rules": [{"users": ["nora"]}]},
            {"id": "rejects", "name": "Rejects", "rules": [{"users": ["rob"]}]},
        ],
        "numbers": [
            {
                "did": desk,
                "name": "Restart Desk",
                "routes": [
                    {"label": "quick", "policy": "quick", "digit": "1"},
                    {"label": "slow", "policy": "slow", "digit": "2"},
                    {"label": "both", "policy": "both", "digit": "3", "mode": "simultaneous"},
                    {"label": "whisper", "policy": "whisper", "digit": "4"},
                    {"label": "nobody", "policy": "nobody", "digit": "5"},
                ],
                "menu": {"input_timeout_s": 30, "max_attempts": 2},
                "responders": RESPONDER_SETTINGS,
                "resolution": "resolve_on_end",
                "voicemail": {"enabled": False},
            },
            {
                "did": messages,
                "name": "Message Desk",
                "routes": [{"label": "rejects", "policy": "rejects", "digit": "1"}],
                "menu": {"input_timeout_s": 30},
                "responders": RESPONDER_SETTINGS,
                "voicemail": {"enabled": True, "max_silence_s": 60, "max_duration_s": 120},
            },
        ],
    }


def simulated_responders(later_s: float) -> dict[str, list[Any]]:
    """The responders' phones on the simulator; `later_s`: when the slow and the whispered
    ones act, well after the fault."""
    return {
        "quick": ["answer", {"wait": 0.3}, {"dtmf": "1"}, {"wait": 600}, "hangup"],
        "slow": ["ring", {"wait": later_s}, "answer", {"wait": 1}, {"dtmf": "1"},
                 {"wait": 600}, "hangup"],
        "whisperer": ["ring", {"wait": 0.3}, "answer", {"wait": later_s}, {"dtmf": "1"},
                      {"wait": 600}, "hangup"],
        "rings_on": ["ring", {"wait": 600}, "hangup"],
        "rejects": ["ring", {"wait": 0.2}, {"hangup": {"cause": 21}}],
    }  # fmt: skip


def dialplan_responders(later_s: float) -> dict[str, str]:
    """The same phones on a real Asterisk, as the suite's dialplan scripts."""
    later = f"{later_s:.2f}"
    return {
        "quick": "Answer > Wait(1) > SendDTMF(1) > Wait(600) > Hangup",
        # Rings until well after the fault, then answers and accepts.
        "slow": f"Ringing > Wait({later}) > Answer > Wait(1.5) > SendDTMF(1) > Wait(600) > Hangup",
        # Answers at once, hears the whisper through the fault, accepts after it.
        "whisperer": f"Ringing > Wait(0.5) > Answer > Wait({later}) > SendDTMF(1)"
        " > Wait(600) > Hangup",
        "rings_on": "Ringing > Wait(600) > Hangup",
        "rejects": "Ringing > Wait(0.2) > Hangup(21)",
    }
