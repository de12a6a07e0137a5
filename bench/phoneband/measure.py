"""Run a recognizer over the phone-band set and print what counted, what was asked again,
and what was wrong, per category, with the decoding time per utterance.

Each clip meets the vocabulary it would meet on a call (its menu, "continue", or the yes/no
of a confirmation); a wrong phrase meets all four, and is wrong if any of them takes it for
something that acts (a route, accept, "yes"). A meant phrase is wrong when it is taken for
another meaning. Below the threshold (or nothing recognized) is asked again.

Results are kept in build/phoneband/results/ with every confidence, so that other
thresholds can be read off without decoding again (--sweep).

    .venv/bin/python -m bench.phoneband.measure [--engine NAME] [--split test|dev]
        [--threshold 0.5] [--sweep] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bench.phoneband import testset
from bench.phoneband.engines import ENGINES

RESULTS = testset.BUILD / "results"
DEFAULT_THRESHOLD = 0.5  # numbers[].speech.min_confidence default


@dataclass
class Row:
    clip: int
    voice: str
    category: str
    text: str
    vocabulary: str
    expected: str | None
    phrase: str | None
    phrase_meaning: str | None  # what the recognized phrase means in that vocabulary
    confidence: float
    detail: str
    cpu_ms: float
    wall_ms: float


def run(engine_name: str, split: str, limit: int | None = None) -> list[Row]:
    folder, clips = testset.generate(split)
    if limit:
        clips = clips[:: max(1, len(clips) // limit)]
    engine = ENGINES[engine_name]()
    loaded = testset.load(clips, folder)
    # Start-up: models, dictionaries and each vocabulary's grammar are ready before a call.
    for vocabulary in testset.VOCABULARIES.values():
        engine.recognize(loaded[0][1], vocabulary)
    rows = []
    for clip, pcm in loaded:
        said = clip.said
        names = [said.vocabulary] if said.vocabulary else list(testset.VOCABULARIES)
        for name in names:
            vocabulary = testset.VOCABULARIES[name]
            cpu, wall = time.thread_time(), time.perf_counter()
            heard = engine.recognize(pcm, vocabulary)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            rows.append(
                Row(
                    clip.index,
                    "joe" if clip.voice == testset.JOE else "espeak",
                    said.category,
                    said.text,
                    name,
                    said.meaning,
                    heard.phrase,
                    vocabulary.meaning_of(heard.phrase) if heard.phrase else None,
                    heard.confidence,
                    heard.detail,
                    round(1000 * cpu, 2),
                    round(1000 * wall, 2),
                )
            )
    return rows


def meaning(row: Row, threshold: float) -> str | None:
    if row.phrase_meaning is not None and row.confidence >= threshold:
        return row.phrase_meaning
    return None


def verdicts(rows: Sequence[Row], threshold: float) -> dict[int, tuple[Row, str, str]]:
    """Per clip: (first row, "counted" | "asked" | "wrong", what it was taken for)."""
    result: dict[int, tuple[Row, str, str]] = {}
    for row in rows:
        taken = meaning(row, threshold)
        if row.expected is not None:
            verdict = "asked" if taken is None else "counted" if taken == row.expected else "wrong"
            # a harmless slip ("yes" taken for "no") only asks again
            if verdict == "wrong" and taken in testset.HARMLESS:
                verdict = "asked"
        else:
            verdict = "wrong" if taken is not None and taken not in testset.HARMLESS else "asked"
        label = f"{row.phrase} {row.confidence:.2f}" if row.phrase else row.detail
        before = result.get(row.clip)
        if before is None or (verdict == "wrong" and before[1] != "wrong"):
            result[row.clip] = (row, verdict, f"{row.vocabulary}: {label}")
    return result


def table(rows: Sequence[Row], threshold: float) -> str:
    judged = verdicts(rows, threshold)
    lines = [
        "| category | joe: n | counted | asked again | wrong | espeak: n | counted "
        "| asked again | wrong |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    totals = {"joe": [0, 0, 0, 0], "espeak": [0, 0, 0, 0]}
    for category in testset.CATEGORIES:
        cells = []
        for voice in ("joe", "espeak"):
            mine = [v for r, v, _ in judged.values() if r.category == category and r.voice == voice]
            counts = [len(mine), mine.count("counted"), mine.count("asked"), mine.count("wrong")]
            totals[voice] = [a + b for a, b in zip(totals[voice], counts, strict=True)]
            n, counted, asked, wrong = counts
            share = f" ({100 * counted / n:.0f} %)" if n and category != "wrong" else ""
            cells += [str(n), f"{counted}{share}", str(asked), f"**{wrong}**" if wrong else "0"]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    cpu = [r.cpu_ms for r in rows]
    joe_cpu = [r.cpu_ms for r in rows if r.voice == "joe"]
    lines.append("")
    lines.append(
        f"threshold {threshold}: joe {totals['joe'][3]} wrong of {totals['joe'][0]}, "
        f"espeak {totals['espeak'][3]} wrong of {totals['espeak'][0]}; decoding CPU per "
        f"utterance p50 {_pct(cpu, 50):.0f} ms, p95 {_pct(cpu, 95):.0f} ms "
        f"(joe only p95 {_pct(joe_cpu, 95):.0f} ms), {len(rows)} decodings"
    )
    confirm = [r for r in rows if r.vocabulary == "confirm" and r.voice == "joe"]
    said_yes = [r for r in confirm if r.expected == "yes"]
    said_no = [r for r in confirm if r.expected == "no"]
    other = [r for r in confirm if r.expected is None]
    lines.append(
        f"confirmation (joe): 'yes' taken for yes {_yes(said_yes, threshold)}/{len(said_yes)}, "
        f"'no' taken for yes {_yes(said_no, threshold)}/{len(said_no)}, wrong phrases taken "
        f"for yes {_yes(other, threshold)}/{len(other)}"
    )
    wrong = [(r, label) for r, v, label in judged.values() if v == "wrong"]
    for row, label in wrong:
        lines.append(f"- WRONG: {row.voice} '{row.text}' (clip {row.clip}) -> {label}")
    return "\n".join(lines)


def _yes(rows: Sequence[Row], threshold: float) -> int:
    return sum(meaning(r, threshold) == "yes" for r in rows)


def _pct(values: Sequence[float], pct: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def sweep(rows: Sequence[Row]) -> str:
    """Counted share of meant phrases (joe) and wrong count per threshold."""
    lines = ["| threshold | route | sentence | continue | yes/no | wrong (joe) | wrong (espeak) |"]
    lines.append("|---|---|---|---|---|---|---|")
    for threshold in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99):
        judged = verdicts(rows, threshold)
        cells = []
        for category in testset.CATEGORIES[:4]:
            mine = [v for r, v, _ in judged.values() if r.category == category and r.voice == "joe"]
            cells.append(f"{100 * mine.count('counted') / max(1, len(mine)):.0f} %")
        for voice in ("joe", "espeak"):
            cells.append(str(sum(v == "wrong" and r.voice == voice for r, v, _ in judged.values())))
        lines.append(f"| {threshold} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="product", choices=sorted(ENGINES))
    parser.add_argument("--split", default="test", choices=("test", "dev"))
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--sweep", action="store_true", help="also: results per threshold")
    parser.add_argument("--limit", type=int, default=None, help="about this many clips")
    parser.add_argument("--cached", action="store_true", help="reuse the saved results")
    args = parser.parse_args(argv)
    path = RESULTS / f"{args.split}-{args.engine}.json"
    started = time.monotonic()
    if args.cached and path.is_file():
        rows = [Row(**r) for r in json.loads(path.read_text(encoding="utf-8"))]
    else:
        rows = run(args.engine, args.split, args.limit)
        if not args.limit:
            RESULTS.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps([asdict(r) for r in rows]), encoding="utf-8")
    print(f"engine {args.engine}, {args.split} set, {time.monotonic() - started:.0f} s")
    print()
    print(table(rows, args.threshold))
    if args.sweep:
        print()
        print(sweep(rows))


if __name__ == "__main__":
    main()
