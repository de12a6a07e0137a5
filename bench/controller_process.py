"""The controller under test, alone in its process so that its CPU time and memory are its own.

    python bench/controller_process.py --config bench/bench.yaml --ari-url URL --dsn DSN \
        --work-dir DIR

Runs the real `Daemon` with `Instruments` hooked in, and answers bench/run.py (see lines.py):
once connected it says {"ready": ...}; "begin" starts counting; "end" waits for the calls to
finish and the store to catch up, then answers with the figures; "quit" stops the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from pathlib import Path
from typing import Any

from instruments import Instruments, cpu_s, percentile, rss_kb
from lines import read_command, say

from ari_controller.config import Config, load_config
from ari_controller.daemon.app import Daemon, tune_garbage_collector
from ari_controller.logging import configure_logging
from ari_controller.testing.harness import configure_for

ARI_USER = "callrouting"
ARI_PASSWORD = "bench-secret"
CALLS_DONE_TIMEOUT_S = 120.0
FLUSH_TIMEOUT_S = 60.0


def bench_config(config: Config, ari_url: str, dsn: str, work_dir: Path) -> Config:
    """The bench configuration pointed at this simulator, database and work directory."""
    return configure_for(
        config,
        ari_url,
        dsn,
        work_dir,
        work_dir / "sounds",
        username=ARI_USER,
        password=ARI_PASSWORD,
    )


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def summary_ms(values: list[float]) -> dict[str, float | None]:
    """p50 and p99 in milliseconds; None when nothing was measured."""
    if not values:
        return {"p50": None, "p99": None}
    return {"p50": ms(percentile(values, 50)), "p99": ms(percentile(values, 99))}


class Measurement:
    """One run's counting, from "begin" to "end"."""

    def __init__(self, daemon: Daemon, instruments: Instruments) -> None:
        self.daemon = daemon
        self.instruments = instruments
        self.cpu_before = 0.0
        self.rss_before = 0
        self.written_before = 0
        self.wall_before = 0.0

    def begin(self) -> None:
        instruments = self.instruments
        instruments.reset()
        instruments.recording = True
        self.cpu_before = cpu_s()
        self.rss_before = rss_kb()
        self.written_before = self.daemon.writer.written
        self.wall_before = time.perf_counter()

    async def end(self) -> dict[str, Any]:
        daemon, instruments = self.daemon, self.instruments
        deadline = time.monotonic() + CALLS_DONE_TIMEOUT_S
        # The controller has no "all calls done" event to wait on; a poll is cheap enough.
        while daemon.controller.calls and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        unfinished = len(daemon.controller.calls)
        flushed = await daemon.writer.flush(FLUSH_TIMEOUT_S)
        cpu = cpu_s() - self.cpu_before
        wall = time.perf_counter() - self.wall_before
        instruments.recording = False

        calls = instruments.calls_started
        peak_rss = max((rss for rss, _ in instruments.memory), default=self.rss_before)
        most_calls = max((c for _, c in instruments.memory), default=0)
        connected = instruments.connected_at
        first = instruments.first_call_at
        span = (max(connected) - first) if connected and first is not None else 0.0
        records = daemon.writer.written - self.written_before
        writes = len(instruments.db_write_s)
        return {
            "calls": calls,
            "calls_connected": len(connected),
            "calls_unfinished": unfinished,
            "store_flushed": flushed,
            "reaction_ms": summary_ms(instruments.reaction_s),
            "reaction_once_free_ms": summary_ms(instruments.reaction_ready_s),
            "reactions": len(instruments.reaction_s),
            # The controller's own REST requests, waiting for a pooled connection included.
            "rest_ms": summary_ms(instruments.rest_s),
            "call_setup_ms": summary_ms(instruments.setup_s),
            "call_setups_per_s": round(len(connected) / span, 1) if span > 0 else None,
            "cpu_ms_per_call": round(cpu * 1000.0 / calls, 3) if calls else None,
            "cpu_utilisation": round(cpu / wall, 3) if wall > 0 else None,
            "rss_kb_before": self.rss_before,
            "rss_kb_peak": peak_rss,
            "peak_concurrent_calls": most_calls,
            "rss_kb_per_call": (
                round((peak_rss - self.rss_before) / most_calls, 2) if most_calls else None
            ),
            "loop_lag_ms": {
                **summary_ms(instruments.loop_lag_s),
                "max": ms(max(instruments.loop_lag_s, default=0.0)),
            },
            "loop_lag_p99_ms": summary_ms(instruments.loop_lag_s)["p99"],
            "gc_pauses": {
                f"gen{generation}": {
                    "count": len(pauses),
                    "total_ms": ms(sum(pauses)),
                    "max_ms": ms(max(pauses, default=0.0)),
                }
                for generation in (0, 1, 2)
                if (pauses := [s for g, s in instruments.gc_pauses if g == generation])
            },
            "db_write_ms": summary_ms(instruments.db_write_s),
            "db_transactions_per_call": round(writes / calls, 3) if calls else None,
            "db_records_per_call": round(records / calls, 3) if calls else None,
            "db_write_failures": instruments.db_write_failures,
            "events_per_call": round(instruments.events / calls, 2) if calls else None,
            "requests_per_call": round(instruments.requests / calls, 2) if calls else None,
            "slowest_reactions": [
                {"ms": ms(seconds), "event": event, "request": request}
                for seconds, event, request in instruments.slowest
            ],
        }


def memory_sites(top: int) -> list[dict[str, Any]]:
    """Where the memory allocated since "begin" (and still held) was allocated: the lines
    holding the most, with their callers' file names shortened."""
    if not tracemalloc.is_tracing():
        return []
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("lineno")[:top]
    return [
        {
            "kb": round(stat.size / 1024, 1),
            "blocks": stat.count,
            "where": f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}",
        }
        for stat in stats
    ]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "ari_controller/", "lib/python3."):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def serve(args: argparse.Namespace) -> None:
    configure_logging(args.log_level, "json")  # stderr: stdout is for bench/run.py
    config = bench_config(load_config(args.config), args.ari_url, args.dsn, args.work_dir)
    instruments = Instruments()
    instruments.install()
    daemon = Daemon(config, None, drain_s=5.0)
    # The store writer is built in start(): chain our hook in front of the daemon's metrics.
    daemon.metrics.store_write = instruments.on_write(  # type: ignore[method-assign,assignment]
        daemon.metrics.store_write
    )
    await daemon.start()
    if args.without_store:
        # Diagnostic: what the calls cost without the database (records are dropped).
        daemon.controller.emit = lambda record: None
    if not args.gc_default:
        tune_garbage_collector()  # as `ari-controller run` does
    instruments.calls_in_progress = lambda: len(daemon.controller.calls)
    await daemon.events.wait_connected(10)
    instruments.start_ticker()
    measurement = Measurement(daemon, instruments)
    say({"ready": True, "pid_rss_kb": rss_kb()})
    try:
        while True:
            command = await read_command()
            if command == "begin":
                if args.memory_sites:
                    tracemalloc.start()
                measurement.begin()
                say({"begun": True})
            elif command == "memory":
                say({"memory_sites": memory_sites(args.memory_sites)})
            elif command == "end":
                say(await measurement.end())
            elif command == "quit":
                break
            else:
                say({"error": f"unknown command {command!r}"})
    finally:
        await instruments.stop_ticker()
        await daemon.stop()
        instruments.uninstall()
    say({"stopped": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--ari-url", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--memory-sites", type=int, default=0, help="trace allocations")
    parser.add_argument(
        "--gc-default", action="store_true", help="Python's default GC, not the daemon's tuning"
    )
    parser.add_argument("--without-store", action="store_true", help="drop call records")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
