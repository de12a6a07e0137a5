"""The recognizers measured on the phone-band set, each behind the product's `Recognizer`
interface (`recognize(pcm, vocabulary) -> Recognition`) and judged by the product's `decide`.

- `product`: ari_controller.speech's PocketSphinx engine exactly as the daemon uses it.
- `ps-*`, `lm-*`: the product's engine (`PocketSphinxEngine`) with one thing changed at a
  time: the decoder's feature settings, the front end, the wide search (`ps-*`: the grammar
  search the product had before; `lm-*`: the language-model search it has now), carrier
  words, how near a sound-alike may be, the phone loop over the whole utterance.
- `kws-*`: PocketSphinx keyword spotting (one threshold per phrase, scaled by its phones).
- `map-*`: the line's cepstra mapped towards wideband ones before decoding.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ari_controller.prompts.audio import Pcm, resample
from ari_controller.speech import PocketSphinxEngine, Recognition, Vocabulary, get_recognizer
from ari_controller.speech.distractors import ENGLISH
from ari_controller.speech.engines import (
    _FILLERS,
    _Decoder,
    _Searches,
    around_speech,
    carrier_grammar,
    default_model_dir,
)

_MODEL_COPIES: dict[str, tempfile.TemporaryDirectory[str]] = {}


def _acoustic_model(features: dict[str, Any]) -> Path:
    """The wheel's acoustic model, or a copy whose feat.params carries the given feature
    settings: the model's feat.params overrides the decoder's own (e.g. upperf 6800, which
    8 kHz audio cannot have)."""
    source = default_model_dir() / "en-us"
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
    search: str = "lm"  # the wide search: "lm" (the product) or "grammar" (the product before)
    carriers: bool = True  # allow "I need ..." / "... please" around a phrase
    fill_db: float | None = None  # at 16 kHz: noise above 3.4 kHz, dB below the speech
    normalize_db: float | None = None  # scale the voiced part's RMS to this dBFS (AGC)
    # Sound-alikes from this many phones away compete with the phrases (the product: 1; it
    # was 3 before, which left "building" out for "billing"); the phrase's own forms never.
    alike_min_distance: int = 1
    alikes_per_phrase: int = 40
    # The phone loop over the phrase's frames and this much either side; None: the whole
    # utterance. "default": the product's.
    phone_margin_s: float | str | None = "default"


class PsEngine(PocketSphinxEngine):
    """The product's engine with one or more of its settings changed."""

    def __init__(self, name: str, settings: PsSettings) -> None:
        margin = (
            {}
            if settings.phone_margin_s == "default"
            else {"phone_margin_s": settings.phone_margin_s}
        )
        super().__init__(
            sample_rate=settings.rate,
            decoder_options=settings.decoder,
            alike_min_distance=settings.alike_min_distance,
            alikes_per_phrase=settings.alikes_per_phrase,
            carriers=settings.carriers,
            **margin,  # type: ignore[arg-type]
        )
        self.acoustic = _acoustic_model(settings.decoder)
        self.variant = name
        self.settings = settings

    def _wide_search(self, held: _Decoder, searches: _Searches, audio: bytes) -> list[Any]:
        if self.settings.search == "lm":
            return super()._wide_search(held, searches, audio)
        grammar = carrier_grammar(
            [*searches.phrases, *searches.others], self.prefixes, self.suffixes
        )
        key = "w" + hashlib.sha1(grammar.encode()).hexdigest()[:16]
        if key not in held.searches:
            held.decoder.add_jsgf_string(key, grammar)
            held.searches.add(key)
        held.decoder.activate_search(key)
        return self._decode(held.decoder, audio)

    def _front_end(self, spoken: Pcm) -> bytes:
        audio = spoken
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


class KwsEngine(PocketSphinxEngine):
    """Keyword spotting: each phrase with a threshold of 10^(-per_phone * its phones)."""

    def __init__(self, name: str, per_phone: float) -> None:
        super().__init__()
        self.variant = name
        self.per_phone = per_phone
        self._folder = tempfile.TemporaryDirectory(prefix="kws-")

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        spoken = around_speech(pcm)
        if spoken is None:
            return Recognition.silence()
        known = self.pronunciations()
        lines = []
        for phrase in self._usable(vocabulary):
            phones = sum(len(known[w][0]) for w in phrase.split())
            lines.append(f"{phrase} /1e-{round(self.per_phone * phones)}/")
        text = "\n".join(lines) + "\n"
        key = "k" + hashlib.sha1(text.encode()).hexdigest()[:16]
        held = self._borrow()
        try:
            if key not in held.searches:
                path = Path(self._folder.name) / f"{key}.txt"
                path.write_text(text, encoding="utf-8")
                held.decoder.add_kws(key, str(path))
                held.searches.add(key)
            held.decoder.activate_search(key)
            segments = self._decode(held.decoder, self._front_end(spoken))
        finally:
            self._give_back(held)
        found = {s.word for s in segments if s.word not in _FILLERS}
        if len(found) == 1:
            return Recognition(found.pop(), 1.0, True, "spotted")
        if found:
            return Recognition(None, 0.0, True, f"several: {sorted(found)}")
        return Recognition(None, 0.0, True, "nothing spotted")


NARROW = {"nfft": 256, "lowerf": 300, "upperf": 3400}
# The product's wide search before: a grammar, no carrier words, sound-alikes from 3 phones.
BEFORE = {"search": "grammar", "carriers": False, "alike_min_distance": 3, "phone_margin_s": None}


def _ps(name: str, **changes: Any) -> Callable[[], Any]:
    return lambda: PsEngine(name, PsSettings(**changes))


ENGINES: dict[str, Callable[[], Any]] = {
    "product": product,
    # the product before (grammar search, no carriers, near words left out), and variants
    "ps-16k": _ps("ps-16k", **BEFORE),
    # native 8 kHz features: the filter bank squeezed into the phone band
    "ps-8k": _ps("ps-8k", **BEFORE, rate=8000, decoder=dict(NARROW)),
    "ps-8k-4000": _ps(
        "ps-8k-4000", **BEFORE, rate=8000, decoder={"nfft": 256, "lowerf": 130, "upperf": 3800}
    ),
    # 16 kHz features (as trained) but with the empty band filled with low noise
    "ps-16k-fill": _ps("ps-16k-fill", **BEFORE, fill_db=30.0),
    # 16 kHz features with the mel filter bank limited to the phone band
    "ps-16k-band": _ps("ps-16k-band", **BEFORE, decoder={"lowerf": 300, "upperf": 3400}),
    # level normalization (AGC) before decoding
    "ps-16k-agc": _ps("ps-16k-agc", **BEFORE, normalize_db=-20.0),
    # sentences: carrier words allowed around the phrase
    "ps-16k-carriers": _ps("ps-16k-carriers", **{**BEFORE, "carriers": True}),
    # near words compete: sound-alikes from one phone away
    "ps-16k-near": _ps("ps-16k-near", **{**BEFORE, "alike_min_distance": 1}),
    "ps-8k-near": _ps(
        "ps-8k-near", **{**BEFORE, "alike_min_distance": 1}, rate=8000, decoder=dict(NARROW)
    ),
    # the language-model search with carrier words (the product's search now)
    "lm-16k": _ps("lm-16k", alike_min_distance=3, phone_margin_s=None),
    "lm-16k-near": _ps("lm-16k-near", phone_margin_s=None),
    "lm-8k-near": _ps("lm-8k-near", rate=8000, decoder=dict(NARROW), phone_margin_s=None),
    "lm-8k": _ps(
        "lm-8k", rate=8000, decoder=dict(NARROW), alike_min_distance=3, phone_margin_s=None
    ),
    "lm-8k-near-nfilt16": _ps(
        "lm-8k-near-nfilt16", rate=8000, decoder={**NARROW, "nfilt": 16}, phone_margin_s=None
    ),
    "lm-16k-near-fill": _ps("lm-16k-near-fill", fill_db=30.0, phone_margin_s=None),
    "lm-16k-near-agc": _ps("lm-16k-near-agc", normalize_db=-20.0, phone_margin_s=None),
    "lm-16k-near-band": _ps(
        "lm-16k-near-band", decoder={"lowerf": 300, "upperf": 3400}, phone_margin_s=None
    ),
    "lm-16k-near-nonr": _ps(
        "lm-16k-near-nonr", decoder={"remove_noise": "no"}, phone_margin_s=None
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
        self._folder = tempfile.TemporaryDirectory(prefix="mfc-")
        engine = PocketSphinxEngine(decoder_options={"mfclogdir": self._folder.name})
        self.decoder = engine._new_decoder().decoder
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


class MappedEngine(PsEngine):
    """The LM search fed with the line's cepstra mapped towards wideband ones (`train_mapping`)."""

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

    def _decode(self, decoder: Any, audio: bytes) -> list[Any]:
        decoder.start_utt()
        decoder.process_cep(self._mapped, full_utt=True)
        decoder.end_utt()
        return list(decoder.seg() or [])


ENGINES["map-16k-near"] = lambda: MappedEngine("map-16k-near", PsSettings(phone_margin_s=None))
ENGINES["mapvar-16k-near"] = lambda: MappedEngine(
    "mapvar-16k-near", PsSettings(phone_margin_s=None), spread_only=True
)
