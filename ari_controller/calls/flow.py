"""One inbound call, from the first ring to the last hang-up, told as a story.

greet -> (support hours) -> ask for the team -> plan who to call -> hunt while the caller
holds -> bridge caller and responder, or take a voicemail, or say nobody is available.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from ari_controller.ari.errors import AriError
from ari_controller.calls.context import CallContext, settle
from ari_controller.calls.escalation import escalate_if_configured
from ari_controller.calls.hold import hold_until_hangup
from ari_controller.calls.hunt import Accepted, hunt_sequential, hunt_simultaneous
from ari_controller.calls.ids import bridge_id
from ari_controller.calls.ivr import ask_for_route
from ari_controller.calls.leg import Leg, LegGone
from ari_controller.calls.machines import listen_for_talk, machine_or_person
from ari_controller.calls.menu import Chosen, GiveUp
from ari_controller.calls.outcomes import LegOutcome
from ari_controller.calls.resume import HuntProgress, Unfinished, plan_note
from ari_controller.calls.screening import (
    let_in,
    let_through_unscreened,
    screen_the_caller,
    turn_away,
)
from ari_controller.calls.unowned import hand_back
from ari_controller.calls.voicemail import finish_voicemail, take_voicemail
from ari_controller.numbers import Route, RouteSelection, select_routes

log = structlog.get_logger(__name__)

# The clean-up of a finished call (hang-ups, bridge) must end even if Asterisk stalls.
CLEANUP_LIMIT_S = 10.0


async def handle_call(ctx: CallContext) -> None:
    """A new call, from the first ring: screened first; let through, it opens an alert (or
    joins the caller's open one) and goes on to the menu or to voicemail."""
    try:
        screening = await screen_the_caller(ctx)
    except LegGone:
        ctx.journal.screened("hung_up", "the caller hung up while being screened", {})
        ctx.caller.release()
        return
    except Exception:
        log.exception("screening_failed")
        screening = let_through_unscreened(ctx)
    if not screening.lets_through:
        await _run_screened(ctx, turn_away(ctx, screening))
        return
    let_in(ctx, screening)
    if screening.verdict.then == "voicemail":
        await _run(ctx, _voicemail_only(ctx))
    else:
        await _run(ctx, _from_the_start(ctx))


async def _voicemail_only(ctx: CallContext) -> None:
    """No menu and no hunt: who the caller is, a beep, the message on the alert (escalated as
    any voicemail)."""
    await ctx.caller.answer()
    greeting = ctx.prompts.greeting(ctx.number)
    await ctx.caller.play(greeting, stop_on_digit=False)
    await take_voicemail(ctx, prompt="voicemail_only_prompt")
    ctx.journal.end("voicemail")


async def _run_screened(ctx: CallContext, story: Coroutine[Any, Any, None]) -> None:
    """A call turned away: however it ends, nothing of it is left in Asterisk."""
    try:
        await story
    except LegGone:
        pass  # the caller hung up during the message: what they were told is on record
    finally:
        ctx.caller.release()


async def resume_call(ctx: CallContext, earlier: Unfinished) -> None:
    """A call an earlier run of the controller started and did not finish (it was killed or
    crashed), picked up where that run left it. A caller who already chose is not asked
    again; one who hung up meanwhile ends the call as a hang-up would have."""
    ctx.journal.note("call_resumed", step=earlier.step, caller_present=not ctx.caller.gone)
    # Events about the call were lost while nobody listened: waits that cannot see their end
    # by themselves ask Asterisk first (a prompt is not cut short by this: it plays again).
    for leg in ctx.responder_legs.values():
        leg.wake()
    if earlier.step in ("hunting", "connected"):
        ctx.caller.wake()
    for record in ctx.journal.legs:
        if record.outcome is None and record.leg_id not in ctx.responder_legs:
            ctx.journal.leg_ended(record, LegOutcome.UNOBSERVED, None)
    await _run(ctx, _from_where_it_was(ctx, earlier))


async def _run(ctx: CallContext, story: Coroutine[Any, Any, None]) -> None:
    """Tell the call's story; however it ends (a hang-up, a failure, the controller going
    away), the call is recorded as ended and nothing of it is left in Asterisk."""
    journal = ctx.journal
    try:
        await story
    except LegGone:
        ctx.caller_gone = True
        journal.note("caller_hung_up")
        # Someone asked for a team and gave up waiting: that team must hear of it. A hang-up
        # during the greeting (a misdial) is kept on record without paging anyone.
        if journal.alert.route is not None and journal.alert.acknowledged_by is None:
            escalate_if_configured(ctx, "caller_abandoned")
        journal.end("abandoned")
    except asyncio.CancelledError:
        # The controller is shutting down: the call is handed back, or left talking (the
        # next run picks the conversation up again and ends the call when it ends).
        if ctx.ending == "hand_back":
            journal.end("handed_back")
        elif ctx.ending not in ("leave_connected", "let_go"):
            journal.end("controller_stopped")
        raise
    except Exception:
        log.exception("call_failed")
        journal.note("controller_error")
        escalate_if_configured(ctx, "controller_error")
        journal.end("error")
        await _apologise(ctx)
    finally:
        await _clean_up(ctx)


async def _from_the_start(ctx: CallContext) -> None:
    await ctx.caller.answer()
    selection = select_routes(ctx.number, ctx.clock())
    ctx.journal.note("support_hours", in_hours=selection.in_support_hours, action=selection.action)
    if selection.action == "menu":
        await _ask_then_call(ctx, selection.routes, greet=True)
    else:
        await _outside_hours(ctx, selection)


async def _from_where_it_was(ctx: CallContext, earlier: Unfinished) -> None:
    journal = ctx.journal
    step = earlier.step
    if ctx.caller.gone:
        await _after_the_caller_left(ctx, earlier)
    elif step == "menu":
        selection = select_routes(ctx.number, ctx.clock())
        if selection.action == "menu":
            await _ask_then_call(ctx, selection.routes, greet=False)
        else:
            await _outside_hours(ctx, selection)
    elif step == "hunting":
        accepted = _accepted_still_there(ctx, earlier)
        if accepted is not None:
            await talk(ctx, accepted)  # accepted just before the restart: connect them now
        else:
            await _call_then_fall_back(ctx, _route_on_record(ctx, earlier), earlier)
    elif step == "connected":
        await _converse(ctx, _responder_in_conversation(ctx))
    elif step == "voicemail":
        await finish_voicemail(ctx, outside_hours=earlier.outside_hours)
        journal.end("voicemail")
    else:
        await ctx.caller.play(ctx.say("goodbye"), stop_on_digit=False)
        journal.end(earlier.closing_reason)


async def _after_the_caller_left(ctx: CallContext, earlier: Unfinished) -> None:
    """The caller hung up while no controller was running: the call ends as that hang-up
    would have ended it (a voicemail is still kept, a conversation completes the alert)."""
    journal = ctx.journal
    journal.note("caller_left_during_restart", step=earlier.step)
    if earlier.step == "voicemail":
        await finish_voicemail(ctx, outside_hours=earlier.outside_hours)
        journal.end("voicemail")
    elif earlier.step == "connected":
        await _converse(ctx, _responder_in_conversation(ctx))
    elif earlier.step == "closing":
        journal.end(earlier.closing_reason)
    else:
        # Legs still ringing or answering for a caller who is gone: as if the hang-up had
        # been heard while they rang.
        for record in journal.legs:
            leg = ctx.responder_legs.get(record.leg_id)
            if record.outcome is None and leg is not None:
                await leg.hangup()
                journal.leg_ended(record, LegOutcome.ABANDONED, leg.cause)
        raise LegGone(ctx.caller.id, None)


async def _outside_hours(ctx: CallContext, selection: RouteSelection) -> None:
    journal = ctx.journal
    caller = ctx.caller
    if selection.action == "message":
        text = selection.message
        media = ctx.prompts.text(text, ctx.language) if text else ctx.say("outside_hours")
        await caller.play(media + ctx.say("goodbye"), stop_on_digit=False)
        journal.end("outside_hours")
        return
    await caller.play(ctx.say("outside_hours"))
    await take_voicemail(ctx, outside_hours=not selection.in_support_hours)
    journal.end("voicemail")


async def _ask_then_call(ctx: CallContext, routes: list[tuple[str, Route]], *, greet: bool) -> None:
    journal = ctx.journal
    talk_since = await listen_for_talk(ctx)
    choice = await ask_for_route(ctx, routes, greet=greet)
    caller_is = await machine_or_person(ctx, talk_since, choice)
    if caller_is == "machine":
        # An announcement talking to the menu: its message is kept, nobody is woken for it.
        journal.screening = "machine"
        await take_voicemail(ctx, prompt="voicemail_only_prompt")
        journal.end("voicemail")
        return
    if caller_is == "person" and isinstance(choice, GiveUp):
        digit, route = routes[0]  # they asked to reach a person: the first route's
        choice = Chosen(digit, route, "default")
    if isinstance(choice, GiveUp):
        journal.note("menu_gave_up", then=choice.action)
        if choice.action == "voicemail" and ctx.number.voicemail.enabled:
            await take_voicemail(ctx)
            journal.end("voicemail")
        else:
            await ctx.caller.play(ctx.say("goodbye"), stop_on_digit=False)
            journal.end("no_choice")
        return
    journal.route_chosen(choice.digit, choice.route.label, choice.how, choice.route.policy)
    await _call_then_fall_back(ctx, choice.route, None)


async def _call_then_fall_back(
    ctx: CallContext, route: Route | None, earlier: Unfinished | None
) -> None:
    """Ring the route's responders; nobody accepted: a voicemail, or "no one is available"."""
    accepted = await call_responders(ctx, route, earlier) if route is not None else None
    if accepted is not None:
        await talk(ctx, accepted)
        return
    if ctx.number.voicemail.enabled:
        await take_voicemail(ctx)
        ctx.journal.end("voicemail")
    else:
        await ctx.caller.play(ctx.say("no_one_available") + ctx.say("goodbye"), stop_on_digit=False)
        escalate_if_configured(ctx, "nobody_available")
        ctx.journal.end("nobody_available")


async def call_responders(
    ctx: CallContext, route: Route, earlier: Unfinished | None = None
) -> Accepted | None:
    """Find who is on call and ring them while the caller holds; None when nobody accepted.
    A call picked up after a restart goes on with the plan its earlier run made."""
    on_record = earlier.plan if earlier is not None else None
    if on_record is not None:
        plan, mode = on_record.plan, on_record.mode
    else:
        plan = ctx.planner(route.policy, ctx.clock(), ctx.rng)
        mode = route.mode or ctx.number.mode
        ctx.journal.note("plan", **plan_note(plan, mode))
    # The choice and the plan outlive a restart before anyone is rung (the caller hears
    # "please hold" meanwhile: the wait costs the caller nothing).
    kept = asyncio.ensure_future(ctx.durable())
    try:
        if plan.responders and earlier is None:
            await ctx.caller.play(ctx.say("please_hold"))
    finally:
        await kept
    if not plan.responders:
        return None
    progress = HuntProgress(list(ctx.journal.legs))
    hunt = asyncio.ensure_future(
        hunt_simultaneous(ctx, plan, progress)
        if mode == "simultaneous"
        else hunt_sequential(ctx, plan, progress)
    )
    holding = asyncio.ensure_future(hold_until_hangup(ctx))
    try:
        await asyncio.wait({hunt, holding}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not hunt.done():
            if holding.done():
                # The caller hung up while we were ringing: every leg is hung up at once.
                ctx.caller_gone = True
            hunt.cancel()  # (or the controller is shutting down)
        holding.cancel()
        await asyncio.gather(hunt, return_exceptions=True)
    if ctx.caller_gone:
        raise LegGone(ctx.caller.id, ctx.caller.cause)
    accepted = hunt.result()
    if accepted is not None:
        # The hold music stops while the caller is being connected, not before.
        ctx.spawn(settle(holding))
    else:
        await settle(holding)  # before anything else is played to the caller
    return accepted


async def talk(ctx: CallContext, accepted: Accepted) -> None:
    """Caller and responder in a mixing bridge until either hangs up."""
    journal = ctx.journal
    if ctx.number.resolution != "leave_open":
        journal.set_status("acknowledged", acknowledged_by=accepted.responder.user_id)
    else:
        journal.alert.acknowledged_by = accepted.responder.user_id
    ctx.bridge_id = bridge_id(ctx.call_id)
    await ctx.ari.create_bridge(ctx.bridge_id, type="mixing", name=f"call {ctx.call_id}")
    await ctx.ari.add_channel(ctx.bridge_id, [ctx.caller.id, accepted.leg.id])
    ctx.connected.set()
    journal.note("bridged", bridge=ctx.bridge_id, responder=accepted.responder.user_id)
    await _converse(ctx, accepted.leg)


async def _converse(ctx: CallContext, responder: Leg) -> None:
    """The conversation: it has no time limit, only a hang-up on either side ends it."""
    journal = ctx.journal
    caller_done = asyncio.ensure_future(ctx.caller.wait_gone())
    responder_done = asyncio.ensure_future(responder.wait_gone())
    done, pending = await asyncio.wait(
        {caller_done, responder_done}, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    journal.note("hangup", by="caller" if caller_done in done else "responder")
    await settle(*ctx.background)  # the other responders' legs end before the call does
    if ctx.number.resolution == "resolve_on_end":
        journal.set_status("resolved")
    journal.end("connected")


def _route_on_record(ctx: CallContext, earlier: Unfinished) -> Route | None:
    """The route the caller chose before the restart (even if the configuration changed)."""
    choice = earlier.choice
    if choice is None:
        return None
    number = ctx.number
    for route in [*number.routes, *number.outside_hours.routes]:
        if route.label == choice.label:
            return route
    policy = earlier.policy_id or (earlier.plan.plan.policy_id if earlier.plan else None)
    return Route(label=choice.label, policy=policy) if policy else None


def _accepted_still_there(ctx: CallContext, earlier: Unfinished) -> Accepted | None:
    """A responder who accepted just before the restart, and whose leg is still up."""
    on_record = earlier.plan
    for record in ctx.journal.legs:
        leg = ctx.responder_legs.get(record.leg_id)
        if record.outcome is LegOutcome.ACCEPTED and leg is not None and on_record is not None:
            for responder in on_record.plan.responders:
                if responder.user_id == record.user_id:
                    return Accepted(leg, record, responder)
    return None


def _responder_in_conversation(ctx: CallContext) -> Leg:
    """The leg of the responder the caller was talking to (one that is gone, if Asterisk no
    longer has it: the conversation is then over)."""
    for record in ctx.journal.legs:
        if record.outcome is LegOutcome.ACCEPTED:
            leg = ctx.responder_legs.get(record.leg_id)
            if leg is not None:
                return leg
            gone = Leg(record.leg_id, ctx.ari, ctx.router)
            gone.gone = True
            ctx.responder_legs[record.leg_id] = gone
            return gone
    raise RuntimeError("a conversation on record without an accepted leg")


async def _apologise(ctx: CallContext) -> None:
    if ctx.caller.gone:
        return
    try:
        async with asyncio.timeout(CLEANUP_LIMIT_S):
            await ctx.caller.play(ctx.say("technical_problem"), stop_on_digit=False)
    except (LegGone, TimeoutError, AriError):
        pass


async def _clean_up(ctx: CallContext) -> None:
    """No channel, bridge or playback of this call outlives it (unless it is left talking)."""
    ctx.connected.set()  # whatever happened, responders still waiting are let go now
    try:
        async with asyncio.timeout(CLEANUP_LIMIT_S):
            if ctx.ending in ("leave_connected", "let_go"):
                return
            if ctx.background:
                await asyncio.gather(*ctx.background, return_exceptions=True)
            for leg in ctx.responder_legs.values():
                await leg.hangup()
            if ctx.ending == "hand_back" and not ctx.caller.gone:
                if not await hand_back(ctx.ari, ctx.caller.id, ctx.fallback_context):
                    await ctx.caller.hangup()
            else:
                await ctx.caller.hangup()
            if ctx.bridge_id is not None:
                try:
                    await ctx.ari.destroy_bridge(ctx.bridge_id)
                except AriError as exc:
                    log.warning("bridge_destroy_failed", bridge=ctx.bridge_id, error=str(exc))
    except TimeoutError:
        log.error("cleanup_timed_out", call=ctx.call_id)
    finally:
        for leg in ctx.responder_legs.values():
            leg.release()
        ctx.caller.release()
