"""The benchmark's figures for people: results.json, a table on the terminal, results.png."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The targets of issue 8, at 500 concurrent calls.
TARGET_REACTION_TO_FLOOR_P99 = 3.0
TARGET_LOOP_LAG_P99_MS = 5.0
TARGET_KB_PER_CALL = 50.0
TARGET_SETUPS_PER_S = 200.0


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def ratio(run: dict[str, Any]) -> float | None:
    """Reaction p99 over floor p99: the figure the target is set on."""
    reaction = _number(run.get("reaction_ms", {}).get("p99"))
    floor = _number(run.get("floor_ms", {}).get("p99"))
    if reaction is None or floor is None or floor == 0:
        return None
    return round(reaction / floor, 3)


def write_results(path: Path, runs: list[dict[str, Any]], *, time_scale: float) -> None:
    for run in runs:
        run["reaction_to_floor_p99"] = ratio(run)
    document = {
        "runs": runs,
        "machine": {
            "python": platform.python_version(),
            "cpus": _cpu_count(),
            "time_scale": time_scale,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()


def _fmt(value: Any, digits: int = 2) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.{digits}f}"


Row = dict[str, Any]
COLUMNS: list[tuple[str, str, Callable[[Row], str]]] = [
    ("calls", "calls", lambda r: str(r.get("calls", "-"))),
    ("react p50", "ms", lambda r: _fmt(r["reaction_ms"]["p50"])),
    ("react p99", "ms", lambda r: _fmt(r["reaction_ms"]["p99"])),
    ("floor p50", "ms", lambda r: _fmt(r["floor_ms"]["p50"])),
    ("floor p99", "ms", lambda r: _fmt(r["floor_ms"]["p99"])),
    ("p99/floor", "x", lambda r: _fmt(ratio(r))),
    ("setups", "/s", lambda r: _fmt(r.get("call_setups_per_s"), 1)),
    ("cpu", "ms/call", lambda r: _fmt(r.get("cpu_ms_per_call"))),
    ("memory", "KB/call", lambda r: _fmt(r.get("rss_kb_per_call"), 1)),
    ("lag p99", "ms", lambda r: _fmt(r.get("loop_lag_p99_ms"))),
    ("db p50", "ms", lambda r: _fmt(r["db_write_ms"]["p50"])),
    ("db p99", "ms", lambda r: _fmt(r["db_write_ms"]["p99"])),
    ("db rec", "/call", lambda r: _fmt(r.get("db_records_per_call"), 1)),
]


def table(runs: list[dict[str, Any]]) -> str:
    header = ["concurrent", *[name for name, _, _ in COLUMNS]]
    units = ["calls", *[unit for _, unit, _ in COLUMNS]]
    rows = [[str(r["concurrent_calls"]), *[cell(r) for _, _, cell in COLUMNS]] for r in runs]
    widths = [max(len(row[i]) for row in [header, units, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True))

    return "\n".join([line(header), line(units), *[line(row) for row in rows]])


def print_table(runs: list[dict[str, Any]]) -> None:
    print()
    steady = [run for run in runs if "burst" in run]
    if steady:
        rate = steady[0].get("arrival_per_s")
        print(f"calls arriving at {rate:g} per second (set-ups/s: from the run below):")
    print(table(runs))
    bursts = [{"concurrent_calls": r["concurrent_calls"], **r["burst"]} for r in steady]
    if bursts:
        print()
        print("all calls arriving at once:")
        print(table(bursts))
    print()
    print(
        f"targets at 500 calls: reaction p99 <= {TARGET_REACTION_TO_FLOOR_P99:g}x floor p99, "
        f"loop lag p99 < {TARGET_LOOP_LAG_P99_MS:g} ms, < {TARGET_KB_PER_CALL:g} KB per call, "
        f"> {TARGET_SETUPS_PER_S:g} set-ups/s, cost per call flat from 10 to 1000"
    )


def write_plot(path: Path, runs: list[dict[str, Any]]) -> bool:
    """Reaction time and floor, and memory per call, against concurrency; False without
    matplotlib (the JSON and the table still have every figure)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return False
    sizes = [r["concurrent_calls"] for r in runs]

    def series(key: str, sub: str | None = None) -> list[float]:
        values = [r.get(key, {}).get(sub) if sub else r.get(key) for r in runs]
        numbers = [_number(v) for v in values]
        return [math.nan if n is None else n for n in numbers]

    figure, (times, memory, cpu) = plt.subplots(1, 3, figsize=(15, 4.5))
    times.plot(sizes, series("reaction_ms", "p50"), "o-", color="tab:blue", label="reaction p50")
    times.plot(sizes, series("reaction_ms", "p99"), "o--", color="tab:blue", label="reaction p99")
    times.plot(sizes, series("floor_ms", "p50"), "s-", color="tab:gray", label="floor p50")
    times.plot(sizes, series("floor_ms", "p99"), "s--", color="tab:gray", label="floor p99")
    bursts = [r.get("burst") or {} for r in runs]
    if any(bursts):
        burst_reaction = [_number(b.get("reaction_ms", {}).get("p99")) for b in bursts]
        burst_floor = [_number(b.get("floor_ms", {}).get("p99")) for b in bursts]
        times.plot(
            sizes, [math.nan if v is None else v for v in burst_reaction], "^:",
            color="tab:red", label="reaction p99, all at once",
        )  # fmt: skip
        times.plot(
            sizes, [math.nan if v is None else v for v in burst_floor], "v:",
            color="tab:brown", label="floor p99, all at once",
        )  # fmt: skip
    times.set(
        xscale="log", yscale="log", xlabel="concurrent calls", ylabel="ms",
        title="Reaction time vs the ARI round trip",
    )  # fmt: skip
    times.legend(fontsize="small")
    memory.plot(sizes, series("rss_kb_per_call"), "o-", color="tab:green", label="measured")
    memory.axhline(TARGET_KB_PER_CALL, color="tab:red", linestyle=":", label="target")
    memory.set(xscale="log", xlabel="concurrent calls", ylabel="KB", title="Memory per call")
    memory.set_ylim(bottom=0)
    memory.legend()
    cpu.plot(sizes, series("cpu_ms_per_call"), "o-", color="tab:orange")
    cpu.set(xscale="log", xlabel="concurrent calls", ylabel="ms", title="CPU time per call")
    cpu.set_ylim(bottom=0)
    for axes in (times, memory, cpu):
        axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
