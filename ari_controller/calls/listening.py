"""Waiting for a key or a word on one leg, until a deadline: one call step, used by the menu
and by the responder's prompt.

Utterance by utterance: each is recorded on the channel (a key ends it and wins), fetched,
decoded in a worker thread and judged against the threshold. Silence and rejected words
keep listening until the deadline, so a key pressed late still counts as before.

Barge-in (`play_and_listen`): while prompts play, utterances are recorded on a snoop channel
(a recording on the caller's own channel would wait for the prompt to end), so a word said
during the menu stops it as a key does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from ari_controller.ari.errors import AriError
from ari_controller.calls import ids
from ari_controller.calls.journal import CallJournal, Party, SpeechHeard
from ari_controller.calls.leg import Leg, LegGone
from ari_controller.numbers import SpeechSettings
from ari_controller.speech.engines import Recognizer
from ari_controller.speech.levels import gated, speech_level_dbfs
from ari_controller.speech.utterances import Utterance, judge
from ari_controller.speech.vocabulary import Decision, Vocabulary

log = structlog.get_logger(__name__)

# The echo guard. While a prompt plays, the caller's line carries its echo back (a hybrid or
# a handset, typically 20-30 dB below the prompt), and the menu says the route words itself
# ("For billing, press 1 or say billing"). Words heard during a prompt count only as loud as
# a caller speaks: the prompts play at about -19 dBFS (their voiced frames), so their echo is
# at -39 dBFS or below, while callers reach us at -15 to -30 dBFS. Words after the prompt
# have no echo to fear and count at any level, as before.
BARGE_IN_MIN_DBFS = -35.0
# And before decoding, frames of such a recording quieter than this are silenced (a noise
# gate): faint echoed speech around the caller's word makes the recognizer hear other words
# ("word database", "read"): measured, the word with the prompt's echo 20-30 dB down under it
# was never counted ungated, and was at 0.83-0.97 gated (docs/speech.md, Barge-in).
BARGE_IN_GATE_DBFS = -40.0
# How long the snoop channel may take to enter the application.
SNOOP_START_S = 2.0


@dataclass(frozen=True, slots=True)
class Answer:
    """A key, a word that counts (`decision.meaning`), or neither by the deadline."""

    digit: str | None
    decision: Decision | None
    utterances: tuple[Utterance, ...] = ()
    # How many of the first utterances were heard while the prompt played (barge-in): words
    # then that did not count are no answer (a prompt's echo, or talk over it), not a wrong one.
    during_prompt: int = 0

    @property
    def said_something(self) -> bool:
        """Words were heard after the prompt, but none counted."""
        return any(heard.result == "rejected" for heard in self.utterances[self.during_prompt :])


def note_utterances(
    journal: CallJournal, answer: Answer, party: Party, leg: str | None = None
) -> None:
    """Every utterance on the call's timeline (`speech_heard`) and in its metrics: what a
    caller said that did not count is what an operator tuning `min_confidence` needs to see."""
    for heard in answer.utterances:
        journal.speech_heard(
            SpeechHeard(
                party=party,
                leg=leg,
                result=heard.result,
                phrase=heard.phrase,
                confidence=heard.confidence,
                detail=heard.detail,
                decode_ms=round(heard.decode_s * 1000),
            )
        )


async def key_or_word(
    leg: Leg,
    timeout: float,
    vocabulary: Vocabulary,
    settings: SpeechSettings,
    recognizer: Recognizer,
) -> Answer:
    deadline = time.monotonic() + timeout
    utterances: list[Utterance] = []
    while True:
        left = deadline - time.monotonic()
        if left < 1.0:
            # Too short for a recording (whole seconds): only a key can still come.
            digit = await leg.wait_digit(max(0.0, left))
            return Answer(digit, None, tuple(utterances))
        heard = await leg.listen(
            ids.utterance_name(leg.id),
            max_duration_s=max(1, min(settings.listen_s, int(left))),
            max_silence_s=settings.end_silence_s,
        )
        if heard.digit is not None:
            return Answer(heard.digit, None, tuple(utterances))
        if heard.audio is None:
            continue
        utterance, decision = await judge(heard.audio, vocabulary, settings, recognizer)
        utterances.append(utterance)
        if decision is not None:
            return Answer(None, decision, tuple(utterances))


def _db(level: float | None) -> str:
    return "no voice" if level is None else f"{level:.0f} dBFS"


@dataclass(frozen=True, slots=True)
class _Heard:
    audio: bytes
    during_prompt: bool  # recording began before the prompt ended: its echo may be in it


async def play_and_listen(
    leg: Leg,
    prompts: Sequence[str],
    vocabulary: Vocabulary,
    settings: SpeechSettings,
    recognizer: Recognizer,
    timeout: float,
    *,
    app: str,
) -> Answer:
    """Play the prompts while listening (barge-in), then listen until `timeout` after them.

    A key stops the prompt and wins, as with `Leg.play`; a word that counts stops the prompt at
    once and is the answer. Utterances are recorded back to back on a snoop channel (a
    snoop=in channel: only what the caller says, never the prompt itself) and judged while the
    next one is recorded; words heard during the prompt must pass the echo guard
    (`BARGE_IN_MIN_DBFS`). Without a snoop (Asterisk refused it) the prompt plays as before and
    `key_or_word` listens after it. The snoop is hung up at the end, whatever the end.
    """
    snoop = await leg.snoop(app, SNOOP_START_S)
    if snoop is None:
        digit = await leg.play(prompts)
        if digit is not None:
            return Answer(digit, None)
        return await key_or_word(leg, timeout, vocabulary, settings, recognizer)
    try:
        return await _barge_in(leg, snoop, prompts, vocabulary, settings, recognizer, timeout)
    finally:
        await asyncio.shield(_end_snoop(snoop))


async def _end_snoop(snoop: Leg) -> None:
    await snoop.hangup()
    snoop.release()


async def _barge_in(
    leg: Leg,
    snoop: Leg,
    prompts: Sequence[str],
    vocabulary: Vocabulary,
    settings: SpeechSettings,
    recognizer: Recognizer,
    timeout: float,
) -> Answer:
    heard: asyncio.Queue[_Heard | None] = asyncio.Queue()
    utterances: list[Utterance] = []
    during: list[bool] = []
    prompt_over = False

    def answer(digit: str | None, decision: Decision | None) -> Answer:
        # Utterances are judged in the order they were recorded: those of the prompt first.
        return Answer(digit, decision, tuple(utterances), sum(during))

    async def keys() -> str | None:
        """The prompt (a key stops it), then a key until the input timeout."""
        nonlocal prompt_over
        digit = await leg.play(prompts)
        prompt_over = True
        if digit is not None:
            return digit
        return await leg.wait_digit(timeout)

    async def record() -> None:
        """Utterances back to back on the snoop; each is judged while the next is recorded."""
        while True:
            during_prompt = not prompt_over
            try:
                got = await snoop.listen(
                    ids.utterance_name(snoop.id),
                    max_duration_s=settings.listen_s,
                    max_silence_s=settings.end_silence_s,
                )
            except LegGone:
                return  # the caller hung up (its snoop goes with it), or the snoop went
            except AriError as exc:
                # The snoop left the application before its StasisEnd reached us (409), or
                # Asterisk failed: keys still count, and the prompt plays on.
                log.info("barge_in_listening_ended", snoop=snoop.id, error=str(exc))
                return
            if got.audio is not None:
                heard.put_nowait(_Heard(got.audio, during_prompt))

    async def words() -> Decision | None:
        """The first utterance that counts (None once the recorder is done)."""
        while (item := await heard.get()) is not None:
            audio = gated(item.audio, BARGE_IN_GATE_DBFS) if item.during_prompt else item.audio
            utterance, decision = await judge(audio, vocabulary, settings, recognizer)
            if item.during_prompt:
                if utterance.result == "silence":
                    continue  # the snoop records all along: its silences are not news
                if decision is not None:
                    level = speech_level_dbfs(item.audio)
                    if level is None or level < BARGE_IN_MIN_DBFS:
                        utterance = replace(
                            utterance,
                            result="rejected",
                            detail=f"heard during the prompt at {_db(level)}: too quiet, an echo?",
                        )
                        decision = None
            utterances.append(utterance)
            during.append(item.during_prompt)
            if decision is not None:
                return decision
        return None

    key_task = asyncio.ensure_future(keys())
    recorder = asyncio.ensure_future(record())
    judge_task = asyncio.ensure_future(words())
    try:
        await asyncio.wait({key_task, judge_task}, return_when=asyncio.FIRST_COMPLETED)
        if judge_task.done() and judge_task.result() is not None:
            return answer(None, judge_task.result())
        digit = await key_task  # raises LegGone when the caller hung up
        if digit is not None:
            return answer(digit, None)
        # The input window is over: what was heard before its end is still judged.
        await _cancel(recorder)
        heard.put_nowait(None)
        async with asyncio.timeout(settings.recognize_timeout_s + 1.0):
            decision = await judge_task
        return answer(None, decision)
    finally:
        for task in (key_task, recorder, judge_task):
            await _cancel(task)


async def _cancel(task: asyncio.Future[object] | asyncio.Task[object]) -> None:
    """Cancel a helper task and wait for its clean-up (a prompt stopped, a recording deleted)."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task
