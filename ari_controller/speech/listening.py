"""Waiting for a key or a word on one leg, until a deadline: what the call flow calls.

Utterance by utterance: each is recorded on the channel (a key ends it and wins), fetched,
decoded in a worker thread and judged against the threshold. Silence and rejected words
keep listening until the deadline, so a key pressed late still counts as before.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import structlog

from ari_controller.calls.journal import CallJournal, Party, SpeechHeard
from ari_controller.calls.leg import Leg
from ari_controller.numbers import Number, SpeechSettings, numbered_routes
from ari_controller.prompts.audio import AudioFileError
from ari_controller.speech.engines import (
    RecognitionTimeout,
    Recognizer,
    SpeechUnavailable,
    engine_languages,
    get_recognizer,
    recognize,
)
from ari_controller.speech.vocabulary import (
    Decision,
    Vocabulary,
    decide,
    normalize,
    route_vocabulary,
)

log = structlog.get_logger(__name__)

_utterances = itertools.count(1)


def primary_language(language: str) -> str:
    return language.replace("_", "-").lower().split("-", 1)[0]


def speech_active(number: Number) -> bool:
    """Voice input is on for this number and its engine has a model for its language."""
    settings = number.speech
    if not settings.enabled:
        return False
    return primary_language(number.language) in engine_languages(settings.engine)


def recognizer_for(number: Number) -> Recognizer | None:
    """The number's engine, or None (digits only) when voice is off or cannot work here."""
    if not speech_active(number):
        return None
    try:
        return get_recognizer(number.speech.engine, number.speech.model_dir)
    except SpeechUnavailable as exc:
        log.warning("speech_unavailable", number=number.name, error=str(exc))
        return None


async def load_speech_models(numbers: Iterable[Number]) -> None:
    """Load every engine a number listens with, in a worker thread, before calls arrive."""
    loaded: set[int] = set()
    for number in numbers:
        recognizer = recognizer_for(number)
        if recognizer is not None and id(recognizer) not in loaded:
            loaded.add(id(recognizer))
            started = time.monotonic()
            await asyncio.to_thread(recognizer.warm_up)
            log.info(
                "speech_model_loaded",
                engine=recognizer.name,
                seconds=round(time.monotonic() - started, 2),
            )


def speech_notes(number: Number) -> list[str]:
    """What `check-config` tells about a number's voice input: when it is digits only, and
    which route words the engine cannot recognize (not in its dictionary)."""
    settings = number.speech
    if not settings.enabled:
        return []
    if not speech_active(number):
        return [
            f"no speech model for language '{number.language}' with engine "
            f"'{settings.engine}': digits only"
        ]
    try:
        recognizer = get_recognizer(settings.engine, settings.model_dir)
    except SpeechUnavailable as exc:
        return [f"speech engine '{settings.engine}' unavailable ({exc}): digits only"]
    notes = []
    for routes in (number.routes, number.outside_hours.routes):
        vocabulary = route_vocabulary(numbered_routes(routes), number.language)
        unknown = recognizer.unknown_words(vocabulary)
        for digit, route in numbered_routes(routes):
            said = [normalize(w) for w in (route.label, *route.keywords)]
            heard = [p for p in said if p and not set(p.split()) & unknown]
            left_out = [p for p in said if p and p not in heard]
            if left_out and heard:
                notes.append(
                    f"route {digit} ({route.label}): {', '.join(map(repr, left_out))} not in "
                    f"the speech dictionary; callers can say {', '.join(map(repr, heard))}"
                )
            elif left_out:
                notes.append(
                    f"route {digit} ({route.label}): no word of it is in the speech "
                    f"dictionary ({', '.join(left_out)}): by digit only"
                )
    return notes


# counted: a phrase at or above the threshold; rejected: words that did not count; silence:
# no voice; too_slow: decoding outlasted recognize_timeout_s; unreadable: a broken file.
UtteranceResult = Literal["counted", "rejected", "silence", "too_slow", "unreadable"]


@dataclass(frozen=True, slots=True)
class Utterance:
    """One recording listened to: what became of it, for the timeline and the metrics."""

    result: UtteranceResult
    phrase: str | None
    confidence: float
    detail: str
    decode_s: float


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
            f"{leg.id}-said-{next(_utterances)}",
            max_duration_s=max(1, min(settings.listen_s, int(left))),
            max_silence_s=settings.end_silence_s,
        )
        if heard.digit is not None:
            return Answer(heard.digit, None, tuple(utterances))
        if heard.audio is None:
            continue
        started = time.monotonic()
        try:
            recognition = await recognize(
                recognizer, heard.audio, vocabulary, settings.recognize_timeout_s
            )
        except (RecognitionTimeout, AudioFileError) as exc:
            log.warning("speech_not_recognized", leg=leg.id, error=str(exc))
            failed: UtteranceResult = (
                "too_slow" if isinstance(exc, RecognitionTimeout) else "unreadable"
            )
            utterances.append(Utterance(failed, None, 0.0, str(exc), time.monotonic() - started))
            continue
        decision = decide(recognition, vocabulary, settings.min_confidence)
        result: UtteranceResult
        if decision.meaning is not None:
            result = "counted"
        else:
            result = "rejected" if recognition.speech else "silence"
        utterances.append(
            Utterance(
                result,
                recognition.phrase,
                recognition.confidence,
                recognition.detail,
                time.monotonic() - started,
            )
        )
        if decision.meaning is not None:
            return Answer(None, decision, tuple(utterances))
        if recognition.speech:
            log.info(
                "speech_rejected",
                leg=leg.id,
                phrase=recognition.phrase,
                confidence=recognition.confidence,
            )
