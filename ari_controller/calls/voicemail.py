"""Taking a message when nobody can answer, and keeping it with the alert."""

from __future__ import annotations

import asyncio

import structlog

from ari_controller.ari.errors import AriError
from ari_controller.calls.context import CallContext
from ari_controller.calls.escalation import escalate_if_configured
from ari_controller.calls.ids import voicemail_name
from ari_controller.calls.leg import LegGone
from ari_controller.prompts.audio import AudioFileError, read_wav

log = structlog.get_logger(__name__)

# Fetching the recorded file from Asterisk: it is local and small.
FETCH_LIMIT_S = 10.0


async def take_voicemail(
    ctx: CallContext, *, outside_hours: bool = False, prompt: str = "voicemail_prompt"
) -> None:
    """Prompt, beep, record until `#`, silence, the maximum length or a hang-up; store it and
    escalate the alert (as the number's alert settings say)."""
    settings = ctx.number.voicemail
    caller = ctx.caller
    ctx.journal.note("voicemail_started")
    await ctx.durable()  # a restarted controller finds the recording by the call's record
    try:
        await caller.play(ctx.say(prompt))  # a key skips straight to the beep
    except LegGone:
        ctx.journal.note("voicemail_skipped", why="caller hung up before the beep")
        raise
    name = voicemail_name(ctx.call_id)
    result = await caller.record(
        name, max_duration_s=settings.max_duration_s, max_silence_s=settings.max_silence_s
    )
    done = result.state == "done"
    await _keep(ctx, name, result.duration_s, fetch=done, outside_hours=outside_hours)


async def finish_voicemail(ctx: CallContext, *, outside_hours: bool) -> None:
    """A voicemail an earlier run of the controller started: the recording goes on in
    Asterisk without it. Wait for its end if it is still recording, then keep it as a
    voicemail taken in one go would be; if it never started, take the voicemail now."""
    settings = ctx.number.voicemail
    name = voicemail_name(ctx.call_id)
    # Asterisk ends the recording itself at max duration; the margin covers its latency.
    state = await ctx.caller.recording_outcome(name, settings.max_duration_s + 15)
    if state == "absent":
        if ctx.caller.gone:
            ctx.journal.note("voicemail_skipped", why="caller hung up before the beep")
            raise LegGone(ctx.caller.id, None)
        await take_voicemail(ctx, outside_hours=outside_hours)
        return
    ctx.journal.note("voicemail_recorded_during_restart", state=state)
    await _keep(ctx, name, None, fetch=state == "done", outside_hours=outside_hours)


async def _keep(
    ctx: CallContext, name: str, duration_s: float | None, *, fetch: bool, outside_hours: bool
) -> None:
    """Store the message with the alert, escalate, and thank the caller if still there."""
    audio: bytes | None = None
    if fetch:
        try:
            async with asyncio.timeout(FETCH_LIMIT_S):
                audio = await ctx.ari.get_stored_recording_file(name)
        except (AriError, TimeoutError) as exc:
            # The recording stays in Asterisk's store; the alert names it so nothing is lost.
            log.warning("voicemail_fetch_failed", recording=name, error=str(exc))
    if duration_s is None and audio is not None:
        duration_s = _length(audio)  # recorded while no controller was listening for its end
    ctx.journal.voicemail(name, duration_s, audio)
    if audio is not None:
        try:
            await ctx.ari.delete_stored_recording(name)
        except AriError as exc:
            log.info("voicemail_delete_failed", recording=name, error=str(exc))
    escalate_if_configured(ctx, "voicemail", outside_hours=outside_hours)
    if not ctx.caller.gone:
        try:
            await ctx.caller.play(
                ctx.say("voicemail_saved") + ctx.say("goodbye"), stop_on_digit=False
            )
        except LegGone:
            # Callers often hang up once they have said their piece: the call still ended
            # with a voicemail (not abandoned, and not escalated a second time for it).
            pass


def _length(audio: bytes) -> float | None:
    try:
        return round(read_wav(audio).duration, 2)
    except AudioFileError:
        return None
