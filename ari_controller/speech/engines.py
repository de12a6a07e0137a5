"""Which engine turns a short utterance into one of a few phrases, and how each is driven.

Engines are blocking and CPU-bound: `recognize` runs one in a worker thread, bounded by a
timeout, never on the event loop. An engine is chosen by name (`numbers[].speech.engine`);
`register_engine` adds another (e.g. one whose model is installed on this machine).

PocketSphinx (the `pocketsphinx` wheel, which carries the US-English model) decodes the
utterance once with a grammar of the vocabulary's phrases and other words: ~350 common English
words and the dictionary's words that sound like the phrases ("contain" for "continue"). If
one of the other words fits best, the caller said something else: nothing is chosen. If a
phrase fits best, its confidence is how well it fits its own phones compared with a free phone
loop over the same frames (a word really said fits about as well as the best phone sequence
does): a log-likelihood ratio per frame, mapped to [0, 1] by a logistic calibrated on
synthesized voices (docs/speech.md).
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import math
import re
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

    def warm_up(self) -> None:
        """Load the model now (blocking), so that the first caller who speaks does not wait."""
        ...


# --- speech presence (cheap, before any engine runs) ------------------------------------------

_FRAME_SECONDS = 0.02
# Mean absolute amplitude of a 20 ms frame that counts as voice (Asterisk's DSP default).
_VOICE_LEVEL = 256
# Less voice than this is a click or a breath, not a word.
_MIN_VOICE_SECONDS = 0.12
# Silence kept either side of the words: enough for the model's silence at the edges.
_MARGIN_SECONDS = 0.5


def _voiced_frames(pcm: Pcm) -> list[int]:
    samples = array.array("h")
    samples.frombytes(pcm.samples)
    size = max(1, int(pcm.sample_rate * _FRAME_SECONDS))
    voiced = []
    for index, start in enumerate(range(0, len(samples), size)):
        frame = samples[start : start + size]
        if frame and sum(abs(s) for s in frame) / len(frame) >= _VOICE_LEVEL:
            voiced.append(index)
    return voiced


def around_speech(pcm: Pcm, margin_s: float = _MARGIN_SECONDS) -> Pcm | None:
    """The voiced part and a little silence either side, or None when there is too little
    voice to be worth decoding. The rest of a recording (the silence that ended it, up to
    `end_silence_s`) costs decoding time and tells nothing."""
    voiced = _voiced_frames(pcm)
    if len(voiced) * _FRAME_SECONDS < _MIN_VOICE_SECONDS:
        return None
    size = max(1, int(pcm.sample_rate * _FRAME_SECONDS))
    margin = int(pcm.sample_rate * margin_s)
    start = max(0, voiced[0] * size - margin)
    end = min(len(pcm.samples) // 2, (voiced[-1] + 1) * size + margin)
    return Pcm(pcm.samples[2 * start : 2 * end], pcm.sample_rate)


def has_speech(pcm: Pcm) -> bool:
    """Is there enough voiced audio to be worth decoding?"""
    return around_speech(pcm) is not None


# --- PocketSphinx ------------------------------------------------------------------------------

_DECODE_RATE = 16000  # the bundled acoustic model's rate; phone audio (8 kHz) is upsampled
_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]"})
# Below e^-745 a double is 0: a very long word's density underflows; count it as a bad fit.
_LOG_FLOOR = -745.0
# Calibration of the per-frame log-likelihood ratio against the phone loop into [0, 1]
# (measured at 8 kHz, see docs/speech.md): words really said sit around -1.5..-2.5 for a
# natural voice and -2.5..-4 for espeak's formant voices, other words that the search still
# took for a phrase around -4..-7.
_PHONE_MIDPOINT = -4.0
_PHONE_SLOPE = 2.0
_MAX_DECODERS = 2
# Sound-alikes: dictionary words within this share of a phrase's phones (edit distance), but
# not within two phones: closer ones are the phrase itself to a caller ("payment",
# "peyman" for "payments"), and this model cannot tell them apart.
_ALIKE_SHARE = 0.4
_ALIKE_MIN_DISTANCE = 3
_ALIKES_PER_PHRASE = 40
_PLAIN_WORD = re.compile(r"[a-z]+")


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
        self._pronunciations: dict[str, list[str]] | None = None
        self._alikes: dict[tuple[str, ...], tuple[str, ...]] = {}

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
        """Load the model and the dictionary now, not during the first call."""
        self._give_back(self._borrow())
        self.pronunciations()

    def pronunciations(self) -> dict[str, list[str]]:
        """Each dictionary word's pronunciations, a phone per character (for edit distances)."""
        if self._pronunciations is None:
            phones: dict[str, str] = {}
            found: dict[str, list[str]] = {}
            with self._dictionary.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    head, *said = line.split() or [""]
                    if head and said:
                        spelled = "".join(
                            phones.setdefault(p, chr(0x100 + len(phones))) for p in said
                        )
                        found.setdefault(_word(head), []).append(spelled)
            self._pronunciations = found
        return self._pronunciations

    def sound_alikes(self, phrases: Iterable[str]) -> tuple[str, ...]:
        """Dictionary words a caller could mean instead of one of the phrases."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        key = tuple(sorted(set(phrases)))
        with self._lock:
            if key in self._alikes:
                return self._alikes[key]
        known = self.pronunciations()
        words = [word for word in known if _PLAIN_WORD.fullmatch(word)]
        choices = [known[word][0] for word in words]
        said = {word for phrase in key for word in phrase.split()}
        alikes: dict[str, None] = {}
        for phrase in key:
            if not all(word in known for word in phrase.split()):
                continue
            spelled = "".join(known[word][0] for word in phrase.split())
            limit = max(_ALIKE_MIN_DISTANCE, round(_ALIKE_SHARE * len(spelled)))
            close = process.extract(
                spelled, choices, scorer=Levenshtein.distance, score_cutoff=limit, limit=None
            )
            # Closest first; among equals, words that start and last like the phrase.
            close.sort(
                key=lambda match: (
                    match[1],
                    match[0][:1] != spelled[:1],
                    abs(len(match[0]) - len(spelled)),
                    words[match[2]],
                )
            )
            taken = 0
            for _, distance, index in close:
                word = words[index]
                # Too close to tell apart, the phrase itself, or the phrase with an ending
                # ("continued"): to a caller, all of them mean the phrase.
                if distance < _ALIKE_MIN_DISTANCE or word in said:
                    continue
                if any(spoken.startswith(spelled) for spoken in known[word]):
                    continue
                alikes[word] = None
                taken += 1
                if taken == _ALIKES_PER_PHRASE:
                    break
        result = tuple(alikes)
        with self._lock:
            self._alikes[key] = result
        return result

    def unknown_words(self, vocabulary: Vocabulary) -> set[str]:
        known = self.pronunciations()
        return {word for word in vocabulary.words() if word not in known}

    def _usable(self, vocabulary: Vocabulary) -> list[str]:
        known = self.pronunciations()
        return [p for p in vocabulary.phrases if all(w in known for w in p.split())]

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        spoken = around_speech(pcm)
        if spoken is None:
            return Recognition.silence()
        phrases = self._usable(vocabulary)
        if not phrases:
            return Recognition(None, 0.0, True, "no phrase the engine knows")
        said_words = {w for p in phrases for w in p.split()}
        known = self.pronunciations()
        others = [
            w
            for w in dict.fromkeys((*ENGLISH, *self.sound_alikes(phrases)))
            if w not in said_words and w in known
        ]
        audio = resample(spoken, _DECODE_RATE).samples
        held = self._borrow()
        try:
            # One search over the phrases and the other words: whichever fits best was said.
            segments = self._decode_with(held, _grammar([*phrases, *others]), audio)
            heard = " ".join(_word(s.word) for s in segments if s.word not in _FILLERS)
            if heard not in phrases:
                return Recognition(None, 0.0, True, f"heard {heard or 'nothing'!r}")
            # How well it fits: aligned again among the phrases alone, as the wide search
            # prunes paths early and leaves a rougher alignment.
            segments = self._decode_with(held, _grammar(phrases), audio)
            words = [s for s in segments if s.word not in _FILLERS]
            if " ".join(_word(s.word) for s in words) != heard:
                return Recognition(None, 0.0, True, f"heard {heard!r}, then not again")
            first, last = words[0].start_frame, words[-1].end_frame
            held.decoder.activate_search("phones")
            phones = self._decode(held.decoder, audio)
        finally:
            self._give_back(held)
        free_score = 0.0
        for s in phones:
            overlap = min(last, s.end_frame) - max(first, s.start_frame) + 1
            if overlap > 0:
                free_score += _ln(s.ascore) * overlap / (s.end_frame - s.start_frame + 1)
        said_score = sum(_ln(s.ascore) for s in words)
        phone_llr = (said_score - free_score) / (last - first + 1)
        confidence = _logistic(phone_llr, _PHONE_MIDPOINT, _PHONE_SLOPE)
        detail = f"phones {phone_llr:+.2f}/frame"
        return Recognition(
            heard, round(confidence, 3), True, detail, (("phones", round(phone_llr, 3)),)
        )

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
