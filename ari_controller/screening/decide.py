"""Whether a call goes on to the menu, and if not what the caller gets: the screening verdict.

The order of checks is fixed (docs/screening.md):

1. the caller ID, normalised (callerid.caller_id, done by the caller of `screen`);
2. the block list: a blocked caller is blocked, whatever else holds (a PIN does not undo a
   block: the lists come before the PIN); then the allow list, and on an allow-only number
   what everyone else gets (a message, voicemail, hang-up, or a PIN);
3. the rate limit per caller ID, then the flood limit of the number. Allow-listed callers and
   callers with a valid PIN are subject to neither. On a number with PINs a caller over a
   limit is asked for a PIN first: a right one passes, a wrong one gets the limit's action
   (or, where the PIN is required anyway, `pin.on_failure`). Withheld callers are not one
   caller, so they are not rate limited by caller ID; the flood limit covers them;
4. a voicemail-only number: voicemail, no PIN, no menu;
5. the PIN, where it is required;
6. support hours and the menu come after, in the call flow.

`screen` is asked again once a PIN was asked for: with `pin_given` (and its label) after a
right one, with `pin_failed` after the last wrong attempt. Every check that was looked at is a
`Step` of the verdict, for the call's timeline. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ari_controller.screening.callerid import CallerId
from ari_controller.screening.flood import FloodState
from ari_controller.screening.lists import match
from ari_controller.screening.settings import ScreeningSettings

Action = Literal[
    "menu",
    "blocked",
    "not_allowed",
    "rate_limited",
    "flood",
    "ask_pin",
    "pin_failed",
    "voicemail_only",
]
# After the verdict's message (if any): go on to support hours and the menu, hang up, or take
# the voicemail-only path (a short greeting, a beep, the message on a new alert).
Then = Literal["continue", "hang_up", "voicemail"]


@dataclass(frozen=True, slots=True)
class Step:
    """One check: which, what came of it, and the rule or pattern behind it."""

    check: str
    outcome: str
    rule: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"check": self.check, "outcome": self.outcome, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the call does next. `message` is said first (None: nothing is said); `then` is
    what follows it (None for `ask_pin`: ask up to `attempts` times, then screen again)."""

    action: Action
    then: Then | None = None
    message: str | None = None
    # The PIN's label (the customer's name) once a right PIN was given.
    label: str | None = None
    attempts: int | None = None
    steps: tuple[Step, ...] = field(default=())

    def timeline(self) -> list[dict[str, str | None]]:
        return [step.as_dict() for step in self.steps]


def screen(
    caller: CallerId,
    settings: ScreeningSettings,
    lists: Mapping[str, Sequence[str]],
    *,
    caller_calls: int,
    flood: FloodState,
    pin_given: bool = False,
    pin_label: str | None = None,
    pin_failed: bool = False,
) -> Verdict:
    """The verdict for `caller` on a number with `settings`.

    `lists`: the shared lists by name (without "@"); `caller_calls`: calls from this caller
    ID on this number within the rate limit's window, this one included; `flood`: the number's
    flood state now; `pin_given`/`pin_label`: a right PIN was entered on this call;
    `pin_failed`: the caller used up the PIN attempts."""
    steps: list[Step] = [_caller_step(caller)]
    label = pin_label if pin_given else None

    def verdict(action: Action, then: Then | None, message: str | None = None) -> Verdict:
        attempts = settings.pin.attempts if action == "ask_pin" else None
        return Verdict(action, then, message, label, attempts, tuple(steps))

    # Lists.
    blocked = match(caller, settings.block, lists)
    steps.append(_list_step("block", settings.block, blocked))
    if blocked is not None:
        return verdict("blocked", "hang_up", settings.blocked.message)
    allowed = match(caller, settings.allow, lists)
    steps.append(_list_step("allow", settings.allow, allowed))
    if settings.allow_only and allowed is None:
        not_allowed = settings.not_allowed
        if not_allowed.action != "pin":
            steps.append(Step("allow_only", "not_allowed", not_allowed.action))
            then: Then = "voicemail" if not_allowed.action == "voicemail" else "hang_up"
            message = not_allowed.message if not_allowed.action != "hang_up" else None
            return verdict("not_allowed", then, message)
        if pin_given:
            steps.append(Step("allow_only", "pin_holder", label))
        elif pin_failed:
            steps.append(Step("allow_only", "not_allowed", "pin"))
            return _pin_failure(verdict, settings, steps)
        else:
            steps.append(Step("allow_only", "ask_pin", "not on the allow list"))
            return verdict("ask_pin", None)
    elif settings.allow_only:
        steps.append(Step("allow_only", "allowed", allowed))

    # Limits.
    exempt = "allow list" if allowed is not None else "PIN" if pin_given else None
    limit = _rate_step(caller, settings, caller_calls, exempt)
    steps.append(limit)
    flood_step = _flood_step(settings, flood, exempt)
    steps.append(flood_step)
    over = "rate_limit" if limit.outcome == "exceeded" else None
    over = over or ("flood" if flood_step.outcome == "active" else None)
    if over is not None:
        if settings.pin.pins and not pin_failed:
            steps.append(Step("pin", "asked", f"a right PIN passes the {over.replace('_', ' ')}"))
            return verdict("ask_pin", None)
        if pin_failed and settings.pin.required:
            return _pin_failure(verdict, settings, steps)
        if pin_failed:
            steps.append(Step("pin", "failed", f"then the {over.replace('_', ' ')} applies"))
        if over == "rate_limit":
            rate = settings.rate_limit
            return verdict("rate_limited", "hang_up", rate.message if rate else None)
        return _flood_verdict(verdict, settings)

    # A voicemail-only number: no PIN, no menu.
    if settings.voicemail_only:
        steps.append(Step("voicemail_only", "on"))
        return verdict("voicemail_only", "voicemail")

    # PIN.
    if pin_given:
        steps.append(Step("pin", "right", label))
    elif settings.pin.required:
        if pin_failed:
            return _pin_failure(verdict, settings, steps)
        steps.append(Step("pin", "asked", "required"))
        return verdict("ask_pin", None)
    else:
        steps.append(Step("pin", "off" if not settings.pin.pins else "not_required"))
    return verdict("menu", "continue")


class _Make(Protocol):
    """The signature of `screen`'s local `verdict` (for the helpers below)."""

    def __call__(
        self, action: Action, then: Then | None, message: str | None = None
    ) -> Verdict: ...


def _pin_failure(make: _Make, settings: ScreeningSettings, steps: list[Step]) -> Verdict:
    on_failure = settings.pin.on_failure
    steps.append(Step("pin", "failed", f"{settings.pin.attempts} attempts, then {on_failure}"))
    return make("pin_failed", "voicemail" if on_failure == "voicemail" else "hang_up")


def _flood_verdict(make: _Make, settings: ScreeningSettings) -> Verdict:
    flood = settings.flood
    assert flood is not None  # only an active flood with settings gets here
    if flood.action == "voicemail_only":
        return make("flood", "voicemail", flood.message)
    if flood.action == "message":
        return make("flood", "hang_up", flood.message)
    return make("flood", "hang_up")


def _caller_step(caller: CallerId) -> Step:
    if caller.withheld:
        return Step("caller_id", "withheld", caller.raw or "(empty)")
    if caller.e164 is not None:
        return Step("caller_id", "e164", caller.e164)
    return Step("caller_id", "not_a_phone_number", caller.key)


def _list_step(check: str, patterns: Sequence[str], matched: str | None) -> Step:
    if matched is not None:
        return Step(check, "matched", matched)
    return Step(check, "no_match" if patterns else "off")


def _rate_step(
    caller: CallerId, settings: ScreeningSettings, caller_calls: int, exempt: str | None
) -> Step:
    rate = settings.rate_limit
    if rate is None:
        return Step("rate_limit", "off")
    rule = f"at most {rate.calls} calls in {rate.minutes:g} min; this is call {caller_calls}"
    if exempt is not None:
        return Step("rate_limit", "exempt", exempt)
    if caller.withheld:
        return Step("rate_limit", "not_counted", "withheld callers are not one caller")
    return Step("rate_limit", "exceeded" if caller_calls > rate.calls else "within", rule)


def _flood_step(settings: ScreeningSettings, flood: FloodState, exempt: str | None) -> Step:
    if settings.flood is None:
        return Step("flood", "off")
    limit = settings.flood.new_calls_per_minute
    rule = f"more than {limit} new calls a minute"
    if flood.since is not None and flood.active:
        rule += f", since {flood.since.isoformat()}"
    if not flood.active:
        return Step("flood", "calm", rule)
    if exempt is not None:
        return Step("flood", "exempt", exempt)
    return Step("flood", "active", rule)
