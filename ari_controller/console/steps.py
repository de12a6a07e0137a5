"""Where a live call is, read from its timeline: the step a person watching the console sees
("Ringing Ana, Ben", "Connected with Ana"), with what it is about and since when. Pure.

The timeline is what every daemon writes to Postgres as the call goes (calls/journal.py), so
the step of a call driven by any daemon on the database can be told from it alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TimelineEntry = tuple[dt.datetime, str, Mapping[str, Any]]  # (at, kind, data), in order


@dataclass(frozen=True, slots=True)
class Step:
    # greeting, menu, message, holding, ringing, asking, connected, voicemail, ending, ended
    key: str
    label: str
    detail: str
    since: dt.datetime


@dataclass
class _Hunt:
    ringing: dict[str, str] = field(default_factory=dict)  # leg id: user id
    asking: dict[str, str] = field(default_factory=dict)  # answered, hearing the whisper


def step_of(
    timeline: Sequence[TimelineEntry],
    names: Mapping[str, str],
    started_at: dt.datetime,
    ended_at: dt.datetime | None = None,
    ended_reason: str | None = None,
) -> Step:
    """The call's step now. `names`: users[].id -> name (the call's own plan adds to them)."""
    known = dict(names)
    hunt = _Hunt()
    key, label, detail = "greeting", "Greeting", ""
    since = started_at
    route = ""
    resumed = False
    for at, kind, data in timeline:
        if kind == "plan":
            for entry in data.get("responders", ()):
                if isinstance(entry, Mapping) and entry.get("user") and entry.get("name"):
                    known.setdefault(str(entry["user"]), str(entry["name"]))
        new = _after(kind, data, hunt, known, route)
        if kind == "route_chosen":
            route = str(data.get("route") or "")
        if kind == "call_resumed":
            resumed = True
        if new is None:
            new = _hunting(hunt, known, route) if key in _HUNT_KEYS else None
        if new is None:
            continue
        new_key, new_label, new_detail = new
        if new_key != key:
            since = at
        key, label, detail = new_key, new_label, new_detail
    if ended_at is not None and key != "ended":
        key, label, detail, since = "ended", "Ended", _reason(ended_reason), ended_at
    if resumed and key != "ended":
        detail = f"{detail} (picked up after a restart)".strip()
    return Step(key, label, detail, since)


_HUNT_KEYS = frozenset({"holding", "ringing", "asking"})


def _after(
    kind: str, data: Mapping[str, Any], hunt: _Hunt, names: Mapping[str, str], route: str
) -> tuple[str, str, str] | None:
    """The step an entry moves the call to, or None when it does not move it by itself."""
    if kind == "support_hours":
        action = data.get("action")
        if action == "message":
            return "message", "Outside hours message", ""
        if action == "voicemail":
            return "greeting", "Greeting", "outside support hours: voicemail next"
        return "menu", "Greeting and menu", ""
    if kind == "menu_input":
        return "menu", "Greeting and menu", f"pressed {data.get('digit', '')}"
    if kind == "speech_heard":
        if data.get("party") != "caller" or not data.get("phrase"):
            return None
        return "menu", "Greeting and menu", f"said \u201c{data['phrase']}\u201d"
    if kind == "route_chosen":
        return "holding", "On hold", str(data.get("route") or "")
    if kind == "plan":
        count = len(data.get("responders", ()))
        return "holding", "On hold", f"{route} \u00b7 {count} to call" if route else ""
    if kind in ("leg_placed", "leg_adopted"):
        leg = str(data.get("leg", ""))
        user = str(data.get("user", ""))
        if kind == "leg_adopted" and data.get("answered"):
            hunt.asking[leg] = user
        else:
            hunt.ringing[leg] = user
        return None
    if kind == "leg_answered":
        leg = str(data.get("leg", ""))
        hunt.asking[leg] = hunt.ringing.pop(leg, str(data.get("user", "")))
        return None
    if kind == "leg_ended":
        leg = str(data.get("leg", ""))
        hunt.ringing.pop(leg, None)
        hunt.asking.pop(leg, None)
        return None
    if kind == "bridged":
        responder = str(data.get("responder") or "")
        hunt.ringing.clear()
        hunt.asking.clear()
        return "connected", "Connected", f"with {names.get(responder, responder)}".strip()
    if kind == "voicemail_started":
        return "voicemail", "Leaving a voicemail", ""
    if kind == "voicemail_stored":
        return "ending", "Voicemail stored", f"{data.get('duration_s') or 0:.0f} s"
    if kind in ("hangup", "caller_hung_up", "caller_left_during_restart"):
        who = data.get("by") or "caller"
        return "ending", "Ending", f"{who} hung up"
    if kind == "menu_gave_up":
        return "ending", "Ending", f"no choice made: {data.get('then') or 'goodbye'}"
    if kind == "call_ended":
        return "ended", "Ended", _reason(data.get("reason"))
    return None


def _hunting(hunt: _Hunt, names: Mapping[str, str], route: str) -> tuple[str, str, str]:
    if hunt.asking:
        people = _people(hunt.asking, names)
        return "asking", "Asking a responder", f"{people} hearing who is calling"
    if hunt.ringing:
        return "ringing", "Ringing", _people(hunt.ringing, names)
    return "holding", "On hold", route


def _people(legs: Mapping[str, str], names: Mapping[str, str]) -> str:
    seen: list[str] = []
    for user in legs.values():
        name = names.get(user, user)
        if name not in seen:
            seen.append(name)
    return ", ".join(seen)


def _reason(reason: Any) -> str:
    return str(reason or "").replace("_", " ")
