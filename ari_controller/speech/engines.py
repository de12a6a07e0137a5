"""Which engine turns a short utterance into one of a few phrases, and how each is driven.

Engines are blocking and CPU-bound: `recognize` runs one in a worker thread, bounded by a
timeout, never on the event loop. An engine is chosen by name (`numbers[].speech.engine`);
`register_engine` adds another (e.g. one whose model is installed on this machine).

PocketSphinx (the `pocketsphinx` wheel, which carries the US-English model) decodes the
utterance with a grammar of the vocabulary's phrases: the best phrase or nothing. A grammar
always forces a choice, so the confidence is the lower of two comparisons of that choice:
with a free phone loop over the same frames (a word really said fits its phones about as well
as the best phone sequence does), and with a grammar of common English words (a caller who
said something else fits one of those better). Each is a log-likelihood ratio per frame,
mapped to [0, 1] by a logistic calibrated on synthesized voices (docs/speech.md).
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ari_controller.prompts.audio import Pcm, read_wav, resample
from ari_controller.speech.distractors import ENGLISH
from ari_controller.speech.vocabulary import Recognition, Vocabulary

__all__ = [
    "ENGINES",
    "PocketSphinxEngine",
    "RecognitionTimeout",
    "Recognizer",
    "SpeechUnavailable",
    "engine_languages",
    "get_recognizer",
    "has_speech",
    "recognize",
    "register_engine",
]


class SpeechUnavailable(RuntimeError):
    """The engine (or its model) is not available on this machine."""


class RecognitionTimeout(TimeoutError):
    """The engine did not answer in time (the machine is overloaded)."""


class Recognizer(Protocol):
    """Turns mono 16-bit PCM into the best phrase of a vocabulary, with a confidence."""

    @property
    def name(self) -> str: ...

    def languages(self) -> frozenset[str]: ...

    def unknown_words(self, vocabulary: Vocabulary) -> set[str]:
        """Words of the vocabulary the engine cannot recognize (not in its dictionary)."""
        ...

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        """Blocking."""
        ...


# --- speech presence (cheap, before any engine runs) ------------------------------------------

_FRAME_SECONDS = 0.02
# Mean absolute amplitude of a 20 ms frame that counts as voice (Asterisk's DSP default).
_VOICE_LEVEL = 256
# Less voice than this is a click or a breath, not a word.
_MIN_VOICE_SECONDS = 0.12


def has_speech(pcm: Pcm) -> bool:
    """Is there enough voiced audio to be worth decoding?"""
    samples = array.array("h")
    samples.frombytes(pcm.samples)
    size = max(1, int(pcm.sample_rate * _FRAME_SECONDS))
    voiced = 0
    for start in range(0, len(samples), size):
        frame = samples[start : start + size]
        if frame and sum(abs(s) for s in frame) / len(frame) >= _VOICE_LEVEL:
            voiced += 1
    return voiced * _FRAME_SECONDS >= _MIN_VOICE_SECONDS


# --- PocketSphinx ------------------------------------------------------------------------------

_DECODE_RATE = 16000  # the bundled acoustic model's rate; phone audio (8 kHz) is upsampled
_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]"})
# Below e^-745 a double is 0: a very long word's density underflows; count it as a bad fit.
_LOG_FLOOR = -745.0
# Calibration of the per-frame log-likelihood ratios into [0, 1] (measured on espeak-ng
# voices at 8 kHz, see docs/speech.md). Against the phone loop, said words sit around
# -2.5..-4, forced unrelated words around -4.5..-6.5; against common words, said words sit
# above 0 and unrelated ones mostly below.
_PHONE_MIDPOINT = -4.0
_PHONE_SLOPE = 2.0
_OTHER_MIDPOINT = 0.0
_OTHER_SLOPE = 3.0
_MAX_DECODERS = 2


def _ln(density: float) -> float:
    return math.log(density) if density > 0 else _LOG_FLOOR


def _word(name: str) -> str:
    """cmudict marks alternative pronunciations as `word(2)`."""
    return name.split("(", 1)[0]


def _grammar(phrases: Iterable[str]) -> str:
    alternatives = " | ".join(f"( {phrase} )" for phrase in sorted(set(phrases)))
    return f"#JSGF V1.0;\ngrammar said;\npublic <said> = {alternatives} ;\n"


def _logistic(value: float, midpoint: float, slope: float) -> float:
    return 1.0 / (1.0 + math.exp(-slope * (value - midpoint)))


def _default_model_dir() -> Path:
    try:
        import pocketsphinx  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - the wheel is a dependency
        raise SpeechUnavailable("the pocketsphinx package is not installed") from exc
    return Path(pocketsphinx.__file__).parent / "model" / "en-us"


@dataclass
class _Decoder:
    decoder: Any
    grammars: set[str] = field(default_factory=set)


class PocketSphinxEngine:
    """PocketSphinx with a grammar per vocabulary; thread-safe through a small decoder pool."""

    def __init__(self, model_dir: Path | None = None, language: str = "en") -> None:
        self.model_dir = model_dir or _default_model_dir()
        self.language = language
        acoustic = self.model_dir / self.model_dir.name
        dictionary = next(iter(sorted(self.model_dir.glob("*.dict"))), None)
        if not acoustic.is_dir() or dictionary is None:
            raise SpeechUnavailable(f"no PocketSphinx model in {self.model_dir}")
        self._acoustic = acoustic
        self._dictionary = dictionary
        phone_lms = sorted(self.model_dir.glob("*-phone.lm.bin"))
        if not phone_lms:
            raise SpeechUnavailable(f"no phone language model in {self.model_dir}")
        self._phone_lm = phone_lms[0]
        self._free: list[_Decoder] = []
        self._lock = threading.Lock()
        self._available = threading.Semaphore(_MAX_DECODERS)
        self._words: set[str] | None = None

    @property
    def name(self) -> str:
        return "pocketsphinx"

    def languages(self) -> frozenset[str]:
        return frozenset({self.language})

    def _new_decoder(self) -> _Decoder:
        from pocketsphinx import Decoder

        decoder = Decoder(
            hmm=str(self._acoustic),
            dict=str(self._dictionary),
            lm=None,
            samprate=_DECODE_RATE,
            loglevel="FATAL",
        )
        decoder.add_allphone_file("phones", str(self._phone_lm))
        return _Decoder(decoder)

    def _borrow(self) -> _Decoder:
        self._available.acquire()
        with self._lock:
            if self._free:
                return self._free.pop()
        try:
            return self._new_decoder()
        except BaseException:
            self._available.release()
            raise

    def _give_back(self, decoder: _Decoder) -> None:
        with self._lock:
            self._free.append(decoder)
        self._available.release()

    def warm_up(self) -> None:
        """Load the model now rather than during the first call."""
        self._give_back(self._borrow())

    def dictionary_words(self) -> set[str]:
        if self._words is None:
            words = set()
            with self._dictionary.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    head = line.split(" ", 1)[0]
                    if head:
                        words.add(_word(head))
            self._words = words
        return self._words

    def unknown_words(self, vocabulary: Vocabulary) -> set[str]:
        return vocabulary.words() - self.dictionary_words()

    def _usable(self, vocabulary: Vocabulary) -> list[str]:
        known = self.dictionary_words()
        return [p for p in vocabulary.phrases if all(w in known for w in p.split())]

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        if not has_speech(pcm):
            return Recognition.silence()
        phrases = self._usable(vocabulary)
        if not phrases:
            return Recognition(None, 0.0, True, "no phrase the engine knows")
        said_words = {w for p in phrases for w in p.split()}
        others = [w for w in ENGLISH if w not in said_words]
        audio = resample(pcm, _DECODE_RATE).samples
        held = self._borrow()
        try:
            segments = self._decode_with(held, _grammar(phrases), audio)
            words = [s for s in segments if s.word not in _FILLERS]
            if not words:
                return Recognition(None, 0.0, True, "no phrase fits")
            phrase = " ".join(_word(s.word) for s in words)
            said_all = sum(_ln(s.ascore) for s in segments)
            said_words_score = sum(_ln(s.ascore) for s in words)
            first, last = words[0].start_frame, words[-1].end_frame
            held.decoder.activate_search("phones")
            phones = self._decode(held.decoder, audio)
            other_segments = self._decode_with(held, _grammar(others), audio)
            frames = max(1, held.decoder.n_frames())
        finally:
            self._give_back(held)
        free_score = 0.0
        for s in phones:
            overlap = min(last, s.end_frame) - max(first, s.start_frame) + 1
            if overlap > 0:
                free_score += _ln(s.ascore) * overlap / (s.end_frame - s.start_frame + 1)
        phone_llr = (said_words_score - free_score) / (last - first + 1)
        # No common word fits at all: nothing to compare with, the phone loop decides alone.
        other_llr = (
            (said_all - sum(_ln(s.ascore) for s in other_segments)) / frames
            if other_segments
            else 10.0
        )
        confidence = min(
            _logistic(phone_llr, _PHONE_MIDPOINT, _PHONE_SLOPE),
            _logistic(other_llr, _OTHER_MIDPOINT, _OTHER_SLOPE),
        )
        detail = f"phones {phone_llr:+.2f}/frame, words {other_llr:+.2f}/frame"
        measures = (("phones", round(phone_llr, 3)), ("words", round(other_llr, 3)))
        return Recognition(phrase, round(confidence, 3), True, detail, measures)

    def _decode_with(self, held: _Decoder, grammar: str, audio: bytes) -> list[Any]:
        key = "g" + hashlib.sha1(grammar.encode()).hexdigest()[:16]
        if key not in held.grammars:
            held.decoder.add_jsgf_string(key, grammar)
            held.grammars.add(key)
        held.decoder.activate_search(key)
        return self._decode(held.decoder, audio)

    @staticmethod
    def _decode(decoder: Any, audio: bytes) -> list[Any]:
        decoder.start_utt()
        decoder.process_raw(audio, full_utt=True)
        decoder.end_utt()
        return list(decoder.seg() or [])


# --- the registry --------------------------------------------------------------------------

EngineFactory = Callable[[str | None], Recognizer]


def _pocketsphinx(model_dir: str | None) -> Recognizer:
    return PocketSphinxEngine(Path(model_dir) if model_dir else None)


ENGINES: dict[str, tuple[EngineFactory, frozenset[str]]] = {
    # name -> (factory taking the configured model directory, languages of its default model)
    "pocketsphinx": (_pocketsphinx, frozenset({"en"})),
}

_instances: dict[tuple[str, str | None], Recognizer] = {}
_instances_lock = threading.Lock()


def register_engine(name: str, factory: EngineFactory, languages: frozenset[str]) -> None:
    """Make another engine available by name (its factory may raise SpeechUnavailable)."""
    ENGINES[name] = (factory, languages)


def engine_languages(name: str) -> frozenset[str]:
    """Languages an engine has a model for (primary subtags, e.g. "en")."""
    entry = ENGINES.get(name)
    return entry[1] if entry else frozenset()


def get_recognizer(name: str, model_dir: str | None = None) -> Recognizer:
    """One shared instance per engine and model (models are large; load them once)."""
    key = (name, model_dir)
    with _instances_lock:
        if key not in _instances:
            entry = ENGINES.get(name)
            if entry is None:
                raise SpeechUnavailable(f"unknown speech engine '{name}'")
            _instances[key] = entry[0](model_dir)
        return _instances[key]


async def recognize(
    recognizer: Recognizer, wav: bytes, vocabulary: Vocabulary, timeout: float
) -> Recognition:
    """Decode a WAV utterance in a worker thread; RecognitionTimeout when it takes too long."""
    pcm = read_wav(wav)
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(recognizer.recognize, pcm, vocabulary), timeout
        )
    except TimeoutError as exc:
        # The thread finishes on its own; its answer comes too late for this caller.
        raise RecognitionTimeout(f"speech recognition took longer than {timeout} s") from exc
