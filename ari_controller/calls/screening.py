"""Whether this caller gets through, asked before anything else happens on the call.

The caller ID normalised, then the lists, the rate limit and the flood, the PIN (the order is
`screening.decide`'s); support hours and the menu come after, in the call's story. What the
caller did before (calls counted, the number's flood, the caller's open alert) comes from
Postgres through `CallerHistory`, or from this daemon's memory when Postgres does not answer:
screening then lets callers through on what it knows rather than keep them out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass

import structlog

from ari_controller.calls.context import CallContext
from ari_controller.screening.callerid import CallerId, caller_id
from ari_controller.screening.decide import Step, Verdict, screen
from ari_controller.screening.flood import NO_FLOOD, FloodState, next_flood_state
from ari_controller.screening.history import ArrivalCounts
from ari_controller.screening.pins import check_pin

log = structlog.get_logger(__name__)

# Arrivals are counted by an id made from the caller's channel: a call picked up again after
# a restart (screened again) is not counted twice.
_ARRIVALS = uuid.UUID("6f1d3c2e-5a0b-4c8e-9d7f-2b1a0c9e8d7f")
# Between two keys of a PIN; past it, what was typed is taken as the whole PIN.
PIN_KEY_TIMEOUT_S = 5.0
PIN_MAX_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Screening:
    """The verdict, the caller as screening read them, and the caller's open alert (a repeat
    call joins it), with how the calls were counted."""

    verdict: Verdict
    caller: CallerId
    counts: ArrivalCounts
    open_alert: uuid.UUID | None
    flood: FloodState = NO_FLOOD
    # Each PIN attempt: was it right? (On the timeline once the call has one.)
    pin_attempts: tuple[bool, ...] = ()

    @property
    def lets_through(self) -> bool:
        """On to the menu or to the voicemail-only path: the call opens (or joins) an alert."""
        return self.verdict.then in ("continue", "voicemail")


async def screen_the_caller(ctx: CallContext) -> Screening:
    """Read the caller, count the call, and decide; a PIN is asked for here when the number
    wants one (the caller is answered for it)."""
    number, config = ctx.number, ctx.screening_config
    settings = number.screening
    caller = caller_id(ctx.caller_id, settings.country_or(config.default_country))
    now = ctx.clock()
    counts, flood = await _history(ctx, caller, now)
    lists = config.lists
    verdict = screen(caller, settings, lists, caller_calls=counts.caller_calls, flood=flood)
    attempts: tuple[bool, ...] = ()
    if verdict.action == "ask_pin":
        label, attempts = await _ask_for_pin(ctx, verdict.attempts or settings.pin.attempts)
        verdict = screen(
            caller,
            settings,
            lists,
            caller_calls=counts.caller_calls,
            flood=flood,
            pin_given=label is not None,
            pin_label=label,
            pin_failed=label is None,
        )
    open_alert = None
    repeat = settings.repeat_calls
    if repeat is not None and ctx.history is not None and not caller.withheld:
        since = now - dt.timedelta(minutes=repeat.window_minutes)
        open_alert = await ctx.history.open_alert(
            tuple(dict.fromkeys((number.did, ctx.journal.alert.did))), caller.key, since
        )
    return Screening(verdict, caller, counts, open_alert, flood, attempts)


async def _history(
    ctx: CallContext, caller: CallerId, now: dt.datetime
) -> tuple[ArrivalCounts, FloodState]:
    settings = ctx.number.screening
    if ctx.history is None or (settings.rate_limit is None and settings.flood is None):
        return ArrivalCounts(1, 1, shared=ctx.history is not None), NO_FLOOD  # nothing to count
    minutes = settings.rate_limit.minutes if settings.rate_limit is not None else 1.0
    arrival = uuid.uuid5(_ARRIVALS, ctx.caller.id)
    counts = await ctx.history.arrived(
        arrival, ctx.number.did, caller.key, now, dt.timedelta(minutes=minutes)
    )
    flood = NO_FLOOD
    if settings.flood is not None:
        flood_settings = settings.flood
        before: list[FloodState] = []

        def step(state: FloodState) -> FloodState:
            before.append(state)
            return next_flood_state(state, counts.number_calls, now, flood_settings)

        flood = await ctx.history.flood(ctx.number.did, step)
        if before and flood.active != before[-1].active:
            # The number enters or leaves flood mode (once, by the call that moved it).
            log.info("number_flood", did=ctx.number.did, active=flood.active)
    return counts, flood


def let_through_unscreened(ctx: CallContext) -> Screening:
    """Screening itself failed (a bug, Asterisk refusing the PIN prompt): the caller goes on
    as if unscreened, which loses no call; the log says why."""
    caller = CallerId(raw=ctx.caller_id, e164=None, withheld=False, plain=ctx.caller_id)
    verdict = Verdict("menu", "continue", steps=(Step("screening", "failed", "let through"),))
    return Screening(verdict, caller, ArrivalCounts(1, 1, shared=False), None)


async def _ask_for_pin(ctx: CallContext, attempts: int) -> tuple[str | None, tuple[bool, ...]]:
    """ "Please enter your PIN, then press hash." up to `attempts` times: the label of the
    right PIN (None when every attempt was wrong, or nothing was typed), and each attempt."""
    caller = ctx.caller
    await caller.answer()
    pins = ctx.number.screening.pin.pins
    tried: list[bool] = []
    for attempt in range(1, attempts + 1):
        first = await caller.play(ctx.say("pin_prompt"))
        entered = await _collect_pin(ctx, first)
        # scrypt costs tens of milliseconds per PIN: off the event loop.
        found = await asyncio.to_thread(check_pin, entered, pins) if entered else None
        tried.append(found is not None)
        if found is not None:
            return found.label, tuple(tried)
        if attempt < attempts:
            await caller.play(ctx.say("pin_wrong"), stop_on_digit=False)
    return None, tuple(tried)


async def _collect_pin(ctx: CallContext, first: str | None) -> str:
    """Keys until hash (or a pause, or the longest PIN); star starts again."""
    typed = first or ""
    if typed == "#":
        return ""
    while len(typed) < PIN_MAX_DIGITS:
        # expiry: the caller stopped typing; what was typed is the PIN
        key = await ctx.caller.wait_digit(PIN_KEY_TIMEOUT_S)
        if key is None or key == "#":
            break
        typed = "" if key == "*" else typed + key
    return typed.rstrip("#")


def let_in(ctx: CallContext, screening: Screening) -> None:
    """The call opens its alert (or joins the caller's open one), with what screening found
    on its timeline and, for the responder's whisper, who the caller is."""
    journal, verdict, counts = ctx.journal, screening.verdict, screening.counts
    journal.alert.caller_key = screening.caller.key
    journal.open(repeat_of=screening.open_alert)
    journal.screening = verdict.action
    journal.screening_shared = counts.shared
    journal.flood_active = screening.flood.active if ctx.number.screening.flood else None
    journal.note(
        "screening",
        action=verdict.action,
        steps=verdict.timeline(),
        caller_calls=counts.caller_calls,
        number_calls=counts.number_calls,
        counted_in="postgres" if counts.shared else "memory",
        label=verdict.label,
    )
    for attempt, right in enumerate(screening.pin_attempts, start=1):
        journal.note("pin_entered", attempt=attempt, right=right)
    if screening.open_alert is not None:
        journal.note("repeat_call", alert=str(screening.open_alert))
    ctx.caller_label = verdict.label
    ctx.repeat_call = screening.open_alert is not None


async def turn_away(ctx: CallContext, screening: Screening) -> None:
    """The call ends here, paging nobody: on record as a screened call (one past the rate
    limit counts on the caller's open alert), the configured message if there is one, then
    the hang-up. A caller turned away without a word is rejected unanswered."""
    journal, verdict, counts = ctx.journal, screening.verdict, screening.counts
    journal.alert.caller_key = screening.caller.key
    counted_on = screening.open_alert if verdict.action == "rate_limited" else None
    rule = next((step.rule for step in reversed(verdict.steps) if step.rule), None)
    journal.screening = verdict.action
    journal.screening_shared = counts.shared
    journal.flood_active = screening.flood.active if ctx.number.screening.flood else None
    journal.screened(
        verdict.action,
        rule,
        {
            "steps": verdict.timeline(),
            "caller_calls": counts.caller_calls,
            "number_calls": counts.number_calls,
            "counted_in": "postgres" if counts.shared else "memory",
            "pin_attempts": list(screening.pin_attempts),
        },
        counted_on,
    )
    log.info("caller_turned_away", verdict=verdict.action, rule=rule)
    caller = ctx.caller
    if verdict.message:
        await caller.answer()
        said = ctx.prompts.text(verdict.message, ctx.language) + ctx.say("goodbye")
        await caller.play(said, stop_on_digit=False)
    elif screening.pin_attempts:
        await caller.play(ctx.say("goodbye"), stop_on_digit=False)  # answered for the PIN
    await caller.hangup("normal" if verdict.message or screening.pin_attempts else "rejected")
