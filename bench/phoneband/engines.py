"""The recognizers measured on the phone-band set, each behind the product's `Recognizer`
interface (`recognize(pcm, vocabulary) -> Recognition`) and judged by the product's `decide`.

- `product`: ari_controller.speech's PocketSphinx engine exactly as the daemon uses it.
- `ps-*`: the product's method (one wide search over the phrases, common words and
  sound-alikes; the winner aligned again among the phrases; its confidence from the
  log-likelihood ratio against a free phone loop) re-implemented here with the decoder's
  feature settings, the front end and the grammar as parameters, so each change can be
  measured alone. Nothing here changes the product; it reads its word lists.
- `kws-*`: PocketSphinx keyword spotting (one threshold per phrase, scaled by its phones).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ari_controller.prompts.audio import Pcm, resample
from ari_controller.speech import PocketSphinxEngine, Recognition, Vocabulary, get_recognizer
from ari_controller.speech.distractors import ENGLISH
from ari_controller.speech.engines import around_speech

_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]"})
_LOG_FLOOR = -745.0

# Words said around a route in a short sentence ("I need billing", "billing please").
PREFIXES = ("i need", "i want", "i would like", "i'd like", "give me", "please")
SUFFIXES = ("please", "thanks", "thank you")
CARRIER_WORDS = frozenset(w for c in (*PREFIXES, *SUFFIXES) for w in c.split())


def _word(name: str) -> str:
    return name.split("(", 1)[0]


def _ln(density: float) -> float:
    return math.log(density) if density > 0 else _LOG_FLOOR


def _model_dir() -> Path:
    import pocketsphinx  # type: ignore[import-untyped]

    return Path(pocketsphinx.__file__).parent / "model" / "en-us"


_MODEL_COPIES: dict[str, tempfile.TemporaryDirectory[str]] = {}


def _acoustic_model(features: dict[str, Any]) -> Path:
    """The wheel's acoustic model, or a copy whose feat.params carries the given feature
    settings: the model's feat.params overrides the decoder's own (e.g. upperf 6800, which
    8 kHz audio cannot have)."""
    source = _model_dir() / "en-us"
    names = {"lowerf", "upperf", "nfilt", "nfft", "transform", "lifter", "remove_noise", "agc"}
    changes = {k: v for k, v in features.items() if k in names}
    if not changes:
        return source
    key = json.dumps(changes, sort_keys=True)
    if key not in _MODEL_COPIES:
        folder = tempfile.TemporaryDirectory(prefix="ps-model-")
        target = Path(folder.name) / "en-us"
        target.mkdir()
        for item in source.iterdir():
            if item.name != "feat.params":
                (target / item.name).symlink_to(item)
        params = {}
        for line in (source / "feat.params").read_text(encoding="utf-8").splitlines():
            flag, _, value = line.partition(" ")
            params[flag.lstrip("-")] = value.strip()
        params.update({k: str(v) for k, v in changes.items()})
        (target / "feat.params").write_text(
            "".join(f"-{k} {v}\n" for k, v in params.items()), encoding="utf-8"
        )
        _MODEL_COPIES[key] = folder
    return Path(_MODEL_COPIES[key].name) / "en-us"


def product() -> PocketSphinxEngine:
    engine = get_recognizer("pocketsphinx")
    assert isinstance(engine, PocketSphinxEngine)
    return engine


@dataclass
class PsSettings:
    rate: int = 16000  # 16000: upsample the 8 kHz line as the product does; 8000: native
    decoder: dict[str, Any] = field(default_factory=dict)  # extra Decoder settings
    carriers: bool = False  # allow "I need ..." / "... please" around a phrase
    fill_db: float | None = None  # at 16 kHz: noise above 3.4 kHz, dB below the speech
    normalize_db: float | None = None  # scale the voiced part's RMS to this dBFS (AGC)
    midpoint: float = -4.0  # logistic of the phone LLR, as in the product
    slope: float = 2.0
    # Sound-alikes that compete with the phrases: the product leaves out words one or two
    # phones away ("building" for "billing"); 1 lets them compete too, except the phrase's
    # own forms (its pronunciation a prefix of theirs or theirs of its: "payment").
    alike_min_distance: int = 3
    alikes_per_phrase: int = 40


class PsEngine:
    """The product's PocketSphinx method with its settings as parameters."""

    def __init__(self, name: str, settings: PsSettings) -> None:
        self.name = name
        self.settings = settings
        self._product = product()  # for its dictionary and sound-alikes (read only)
        model = _model_dir()
        from pocketsphinx import Decoder

        self.decoder = Decoder(
            hmm=str(_acoustic_model(settings.decoder)),
            dict=str(model / "cmudict-en-us.dict"),
            lm=None,
            samprate=settings.rate,
            loglevel="FATAL",
            **settings.decoder,
        )
        self.decoder.add_allphone_file("phones", str(model / "en-us-phone.lm.bin"))
        self._grammars: set[str] = set()
        self._alikes: dict[tuple[str, ...], tuple[str, ...]] = {}

    def languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def unknown_words(self, vocabulary: Vocabulary) -> set[str]:
        return self._product.unknown_words(vocabulary)

    def warm_up(self) -> None:
        self._product.warm_up()

    def sound_alikes(self, phrases: list[str]) -> tuple[str, ...]:
        if self.settings.alike_min_distance >= 3 and self.settings.alikes_per_phrase == 40:
            return self._product.sound_alikes(phrases)
        key = tuple(sorted(set(phrases)))
        if key not in self._alikes:
            self._alikes[key] = _sound_alikes(
                self._product.pronunciations(),
                key,
                self.settings.alike_min_distance,
                self.settings.alikes_per_phrase,
            )
        return self._alikes[key]

    def _grammar(self, phrases: list[str]) -> str:
        alternatives = " | ".join(f"( {p} )" for p in sorted(set(phrases)))
        if not self.settings.carriers:
            return f"#JSGF V1.0;\ngrammar said;\npublic <said> = {alternatives} ;\n"
        pre = " | ".join(PREFIXES)
        post = " | ".join(SUFFIXES)
        return (
            "#JSGF V1.0;\ngrammar said;\n"
            f"<pre> = {pre} ;\n<post> = {post} ;\n"
            f"public <said> = [ <pre> ] ( {alternatives} ) [ <post> ] ;\n"
        )

    def _strip(self, words: list[Any]) -> list[Any]:
        """The words without the carrier words around them (a prefix, a suffix)."""
        if not self.settings.carriers:
            return words
        names = [_word(s.word) for s in words]
        for prefix in sorted(PREFIXES, key=len, reverse=True):
            said = prefix.split()
            if names[: len(said)] == said and len(names) > len(said):
                words, names = words[len(said) :], names[len(said) :]
                break
        for suffix in sorted(SUFFIXES, key=len, reverse=True):
            said = suffix.split()
            if names[-len(said) :] == said and len(names) > len(said):
                words = words[: -len(said)]
                break
        return words

    def _front_end(self, pcm: Pcm) -> bytes:
        audio = pcm
        if self.settings.normalize_db is not None:
            samples = np.frombuffer(audio.samples, dtype="<i2").astype(np.float64)
            size = audio.sample_rate // 50
            frames = samples[: len(samples) // size * size].reshape(-1, size)
            energy = np.sqrt(np.mean(frames**2, axis=1))
            active = energy[energy >= energy.max() * 10 ** (-30 / 20)]
            rms = float(np.sqrt(np.mean(active**2))) or 1.0
            gain = 32768 * 10 ** (self.settings.normalize_db / 20) / rms
            scaled = np.clip(np.round(samples * gain), -32768, 32767).astype("<i2")
            audio = Pcm(scaled.tobytes(), audio.sample_rate)
        audio = resample(audio, self.settings.rate)
        if self.settings.fill_db is not None and self.settings.rate > 8000:
            samples = np.frombuffer(audio.samples, dtype="<i2").astype(np.float64)
            rng = np.random.default_rng(len(samples))
            size = 1 << int(np.ceil(np.log2(len(samples))))
            spectrum = np.fft.rfft(rng.standard_normal(size))
            freqs = np.fft.rfftfreq(size, 1.0 / self.settings.rate)
            spectrum[freqs < 3400] = 0
            noise = np.fft.irfft(spectrum, size)[: len(samples)]
            level = np.sqrt(np.mean(samples**2)) * 10 ** (-self.settings.fill_db / 20)
            noise *= level / (np.sqrt(np.mean(noise**2)) or 1.0)
            samples = np.clip(np.round(samples + noise), -32768, 32767)
            audio = Pcm(samples.astype("<i2").tobytes(), audio.sample_rate)
        return audio.samples

    def _decode_with(self, grammar: str, audio: bytes) -> list[Any]:
        key = "g" + hashlib.sha1(grammar.encode()).hexdigest()[:16]
        if key not in self._grammars:
            self.decoder.add_jsgf_string(key, grammar)
            self._grammars.add(key)
        self.decoder.activate_search(key)
        return self._decode(audio)

    def _decode(self, audio: bytes) -> list[Any]:
        self.decoder.start_utt()
        self.decoder.process_raw(audio, full_utt=True)
        self.decoder.end_utt()
        return list(self.decoder.seg() or [])

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        spoken = around_speech(pcm)
        if spoken is None:
            return Recognition.silence()
        known = self._product.pronunciations()
        phrases = [p for p in vocabulary.phrases if all(w in known for w in p.split())]
        said_words = {w for p in phrases for w in p.split()}
        skip = said_words | (CARRIER_WORDS if self.settings.carriers else set())
        others = [
            w
            for w in dict.fromkeys((*ENGLISH, *self.sound_alikes(phrases)))
            if w not in skip and w in known
        ]
        audio = self._front_end(spoken)
        segments = self._decode_with(self._grammar([*phrases, *others]), audio)
        words = self._strip([s for s in segments if s.word not in _FILLERS])
        heard = " ".join(_word(s.word) for s in words)
        if heard not in phrases:
            return Recognition(None, 0.0, True, f"heard {heard or 'nothing'!r}")
        segments = self._decode_with(self._grammar(phrases), audio)
        words = self._strip([s for s in segments if s.word not in _FILLERS])
        if " ".join(_word(s.word) for s in words) != heard:
            return Recognition(None, 0.0, True, f"heard {heard!r}, then not again")
        return self._confidence(heard, words, audio)

    def _confidence(self, heard: str, words: list[Any], audio: bytes) -> Recognition:
        first, last = words[0].start_frame, words[-1].end_frame
        self.decoder.activate_search("phones")
        phones = self._decode(audio)
        free_score = 0.0
        for s in phones:
            overlap = min(last, s.end_frame) - max(first, s.start_frame) + 1
            if overlap > 0:
                free_score += _ln(s.ascore) * overlap / (s.end_frame - s.start_frame + 1)
        said_score = sum(_ln(s.ascore) for s in words)
        llr = (said_score - free_score) / (last - first + 1)
        confidence = 1.0 / (1.0 + math.exp(-self.settings.slope * (llr - self.settings.midpoint)))
        return Recognition(
            heard, round(confidence, 3), True, f"phones {llr:+.2f}/frame", (("phones", llr),)
        )


class LmEngine(PsEngine):
    """The wide search with a language model instead of a grammar (the same choices: an
    optional carrier prefix, one phrase or other word, an optional carrier suffix, as a
    bigram model that forbids every other pair): the tree search over ~400 words is far
    cheaper than the grammar search, which with carrier words took seconds.
    What remains after the carrier words at either end must be one phrase; its confidence
    is measured as in the product, after aligning it again among the phrases (with the
    carrier words allowed around them)."""

    def __init__(self, name: str, settings: PsSettings) -> None:
        settings.carriers = True
        super().__init__(name, settings)
        self._folder = tempfile.TemporaryDirectory(prefix="lm-")
        self._lms: set[str] = set()

    def _lm(self, items: list[str]) -> str:
        """A bigram model that allows exactly: [prefix] one item [suffix] (unseen pairs back
        off with weight -99, i.e. never), so the tree search is as strict as the grammar."""
        items = sorted(set(items))
        key = "l" + hashlib.sha1(" ".join(items).encode()).hexdigest()[:16]
        if key in self._lms:
            return key
        follows: dict[str, set[str]] = {}

        def chain(words: list[str], before: Iterable[str], after: Iterable[str]) -> None:
            for word in before:
                follows.setdefault(word, set()).add(words[0])
            for first, second in itertools.pairwise(words):
                follows.setdefault(first, set()).add(second)
            follows.setdefault(words[-1], set()).update(after)

        entries = {item.split()[0] for item in items}
        exits = {item.split()[-1] for item in items}
        suffix_starts = {suffix.split()[0] for suffix in SUFFIXES}
        for item in items:
            chain(item.split(), ["<s>"], ["</s>", *suffix_starts])
        for prefix in PREFIXES:
            chain(prefix.split(), ["<s>"], entries)
        for suffix in SUFFIXES:
            chain(suffix.split(), exits, ["</s>"])
        vocabulary = sorted({w for words in follows.values() for w in words} | set(follows))
        vocabulary = [w for w in vocabulary if w not in ("<s>", "</s>")]
        unigram = -math.log10(len(vocabulary) + 1)
        pairs = [
            f"{-math.log10(len(after)):.4f} {word} {nxt}"
            for word, after in sorted(follows.items())
            for nxt in sorted(after)
        ]
        lines = ["\\data\\", f"ngram 1={len(vocabulary) + 2}", f"ngram 2={len(pairs)}", ""]
        lines += ["\\1-grams:", "-99.0 <s> -99.0", f"{unigram:.4f} </s> -99.0"]
        lines += [f"{unigram:.4f} {w} -99.0" for w in vocabulary]
        lines += ["", "\\2-grams:", *pairs, "", "\\end\\", ""]
        path = Path(self._folder.name) / f"{key}.arpa"
        path.write_text("\n".join(lines), encoding="utf-8")
        self.decoder.add_lm_file(key, str(path))
        self._lms.add(key)
        return key

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        spoken = around_speech(pcm)
        if spoken is None:
            return Recognition.silence()
        known = self._product.pronunciations()
        phrases = [p for p in vocabulary.phrases if all(w in known for w in p.split())]
        said_words = {w for p in phrases for w in p.split()}
        others = [
            w
            for w in dict.fromkeys((*ENGLISH, *self.sound_alikes(phrases), *CARRIER_WORDS))
            if w not in said_words and w in known
        ]
        audio = self._front_end(spoken)
        self.decoder.activate_search(self._lm([*phrases, *others]))
        segments = self._decode(audio)
        words = self._strip([s for s in segments if s.word not in _FILLERS])
        heard = " ".join(_word(s.word) for s in words)
        if heard not in phrases:
            return Recognition(None, 0.0, True, f"heard {heard or 'nothing'!r}")
        segments = self._decode_with(self._grammar(phrases), audio)
        words = self._strip([s for s in segments if s.word not in _FILLERS])
        if " ".join(_word(s.word) for s in words) != heard:
            return Recognition(None, 0.0, True, f"heard {heard!r}, then not again")
        return self._confidence(heard, words, audio)


def _sound_alikes(
    known: dict[str, list[str]], phrases: tuple[str, ...], min_distance: int, per_phrase: int
) -> tuple[str, ...]:
    """The product's sound-alike search (ari_controller.speech.engines) with the closest
    distance as a parameter; the phrase's own forms never compete with it."""
    import re

    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    plain = re.compile(r"[a-z]+")
    words = [word for word in known if plain.fullmatch(word)]
    choices = [known[word][0] for word in words]
    said = {word for phrase in phrases for word in phrase.split()}
    alikes: dict[str, None] = {}
    for phrase in phrases:
        if not all(word in known for word in phrase.split()):
            continue
        spelled = "".join(known[word][0] for word in phrase.split())
        limit = max(3, round(0.4 * len(spelled)))
        close = process.extract(
            spelled, choices, scorer=Levenshtein.distance, score_cutoff=limit, limit=None
        )
        close.sort(
            key=lambda m: (
                m[1],
                m[0][:1] != spelled[:1],
                abs(len(m[0]) - len(spelled)),
                words[m[2]],
            )
        )
        taken = 0
        for _, distance, index in close:
            word = words[index]
            if distance < min_distance or word in said:
                continue
            # the phrase with an ending ("continued") or without one ("payment"); "data" for
            # "database" (three phones short) competes
            if any(
                (s.startswith(spelled) or spelled.startswith(s)) and abs(len(s) - len(spelled)) <= 2
                for s in known[word]
            ):
                continue
            alikes[word] = None
            taken += 1
            if taken == per_phrase:
                break
    return tuple(alikes)


class KwsEngine:
    """Keyword spotting: each phrase with a threshold of 10^(-per_phone * its phones)."""

    def __init__(self, name: str, per_phone: float, rate: int = 16000, **decoder: Any) -> None:
        from pocketsphinx import Decoder

        self.name = name
        self.per_phone = per_phone
        self.rate = rate
        self._product = product()
        model = _model_dir()
        self.decoder = Decoder(
            hmm=str(_acoustic_model(decoder)),
            dict=str(model / "cmudict-en-us.dict"),
            lm=None,
            samprate=rate,
            loglevel="FATAL",
            **decoder,
        )
        self._searches: set[str] = set()
        self._folder = tempfile.TemporaryDirectory(prefix="kws-")

    def languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def unknown_words(self, vocabulary: Vocabulary) -> set[str]:
        return self._product.unknown_words(vocabulary)

    def warm_up(self) -> None:
        return None

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        spoken = around_speech(pcm)
        if spoken is None:
            return Recognition.silence()
        known = self._product.pronunciations()
        lines = []
        for phrase in vocabulary.phrases:
            if all(w in known for w in phrase.split()):
                phones = sum(len(known[w][0]) for w in phrase.split())
                lines.append(f"{phrase} /1e-{round(self.per_phone * phones)}/")
        text = "\n".join(lines) + "\n"
        key = "k" + hashlib.sha1(text.encode()).hexdigest()[:16]
        if key not in self._searches:
            path = Path(self._folder.name) / f"{key}.txt"
            path.write_text(text, encoding="utf-8")
            self.decoder.add_kws(key, str(path))
            self._searches.add(key)
        self.decoder.activate_search(key)
        self.decoder.start_utt()
        self.decoder.process_raw(resample(spoken, self.rate).samples, full_utt=True)
        self.decoder.end_utt()
        found = {s.word for s in self.decoder.seg() or [] if s.word not in _FILLERS}
        if len(found) == 1:
            return Recognition(found.pop(), 1.0, True, "spotted")
        if found:
            return Recognition(None, 0.0, True, f"several: {sorted(found)}")
        return Recognition(None, 0.0, True, "nothing spotted")


NARROW = {"nfft": 256, "lowerf": 300, "upperf": 3400}

ENGINES: dict[str, Callable[[], Any]] = {
    "product": product,
    # the product's method, unchanged settings (checks the re-implementation)
    "ps-16k": lambda: PsEngine("ps-16k", PsSettings()),
    # native 8 kHz features: the filter bank squeezed into the phone band
    "ps-8k": lambda: PsEngine("ps-8k", PsSettings(rate=8000, decoder=dict(NARROW))),
    "ps-8k-4000": lambda: PsEngine(
        "ps-8k-4000",
        PsSettings(rate=8000, decoder={"nfft": 256, "lowerf": 130, "upperf": 3800}),
    ),
    # 16 kHz features (as trained) but with the empty band filled with low noise
    "ps-16k-fill": lambda: PsEngine("ps-16k-fill", PsSettings(fill_db=30.0)),
    # 16 kHz features with the mel filter bank limited to the phone band
    "ps-16k-band": lambda: PsEngine(
        "ps-16k-band", PsSettings(decoder={"lowerf": 300, "upperf": 3400})
    ),
    # level normalization (AGC) before decoding
    "ps-16k-agc": lambda: PsEngine("ps-16k-agc", PsSettings(normalize_db=-20.0)),
    # sentences: carrier words allowed around the phrase
    "ps-16k-carriers": lambda: PsEngine("ps-16k-carriers", PsSettings(carriers=True)),
    # near words compete: sound-alikes from one phone away
    "ps-16k-near": lambda: PsEngine("ps-16k-near", PsSettings(alike_min_distance=1)),
    "ps-8k-near": lambda: PsEngine(
        "ps-8k-near", PsSettings(rate=8000, decoder=dict(NARROW), alike_min_distance=1)
    ),
    "lm-16k": lambda: LmEngine("lm-16k", PsSettings()),
    "lm-16k-near": lambda: LmEngine("lm-16k-near", PsSettings(alike_min_distance=1)),
    "lm-8k-near": lambda: LmEngine(
        "lm-8k-near", PsSettings(rate=8000, decoder=dict(NARROW), alike_min_distance=1)
    ),
    "lm-8k": lambda: LmEngine("lm-8k", PsSettings(rate=8000, decoder=dict(NARROW))),
    "lm-8k-near-nfilt16": lambda: LmEngine(
        "lm-8k-near-nfilt16",
        PsSettings(rate=8000, decoder={**NARROW, "nfilt": 16}, alike_min_distance=1),
    ),
    "lm-16k-near-fill": lambda: LmEngine(
        "lm-16k-near-fill", PsSettings(fill_db=30.0, alike_min_distance=1)
    ),
    "lm-16k-near-agc": lambda: LmEngine(
        "lm-16k-near-agc", PsSettings(normalize_db=-20.0, alike_min_distance=1)
    ),
    "lm-16k-near-band": lambda: LmEngine(
        "lm-16k-near-band",
        PsSettings(decoder={"lowerf": 300, "upperf": 3400}, alike_min_distance=1),
    ),
    "lm-16k-near-nonr": lambda: LmEngine(
        "lm-16k-near-nonr", PsSettings(decoder={"remove_noise": "no"}, alike_min_distance=1)
    ),
    "kws-4": lambda: KwsEngine("kws-4", 4.0),
    "kws-6": lambda: KwsEngine("kws-6", 6.0),
}


# --- feature mapping: narrowband cepstra mapped towards wideband ones ------------------------

# Words for training the mapping: everyday words of the product's common-word list that are
# not in the test set (nor near its words), said alone and after a carrier ("I need ...").
_TEST_WORDS = {"need", "please", "i", "a", "is", "it", "me", "what", "time", "call", "back"}
MAP_CONTEXT = 2  # frames either side
MAP_SEED = 4242


def _training_words() -> list[str]:
    from bench.phoneband import testset

    taken = {w for p in testset.PHRASES for w in p.text.lower().split()} | _TEST_WORDS
    near = {"bill", "net", "store", "pay", "print", "count", "data", "hard", "soft", "mail"}
    words = [w for w in ENGLISH if w not in taken and not any(w.startswith(n) for n in near)]
    return words[::2]  # every other one: ~170 words


class _Cepstra:
    """PocketSphinx's own front end (the wheel's feat.params), read back through mfclogdir."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        model = _model_dir()
        self._folder = tempfile.TemporaryDirectory(prefix="mfc-")
        self.decoder = Decoder(
            hmm=str(model / "en-us"),
            dict=str(model / "cmudict-en-us.dict"),
            lm=None,
            samprate=16000,
            loglevel="FATAL",
            mfclogdir=self._folder.name,
        )
        self.decoder.add_allphone_file("phones", str(model / "en-us-phone.lm.bin"))
        self.decoder.activate_search("phones")

    def __call__(self, audio16k: bytes) -> np.ndarray:
        folder = Path(self._folder.name)
        for old in folder.iterdir():
            old.unlink()
        self.decoder.start_utt()
        self.decoder.process_raw(audio16k, no_search=True, full_utt=True)
        self.decoder.end_utt()
        (path,) = list(folder.iterdir())
        data = np.frombuffer(path.read_bytes()[4:], dtype=">f4")
        return data.reshape(-1, 13).astype(np.float64)


def _context(cep: np.ndarray) -> np.ndarray:
    padded = np.pad(cep, ((MAP_CONTEXT, MAP_CONTEXT), (0, 0)), mode="edge")
    n = len(cep)
    stacked = [padded[i : i + n] for i in range(2 * MAP_CONTEXT + 1)]
    return np.hstack([*stacked, np.ones((n, 1))])


def train_mapping(ridge: float = 1.0) -> np.ndarray:
    """Least squares from narrowband cepstra (with context) to the wideband cepstra of the
    same joe rendering, on words outside the test set; cached under build/phoneband/."""
    from piper import SynthesisConfig  # type: ignore[import-untyped]

    from bench.phoneband import testset

    words = _training_words()
    texts = [*words, *(f"i need {w}" for w in words[::4]), *(f"{w} please" for w in words[1::4])]
    recipe = json.dumps([texts, MAP_CONTEXT, MAP_SEED, ridge, "room-70", "spread"])
    key = hashlib.sha1(recipe.encode()).hexdigest()
    path = testset.BUILD / f"mapping-{key[:12]}.npy"
    if path.is_file():
        return np.load(path)
    cepstra = _Cepstra()
    joe = testset._piper(MAP_SEED)
    xs, ys = [], []
    for number, text in enumerate(texts):
        rng = np.random.default_rng([MAP_SEED, number])
        settings = SynthesisConfig(
            length_scale=float(rng.uniform(*testset.SPEEDS)),
            noise_scale=float(rng.uniform(*testset.NOISE_SCALE)),
            noise_w_scale=float(rng.uniform(*testset.NOISE_W_SCALE)),
        )
        pcm = b"".join(c.audio_int16_bytes for c in joe.synthesize(text, settings))  # type: ignore[attr-defined]
        rate = joe.config.sample_rate  # type: ignore[attr-defined]
        narrow, draws = testset.phone_line(pcm, rate, rng)
        voice = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        voice = voice / max(1.0, np.abs(voice).max()) * 32767 * 10 ** (-1 / 20)
        voice *= 10 ** (draws["level_db"] / 20)
        clean = np.clip(np.round(voice), -32768, 32767).astype("<i2")
        wide = np.frombuffer(resample(Pcm(clean.tobytes(), rate), 16000).samples, "<i2")
        lead = np.zeros(2 * int(draws["lead_s"] * testset.RATE))
        target = np.concatenate([lead, wide, np.zeros(16000 * int(testset.TAIL_S))])
        # a quiet room, not digital silence (-70 dBFS white noise)
        target += rng.standard_normal(len(target)) * 32768 * 10 ** (-70 / 20)
        target = np.clip(np.round(target), -32768, 32767).astype("<i2")
        x = cepstra(resample(narrow, 16000).samples)
        y = cepstra(target.tobytes())
        n = min(len(x), len(y))
        x, y = x[:n] - x[:n].mean(axis=0), y[:n] - y[:n].mean(axis=0)
        xs.append(_context(x))
        ys.append(y)
    x_all, y_all = np.vstack(xs), np.vstack(ys)
    gram = x_all.T @ x_all + ridge * np.eye(x_all.shape[1])
    weights = np.linalg.solve(gram, x_all.T @ y_all)
    # the other mapping: each cepstral coefficient's spread scaled to the wideband one
    centre = slice(MAP_CONTEXT * 13, (MAP_CONTEXT + 1) * 13)
    spread = y_all.std(axis=0) / x_all[:, centre].std(axis=0)
    weights = np.vstack([weights, spread])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, weights)
    return weights


class MappedEngine(LmEngine):
    """LmEngine fed with the line's cepstra mapped towards wideband ones (`train_mapping`)."""

    def __init__(self, name: str, settings: PsSettings, spread_only: bool = False) -> None:
        super().__init__(name, settings)
        trained = train_mapping()
        self._weights = trained[:-1]
        if spread_only:  # no regression: only each coefficient's spread matched
            self._weights = np.zeros_like(self._weights)
            centre = slice(MAP_CONTEXT * 13, (MAP_CONTEXT + 1) * 13)
            self._weights[centre, :] = np.diag(trained[-1])
        self._cepstra = _Cepstra()
        self._mapped = b""

    def _front_end(self, pcm: Pcm) -> bytes:
        audio = super()._front_end(pcm)
        cep = self._cepstra(audio)
        mean = cep.mean(axis=0)
        mapped = _context(cep - mean) @ self._weights + mean
        self._mapped = mapped.astype(np.float32).tobytes()
        return audio

    def _decode(self, audio: bytes) -> list[Any]:
        self.decoder.start_utt()
        self.decoder.process_cep(self._mapped, full_utt=True)
        self.decoder.end_utt()
        return list(self.decoder.seg() or [])


ENGINES["map-16k-near"] = lambda: MappedEngine("map-16k-near", PsSettings(alike_min_distance=1))
ENGINES["mapvar-16k-near"] = lambda: MappedEngine(
    "mapvar-16k-near", PsSettings(alike_min_distance=1), spread_only=True
)


# --- what a caller says for yes and no ------------------------------------------------------

SYNONYMS = {"yes": ("yeah", "yep", "yup", "correct"), "no": ("nope", "nah")}


class SynonymEngine:
    """Another engine, with the confirmation's usual synonyms added to its yes/no
    vocabulary ("yeah", "yep" for yes): on the phone band the /s/ of "yes" is mostly lost,
    and the near words that compete with "yes" are then what was said."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = f"{inner.name}+syn"

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        canonical = {s: p for p, _ in vocabulary.meanings for s in SYNONYMS.get(p, ())}
        if not canonical:
            return self.inner.recognize(pcm, vocabulary)
        meaning = dict(vocabulary.meanings)
        extended = Vocabulary(
            vocabulary.language,
            (*vocabulary.meanings, *((s, meaning[p]) for s, p in canonical.items())),
        )
        heard = self.inner.recognize(pcm, extended)
        if heard.phrase in canonical:
            phrase = canonical[heard.phrase]
            return Recognition(phrase, heard.confidence, True, f"{heard.phrase}: {heard.detail}")
        return heard


ENGINES["lm-16k-near-syn"] = lambda: SynonymEngine(
    LmEngine("lm-16k-near", PsSettings(alike_min_distance=1))
)
