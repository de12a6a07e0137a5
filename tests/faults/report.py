"""The fault matrix's table (Markdown) from what `make test-faults` wrote in
build/fault-matrix/: one column per fault, one row per phase of the call the fault caught. A
cell reads "callers dropped · time without a driver p50 / max"; the takeover time, alerts
lost or doubled and what was left in Asterisk follow, per fault."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.faults.matrix import PHASES


def table(reports: list[dict[str, Any]]) -> str:
    """Rows: the phases of the call, then the fault's own figures; columns: the faults."""
    reports = sorted(reports, key=lambda r: r["order"])
    lines = [
        "| phase at the fault | " + " | ".join(r["fault"] for r in reports) + " |",
        "|---|" + "---|" * len(reports),
    ]
    for phase in PHASES:
        row = [phase]
        for report in reports:
            cell = report["cells"][phase]
            if report["calls_survive"]:
                row.append(
                    f"{cell['dropped']} · {cell['undriven_p50_s']:.1f} / "
                    f"{cell['undriven_max_s']:.1f} s"
                )
            else:
                row.append(f"ended with Asterisk {cell['dropped']}/{cell['runs']}")
        lines.append("| " + " | ".join(row) + " |")

    def per_fault(name: str, value: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {name} | " + " | ".join(value(r) for r in reports) + " |")

    def takeover(report: dict[str, Any]) -> str:
        first = report["cells"][PHASES[0]]
        if first["takeover_p50_s"] is None:
            return "none"
        return f"{first['takeover_p50_s']:.1f} / {first['takeover_max_s']:.1f} s"

    def alerts(report: dict[str, Any]) -> str:
        cells = report["cells"].values()
        lost = sum(c["alerts_lost"] for c in cells)
        doubled = sum(c["alerts_doubled"] for c in cells)
        return f"{lost} / {doubled}"

    def left(report: dict[str, Any]) -> str:
        attributed = sum(c["left"] for c in report["cells"].values())
        return str(attributed + sum(run["left_unattributed"] for run in report["runs"]))

    per_fault("takeover p50 / max", takeover)
    per_fault("alerts lost / doubled", alerts)
    per_fault("channels, bridges left", left)
    per_fault("runs", lambda r: str(r["cells"][PHASES[0]]["runs"]))
    return "\n".join(lines)


def main(folder: str = "build/fault-matrix") -> int:
    reports = [json.loads(path.read_text()) for path in sorted(Path(folder).glob("*.json"))]
    if not reports:
        print(f"no results in {folder}: run `make test-faults` first", file=sys.stderr)
        return 1
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
