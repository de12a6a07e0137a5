"""Taking a message when nobody can answer, and keeping it with the alert."""

from __future__ import annotations

import asyncio

import structlog

from ari_controller.ari.errors import AriError
from ari_controller.calls.context import CallContext
from ari_controller.calls.escalation import escalate_if_configured
from ari_controller.calls.ids import voicemail_name
from ari_controller.calls.leg import LegGone

log = structlog.get_logger(__name__)

# Fetching the recorded file from Asterisk: it is local and small.
FETCH_LIMIT_S = 10.0


async def take_voicemail(ctx: CallContext, *, outside_hours: bool = False) -> None:
    """Prompt, beep, record until `#`, silence, the maximum length or a hang-up; store it and
    escalate the alert (as the number's alert settings say)."""
    settings = ctx.number.voicemail
    caller = ctx.caller
    ctx.journal.note("voicemail_started")
    try:
        await caller.play(ctx.say("voicemail_prompt"))  # a key skips straight to the beep
    except LegGone:
        ctx.journal.note("voicemail_skipped", why="caller hung up before the beep")
        raise
    name = voicemail_name(ctx.call_id)
    result = await caller.record(
        name, max_duration_s=settings.max_duration_s, max_silence_s=settings.max_silence_s
    )
    audio: bytes | None = None
    if result.state == "done":
        try:
            async with asyncio.timeout(FETCH_LIMIT_S):
                audio = await ctx.ari.get_stored_recording_file(name)
        except (AriError, TimeoutError) as exc:
            # The recording stays in Asterisk's store; the alert names it so nothing is lost.
            log.warning("voicemail_fetch_failed", recording=name, error=str(exc))
    ctx.journal.voicemail(name, result.duration_s, audio)
    if audio is not None:
        try:
            await ctx.ari.delete_stored_recording(name)
        except AriError as exc:
            log.info("voicemail_delete_failed", recording=name, error=str(exc))
    escalate_if_configured(ctx, "voicemail", outside_hours=outside_hours)
    if not caller.gone:
        await caller.play(ctx.say("voicemail_saved") + ctx.say("goodbye"), stop_on_digit=False)
