"""Which numbers listen for words, and with what: voice on or off per number, the engine's
model loaded at start-up (not on the first caller), and what `check-config` says about it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import structlog

from ari_controller.numbers import Number, numbered_routes
from ari_controller.speech.engines import (
    Recognizer,
    SpeechUnavailable,
    engine_languages,
    get_recognizer,
)
from ari_controller.speech.vocabulary import Vocabulary, normalize, route_vocabulary

log = structlog.get_logger(__name__)


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
    """Load every engine a number listens with, in a worker thread, before calls arrive, and
    what it needs for each menu (an engine with `prepare`: PocketSphinx builds a menu's
    searches in about 2 s of CPU, which the first caller would otherwise wait for)."""
    loaded: set[int] = set()
    for number in numbers:
        recognizer = recognizer_for(number)
        if recognizer is None:
            continue
        if id(recognizer) not in loaded:
            loaded.add(id(recognizer))
            started = time.monotonic()
            await asyncio.to_thread(recognizer.warm_up)
            log.info(
                "speech_model_loaded",
                engine=recognizer.name,
                seconds=round(time.monotonic() - started, 2),
            )
        prepare: Callable[[Vocabulary], None] | None = getattr(recognizer, "prepare", None)
        if prepare is None:
            continue
        for routes in (number.routes, number.outside_hours.routes):
            vocabulary = route_vocabulary(numbered_routes(routes), number.language)
            if vocabulary:
                await asyncio.to_thread(prepare, vocabulary)


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
