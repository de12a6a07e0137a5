"""The benchmark's machinery end to end, tiny: `bench/run.py` with 2 calls writes its JSON.

No timing is asserted (this machine's figures are the benchmark's business); what must hold is
that the whole chain runs (simulator, floor probe, controller process, Postgres) and that
results.json has the shape issue 8 promises, with every call counted and put through.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_bench_runs_two_calls_and_writes_results(database: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    finished = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "run.py"),
            "--sizes", "2", "--warmup", "0", "--time-scale", "50",
            "--dsn", database, "--out", str(out), "--no-plot",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    (run,) = json.loads(out.read_text())["runs"]
    assert run["concurrent_calls"] == 2
    assert run["calls"] == 2
    assert run["calls_unfinished"] == 0
    assert run["store_flushed"] is True
    for key in ("reaction_ms", "floor_ms", "db_write_ms"):
        assert set(run[key]) >= {"p50", "p99"}
        assert all(isinstance(v, float) and v >= 0 for v in run[key].values())
    for key in ("call_setups_per_s", "cpu_ms_per_call", "rss_kb_per_call", "loop_lag_p99_ms"):
        assert isinstance(run[key], int | float), key
    assert run["db_records_per_call"] > 0  # the calls reached the database
    assert "concurrent" in finished.stdout  # the table was printed
