"""Calling responders until one accepts: one at a time, or everyone at once.

Each responder leg is originated with `POST /channels?app=`: it enters the application only when
answered, and the ring timeout is Asterisk's own (`timeout`), with a local guard on top.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import structlog

from ari_controller.ari.errors import AriError
from ari_controller.calls import ids
from ari_controller.calls.context import CallContext, settle
from ari_controller.calls.journal import LegRecord
from ari_controller.calls.leg import Leg, LegGone
from ari_controller.calls.listening import key_or_word, note_utterances
from ari_controller.calls.outcomes import LegOutcome, unanswered_outcome
from ari_controller.calls.resume import HuntProgress
from ari_controller.oncall.plan import CallPlan, Responder
from ari_controller.speech.availability import recognizer_for
from ari_controller.speech.vocabulary import ACCEPT, accept_vocabulary

log = structlog.get_logger(__name__)

# Asterisk enforces the ring timeout itself; this margin only covers a lost event.
RING_GUARD_S = 5.0
# Telling a responder the call was taken must not hold the call's clean-up for long.
DISMISS_LIMIT_S = 15.0
# ChannelDestroyed follows a responder's hang-up within milliseconds; past this, it was lost.
DESTROYED_LIMIT_S = 1.0
# Bridging the winner takes milliseconds; the others wait no longer than this to be let go.
CONNECT_LIMIT_S = 2.0


class Claim:
    """Exactly one responder wins, even when two accept in the same instant."""

    def __init__(self) -> None:
        self.winner: str | None = None

    def take(self, leg_id: str) -> bool:
        # Runs without an await in between: the event loop cannot interleave two takers.
        if self.winner is None:
            self.winner = leg_id
            return True
        return False


@dataclass(frozen=True, slots=True)
class Accepted:
    leg: Leg
    record: LegRecord
    responder: Responder


def _caller_id_for_responder(ctx: CallContext) -> str:
    if ctx.number.responders.caller_id == "number":
        return f'"{ctx.number.name}" <{ctx.number.did}>'
    return ctx.caller_id


async def ring(
    ctx: CallContext,
    responder: Responder,
    contact: str,
    order: int,
    mode: str,
    claim: Claim,
    earlier: LegRecord | None = None,
) -> tuple[LegOutcome, Accepted | None]:
    """Ring one contact of one responder and ask them to accept. `earlier`: a leg an earlier
    run of the controller placed and Asterisk still has (the call was picked up after a
    restart): it is not rung anew but waited for, or asked again if it already answered."""
    settings = ctx.number.responders
    if earlier is None:
        placed = await _place(ctx, responder, contact, order, mode)
        if isinstance(placed, LegOutcome):
            return placed, None
        leg, record = placed
    else:
        leg, record = ctx.responder_legs[earlier.leg_id], earlier
        ctx.journal.note("leg_adopted", leg=leg.id, user=responder.user_id, answered=leg.in_stasis)
    try:
        if not leg.in_stasis:
            # Asterisk enforces the ring timeout from when the leg was placed.
            rung_s = (ctx.clock() - record.placed_at).total_seconds()
            limit = max(settings.ring_timeout_s - rung_s, 0.0) + RING_GUARD_S
            if not await leg.wait_answered(limit):
                outcome = unanswered_outcome(leg.dialstatus, leg.cause)
                if not leg.gone:
                    await leg.hangup()  # our guard fired: the responder did not answer
                    outcome = LegOutcome.NO_ANSWER
                ctx.journal.leg_ended(record, outcome, leg.cause)
                return outcome, None
            ctx.journal.leg_answered(record)

        outcome = await _ask_to_accept(ctx, leg)
        if outcome is LegOutcome.ACCEPTED:
            if claim.take(leg.id):
                ctx.journal.leg_ended(record, LegOutcome.ACCEPTED, None)
                return LegOutcome.ACCEPTED, Accepted(leg, record, responder)
            outcome = LegOutcome.TAKEN_BY_OTHER
            await _dismiss(ctx, leg)
        elif not leg.gone:
            await leg.hangup()
        else:
            await leg.wait_destroyed(DESTROYED_LIMIT_S)  # the responder hung up: why, exactly
        ctx.journal.leg_ended(record, outcome, leg.cause)
        return outcome, None
    except asyncio.CancelledError:
        # The hunt is over for this leg: another responder won, the caller hung up, or the
        # controller is shutting down (the caller goes back to the dialplan) or letting the
        # call go to the controller that took over (the leg is left ringing for it).
        if ctx.ending == "let_go":
            raise
        if ctx.caller_gone:
            outcome = LegOutcome.ABANDONED
        elif ctx.ending != "hang_up":
            outcome = LegOutcome.CANCELLED
        else:
            outcome = LegOutcome.TAKEN_BY_OTHER
        if outcome is LegOutcome.TAKEN_BY_OTHER and leg.in_stasis and not leg.gone:
            ctx.spawn(_dismiss(ctx, leg))
        else:
            await asyncio.shield(leg.hangup())
        ctx.journal.leg_ended(record, outcome, leg.cause)
        raise


async def _place(
    ctx: CallContext, responder: Responder, contact: str, order: int, mode: str
) -> tuple[Leg, LegRecord] | LegOutcome:
    """Put the leg on record, then ring it (a controller restarted meanwhile finds it by
    its record and its id). FAILED when Asterisk would not place it."""
    leg_id = ids.leg_id(ctx.call_id, order)
    leg = Leg(leg_id, ctx.ari, ctx.router)
    ctx.responder_legs[leg_id] = leg
    record = LegRecord(leg_id, responder.user_id, responder.name, contact, order, mode, ctx.clock())
    ctx.journal.leg_placed(record)
    try:
        await ctx.durable()  # before Asterisk rings anyone
        await ctx.ari.originate(
            contact,
            channel_id=leg_id,
            app=ctx.app,
            app_args=ids.responder_app_args(ctx.call_id),
            caller_id=_caller_id_for_responder(ctx),
            timeout=ctx.number.responders.ring_timeout_s,
            # As Dial does: the leg takes the caller's formats (without them Asterisk may
            # pick one that costs ten times the CPU) and linkedid (CDR/CEL tie the legs).
            originator=ctx.caller.id,
        )
    except AriError as exc:
        log.warning("originate_failed", leg=leg_id, contact=contact, error=str(exc))
        leg.originate_failed()
        ctx.journal.leg_ended(record, LegOutcome.FAILED, None)
        return LegOutcome.FAILED
    except asyncio.CancelledError:
        # The hunt ended before the leg was placed (or while Asterisk was placing it).
        if ctx.ending == "let_go":
            raise
        await asyncio.shield(leg.hangup())
        outcome = LegOutcome.ABANDONED if ctx.caller_gone else LegOutcome.CANCELLED
        ctx.journal.leg_ended(record, outcome, leg.cause)
        raise
    return leg, record


async def _ask_to_accept(ctx: CallContext, leg: Leg) -> LegOutcome:
    """ "You have a caller on hold. Press any key (or say continue) to connect."

    Hanging up declines."""
    settings = ctx.number.responders
    # Who the caller is (their PIN's label) and whether they are calling again, in the whisper.
    prompt = ctx.prompts.responder_prompt(ctx.number, ctx.caller_label, ctx.repeat_call)
    recognizer = recognizer_for(ctx.number)
    vocabulary = accept_vocabulary(ctx.number.language)
    try:
        for _ in range(1 + settings.accept_prompt_repeats):
            digit = await leg.play(prompt)
            if digit is None and recognizer is not None and vocabulary:
                answer = await key_or_word(
                    leg, settings.accept_window_s, vocabulary, ctx.number.speech, recognizer
                )
                note_utterances(ctx.journal, answer, party="responder", leg=leg.id)
                if answer.decision is not None and answer.decision.meaning == ACCEPT:
                    ctx.journal.note(
                        "responder_speech",
                        leg=leg.id,
                        phrase=answer.decision.phrase,
                        confidence=answer.decision.confidence,
                    )
                    return LegOutcome.ACCEPTED
                digit = answer.digit
                if digit is None:
                    continue  # nothing that counts within the accept window
            if digit is None:
                # no input within the accept window: maybe a voicemail box picked up
                digit = await leg.wait_digit(settings.accept_window_s)
            if digit is None:
                continue
            if digit == settings.decline_key:
                return LegOutcome.DECLINED
            if settings.accepts(digit):
                return LegOutcome.ACCEPTED
        return LegOutcome.NO_ANSWER
    except LegGone:
        return LegOutcome.DECLINED  # the responder hung up before accepting


async def _dismiss(ctx: CallContext, leg: Leg) -> None:
    """Tell an answered responder that someone else took the call, then hang up."""
    try:
        async with asyncio.timeout(DISMISS_LIMIT_S):
            await leg.play(ctx.say("call_taken"), stop_on_digit=False)
    except (LegGone, TimeoutError):
        pass
    finally:
        await leg.hangup()


async def hunt_sequential(
    ctx: CallContext, plan: CallPlan, progress: HuntProgress | None = None
) -> Accepted | None:
    """One responder at a time; busy, no answer, decline or failure: the next one at once."""
    progress = progress or HuntProgress()
    claim = Claim()
    order = progress.next_order()
    for responder in plan.responders:
        if progress.declined(responder.user_id):
            continue  # they said no before the restart
        for contact in responder.contacts:
            earlier = _still_ringing(ctx, progress, responder, contact)
            if earlier is False:
                continue  # rung before the restart, and over
            if earlier is None:
                outcome, accepted = await ring(ctx, responder, contact, order, "sequential", claim)
                order += 1
            else:
                outcome, accepted = await ring(
                    ctx, responder, contact, earlier.order, "sequential", claim, earlier
                )
            if accepted is not None:
                return accepted
            if outcome is LegOutcome.DECLINED:
                break  # the person said no: their other contacts would only ask again
    return None


def _still_ringing(
    ctx: CallContext, progress: HuntProgress, responder: Responder, contact: str
) -> LegRecord | Literal[False] | None:
    """The leg an earlier run placed to this contact and Asterisk still has (to adopt);
    False when it was placed and is over; None when it was never placed."""
    earlier = progress.earlier_leg(responder.user_id, contact)
    if earlier is None:
        return None
    if earlier.outcome is None and earlier.leg_id in ctx.responder_legs:
        return earlier
    return False


async def hunt_simultaneous(
    ctx: CallContext, plan: CallPlan, progress: HuntProgress | None = None
) -> Accepted | None:
    """Everyone at once (each through their own contacts in order); the first accept wins."""
    progress = progress or HuntProgress()
    claim = Claim()
    orders = iter(range(progress.next_order(), 10_000))

    async def one_person(responder: Responder) -> Accepted | None:
        if progress.declined(responder.user_id):
            return None  # they said no before the restart
        for contact in responder.contacts:
            earlier = _still_ringing(ctx, progress, responder, contact)
            if earlier is False:
                continue  # rung before the restart, and over
            order = next(orders) if earlier is None else earlier.order
            outcome, accepted = await ring(
                ctx, responder, contact, order, "simultaneous", claim, earlier
            )
            if accepted is not None or outcome is LegOutcome.DECLINED:
                return accepted
            if claim.winner is not None:
                return None
        return None

    tasks = [asyncio.ensure_future(one_person(r)) for r in plan.responders]
    accepted: Accepted | None = None
    try:
        for finished in asyncio.as_completed(tasks):
            accepted = await finished
            if accepted is not None:
                return accepted
        return None
    finally:
        if accepted is not None:
            # The others are hung up (or told the call was taken) once the winner is connected:
            # their requests never queue ahead of the bridge's. The conversation's end waits.
            ctx.spawn(_release_once_connected(ctx, tasks))
        else:
            for task in tasks:
                task.cancel()
            await settle(*tasks)  # the caller hung up: every leg has ended before the call


async def _release_once_connected(
    ctx: CallContext, tasks: list[asyncio.Task[Accepted | None]]
) -> None:
    try:
        async with asyncio.timeout(CONNECT_LIMIT_S):
            await ctx.connected.wait()
    except TimeoutError:
        pass  # connecting is taking long: let the others go anyway
    for task in tasks:
        task.cancel()
    await settle(*tasks)
