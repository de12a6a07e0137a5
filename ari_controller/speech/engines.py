"""Which engine turns a short utterance into one of a few phrases, and how each is driven.

Engines are blocking and CPU-bound: `recognize` runs one in a worker thread, bounded by a
timeout, never on the event loop. An engine is chosen by name (`numbers[].speech.engine`);
`register_engine` adds another (e.g. one whose model is installed on this machine).

PocketSphinx (the `pocketsphinx` wheel, which carries the US-English model) decodes the
utterance once with a bigram language model that allows exactly one of the vocabulary's
phrases or other words (~350 common English words and the dictionary's words that sound like
the phrases: "contain" for "continue", "building" for "billing"), with an optional carrier
prefix ("I need") and suffix ("please"). Without the carrier words, what was heard must be
exactly one phrase, or the caller said something else and nothing is chosen. The phrase is
then aligned again among the phrases alone, and its confidence is how well it fits its own
phones compared with a free phone loop over the same frames (a word really said fits about
as well as the best phone sequence does): a log-likelihood ratio per frame, mapped to [0, 1]
by a logistic calibrated on synthesized voices (docs/speech.md).
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import itertools
import math
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ari_controller.prompts.audio import Pcm, read_wav, resample
from ari_controller.speech.distractors import ENGLISH
from ari_controller.speech.vocabulary import (
    Recognition,
    Vocabulary,
    accept_vocabulary,
    confirm_vocabulary,
)

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
_FRAMES_PER_SECOND = 100  # PocketSphinx's frame rate (10 ms frames)
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
# The phone loop runs over the phrase's frames and this much either side.
_PHONE_MARGIN_S: float | None = 0.2
# Sound-alikes: dictionary words within this share of a phrase's phones (edit distance)
# compete with it, from one phone away ("building" for "billing", "netware" for "network"):
# on the phone band a caller's near word must lose to what it really is, not be taken for
# the phrase. Only the phrase's own forms stay out: a pronunciation that starts with the
# phrase's (or the phrase's with it) and differs by at most _OWN_FORM_PHONES at the end
# ("payment", "continued"); "data" (three phones short of "database") competes.
_ALIKE_SHARE = 0.4
_ALIKE_FLOOR = 3  # the search reaches at least this far for short phrases
_ALIKE_MIN_DISTANCE = 1
# For a vocabulary whose near words do not compete (the confirmation): only words this far.
_FAR_ALIKE_DISTANCE = 3
_OWN_FORM_PHONES = 2
_ALIKES_PER_PHRASE = 40
_PLAIN_WORD = re.compile(r"[a-z]+")

# Words said around a phrase in a short sentence ("I need billing", "billing please"): one
# optional prefix, one optional suffix (English only).
PREFIXES = ("i need", "i want", "i would like", "i'd like", "give me", "please")
SUFFIXES = ("please", "thanks", "thank you")
CARRIER_WORDS = frozenset(w for c in (*PREFIXES, *SUFFIXES) for w in c.split())


def _ln(density: float) -> float:
    return math.log(density) if density > 0 else _LOG_FLOOR


def _word(name: str) -> str:
    """cmudict marks alternative pronunciations as `word(2)`."""
    return name.split("(", 1)[0]


def _said(segments: Iterable[Any]) -> str:
    return " ".join(_word(s.word) for s in segments)


def _logistic(value: float, midpoint: float, slope: float) -> float:
    return 1.0 / (1.0 + math.exp(-slope * (value - midpoint)))


def default_model_dir() -> Path:
    """The US-English model the pocketsphinx wheel carries."""
    try:
        import pocketsphinx  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - the wheel is a dependency
        raise SpeechUnavailable("the pocketsphinx package is not installed") from exc
    return Path(pocketsphinx.__file__).parent / "model" / "en-us"


def sound_alikes(
    known: Mapping[str, Sequence[str]],
    phrases: Iterable[str],
    min_distance: int = _ALIKE_MIN_DISTANCE,
    per_phrase: int = _ALIKES_PER_PHRASE,
) -> tuple[str, ...]:
    """Dictionary words a caller could mean instead of one of the phrases: up to `per_phrase`
    a phrase, closest first, at least `min_distance` phones away, never the phrase's own forms.
    `known` holds each word's pronunciations, a phone per character (`pronunciations`)."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    key = sorted(set(phrases))
    words = [word for word in known if _PLAIN_WORD.fullmatch(word)]
    choices = [known[word][0] for word in words]
    said = {word for phrase in key for word in phrase.split()}
    alikes: dict[str, None] = {}
    for phrase in key:
        if not all(word in known for word in phrase.split()):
            continue
        spelled = "".join(known[word][0] for word in phrase.split())
        limit = max(_ALIKE_FLOOR, round(_ALIKE_SHARE * len(spelled)))
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
            if distance < min_distance or word in said:
                continue
            # The phrase with an ending ("continued") or without one ("payment"): to a
            # caller, the phrase itself.
            if any(
                (spoken.startswith(spelled) or spelled.startswith(spoken))
                and abs(len(spoken) - len(spelled)) <= _OWN_FORM_PHONES
                for spoken in known[word]
            ):
                continue
            alikes[word] = None
            taken += 1
            if taken == per_phrase:
                break
    return tuple(alikes)


def carrier_lm(
    items: Iterable[str], prefixes: Sequence[str] = PREFIXES, suffixes: Sequence[str] = SUFFIXES
) -> str:
    """ARPA text of a bigram model that allows exactly: [a prefix] one item [a suffix].
    Every other word pair backs off with weight -99 (never), so the tree search is as strict
    as a grammar of the same sentences, and far cheaper than the grammar search over a few
    hundred alternatives between optional carrier words."""
    follows: dict[str, set[str]] = {}

    def chain(words: list[str], before: Iterable[str], after: Iterable[str]) -> None:
        for word in before:
            follows.setdefault(word, set()).add(words[0])
        for first, second in itertools.pairwise(words):
            follows.setdefault(first, set()).add(second)
        follows.setdefault(words[-1], set()).update(after)

    items = sorted(set(items))
    entries = {item.split()[0] for item in items}
    exits = {item.split()[-1] for item in items}
    suffix_starts = {suffix.split()[0] for suffix in suffixes}
    for item in items:
        chain(item.split(), ["<s>"], ["</s>", *suffix_starts])
    for prefix in prefixes:
        chain(prefix.split(), ["<s>"], entries)
    for suffix in suffixes:
        chain(suffix.split(), exits, ["</s>"])
    vocabulary = sorted({w for after in follows.values() for w in after} | set(follows))
    vocabulary = [w for w in vocabulary if w not in ("<s>", "</s>")]
    unigram = -math.log10(len(vocabulary) + 1)
    pairs = [
        f"{-math.log10(len(after)):.4f} {word} {following}"
        for word, after in sorted(follows.items())
        for following in sorted(after)
    ]
    lines = ["\\data\\", f"ngram 1={len(vocabulary) + 2}", f"ngram 2={len(pairs)}", ""]
    lines += ["\\1-grams:", "-99.0 <s> -99.0", f"{unigram:.4f} </s> -99.0"]
    lines += [f"{unigram:.4f} {w} -99.0" for w in vocabulary]
    lines += ["", "\\2-grams:", *pairs, "", "\\end\\", ""]
    return "\n".join(lines)


def carrier_grammar(
    phrases: Iterable[str], prefixes: Sequence[str] = PREFIXES, suffixes: Sequence[str] = SUFFIXES
) -> str:
    """The same sentences as a JSGF grammar (for aligning among a few phrases)."""
    alternatives = " | ".join(f"( {phrase} )" for phrase in sorted(set(phrases)))
    rules = ""
    said = f"( {alternatives} )"
    if prefixes:
        rules += f"<pre> = {' | '.join(prefixes)} ;\n"
        said = f"[ <pre> ] {said}"
    if suffixes:
        rules += f"<post> = {' | '.join(suffixes)} ;\n"
        said = f"{said} [ <post> ]"
    return f"#JSGF V1.0;\ngrammar said;\n{rules}public <said> = {said} ;\n"


def strip_carriers(
    segments: Sequence[Any], prefixes: Sequence[str] = PREFIXES, suffixes: Sequence[str] = SUFFIXES
) -> list[Any]:
    """The words without one carrier prefix and one carrier suffix around them (never all
    of them: "please" alone stays "please")."""
    words = list(segments)
    names = [_word(s.word) for s in words]
    for prefix in sorted(prefixes, key=len, reverse=True):
        said = prefix.split()
        if names[: len(said)] == said and len(names) > len(said):
            words, names = words[len(said) :], names[len(said) :]
            break
    for suffix in sorted(suffixes, key=len, reverse=True):
        said = suffix.split()
        if names[-len(said) :] == said and len(names) > len(said):
            words = words[: -len(said)]
            break
    return words


def phone_llr(words: Sequence[Any], phones: Sequence[Any], offset: int = 0) -> float:
    """How well the words fit their own phones against a free phone loop over the same
    frames, per frame (the phone loop's segments start at frame `offset` of the words')."""
    first: int = words[0].start_frame
    last: int = words[-1].end_frame
    free_score = 0.0
    for s in phones:
        start, end = s.start_frame + offset, s.end_frame + offset
        overlap = min(last, end) - max(first, start) + 1
        if overlap > 0:
            free_score += _ln(s.ascore) * overlap / (end - start + 1)
    said_score = sum(_ln(s.ascore) for s in words)
    return (said_score - free_score) / (last - first + 1)


@dataclass(frozen=True)
class _Searches:
    """A vocabulary's two searches: the wide one (its phrases among other words, carrier
    words around them) and the narrow one (the phrases alone, with the carriers)."""

    phrases: tuple[str, ...]
    others: tuple[str, ...]  # the words that compete with them
    wide: tuple[str, str]  # (name, ARPA text)
    narrow: tuple[str, str]  # (name, JSGF text)


@dataclass
class _Decoder:
    decoder: Any
    searches: set[str] = field(default_factory=set)


class PocketSphinxEngine:
    """PocketSphinx with a language model and a grammar per vocabulary; thread-safe through
    a small decoder pool.

    The keyword arguments are for measuring variants (bench/phoneband): the product uses
    the defaults."""

    def __init__(
        self,
        model_dir: Path | None = None,
        language: str = "en",
        *,
        sample_rate: int = _DECODE_RATE,
        decoder_options: Mapping[str, Any] | None = None,
        alike_min_distance: int = _ALIKE_MIN_DISTANCE,
        alikes_per_phrase: int = _ALIKES_PER_PHRASE,
        carriers: bool = True,
        phone_margin_s: float | None = _PHONE_MARGIN_S,
    ) -> None:
        self.model_dir = model_dir or default_model_dir()
        self.language = language
        acoustic = self.model_dir / self.model_dir.name
        dictionary = next(iter(sorted(self.model_dir.glob("*.dict"))), None)
        if not acoustic.is_dir() or dictionary is None:
            raise SpeechUnavailable(f"no PocketSphinx model in {self.model_dir}")
        self.acoustic = acoustic
        self.dictionary = dictionary
        phone_lms = sorted(self.model_dir.glob("*-phone.lm.bin"))
        if not phone_lms:
            raise SpeechUnavailable(f"no phone language model in {self.model_dir}")
        self._phone_lm = phone_lms[0]
        self.sample_rate = sample_rate
        self.decoder_options = dict(decoder_options or {})
        self.alike_min_distance = alike_min_distance
        self.alikes_per_phrase = alikes_per_phrase
        english = language.lower().startswith("en")
        self.prefixes = PREFIXES if carriers and english else ()
        self.suffixes = SUFFIXES if carriers and english else ()
        self.phone_margin_s = phone_margin_s
        self._free: list[_Decoder] = []
        self._lock = threading.Lock()
        self._available = threading.Semaphore(_MAX_DECODERS)
        self._pronunciations: dict[str, list[str]] | None = None
        self._alikes: dict[tuple[tuple[str, ...], int], tuple[str, ...]] = {}
        self._searches: dict[tuple[tuple[str, ...], bool], _Searches] = {}

    @property
    def name(self) -> str:
        return "pocketsphinx"

    def languages(self) -> frozenset[str]:
        return frozenset({self.language})

    def _new_decoder(self) -> _Decoder:
        from pocketsphinx import Decoder

        decoder = Decoder(
            hmm=str(self.acoustic),
            dict=str(self.dictionary),
            lm=None,
            samprate=self.sample_rate,
            loglevel="FATAL",
            **self.decoder_options,
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
        """Load the model and the dictionary now, not during the first call, and the searches
        of the vocabularies every number of the language has ("continue", yes and no)."""
        self._give_back(self._borrow())
        self.pronunciations()
        for vocabulary in (accept_vocabulary(self.language), confirm_vocabulary(self.language)):
            self.prepare(vocabulary)

    def prepare(self, vocabulary: Vocabulary) -> None:
        """Build the vocabulary's searches now and load them into a decoder (start-up does
        this for every menu; otherwise its first utterance would)."""
        phrases = self._usable(vocabulary)
        if not phrases:
            return
        searches = self._prepared(phrases, vocabulary.near_words_compete)
        held = self._borrow()
        try:
            self._load(held, searches)
        finally:
            self._give_back(held)

    def pronunciations(self) -> dict[str, list[str]]:
        """Each dictionary word's pronunciations, a phone per character (for edit distances)."""
        if self._pronunciations is None:
            phones: dict[str, str] = {}
            found: dict[str, list[str]] = {}
            with self.dictionary.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    head, *said = line.split() or [""]
                    if head and said:
                        spelled = "".join(
                            phones.setdefault(p, chr(0x100 + len(phones))) for p in said
                        )
                        found.setdefault(_word(head), []).append(spelled)
            self._pronunciations = found
        return self._pronunciations

    def sound_alikes(self, phrases: Iterable[str], near: bool = True) -> tuple[str, ...]:
        """Dictionary words a caller could mean instead of one of the phrases (`near`: from
        one sound away; else only from _FAR_ALIKE_DISTANCE)."""
        key = tuple(sorted(set(phrases)))
        distance = self.alike_min_distance
        if not near:
            distance = max(distance, _FAR_ALIKE_DISTANCE)
        with self._lock:
            if (key, distance) in self._alikes:
                return self._alikes[(key, distance)]
        result = sound_alikes(self.pronunciations(), key, distance, self.alikes_per_phrase)
        with self._lock:
            self._alikes[(key, distance)] = result
        return result

    def unknown_words(self, vocabulary: Vocabulary) -> set[str]:
        known = self.pronunciations()
        return {word for word in vocabulary.words() if word not in known}

    def _usable(self, vocabulary: Vocabulary) -> tuple[str, ...]:
        known = self.pronunciations()
        return tuple(p for p in vocabulary.phrases if all(w in known for w in p.split()))

    def _prepared(self, phrases: tuple[str, ...], near: bool = True) -> _Searches:
        """The vocabulary's searches as text (built once per vocabulary, then cached)."""
        key = tuple(sorted(set(phrases)))
        with self._lock:
            if (key, near) in self._searches:
                return self._searches[(key, near)]
        known = self.pronunciations()
        said_words = {w for p in key for w in p.split()}
        carriers = {w for c in (*self.prefixes, *self.suffixes) for w in c.split()}
        others = [
            w
            for w in dict.fromkeys((*ENGLISH, *self.sound_alikes(key, near), *sorted(carriers)))
            if w not in said_words and w in known
        ]
        wide = carrier_lm([*key, *others], self.prefixes, self.suffixes)
        narrow = carrier_grammar(key, self.prefixes, self.suffixes)
        searches = _Searches(
            key,
            tuple(others),
            ("l" + hashlib.sha1(wide.encode()).hexdigest()[:16], wide),
            ("g" + hashlib.sha1(narrow.encode()).hexdigest()[:16], narrow),
        )
        with self._lock:
            self._searches[(key, near)] = searches
        return searches

    @staticmethod
    def _load(held: _Decoder, searches: _Searches) -> None:
        """The vocabulary's searches in this decoder (each decoder loads them once)."""
        name, text = searches.wide
        if name not in held.searches:
            with tempfile.TemporaryDirectory(prefix="ari-lm-") as folder:
                path = Path(folder) / f"{name}.arpa"
                path.write_text(text, encoding="utf-8")
                held.decoder.add_lm_file(name, str(path))
            held.searches.add(name)
        name, text = searches.narrow
        if name not in held.searches:
            held.decoder.add_jsgf_string(name, text)
            held.searches.add(name)

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        spoken = around_speech(pcm)
        if spoken is None:
            return Recognition.silence()
        phrases = self._usable(vocabulary)
        if not phrases:
            return Recognition(None, 0.0, True, "no phrase the engine knows")
        searches = self._prepared(phrases, vocabulary.near_words_compete)
        audio = self._front_end(spoken)
        held = self._borrow()
        try:
            self._load(held, searches)
            # One search over the phrases and the other words, carrier words allowed around
            # them: whichever fits best was said, and without the carriers it must be
            # exactly one phrase.
            words = self._words(self._wide_search(held, searches, audio))
            heard = _said(words)
            if heard not in phrases:
                return Recognition(None, 0.0, True, f"heard {heard or 'nothing'!r}")
            # How well it fits: aligned again among the phrases alone, as the wide search
            # prunes paths early and leaves a rougher alignment.
            held.decoder.activate_search(searches.narrow[0])
            words = self._words(self._decode(held.decoder, audio))
            if _said(words) != heard:
                return Recognition(None, 0.0, True, f"heard {heard!r}, then not again")
            phones, offset = self._phone_loop(held, audio, words)
        finally:
            self._give_back(held)
        llr = phone_llr(words, phones, offset)
        confidence = _logistic(llr, _PHONE_MIDPOINT, _PHONE_SLOPE)
        return Recognition(
            heard,
            round(confidence, 3),
            True,
            f"phones {llr:+.2f}/frame",
            (("phones", round(llr, 3)),),
        )

    def _words(self, segments: Iterable[Any]) -> list[Any]:
        """The words of a search's result without fillers and carrier words."""
        said = [s for s in segments if s.word not in _FILLERS]
        return strip_carriers(said, self.prefixes, self.suffixes)

    def _front_end(self, spoken: Pcm) -> bytes:
        """The audio as the decoder takes it (phone audio upsampled to the model's rate)."""
        return resample(spoken, self.sample_rate).samples

    def _wide_search(self, held: _Decoder, searches: _Searches, audio: bytes) -> list[Any]:
        held.decoder.activate_search(searches.wide[0])
        return self._decode(held.decoder, audio)

    def _phone_loop(
        self, held: _Decoder, audio: bytes, words: Sequence[Any]
    ) -> tuple[list[Any], int]:
        """The free phone loop over the words' frames and a margin either side (the rest of
        the utterance cannot change the score over the words, and costs time); its
        segments, and the frame they start at."""
        held.decoder.activate_search("phones")
        if self.phone_margin_s is None:
            return self._decode(held.decoder, audio), 0
        margin = round(self.phone_margin_s * _FRAMES_PER_SECOND)
        start = max(0, words[0].start_frame - margin)
        end = words[-1].end_frame + 1 + margin
        step = 2 * self.sample_rate // _FRAMES_PER_SECOND  # bytes per frame
        return self._decode(held.decoder, audio[start * step : end * step]), start

    def _decode(self, decoder: Any, audio: bytes) -> list[Any]:
        # The front end's state (its noise estimate, the cepstral mean) would otherwise carry
        # over from the decoder's last utterance, another caller's: each search starts anew.
        decoder.reinit_feat()
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
