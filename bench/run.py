"""`make bench`: the controller under load, as ratios to the floor of ARI itself.

For each N (10, 100, 500, 1000 by default) it starts a fresh simulated Asterisk (at a fast
time scale), the floor probe and the controller, each in its own process, and drives N calls
through the whole flow: greeting, menu choice (1), a busy responder, one who accepts, the
bridge, and the caller's hang-up once every call is connected; every tenth call leaves a
voicemail instead. Twice: first the calls arrive at a steady rate (--rate, 25 a second), so
that the controller carries N calls without a backlog (reaction, loop lag, memory, cost);
then all N at once (how many call set-ups a second it manages). Postgres is a throwaway
server. Writes bench/results.json and bench/results.png, and prints the tables.

    .venv/bin/python bench/run.py [--sizes 10,100,500,1000] [--time-scale 20] [--rate 25]
        [--out bench/results.json] [--plot bench/results.png] [--dsn DSN]
        [--profile N --profile-out bench/profile.txt]

See bench/README.md for what each figure means and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from cpu_profile import start_spy, stop_spy, summarise
from report import print_table, write_plot, write_results

from ari_controller.store.migrate import migrate
from ari_controller.testing.postgres import ThrowawayPostgres, free_port

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
ARI_USER = "callrouting"
ARI_PASSWORD = "bench-secret"  # the same in controller_process.py
TALK_DID, MESSAGE_DID = "100", "200"
TALKER, MESSAGE = "bench_talker", "bench_message"
VOICEMAIL_EVERY = 10  # every tenth call leaves a message
PLACING_AT_ONCE = 32  # originate requests in flight
STARTUP_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 180.0
CALLER_PATIENCE_S = 3600
STALL_S = 10.0
# The steady phase's arrival rate: about half of what this machine sets up at most (the
# simulator and Postgres share its two cores), so that the controller is measured carrying its
# calls rather than drowning in a backlog.
DEFAULT_RATE = 25.0

T = TypeVar("T")


class Child:
    """A process started by the bench that answers commands with JSON lines (lines.py)."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    @classmethod
    async def start(cls, name: str, argv: list[str], log: Path) -> Child:
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=HERE.parent,
            )
        return cls(name, process, log)

    async def line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                raw = await self.process.stdout.readline()
        except TimeoutError:
            raise RuntimeError(f"{self.name}: no answer in {timeout} s\n{self.tail()}") from None
        if not raw:
            raise RuntimeError(f"{self.name} exited\n{self.tail()}")
        return raw.decode()

    async def answer(self, timeout: float) -> dict[str, Any]:
        while True:
            text = await self.line(timeout)
            if text.startswith("{"):
                answer: dict[str, Any] = json.loads(text)
                return answer

    async def ask(self, command: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return await self.answer(timeout)

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, timeout: float = 15.0) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.write(b"quit\n")
            await self.process.stdin.drain()
            self.process.stdin.close()
        try:
            async with asyncio.timeout(timeout):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@dataclass
class Settings:
    config: Path
    time_scale: float
    work_dir: Path
    dsn: str
    profile_out: Path | None = None
    warmup: int = VOICEMAIL_EVERY
    without_store: bool = False
    rate: float | None = None
    gc_default: bool = False
    memory_sites: int = 0
    postgres_pids: dict[str, int] = field(default_factory=dict)


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run jobs with at most `limit` in flight, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


class Caller:
    """Places calls through the simulator's ARI, waits for them to connect, hangs them up."""

    def __init__(self, session: aiohttp.ClientSession, ari_url: str) -> None:
        self.session = session
        self.ari_url = ari_url

    async def place(self, script: str, did: str) -> str:
        params = {
            "endpoint": f"Local/{script}@caller",
            "context": "from-pstn",
            "extension": did,
            "priority": "1",
            "callerId": "Bench <+4930999000>",
            # Asterisk-side seconds, which the time scale shortens: a caller under load would
            # otherwise give up after 30 / 20 = 1.5 s of real time.
            "timeout": str(CALLER_PATIENCE_S),
        }
        async with self.session.post(self.ari_url + "/channels", params=params) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"originate failed: {response.status} {body}")
            return str(body["id"])

    async def place_all(self, count: int, rate: float | None = None) -> tuple[list[str], list[str]]:
        """`count` calls, at once or `rate` per second; the talkers' and the voicemail callers'
        channel ids."""
        plan = [
            (MESSAGE, MESSAGE_DID)
            if i % VOICEMAIL_EVERY == VOICEMAIL_EVERY - 1
            else (TALKER, TALK_DID)
            for i in range(count)
        ]

        started = time.monotonic()

        def job(index: int, script: str, did: str) -> Callable[[], Awaitable[str]]:
            async def paced() -> str:
                if rate:
                    await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
                return await self.place(script, did)

            return paced

        jobs = [job(i, s, d) for i, (s, d) in enumerate(plan)]
        ids = await bounded(count if rate else PLACING_AT_ONCE, jobs)
        talkers = [i for i, (s, _) in zip(ids, plan, strict=True) if s == TALKER]
        messages = [i for i, (s, _) in zip(ids, plan, strict=True) if s == MESSAGE]
        return talkers, messages

    async def _ids(self, what: str) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.ari_url}/{what}") as response:
            found: list[dict[str, Any]] = await response.json()
            return found

    async def progress(self, talkers: list[str]) -> tuple[int, int]:
        """(talking now, still on their way): a talker is on its way while its channel is up
        and in no bridge; one whose call failed (hung up) is neither."""
        alive = {channel["id"] for channel in await self._ids("channels")}
        bridged = {c for bridge in await self._ids("bridges") for c in bridge.get("channels", [])}
        talking = sum(1 for t in talkers if t in bridged)
        on_the_way = sum(1 for t in talkers if t in alive and t not in bridged)
        return talking, on_the_way

    async def wait_connected(self, talkers: list[str], timeout: float) -> tuple[int, int]:
        """Until no talker is on its way any more, or none has moved on for STALL_S (a call
        the controller gave up on can leave its channel up); how many were talking at once at
        most, and how many were left stuck."""
        deadline = time.monotonic() + timeout
        most = on_the_way = 0
        last_change, last = time.monotonic(), (-1, -1)
        while time.monotonic() < deadline:
            talking, on_the_way = await self.progress(talkers)
            most = max(most, talking)
            if on_the_way == 0:
                break
            if (talking, on_the_way) != last:
                last_change, last = time.monotonic(), (talking, on_the_way)
            elif time.monotonic() - last_change > STALL_S:
                break
            # Listing every channel costs the simulator too: not too often.
            await asyncio.sleep(0.5)
        return most, on_the_way

    async def hang_up(self, channel_ids: list[str]) -> None:
        async def one(channel_id: str) -> None:
            async with self.session.delete(f"{self.ari_url}/channels/{channel_id}") as response:
                await response.read()

        def job(channel_id: str) -> Callable[[], Awaitable[None]]:
            return lambda: one(channel_id)

        await bounded(PLACING_AT_ONCE, [job(c) for c in channel_ids])


async def start_simulator(settings: Settings, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    argv = [
        PYTHON, "-m", "ari_controller.simulator",
        "--port", str(port),
        "--user", ARI_USER,
        "--password", ARI_PASSWORD,
        "--time-scale", str(settings.time_scale),
        "--sounds-dir", str(settings.work_dir / "sounds"),
        "--scripts", str(HERE / "scripts.yaml"),
    ]  # fmt: skip
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=HERE.parent
        )
    assert process.stdout is not None
    async with asyncio.timeout(STARTUP_TIMEOUT_S):
        line = await process.stdout.readline()
    if b"ARI simulator on" not in line:
        process.kill()
        raise RuntimeError(f"simulator did not start: {line!r} (see {log})")
    return process, f"http://127.0.0.1:{port}/ari"


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


async def drive(
    caller: Caller,
    count: int,
    at_peak: Callable[[], Awaitable[None]] | None = None,
    rate: float | None = None,
) -> dict[str, Any]:
    """N calls at once (or `rate` per second), through to the bridge (or voicemail), then
    every talker hangs up."""
    started = time.perf_counter()
    talkers, messages = await caller.place_all(count, rate)
    placed = time.perf_counter() - started
    connected, stuck = await caller.wait_connected(talkers, ANSWER_TIMEOUT_S + count * 0.05)
    if at_peak is not None:
        await at_peak()
    await caller.hang_up(talkers)
    return {
        "talkers": len(talkers),
        "voicemails": len(messages),
        "talkers_talking_at_once": connected,
        "talkers_left_stuck": stuck,
        "placing_s": round(placed, 3),
    }


async def measure(
    settings: Settings,
    stack: Stack,
    count: int,
    rate: float | None,
    profile: bool = False,
) -> dict[str, Any]:
    """One phase: N calls driven (at once, or `rate` per second) while both children count."""
    controller, floor, sim = stack.controller, stack.floor, stack.sim
    await floor.ask("begin", 10)
    await controller.ask("begin", 10)
    cpu_before = {name: process_cpu_s(pid) for name, pid in stack.others.items()}
    machine_before, wall_before = machine_busy_s(), time.perf_counter()
    raw_profile = stack.logs / "py-spy.txt"
    raw_sim_profile = stack.logs / "py-spy-simulator.txt"
    spies = (
        [
            await start_spy(controller.process.pid, raw_profile),
            await start_spy(sim.pid, raw_sim_profile),
        ]
        if profile
        else []
    )
    sites: list[Any] = []

    async def look_at_memory() -> None:
        sites.extend((await controller.ask("memory", 120))["memory_sites"])

    driven = await drive(
        stack.caller, count, look_at_memory if settings.memory_sites else None, rate
    )
    figures = await controller.ask("end", ANSWER_TIMEOUT_S + count * 0.1)
    floor_figures = await floor.ask("end", 10)
    for spy in spies:
        await stop_spy(spy)
    if spies and settings.profile_out is not None:
        text = ""
        for title, raw in (("controller", raw_profile), ("simulator", raw_sim_profile)):
            samples = raw.read_text() if raw.exists() else ""
            text += f"== {title}, {count} calls at once\n{summarise(samples)}\n"
        settings.profile_out.write_text(text)
    wall = time.perf_counter() - wall_before
    busy = machine_busy_s() - machine_before
    calls = figures.get("calls") or 1
    ours = float(figures.get("cpu_ms_per_call") or 0.0) * calls / 1000.0
    for name, pid in stack.others.items():
        spent = process_cpu_s(pid) - cpu_before[name]
        ours += spent
        figures[f"{name}_cpu_ms_per_call"] = round(spent * 1000.0 / calls, 3)
    # The machine is shared: how busy it was, and how much of that was not this run's
    # controller, simulator or Postgres (the floor probe, the driver, anything else).
    figures["machine_busy_cores"] = round(busy / wall, 2)
    figures["other_busy_cores"] = round(max(0.0, busy - ours) / wall, 2)
    if sites:
        figures["memory_sites"] = sites
    arrival = {"arrival_per_s": rate} if rate else {"arrival": "all at once"}
    return {**figures, **floor_figures, **driven, **arrival}


@dataclass
class Stack:
    sim: asyncio.subprocess.Process
    floor: Child
    controller: Child
    caller: Caller
    logs: Path
    others: dict[str, int]


async def one_run(settings: Settings, count: int, profile: bool = False) -> dict[str, Any]:
    """Fresh processes for N calls: first placed at a steady rate (the controller carrying N
    calls: reaction, loop lag, memory, cost), then all at once (how fast it sets calls up)."""
    logs = settings.work_dir / f"logs-{count}"
    logs.mkdir(parents=True, exist_ok=True)
    sim, ari_url = await start_simulator(settings, logs / "simulator.log")
    children: list[Child] = []
    try:
        # The floor connects first: the simulator sends inbound calls to the app that
        # connected last, which must be the controller's.
        floor = await Child.start(
            "floor",
            [PYTHON, str(HERE / "floor.py"), "--ari-url", ari_url,
             "--user", ARI_USER, "--password", ARI_PASSWORD],
            logs / "floor.log",
        )  # fmt: skip
        children.append(floor)
        await floor.answer(STARTUP_TIMEOUT_S)
        argv = [
            PYTHON, str(HERE / "controller_process.py"),
            "--config", str(settings.config),
            "--ari-url", ari_url,
            "--dsn", settings.dsn,
            "--work-dir", str(settings.work_dir),
        ]  # fmt: skip
        if settings.without_store:
            argv.append("--without-store")
        if settings.gc_default:
            argv.append("--gc-default")
        if settings.memory_sites:
            argv += ["--memory-sites", str(settings.memory_sites)]
        controller = await Child.start("controller", argv, logs / "controller.log")
        children.append(controller)
        await controller.answer(STARTUP_TIMEOUT_S)
        token = base64.b64encode(f"{ARI_USER}:{ARI_PASSWORD}".encode()).decode()
        timeout = aiohttp.ClientTimeout(total=30)
        # The phones' own connections count against the simulated sessionlimit (100, as
        # Asterisk's) with the controller's 33 and the floor's 2: keep them well inside it.
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Basic {token}"},
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=PLACING_AT_ONCE),
        ) as session:
            caller = Caller(session, ari_url)
            stack = Stack(
                sim,
                floor,
                controller,
                caller,
                logs,
                {"simulator": sim.pid, **settings.postgres_pids},
            )
            if settings.warmup:
                # Warm up (imports, prompt files, database connections), then measure.
                await controller.ask("begin", 10)
                await drive(caller, settings.warmup)
                await controller.ask("end", ANSWER_TIMEOUT_S)
            if profile:
                return await measure(settings, stack, count, None, profile=True)
            burst_only = not settings.rate
            # The steady phase first: its memory figure needs a process that has not yet
            # grown to the burst's peak.
            steady = None if burst_only else await measure(settings, stack, count, settings.rate)
            burst = await measure(settings, stack, count, None)
        if steady is None:
            return {"concurrent_calls": count, **burst}
        # After the steady phase the process has already grown: its memory says nothing here.
        burst["rss_kb_per_call"] = None
        return {
            "concurrent_calls": count,
            **steady,
            "call_setups_per_s": burst["call_setups_per_s"],
            "burst": burst,
        }
    finally:
        for child in reversed(children):
            await child.stop()
        await stop_process(sim)


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU time of a process and of its live children (Postgres: the postmaster and its
    backends), from /proc; 0 when it cannot be read."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(path: Path) -> tuple[int, float] | None:
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick  # ppid, utime+stime

    total = 0.0
    for entry in Path("/proc").glob("[0-9]*/stat"):
        found = stat(entry)
        if found is not None and (found[0] == pid or entry.parent.name == str(pid)):
            total += found[1]
    return total


async def prepare_database(
    dsn: str | None, stack: contextlib.AsyncExitStack
) -> tuple[str, dict[str, int]]:
    pids: dict[str, int] = {}
    if dsn is None:
        server = ThrowawayPostgres()
        await asyncio.to_thread(server.start)
        stack.callback(server.stop)
        dsn = server.dsn
        process = getattr(server, "_process", None)
        if process is not None:
            pids["postgres"] = process.pid
    await migrate(dsn)
    return dsn, pids


async def main_async(args: argparse.Namespace) -> int:
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    work_dir = Path(tempfile.mkdtemp(prefix="ari-bench-"))
    runs: list[dict[str, Any]] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            dsn, postgres_pids = await prepare_database(args.dsn, stack)
            settings = Settings(
                args.config,
                args.time_scale,
                work_dir,
                dsn,
                args.profile_out,
                warmup=args.warmup,
                without_store=args.without_store,
                rate=args.rate,
                gc_default=args.gc_default,
                memory_sites=args.memory_sites,
                postgres_pids=postgres_pids,
            )
            for count in sizes:
                print(f"-- {count} concurrent calls", flush=True)
                run = await one_run(settings, count)
                runs.append(run)
                print(json.dumps(run), flush=True)
            if args.profile:
                print(f"-- profiling {args.profile} concurrent calls", flush=True)
                await one_run(settings, args.profile, profile=True)
                print(f"profile written to {args.profile_out}", flush=True)
    finally:
        if args.keep_logs:
            print(f"logs kept in {work_dir}", flush=True)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    if not runs:
        return 0
    write_results(args.out, runs, time_scale=args.time_scale)
    print_table(runs)
    if args.plot is not None:
        write_plot(args.plot, runs)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,100,500,1000", help="concurrent calls per run")
    parser.add_argument("--time-scale", type=float, default=20.0)
    parser.add_argument("--warmup", type=int, default=VOICEMAIL_EVERY, help="calls first")
    parser.add_argument("--config", type=Path, default=HERE / "bench.yaml")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--plot", type=Path, default=HERE / "results.png")
    parser.add_argument("--no-plot", dest="plot", action="store_const", const=None)
    parser.add_argument("--dsn", help="an existing Postgres to use (default: a throwaway one)")
    parser.add_argument("--profile", type=int, help="also profile a run of this many calls")
    parser.add_argument("--profile-out", type=Path, default=HERE / "profile.txt")
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="calls per second of the steady phase (0: only the all-at-once phase)",
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--gc-default",
        action="store_true",
        help="experiment: Python's default GC instead of the daemon's tuning",
    )
    parser.add_argument(
        "--memory-sites",
        type=int,
        default=0,
        help="diagnostic: trace the controller's allocations, list this many top sites at peak",
    )
    parser.add_argument(
        "--without-store", action="store_true", help="diagnostic: calls write no records"
    )
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
