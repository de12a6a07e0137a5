"""Run a recognizer over the phone-band set and print what counted, what was asked again,
and what was wrong, per category, with the decoding time per utterance.

Each clip meets the vocabulary it would meet on a call (its menu, "continue", or the yes/no
of a confirmation, which on a call is the product's `confirm_vocabulary`: "yeah", "yep"...
mean yes); a wrong phrase meets all four, and is wrong if any of them takes it for
something that acts (a route, accept, "yes"). A meant phrase is wrong when it is taken for
another meaning. Below the threshold (or nothing recognized) is asked again.

Every route chosen by voice is confirmed on a call ("Did you say billing? Say yes or press
1"), so the table also counts route words and sentences end to end: the route recognized,
then a "yes" clip of the same voice taken for yes (each route clip paired with one yes clip,
in turn). A route taken wrongly is paired the same way with a "no" clip: it is chosen only
if that "no" is taken for yes.

Results are kept in build/phoneband/results/ with every confidence, so that other
thresholds can be read off without decoding again (--sweep).

    .venv/bin/python -m bench.phoneband.measure [--engine NAME] [--split test|dev]
        [--threshold 0.5] [--sweep] [--limit N]

`--split subset` is the test suite's fixed subset of the test split (74 joe clips).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ari_controller.prompts.audio import Pcm
from ari_controller.speech import confirm_vocabulary
from bench.phoneband import testset
from bench.phoneband.engines import ENGINES

RESULTS = testset.BUILD / "results"
DEFAULT_THRESHOLD = 0.5  # numbers[].speech.min_confidence default
# What a call decodes against: the set's vocabularies, the confirmation as the product has it.
DECODED = {**testset.VOCABULARIES, "confirm": confirm_vocabulary("en")}


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
    if split == "subset":  # the test suite's (tests/test_speech_phoneband.py)
        folder, clips = testset.generate_subset()
    else:
        folder, clips = testset.generate(split)
    if limit:
        clips = clips[:: max(1, len(clips) // limit)]
    engine = ENGINES[engine_name]()
    loaded = testset.load(clips, folder)
    # Start-up: models, dictionaries and each vocabulary's grammar are ready before a call.
    for vocabulary in DECODED.values():
        engine.recognize(loaded[0][1], vocabulary)
    return decode(engine, loaded)


def decode(engine: Any, loaded: Sequence[tuple[testset.Clip, Pcm]]) -> list[Row]:
    """Each clip against the vocabularies it meets, with the decoding time of each."""
    rows = []
    for clip, pcm in loaded:
        said = clip.said
        names = [said.vocabulary] if said.vocabulary else list(testset.VOCABULARIES)
        for name in names:
            vocabulary = DECODED[name]
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
    lines += _e2e_lines(rows, threshold)
    wrong = [(r, label) for r, v, label in judged.values() if v == "wrong"]
    for row, label in wrong:
        lines.append(f"- WRONG: {row.voice} '{row.text}' (clip {row.clip}) -> {label}")
    return "\n".join(lines)


@dataclass
class EndToEnd:
    """Route words and sentences through the confirmation, for one column (joe or espeak)."""

    route: int  # of the route clips: route right, then "yes" taken for yes
    route_n: int
    sentence: int
    sentence_n: int
    confirmations: int  # questions asked: every route chosen by voice, right or wrong
    wrong_routes: int  # routes taken wrongly (meant or wrong phrases), each then confirmed
    wrong: int  # wrong results that act after the confirmation (a "no" taken for yes, accept)


def end_to_end(rows: Sequence[Row], threshold: float, voice: str) -> EndToEnd:
    judged = verdicts(rows, threshold)
    mine = sorted(r.clip for r, _, _ in judged.values() if r.voice == voice)
    answers: dict[str, list[bool]] = {"yes": [], "no": []}
    for clip in mine:
        row, _, _ = judged[clip]
        if row.category == "yes/no" and row.expected in answers:
            taken = [meaning(r, threshold) for r in rows if r.clip == clip]
            answers[row.expected].append("yes" in taken)
    turn = {"yes": 0, "no": 0}

    def answer(said: str) -> bool:
        """The next clip of `said` in turn: was it taken for yes?"""
        heard = answers[said][turn[said] % len(answers[said])] if answers[said] else False
        turn[said] += 1
        return heard

    result = EndToEnd(0, 0, 0, 0, 0, 0, 0)
    for clip in mine:
        row, verdict, _ = judged[clip]
        taken = [(r.vocabulary, meaning(r, threshold)) for r in rows if r.clip == clip]
        routes = [m for v, m in taken if v.startswith("menu") and m is not None]
        if row.category in ("route", "sentence"):
            if row.category == "route":
                result.route_n += 1
            else:
                result.sentence_n += 1
            if verdict == "counted":
                result.confirmations += 1
                if answer("yes"):
                    result.route += row.category == "route"
                    result.sentence += row.category == "sentence"
            elif routes:  # another route: the caller says no
                result.confirmations += 1
                result.wrong_routes += 1
                result.wrong += answer("no")
        elif row.category == "wrong":
            if routes:
                result.confirmations += 1
                result.wrong_routes += 1
                result.wrong += answer("no")
            if any(
                m not in (None, *testset.HARMLESS) for v, m in taken if not v.startswith("menu")
            ):
                result.wrong += 1  # accept or yes: nothing confirms these
        elif verdict == "wrong":
            result.wrong += 1  # "continue" taken for something else, "no" for yes
    return result


def _e2e_lines(rows: Sequence[Row], threshold: float) -> list[str]:
    lines = []
    for voice in ("joe", "espeak"):
        e = end_to_end(rows, threshold, voice)
        if not e.route_n:
            continue
        lines.append(
            f"end to end ({voice}, after the confirmation): route {e.route}/{e.route_n} "
            f"({100 * e.route / e.route_n:.0f} %), sentence {e.sentence}/{e.sentence_n} "
            f"({100 * e.sentence / max(1, e.sentence_n):.0f} %); confirmations asked "
            f"{e.confirmations} (every route chosen by voice), {e.wrong_routes} of them for a "
            f"wrong route; wrong after the confirmation: {e.wrong}"
        )
    return lines


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
    parser.add_argument("--split", default="test", choices=("test", "dev", "subset"))
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
