"""What becomes of a channel in the application that gets no call of its own: a number we do
not serve, a responder leg whose call is over, a conversation whose other side left, a caller
arriving while the controller shuts down. Each is a short flow the controller starts.
"""

from __future__ import annotations

import asyncio

import structlog

from ari_controller.ari.client import AriClient
from ari_controller.ari.errors import AriError
from ari_controller.calls.leg import Leg

log = structlog.get_logger(__name__)

# Saying "this number is not in service" to a caller must not hang on a stalled Asterisk.
UNKNOWN_NUMBER_LIMIT_S = 30.0


async def turn_away_unknown_number(caller: Leg, did: str, prompt: list[str]) -> None:
    """Tell a caller the number they dialled is not in service, then hang up."""
    log.warning("unknown_number", did=did, channel=caller.id)
    try:
        async with asyncio.timeout(UNKNOWN_NUMBER_LIMIT_S):
            await caller.answer()
            await caller.play(prompt, stop_on_digit=False)
    except Exception as exc:  # any failure still ends in a hang-up below
        log.info("unknown_number_prompt_failed", error=str(exc))
    finally:
        await caller.hangup()
        caller.release()


async def hand_back(ari: AriClient, channel_id: str, fallback_context: str) -> bool:
    """Give a caller back to the dialplan's fallback (the controller cannot serve it).
    False when Asterisk refused: the caller is still ours to end."""
    log.info("call_handed_back", channel=channel_id)
    try:
        await ari.continue_in_dialplan(
            channel_id, context=fallback_context, extension="s", priority=1
        )
    except AriError as exc:
        log.warning("hand_back_failed", channel=channel_id, error=str(exc))
        return False
    return True


async def hang_up_orphan_leg(ari: AriClient, channel_id: str) -> None:
    """A responder leg whose call is not running here (an earlier run's, or already over)."""
    log.info("orphan_leg_hung_up", channel=channel_id)
    try:
        await ari.hangup(channel_id)
    except AriError as exc:
        log.warning("orphan_hangup_failed", channel=channel_id, error=str(exc))


async def end_left_conversation(ari: AriClient, channel_id: str, bridge_id: str | None) -> None:
    """A conversation that outlived its controller and whose other side hung up: end it as its
    call would have (the remaining party hung up, our bridge destroyed)."""
    log.info("left_conversation_ended", channel=channel_id, bridge=bridge_id)
    try:
        await ari.hangup(channel_id)
        if bridge_id is not None:
            await ari.destroy_bridge(bridge_id)
    except AriError as exc:
        log.warning("left_conversation_end_failed", channel=channel_id, error=str(exc))
