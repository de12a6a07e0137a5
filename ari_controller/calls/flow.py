"""One inbound call, from the first ring to the last hang-up, told as a story.

greet -> (support hours) -> ask for the team -> plan who to call -> hunt while the caller
holds -> bridge caller and responder, or take a voicemail, or say nobody is available.
"""

from __future__ import annotations

import asyncio

import structlog

from ari_controller.ari.errors import AriError
from ari_controller.calls.context import CallContext, settle
from ari_controller.calls.escalation import escalate_if_configured
from ari_controller.calls.hold import hold_until_hangup
from ari_controller.calls.hunt import Accepted, hunt_sequential, hunt_simultaneous
from ari_controller.calls.ids import bridge_id
from ari_controller.calls.ivr import ask_for_route
from ari_controller.calls.leg import LegGone
from ari_controller.calls.menu import GiveUp
from ari_controller.calls.unowned import hand_back
from ari_controller.calls.voicemail import take_voicemail
from ari_controller.numbers import Route, select_routes

log = structlog.get_logger(__name__)

# The clean-up of a finished call (hang-ups, bridge) must end even if Asterisk stalls.
CLEANUP_LIMIT_S = 10.0


async def handle_call(ctx: CallContext) -> None:
    journal = ctx.journal
    caller = ctx.caller
    journal.open()
    try:
        await caller.answer()
        selection = select_routes(ctx.number, ctx.clock())
        journal.note("support_hours", in_hours=selection.in_support_hours, action=selection.action)
        if selection.action == "message":
            text = selection.message
            media = ctx.prompts.text(text, ctx.language) if text else ctx.say("outside_hours")
            await caller.play(media + ctx.say("goodbye"), stop_on_digit=False)
            journal.end("outside_hours")
            return
        if selection.action == "voicemail":
            await caller.play(ctx.say("outside_hours"))
            await take_voicemail(ctx, outside_hours=not selection.in_support_hours)
            journal.end("voicemail")
            return

        choice = await ask_for_route(ctx, selection.routes)
        if isinstance(choice, GiveUp):
            journal.note("menu_gave_up", then=choice.action)
            if choice.action == "voicemail" and ctx.number.voicemail.enabled:
                await take_voicemail(ctx)
                journal.end("voicemail")
            else:
                await caller.play(ctx.say("goodbye"), stop_on_digit=False)
                journal.end("no_choice")
            return
        journal.route_chosen(choice.digit, choice.route.label, choice.how, choice.route.policy)

        accepted = await call_responders(ctx, choice.route)
        if accepted is not None:
            await talk(ctx, accepted)
            return

        if ctx.number.voicemail.enabled:
            await take_voicemail(ctx)
            journal.end("voicemail")
        else:
            await caller.play(ctx.say("no_one_available") + ctx.say("goodbye"), stop_on_digit=False)
            escalate_if_configured(ctx, "nobody_available")
            journal.end("nobody_available")
    except LegGone:
        ctx.caller_gone = True
        journal.note("caller_hung_up")
        # Someone asked for a team and gave up waiting: that team must hear of it. A hang-up
        # during the greeting (a misdial) is kept on record without paging anyone.
        if journal.alert.route is not None and journal.alert.acknowledged_by is None:
            escalate_if_configured(ctx, "caller_abandoned")
        journal.end("abandoned")
    except asyncio.CancelledError:
        # The controller is shutting down: the call is handed back or left talking.
        journal.end("handed_back" if ctx.ending == "hand_back" else "controller_stopped")
        raise
    except Exception:
        log.exception("call_failed")
        journal.note("controller_error")
        escalate_if_configured(ctx, "controller_error")
        journal.end("error")
        await _apologise(ctx)
    finally:
        await _clean_up(ctx)


async def call_responders(ctx: CallContext, route: Route) -> Accepted | None:
    """Find who is on call and ring them while the caller holds; None when nobody accepted."""
    plan = ctx.planner(route.policy, ctx.clock(), ctx.rng)
    mode = route.mode or ctx.number.mode
    ctx.journal.note(
        "plan",
        policy=route.policy,
        mode=mode,
        responders=[{"user": r.user_id, "contacts": list(r.contacts)} for r in plan.responders],
    )
    if not plan.responders:
        return None
    await ctx.caller.play(ctx.say("please_hold"))
    hunt = asyncio.ensure_future(
        hunt_simultaneous(ctx, plan) if mode == "simultaneous" else hunt_sequential(ctx, plan)
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

    # A conversation has no time limit: only a hang-up on either side ends it.
    caller_done = asyncio.ensure_future(ctx.caller.wait_gone())
    responder_done = asyncio.ensure_future(accepted.leg.wait_gone())
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
            if ctx.ending == "leave_connected":
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
