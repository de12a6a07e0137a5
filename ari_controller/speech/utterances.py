"""One utterance, decoded and judged: did the words count, and what were they taken for."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import structlog

from ari_controller.numbers import SpeechSettings
from ari_controller.prompts.audio import AudioFileError
from ari_controller.speech.engines import RecognitionTimeout, Recognizer, recognize
from ari_controller.speech.vocabulary import Decision, Vocabulary, decide

log = structlog.get_logger(__name__)

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


async def judge(
    audio: bytes, vocabulary: Vocabulary, settings: SpeechSettings, recognizer: Recognizer
) -> tuple[Utterance, Decision | None]:
    """Decode one recording (in a worker thread, bounded by `recognize_timeout_s`) and judge
    it against the vocabulary and the threshold; the decision is None when nothing counted."""
    started = time.monotonic()
    try:
        recognition = await recognize(recognizer, audio, vocabulary, settings.recognize_timeout_s)
    except (RecognitionTimeout, AudioFileError) as exc:
        log.warning("speech_not_recognized", error=str(exc))
        failed: UtteranceResult = (
            "too_slow" if isinstance(exc, RecognitionTimeout) else "unreadable"
        )
        return Utterance(failed, None, 0.0, str(exc), time.monotonic() - started), None
    decision = decide(recognition, vocabulary, settings.min_confidence)
    result: UtteranceResult
    if decision.meaning is not None:
        result = "counted"
    else:
        result = "rejected" if recognition.speech else "silence"
    utterance = Utterance(
        result,
        recognition.phrase,
        recognition.confidence,
        recognition.detail,
        time.monotonic() - started,
    )
    if decision.meaning is None and recognition.speech:
        log.info("speech_rejected", phrase=recognition.phrase, confidence=recognition.confidence)
    return utterance, decision if decision.meaning is not None else None
