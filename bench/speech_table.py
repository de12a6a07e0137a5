"""The measured recognition table of docs/speech.md.

Synthesizes each test phrase with several espeak-ng voices and speeds, puts it through an
8 kHz phone line (with half a second of silence around it, as a recording holds it), and asks
the configured engine for the best phrase of a small vocabulary. Prints a Markdown table.

    .venv/bin/python bench/speech_table.py [--threshold 0.5] [--raw]
"""

from __future__ import annotations

import argparse
import time

from ari_controller.prompts.audio import Pcm, resample
from ari_controller.prompts.tts import EspeakNgEngine
from ari_controller.speech import ACCEPT, Vocabulary, decide, get_recognizer

# A menu (three routes) plus the responder's word; "banana", "hello there", "data" and
# "contain" are not in it (the last two are close to words that are).
VOCABULARY = Vocabulary(
    "en",
    (("database", "1"), ("network", "2"), ("payments", "3"), ("continue", ACCEPT)),
)
PHRASES = (
    ("database", "1"),
    ("network", "2"),
    ("payments", "3"),
    ("continue", ACCEPT),
    ("banana", None),
    ("hello there", None),
    ("data", None),
    ("contain", None),
)
VOICES = ((None, 120), ("f3", 120), ("f5", 120), ("m2", 120), ("f5", 150), ("klatt", 120))
PAD_SECONDS = 0.5


def phone_line(text: str, variant: str | None, rate: int) -> Pcm:
    pcm, sample_rate = EspeakNgEngine(variant=variant, rate=rate).synthesize(text, "en")
    spoken = resample(Pcm(pcm, sample_rate), 8000)
    pad = bytes(2 * int(PAD_SECONDS * 8000))
    return Pcm(pad + spoken.samples + pad, 8000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--raw", action="store_true", help="also print the raw scores")
    args = parser.parse_args()
    engine = get_recognizer("pocketsphinx")
    voices = [f"{v or 'default'}@{rate}" for v, rate in VOICES]
    print("| said | expected | " + " | ".join(voices) + " |")
    print("|---|---|" + "---|" * len(voices))
    right = wrong = missed = total = 0
    started = time.monotonic()
    for text, expected in PHRASES:
        cells = []
        for variant, rate in VOICES:
            recognition = engine.recognize(phone_line(text, variant, rate), VOCABULARY)
            decision = decide(recognition, VOCABULARY, args.threshold)
            total += 1
            if decision.meaning is None:
                mark = "rejected" if expected is None else "missed"
                missed += expected is not None
                right += expected is None
            elif decision.meaning == expected:
                mark = "**yes**"
                right += 1
            else:
                mark = "WRONG"
                wrong += 1
            heard = recognition.phrase or "-"
            cell = f"{mark} ({heard} {recognition.confidence:.2f})"
            if args.raw:
                cell += " " + " ".join(f"{k}={v:+.2f}" for k, v in recognition.measures)
            cells.append(cell)
        print(f"| {text} | {expected or 'reject'} | " + " | ".join(cells) + " |")
    elapsed = time.monotonic() - started
    print()
    print(
        f"threshold {args.threshold}: {right}/{total} right, {missed} missed, {wrong} wrong; "
        f"{1000 * elapsed / total:.0f} ms per utterance"
    )


if __name__ == "__main__":
    main()
