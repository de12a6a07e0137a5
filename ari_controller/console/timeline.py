"""A call's timeline entries and an alert's log entries as sentences a person reads. Pure.

Entries are stored as a kind and a JSON object (see calls/journal.py and the writers of
alert_log); rows written by an older or newer version may miss fields or carry others, so
every field is optional here, and a kind this module does not know still reads as a sentence
made of its name and its data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from ari_controller.console.format import duration, moment

Names = Mapping[str, str]
_Describer = Callable[["_Entry"], str]

# Q.850 hang-up causes as Asterisk reports them, in words an operator knows.
CAUSES: dict[int, str] = {
    0: "unknown",
    1: "unallocated number",
    3: "no route to destination",
    16: "normal clearing",
    17: "user busy",
    18: "no user responding",
    19: "no answer",
    20: "subscriber absent",
    21: "call rejected",
    27: "destination out of order",
    28: "invalid number format",
    31: "normal, unspecified",
    34: "no circuit available",
    38: "network out of order",
    41: "temporary failure",
    42: "switching equipment congestion",
    127: "interworking, unspecified",
}

# What became of a responder leg (calls.outcomes.LegOutcome), after the person's name.
LEG_OUTCOMES: dict[str, str] = {
    "accepted": "accepted the call",
    "busy": "was busy",
    "no_answer": "did not answer",
    "declined": "declined",
    "failed": "could not be rung",
    "taken_by_other": "stopped ringing: someone else took the call",
    "abandoned": "stopped ringing: the caller hung up",
    "cancelled": "stopped ringing: the controller was shutting down",
    "unobserved": "ended while the controller was restarting (how is not known)",
}

# Why a call or an alert ended (call_ended's reason, alerts.ended_reason).
ENDINGS: dict[str, str] = {
    "connected": "the caller spoke with a responder",
    "voicemail": "the caller left a voicemail",
    "nobody_available": "nobody was available",
    "no_choice": "the caller made no valid choice in the menu",
    "outside_hours": "it came outside support hours",
    "abandoned": "the caller hung up",
    "handed_back": "it was handed back to the dialplan",
    "controller_stopped": "the controller stopped",
    "error": "of an error in the controller",
    "ended": "it ended",
}

_MODES = {"sequential": "one after another", "simultaneous": "all at once"}
_STEPS = {
    "menu": "the menu",
    "hunting": "ringing responders",
    "connected": "connected to a responder",
    "voicemail": "the voicemail",
    "closing": "its last words",
}
_HOW = {
    "digit": "by key",
    "voice": "by voice",
    "default": "the menu's default",
    "only_route": "the only route",
}


def describe(kind: str, data: Mapping[str, Any], names: Names, tz: str | None = None) -> str:
    """One entry as a sentence; `names` maps user ids to the names people know them by, `tz`
    is the zone times inside the entry are written in."""
    entry = _Entry(data if isinstance(data, Mapping) else {}, names, tz)
    describer = _DESCRIBERS.get(kind)
    if describer is not None:
        try:
            return describer(entry)
        except (TypeError, ValueError, AttributeError):
            pass  # an entry of another shape than this version writes: said plainly below
    return generic(kind, entry.data)


def generic(kind: str, data: Mapping[str, Any]) -> str:
    """'Phone call answered: user id ana, contact PJSIP/ana.'"""
    title = kind.replace("_", " ").replace(".", " ").strip().capitalize() or "Entry"
    facts = [
        f"{str(key).replace('_', ' ')} {_plain(value)}"
        for key, value in data.items()
        if value not in (None, "", [], {})
    ]
    return f"{title}: {', '.join(facts)}." if facts else f"{title}."


def leg_outcome(outcome: str | None) -> str:
    if not outcome:
        return "still ringing or not known"
    return LEG_OUTCOMES.get(outcome, outcome.replace("_", " "))


def cause(code: int | None) -> str:
    """'17 (user busy)'; '' without a cause."""
    if code is None:
        return ""
    words = CAUSES.get(code)
    return f"{code} ({words})" if words else str(code)


def ending(reason: str | None) -> str:
    if not reason:
        return ""
    return ENDINGS.get(reason, reason.replace("_", " "))


def seconds(value: float | int | None) -> str:
    """A ring time: tenths below a minute (a leg that rang 0.4 s is not '0 s')."""
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    return duration(value)


class _Entry:
    """An entry's data read leniently: a missing field is None, a user id becomes a name."""

    def __init__(self, data: Mapping[str, Any], names: Names, tz: str | None) -> None:
        self.data = data
        self.names = names
        self.tz = tz

    def __getitem__(self, key: str) -> Any:
        return self.data.get(key)

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        return default if value is None or value == "" else str(value)

    def who(self, key: str = "user", default: str = "someone") -> str:
        value = self.data.get(key)
        if not value:
            return default
        return self.names.get(str(value), str(value))

    def when(self, key: str) -> str:
        value = self.data.get(key)
        if not value:
            return ""
        try:
            return moment(dt.datetime.fromisoformat(str(value)), self.tz)
        except ValueError:
            return str(value)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_plain(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


def _party(entry: _Entry) -> str:
    return "the responder" if entry["party"] == "responder" else "the caller"


def _confidence(entry: _Entry) -> str:
    value = entry["confidence"]
    return f"confidence {float(value):.2f}" if value is not None else ""


def _with(*parts: str) -> str:
    """' (a; b)' of the parts that say something, '' if none does."""
    said = [part for part in parts if part]
    return f" ({'; '.join(said)})" if said else ""


# ---- the call ----------------------------------------------------------------------------


def _call_started(e: _Entry) -> str:
    return f"Call from {e.text('caller_id', 'an unknown caller')} to {e.text('did', 'the number')}."


def _support_hours(e: _Entry) -> str:
    action = e.text("action")
    then = {
        "menu": "the caller hears the menu",
        "voicemail": "the caller is asked for a voicemail",
        "message": "the caller hears the outside-hours message",
    }.get(action, action.replace("_", " "))
    within = "Within support hours" if e["in_hours"] else "Outside support hours"
    return f"{within}: {then}." if then else f"{within}."


def _menu_input(e: _Entry) -> str:
    digit = e["digit"]
    attempt = f"attempt {e.text('attempt')}" if e["attempt"] is not None else ""
    if digit is None:
        said = "The caller pressed nothing"
    elif digit == "?":
        said = "The caller said something that was not understood"
    elif digit == "*":
        said = "The caller pressed * to hear the menu again"
    else:
        said = f"The caller pressed {digit}"
    then = {
        "Chosen": "a route is chosen",
        "Repeat": "the menu plays again",
        "GiveUp": "no more attempts",
    }.get(e.text("step"), "")
    return f"{said}{_with(attempt)}{': ' + then if then else ''}."


def _menu_speech(e: _Entry) -> str:
    attempt = f"attempt {e.text('attempt')}" if e["attempt"] is not None else ""
    return f"The caller said “{e.text('phrase')}” in the menu{_with(_confidence(e), attempt)}."


def _route_confirmation(e: _Entry) -> str:
    asked = f"Asked the caller “did you say {e.text('label')}?”"
    answer = e.text("answer")
    said = {
        "yes": "they said yes: the route is chosen",
        "no": "they said no: the menu plays again",
        "not_understood": "what they said was not understood",
        "nothing": "no answer",
    }.get(answer, "")
    if answer == "digit":
        said = f"they pressed {e.text('pressed')}"
    return f"{asked}{': ' + said if said else ''}."


def _screening(e: _Entry) -> str:
    action = e.text("action")
    what = {
        "menu": "let through to the menu",
        "voicemail_only": "let through to voicemail only",
    }.get(action, action.replace("_", " "))
    steps = e["steps"] if isinstance(e["steps"], list) else []
    found = [
        f"{step.get('check')}: {step.get('outcome')}"
        + (f" ({step.get('rule')})" if step.get("rule") else "")
        for step in steps
        if isinstance(step, Mapping) and step.get("outcome") not in ("off", None)
    ]
    label = f"; the caller is from {e.text('label')}" if e["label"] else ""
    memory = (
        "; counted in memory (the database did not answer)" if e["counted_in"] == "memory" else ""
    )
    return f"Screening: {what}{label}{memory}" + (f". {'; '.join(found)}." if found else ".")


def _pin_entered(e: _Entry) -> str:
    right = "right" if e["right"] else "wrong"
    return f"The caller entered a PIN (attempt {e.text('attempt')}): {right}."


def _menu_gave_up(e: _Entry) -> str:
    then = {"voicemail": "the caller is asked for a voicemail", "goodbye": "goodbye"}.get(
        e.text("then"), e.text("then")
    )
    return f"No valid choice in the menu after every attempt: {then}."


def _speech_heard(e: _Entry) -> str:
    party = _party(e)
    result = e.text("result")
    phrase = e.text("phrase")
    detail = e.text("detail")
    if result == "counted":
        return f"Heard {party} say “{phrase}”{_with(_confidence(e))}: it counts."
    if result == "rejected":
        heard = f"“{phrase}”" if phrase else "something"
        why = _with(_confidence(e), detail)
        return f"Heard {party} say {heard} but not surely enough to count{why}."
    if result == "silence":
        return f"Listened to {party}: silence."
    if result == "too_slow":
        took = f"{e.text('decode_ms')} ms" if e["decode_ms"] is not None else ""
        return f"Recognising {party}'s speech took too long{_with(took)}: it did not count."
    if result == "unreadable":
        return f"{party.capitalize()}'s speech could not be read{_with(detail)}."
    return generic("speech_heard", e.data)


def _responder_speech(e: _Entry) -> str:
    return f"The responder accepted by saying “{e.text('phrase')}”{_with(_confidence(e))}."


def _route_chosen(e: _Entry) -> str:
    how = _HOW.get(e.text("how"), e.text("how"))
    digit = f"digit {e.text('digit')}" if e["digit"] else ""
    return f"Route “{e.text('route', 'unnamed')}” chosen{_with(digit, how)}."


def _plan(e: _Entry) -> str:
    responders = e["responders"] or []
    people = [
        e.names.get(str(r.get("user")), str(r.get("name") or r.get("user") or "someone"))
        for r in responders
    ]
    mode = _MODES.get(e.text("mode"), e.text("mode"))
    policy = f"policy {e.text('policy')}" if e["policy"] else ""
    if not people:
        return f"Who to ring{_with(policy)}: nobody is on call."
    return f"Who to ring{_with(policy, mode)}: {', '.join(people)}."


def _leg_placed(e: _Entry) -> str:
    contact = f" on {e.text('contact')}" if e["contact"] else ""
    order = f"number {e.text('order')}" if e["order"] is not None else ""
    mode = _MODES.get(e.text("mode"), e.text("mode"))
    return f"Ringing {e.who()}{contact}{_with(order, mode)}."


def _leg_answered(e: _Entry) -> str:
    return f"{e.who()} answered; asked to accept the call."


def _leg_ended(e: _Entry) -> str:
    contact = f" on {e.text('contact')}" if e["contact"] else ""
    ring = f"rang {seconds(e['ring_s'])}" if e["ring_s"] is not None else ""
    code = cause(e["cause"])
    hangup = f"hang-up cause {code}" if code else ""
    return f"{e.who()}{contact} {leg_outcome(e['outcome'])}{_with(ring, hangup)}."


def _leg_adopted(e: _Entry) -> str:
    state = "answered" if e["answered"] else "still ringing"
    return f"After a restart, {e.who()}'s leg was taken over ({state})."


def _bridged(e: _Entry) -> str:
    return f"The caller and {e.who('responder', 'the responder')} are connected."


def _hangup(e: _Entry) -> str:
    return "The responder hung up." if e["by"] == "responder" else "The caller hung up."


def _voicemail_stored(e: _Entry) -> str:
    length = f"{seconds(e['duration_s'])} long" if e["duration_s"] is not None else ""
    if e["bytes"]:
        where = "kept in the database"
    else:
        where = f"the audio stayed in Asterisk's recordings as {e.text('recording', 'unnamed')}"
    return f"Voicemail recorded{_with(length)}: {where}."


def _voicemail_skipped(e: _Entry) -> str:
    return f"No voicemail: {e.text('why', 'not taken')}."


def _voicemail_during_restart(e: _Entry) -> str:
    state = {"done": "it finished", "canceled": "it was cut off", "failed": "it failed"}.get(
        e.text("state"), e.text("state", "its end is unknown")
    )
    return f"The voicemail was recorded while the controller restarted: {state}."


def _call_resumed(e: _Entry) -> str:
    step = _STEPS.get(e.text("step"), e.text("step", "where it was"))
    still = "still on the line" if e["caller_present"] else "no longer on the line"
    return (
        f"The controller restarted and picked the call up again at {step}; the caller is {still}."
    )


def _caller_left_during_restart(e: _Entry) -> str:
    step = _STEPS.get(e.text("step"), e.text("step", "some point"))
    return f"The caller hung up while the controller restarted (at {step})."


def _call_ended(e: _Entry) -> str:
    why = ending(e["reason"])
    return f"The call ended: {why}." if why else "The call ended."


# ---- the alert ---------------------------------------------------------------------------


def _via(e: _Entry) -> str:
    """' in the console' (with its space): where a person acted from, if known."""
    via = e.text("via")
    said = {
        "console": "in the console",
        "api": "through the API",
        "phone": "by phone",
        "email": "by email",
        "cli": "on the command line",
    }.get(via, f"via {via}" if via else "")
    return f" {said}" if said else ""


def _acted(verb: str) -> _Describer:
    def sentence(e: _Entry) -> str:
        who = f" by {e.who('by')}" if e["by"] else ""
        return f"Alert {verb}{who}{_via(e)}."

    return sentence


def _escalated(e: _Entry) -> str:
    by = f" by {e.who('by')}{_via(e)}" if e["by"] else ""
    why = e.text("reason")
    policy = e["policy"] or e["policy_id"]
    to = f" to policy {policy}" if policy else ""
    count = f"escalation {e.text('escalation')}" if e["escalation"] is not None else ""
    held = e.when("hold_until")
    hold = f"not before {held}, when support hours begin" if held else ""
    if why == "manual":
        because = "asked for by hand"
    else:
        because = f"because {ending(why)}" if why else ""
    return f"Alert escalated{to}{by}{_with(because, count, hold)}."


def _escalation_started(e: _Entry) -> str:
    policy = f" (policy {e.text('policy')})" if e["policy"] else ""
    due = e.when("due_at")
    if e["held"]:
        return f"Escalation{policy} waits until {due}."
    return f"Escalation{policy} started."


def _escalation_not_started(e: _Entry) -> str:
    if e["why"]:
        return f"Escalation not started: {e.text('why')}{_with(e.text('policy'))}."
    return f"Escalation not started: the alert is {e.text('status', 'no longer open')}."


def _escalation_rule_notified(e: _Entry) -> str:
    people = [e.names.get(str(p), str(p)) for p in e["people"] or []]
    silent = [e.names.get(str(p), str(p)) for p in e["without_rules"] or []]
    rule = f"rule {e.text('rule')}" if e["rule"] is not None else "a rule"
    round_ = f"round {e.text('round')}" if e["round"] is not None else ""
    whom = ", ".join(people) if people else "nobody"
    messages = f"{e.text('messages', '0')} messages" if e["messages"] is not None else ""
    unreached = f"without notification rules: {', '.join(silent)}" if silent else ""
    return f"Escalation {rule}{_with(round_)}: notifying {whom}{_with(messages, unreached)}."


def _escalation_ended(how: str) -> _Describer:
    def sentence(e: _Entry) -> str:
        why = e.text("why")
        if e["by_event"]:
            why = "the alert is " + e.text("by_event").removeprefix("alert.")
        cancelled = e["cancelled_messages"]
        dropped = f"{cancelled} pending messages cancelled" if cancelled else ""
        return f"Escalation {how}{': ' + why if why else ''}{_with(dropped)}."

    return sentence


def _delivery(what: str) -> _Describer:
    def sentence(e: _Entry) -> str:
        event = e.text("event", "message").replace("alert.", "alert ")
        to = e.text("destination", "a destination")
        person = f" for {e.who('user_id')}" if e["user_id"] else ""
        attempt = f"attempt {e.text('attempt')}" if e["attempt"] is not None else ""
        status = f"HTTP {e.text('status')}" if e["status"] is not None else ""
        error = e.text("error")
        retry = e.when("retry_at")
        again = f"trying again at {retry}" if retry else ""
        facts = _with(attempt, status, error, again)
        return f"{event.capitalize()} message to {to}{person} {what}{facts}."

    return sentence


def _delivery_retried(e: _Entry) -> str:
    person = f" for {e.who('user_id')}" if e["user_id"] else ""
    by = f" by {e.who('by')}" if e["by"] else ""
    return f"Message to {e.text('destination', 'a destination')}{person} sent again{by}."


def _phone_not_reached(e: _Entry) -> str:
    contact = e.text("contact", "a phone")
    return f"Phoned {e.who('user_id')} on {contact}: not reached ({e.text('why', 'no answer')})."


def _phone_call_answered(e: _Entry) -> str:
    return f"{e.who('user_id')} answered the notification call on {e.text('contact', 'a phone')}."


def _phone_key(e: _Entry) -> str:
    action = e.text("action")
    did = f"to {action}" if action else "(a key that does nothing: the message again)"
    return f"{e.who('user_id')} pressed {e.text('digit', 'a key')} on the notification call {did}."


_DESCRIBERS: dict[str, _Describer] = {
    "call_started": _call_started,
    "support_hours": _support_hours,
    "menu_input": _menu_input,
    "menu_speech": _menu_speech,
    "route_confirmation": _route_confirmation,
    "screening": _screening,
    "pin_entered": _pin_entered,
    "machine_check": lambda e: (
        f"The caller talked {e.text('talked_s')} s of the menu's {e.text('offered_s')} s"
        " without a key, and was asked to press one if a person: "
        + ("they did." if e["pressed"] else "nothing, so a machine: voicemail only.")
    ),
    "repeat_call": lambda e: "A repeat call: the caller's alert was still open, the call joins it.",
    "escalation_not_repeated": lambda e: (
        "Not escalated again: the alert escalates by its own rules from its first call."
    ),
    "menu_gave_up": _menu_gave_up,
    "speech_heard": _speech_heard,
    "responder_speech": _responder_speech,
    "route_chosen": _route_chosen,
    "plan": _plan,
    "leg_placed": _leg_placed,
    "leg_answered": _leg_answered,
    "leg_ended": _leg_ended,
    "leg_adopted": _leg_adopted,
    "bridged": _bridged,
    "hangup": _hangup,
    "voicemail_started": lambda e: "Voicemail: the caller is asked to leave a message.",
    "voicemail_stored": _voicemail_stored,
    "voicemail_skipped": _voicemail_skipped,
    "voicemail_recorded_during_restart": _voicemail_during_restart,
    "call_resumed": _call_resumed,
    "caller_left_during_restart": _caller_left_during_restart,
    "caller_hung_up": lambda e: "The caller hung up.",
    "controller_error": lambda e: "The controller failed on this call; the log says why.",
    "left_connected_at_shutdown": lambda e: (
        "The controller shut down and left the caller and the responder connected."
    ),
    "handed_back_to_dialplan": lambda e: (
        "The controller shut down and handed the caller back to the dialplan."
    ),
    "call_ended": _call_ended,
    "alert_acknowledged": _acted("acknowledged"),
    "alert_resolved": _acted("resolved"),
    "alert_escalated": _escalated,
    "escalation_started": _escalation_started,
    "escalation_not_started": _escalation_not_started,
    "escalation_rule_notified": _escalation_rule_notified,
    "escalation_stopped": _escalation_ended("stopped"),
    "escalation_done": _escalation_ended("done"),
    "delivery_sent": _delivery("sent"),
    "delivery_failed": _delivery("failed"),
    "delivery_dead": _delivery("given up"),
    "delivery_retried": _delivery_retried,
    "phone_not_reached": _phone_not_reached,
    "phone_call_answered": _phone_call_answered,
    "phone_key": _phone_key,
}
