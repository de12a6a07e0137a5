"""Waiting for a key or a word on one leg, until a deadline: one call step, used by the menu
and by the responder's prompt.

Utterance by utterance: each is recorded on the channel (a key ends it and wins), fetched,
decoded in a worker thread and judged against the threshold. Silence and rejected words
keep listening until the deadline, so a key pressed late still counts as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ari_controller.calls import ids
from ari_controller.calls.journal import CallJournal, Party, SpeechHeard
from ari_controller.calls.leg import Leg
from ari_controller.numbers import SpeechSettings
from ari_controller.speech.engines import Recognizer
from ari_controller.speech.utterances import Utterance, judge
from ari_controller.speech.vocabulary import Decision, Vocabulary


@dataclass(frozen=True, slots=True)
class Answer:
    """A key, a word that counts (`decision.meaning`), or neither by the deadline."""

    digit: str | None
    decision: Decision | None
    utterances: tuple[Utterance, ...] = ()

    @property
    def said_something(self) -> bool:
        """Words were heard, but none counted."""
        return any(heard.result == "rejected" for heard in self.utterances)


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
