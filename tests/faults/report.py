"""The fault matrix's table (Markdown) from what `make test-faults` wrote in
build/fault-matrix/: one row per fault, one column per phase of the call. A cell reads
"dropped callers · time without a driver p50 / max"; takeover time, alerts lost or doubled
and what was left in Asterisk are per fault."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.faults.matrix import PHASES


def table(reports: list[dict[str, Any]]) -> str:
    head = ["fault", *PHASES, "takeover p50 / max", "alerts lost / doubled", "left", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for report in sorted(reports, key=lambda r: r["order"]):
        cells = report["cells"]
        first = cells[PHASES[0]]
        row = [report["fault"]]
        for phase in PHASES:
            cell = cells[phase]
            if report["calls_survive"]:
                row.append(
                    f"{cell['dropped']} · {cell['undriven_p50_s']:.1f} / "
                    f"{cell['undriven_max_s']:.1f} s"
                )
            else:
                row.append(f"ended {cell['dropped']} ({cell['dropped']} expected)")
        takeover = (
            f"{first['takeover_p50_s']:.1f} / {first['takeover_max_s']:.1f} s"
            if first["takeover_p50_s"] is not None
            else "none (no takeover)"
        )
        lost = sum(cells[p]["alerts_lost"] for p in PHASES)
        doubled = sum(cells[p]["alerts_doubled"] for p in PHASES)
        left = sum(cells[p]["left"] for p in PHASES) + sum(
            run["left_unattributed"] for run in report["runs"]
        )
        row += [takeover, f"{lost} / {doubled}", str(left), str(first["runs"])]
        lines.append("| " + " | ".join(row) + " |")
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
