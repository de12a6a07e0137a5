"""What a caller or responder may say, and whether what was heard counts.

Pure: no audio, no engine. A `Vocabulary` maps spoken phrases to what they mean (a route's
digit, or "accept"); `decide` applies the confidence threshold to an engine's `Recognition`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ari_controller.numbers import Route

ACCEPT = "accept"

# The word a responder says to take the call, per language. Only languages listed here can
# accept by voice at all; whether a recognizer exists for them is the engine's business.
CONTINUE_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("continue",),
    "de": ("weiter",),
    "fr": ("continuer",),
    "es": ("continuar",),
}


# A confirmation ("Did you say billing? Say yes or press 1."): only YES goes on; NO and
# anything else ask the menu again.
YES = "yes"
NO = "no"

# How callers say yes and no, per language. On the phone band the /s/ of "yes" is mostly
# lost and "yeah", "yep" are what the engine hears: they must be phrases of their own, or
# they compete with "yes" as near words and win (bench/phoneband/RESULTS.md).
CONFIRM_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {YES: ("yes", "yeah", "yep", "yup", "correct"), NO: ("no", "nope", "nah")},
    "de": {YES: ("ja", "genau", "richtig"), NO: ("nein", "nee")},
    "fr": {YES: ("oui", "ouais", "exact"), NO: ("non",)},
    "es": {YES: ("sí", "claro", "correcto"), NO: ("no",)},
}


def _primary(language: str) -> str:
    return language.replace("_", "-").lower().split("-", 1)[0]


def normalize(text: str) -> str:
    """Lower case, letters and digits only, single spaces: how phrases are compared."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", folded)
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Spoken phrases (normalized) and what each means."""

    language: str
    meanings: tuple[tuple[str, str], ...]  # (phrase, meaning)
    # Words one sound from a phrase compete with it ("building" with "billing"): a near word
    # must never choose a route. The confirmation keeps only farther ones: its safety is that
    # "no" and other words are never taken for "yes", while near words ("yet", "yep" said
    # with the line's 200 ms of trailing silence) only cost it a real "yes".
    near_words_compete: bool = True

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(phrase for phrase, _ in self.meanings)

    def meaning_of(self, phrase: str) -> str | None:
        wanted = normalize(phrase)
        return next((meaning for p, meaning in self.meanings if p == wanted), None)

    def words(self) -> set[str]:
        return {word for phrase in self.phrases for word in phrase.split()}

    def __bool__(self) -> bool:
        return bool(self.meanings)


def _unique(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """First meaning wins for a phrase two routes share (it cannot tell them apart)."""
    seen: dict[str, str] = {}
    for phrase, meaning in pairs:
        if phrase and phrase not in seen:
            seen[phrase] = meaning
    return tuple(seen.items())


def route_vocabulary(routes: Sequence[tuple[str, Route]], language: str) -> Vocabulary:
    """Each route's label and keywords, meaning that route's digit."""
    pairs = [
        (normalize(said), digit)
        for digit, route in routes
        for said in (route.label, *route.keywords)
    ]
    return Vocabulary(language, _unique(pairs))


def accept_vocabulary(language: str) -> Vocabulary:
    """ "continue" (or its equivalent), meaning the responder accepts."""
    words = CONTINUE_WORDS.get(_primary(language), ())
    return Vocabulary(language, _unique((word, ACCEPT) for word in words))


def confirm_vocabulary(language: str) -> Vocabulary:
    """Yes and no in the caller's usual words, meaning YES or NO."""
    words = CONFIRM_WORDS.get(_primary(language), {})
    return Vocabulary(
        language,
        _unique((normalize(said), meaning) for meaning, said_ in words.items() for said in said_),
        near_words_compete=False,
    )


@dataclass(frozen=True, slots=True)
class Recognition:
    """What an engine made of one utterance.

    `phrase` is the vocabulary phrase it matched best (None: nothing matched, or no speech);
    `confidence` in [0, 1]; `speech` tells silence from something unrecognized.
    """

    phrase: str | None
    confidence: float
    speech: bool
    detail: str = ""
    measures: tuple[tuple[str, float], ...] = ()  # the engine's raw scores, for calibration

    @staticmethod
    def silence() -> Recognition:
        return Recognition(None, 0.0, False)


@dataclass(frozen=True, slots=True)
class Decision:
    """A recognition judged against the vocabulary and the threshold."""

    meaning: str | None  # a route digit, ACCEPT, or None when rejected
    phrase: str | None
    confidence: float
    speech: bool


def decide(recognition: Recognition, vocabulary: Vocabulary, min_confidence: float) -> Decision:
    """Only a vocabulary phrase heard with at least `min_confidence` means anything."""
    meaning = None
    if recognition.phrase is not None and recognition.confidence >= min_confidence:
        meaning = vocabulary.meaning_of(recognition.phrase)
    return Decision(meaning, recognition.phrase, recognition.confidence, recognition.speech)
