"""`make bench-asterisk`: the controller on a real Asterisk, against Asterisk doing the job alone.

Starts a throwaway Asterisk (the build in ASTERISK_PREFIX, the project's asterisk/
configuration), a throwaway Postgres and the controller (`ari-controller run`) in its own
process, then places N callers at once as a trunk would (`POST /channels`, `formats=ulaw`,
`Local/bench_caller@caller` into `from-pstn`) through three flows:

- simultaneous: the controller greets each caller, then rings 4 responders at once
  (bench_accept answers and presses 1, bench_listen answers and stays silent, two bench_ring
  never answer); the first to press 1 is bridged to the caller, the others are told or hung up;
- sequential: the same controller, one responder at a time (busy, decline, bench_accept);
- followme: no controller: app_followme rings the same 4 phones at once for each caller
  (followme.conf, one step, the callee presses 1 to accept): the baseline.

One caller in four (--abandon-every) hangs up while its responders' phones ring (4 ringing
legs, 1 in the sequential flow). Every figure comes from Asterisk's own event timestamps, read
by a second ARI application with subscribeAll (asterisk_events.py): accepting digit -> caller
and responder both in the bridge; caller's hang-up -> every ringing leg destroyed. CPU per call
of Asterisk, the controller and Postgres come from /proc. A call fails when it did not end as
its script says (connected / abandoned), by Asterisk's events and by the controller's own
`call_finished` log line. Writes bench/results-asterisk.json and prints a table.

    .venv/bin/python bench/real_asterisk.py [--sizes 10,30,100]
        [--flows simultaneous,sequential,followme] [--abandon-every 4]
        [--out bench/results-asterisk.json] [--keep-logs] [--dsn DSN]

See bench/README.md ("Real Asterisk") for the figures and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from asterisk_events import CallSeen, Expect, Observer
from instruments import percentile
from run import ARI_PASSWORD, Child, bounded, machine_busy_s, process_cpu_s

from ari_controller.store.migrate import migrate
from ari_controller.testing.asterisk import ThrowawayAsterisk
from ari_controller.testing.postgres import ThrowawayPostgres, free_port

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CONTROLLER_APP = "callrouting"
FLOWS = ("simultaneous", "sequential", "followme")
CONTROLLER_FLOWS = ("simultaneous", "sequential")
# (dialplan context, extension of a caller who connects, of one who abandons) per flow.
DIALS = {
    "simultaneous": ("from-pstn", "101", "102"),
    "sequential": ("from-pstn", "201", "202"),
    "followme": ("bench-followme", "301", "302"),
}
# Legs ringing at once for a caller of each flow: an abandoning caller hangs up then.
RINGING_LEGS = {"simultaneous": 4, "sequential": 1, "followme": 4}
ACCEPT_SCRIPT = "bench_accept"
FLOOR_PHONE = "bench_idle@caller"  # the floor probe's channel stays up through every phase
FLOOR_PAUSE_S = 0.1  # between the floor's probes: a play and a stop about 10 times a second
ACCEPT_DIGIT = "1"

# Our own HTTP connections to Asterisk (the observer's websocket included): http.conf's
# sessionlimit (200) is shared with the controller's pool (asterisk.max_connections, 32).
POOL_CONNECTIONS = 8
PLACING_AT_ONCE = 6
STARTUP_TIMEOUT_S = 90.0
CONNECT_TIMEOUT_S = 90.0  # plus CONNECT_PER_CALL_S for each call
CONNECT_PER_CALL_S = 0.5
SETTLE_TIMEOUT_S = 30.0
HOLD_S = 2.0  # every connected caller talks together this long before all hang up
ABANDON_AFTER_S = (0.3, 1.0)  # an abandoning caller hangs up this long after its legs ring
STOP_TIMEOUT_S = 45.0
CPU_SAMPLE_S = 0.5
IDLE_S = 5.0
WARMUP_CALLS = 2

# The targets (issue 12), at 100 concurrent callers with 4 legs each.
TARGET_CALLERS = 100
TARGET_ACCEPT_P99_MS = 50.0
TARGET_FAILED = 0
SATURATED = 0.95  # of every core
# What bench/controller_process.py reports from inside the controller (--instrumented).
INSIDE_FIGURES = (
    "reaction_ms",
    "reaction_once_free_ms",
    "rest_ms",
    "loop_lag_ms",
    "gc_pauses",
    "events_per_call",
    "requests_per_call",
    "slowest_reactions",
)
INSIDE_END_TIMEOUT_S = 180.0


# Phones of the benchmark, added to the project's dialplan (the `caller` and `responders`
# contexts of asterisk/extensions.conf gain these extensions) and the Asterisk-only baseline.
BENCH_DIALPLAN = """
; ---- bench/real_asterisk.py -----------------------------------------------------------------
[caller]
; Stays on the line until the benchmark hangs it up: once every caller is talking, or, for
; an abandoning caller, while its responders' phones ring.
exten => bench_caller,1,Answer()
 same => n,Wait(3600)
 same => n,Hangup()
; The floor probe's channel (bench/floor.py): answers and stays.
exten => bench_idle,1,Answer()
 same => n,Wait(100000)
 same => n,Hangup()

[responders]
; Rings 1.5-2.4 s, answers, presses 1 after 2.5-3.85 s and stays. (FollowMe takes digits
; only once its options prompt plays, 1.8 s after the answer; the controller at any time.)
; The benchmark draws both for each call and puts them in the last two digits of the
; caller's number, which the leg carries in both flows.
exten => bench_accept,1,Ringing()
 same => n,Wait($[1.5 + ${CALLERID(num):-2:1} / 10])
 same => n,Answer()
 same => n,Wait($[2.5 + ${CALLERID(num):-1:1} * 0.15])
 same => n,SendDTMF(1)
 same => n,Wait(3600)
 same => n,Hangup()
; Answers after 1 s and never presses a key: told the call was taken, or hung up.
exten => bench_listen,1,Ringing()
 same => n,Wait(1)
 same => n,Answer()
 same => n,Wait(3600)
 same => n,Hangup()
; Rings until hung up.
exten => bench_ring,1,Ringing()
 same => n,Wait(3600)
 same => n,Hangup()

; The same job done by Asterisk alone: FollowMe rings the 4 phones at once (followme.conf).
[bench-followme]
exten => 301,1,Answer()
 same => n,FollowMe(bench_connect,d)
 same => n,Hangup()
exten => 302,1,Answer()
 same => n,FollowMe(bench_abandon,d)
 same => n,Hangup()
"""

FOLLOWME_CONF = """[general]
featuredigittimeout => 5000
takecall => 1
declinecall => 2

; The simultaneous flow's 4 phones in one step, whispered: the callee hears who calls and
; presses 1 to accept.
[bench_connect]
musicclass => default
context => responders
enable_callee_prompt => true
number => bench_accept&bench_listen&bench_ring&bench_ring,60

[bench_abandon]
musicclass => default
context => responders
enable_callee_prompt => true
number => bench_ring&bench_ring&bench_ring&bench_ring,60
"""


def controller_config(
    asterisk: ThrowawayAsterisk, dsn: str, http_port: int, work_dir: Path
) -> dict[str, Any]:
    """The controller's configuration: 4 responders on every route."""
    phones = {
        "accept": "Local/bench_accept@responders",
        "listen": "Local/bench_listen@responders",
        "busy": "Local/busy@responders",
        "decline": "Local/decline@responders",
        **{f"ring-{n}": "Local/bench_ring@responders" for n in range(1, 5)},
    }
    policies = {
        "simultaneous": ["accept", "listen", "ring-1", "ring-2"],
        "sequential": ["busy", "decline", "accept", "ring-1"],
        "abandon": ["ring-1", "ring-2", "ring-3", "ring-4"],
    }
    responders = {"ring_timeout_s": 60, "accept_window_s": 10, "accept_keys": ACCEPT_DIGIT}

    def number(did: str, mode: str, policy: str) -> dict[str, Any]:
        return {
            "did": did,
            "name": "Bench Operations",
            "mode": mode,
            "routes": [{"label": "operations", "policy": policy}],
            "responders": responders,
            # Nobody accepting must show as a failed call, not as a voicemail.
            "voicemail": {"enabled": False},
        }

    return {
        "asterisk": {
            "url": asterisk.ari_url,
            "username": asterisk.ari_user,
            "password": asterisk.ari_password,
            "app": CONTROLLER_APP,
        },
        "database": {"dsn": dsn, "spool_dir": str(work_dir / "spool")},
        "http": {"host": "127.0.0.1", "port": http_port},
        "prompts": {"media": "sound", "cache_dir": str(asterisk.sounds_dir / "callrouting")},
        "users": [
            {"id": user, "name": f"Bench {user}", "contacts": [contact]}
            for user, contact in phones.items()
        ],
        "escalation_policies": [
            {"id": policy, "rules": [{"users": [user]} for user in users]}
            for policy, users in policies.items()
        ],
        "numbers": [
            number("101", "simultaneous", "simultaneous"),
            number("102", "simultaneous", "abandon"),
            number("201", "sequential", "sequential"),
            number("202", "sequential", "abandon"),
        ],
    }


# ---- processes and their CPU --------------------------------------------------------------


def cpu_of(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) of one process; 0 when it cannot be read."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuSampler:
    """How busy Asterisk and the controller are, every half second: the peak and the mean."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.machine_peak = 0.0  # busy cores of the whole machine
        self.last_rate: dict[str, float] = dict.fromkeys(pids, 0.0)
        # (when, cores of each process in `pids` order, cores of the whole machine)
        self.timeline: list[tuple[float, ...]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sample(self) -> None:
        last = {name: cpu_of(pid) for name, pid in self.pids.items()}
        last_machine, last_at = machine_busy_s(), time.monotonic()
        while True:
            await asyncio.sleep(CPU_SAMPLE_S)
            now = time.monotonic()
            for name, pid in self.pids.items():
                spent = cpu_of(pid)
                self.last_rate[name] = (spent - last[name]) / (now - last_at)
                self.peak[name] = max(self.peak[name], self.last_rate[name])
                last[name] = spent
            machine = machine_busy_s()
            busy = (machine - last_machine) / (now - last_at)
            self.machine_peak = max(self.machine_peak, busy)
            self.timeline.append((time.time(), *(self.last_rate[name] for name in self.pids), busy))
            last_machine, last_at = machine, now


@dataclass
class Stack:
    asterisk: ThrowawayAsterisk
    session: aiohttp.ClientSession
    observer: Observer
    controller: asyncio.subprocess.Process
    controller_log: Path
    controller_http: str
    postgres_pid: int | None
    floor: Child
    work_dir: Path
    # --instrumented: the controller is bench/controller_process.py (the same Daemon with
    # instruments.py hooked in), which answers "begin" / "end" with its own figures.
    inside: Child | None = None
    serial: int = 0
    idle_cores: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(12))

    @property
    def ari_url(self) -> str:
        return self.asterisk.ari_url

    def cpu(self) -> dict[str, float]:
        return {
            "asterisk": cpu_of(self.asterisk.pid),
            "controller": cpu_of(self.controller.pid),
            "postgres": process_cpu_s(self.postgres_pid) if self.postgres_pid else 0.0,
            "bench": own_cpu_s(),
        }

    async def controller_calls(self) -> int | None:
        """Calls the controller has in progress (its /metrics gauge)."""
        if not self.controller_http:
            return 0  # instrumented: its "end" waits for them and says how many were left
        try:
            async with self.session.get(self.controller_http + "/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return None
        for line in text.splitlines():
            if line.startswith("callrouting_calls_in_progress "):
                return int(float(line.split()[1]))
        return None


async def start_controller(config: Path, log: Path) -> asyncio.subprocess.Process:
    entry = Path(sys.executable).with_name("ari-controller")
    command = str(entry) if entry.exists() else shutil.which("ari-controller")
    if command is None:
        raise RuntimeError("no ari-controller command: pip install -e . first")
    argv = [command, "--log-format", "json", "run", "--config", str(config)]
    with log.open("wb") as output:
        return await asyncio.create_subprocess_exec(
            *argv, stdout=output, stderr=asyncio.subprocess.STDOUT, cwd=HERE.parent
        )


async def wait_ready(session: aiohttp.ClientSession, url: str, process: Any, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.returncode is not None:
            break
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url + "/readyz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.2)
    tail = "\n".join(read_from(log, 0)[-20:])
    raise RuntimeError(f"the controller did not become ready:\n{tail}")


async def stop_controller(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


# ---- driving one phase --------------------------------------------------------------------


async def measure_idle(stack: Stack, seconds: float = IDLE_S) -> dict[str, float]:
    """What each process spends with no call up, in cores."""
    before, started = stack.cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    after, wall = stack.cpu(), time.monotonic() - started
    return {name: round((after[name] - before[name]) / wall, 4) for name in before}


async def place(stack: Stack, call: CallSeen, context: str, extension: str) -> None:
    """A call from the trunk: the `;1` half enters `context`, the `;2` half is the phone."""
    params = {
        "endpoint": "Local/bench_caller@caller",
        "context": context,
        "extension": extension,
        "priority": "1",
        "formats": "ulaw",
        "callerId": f'"Bench {call.index}" <{call.number}>',
        "channelId": call.channel_id,
        "otherChannelId": call.phone_id,
        "timeout": "30",
    }
    try:
        async with stack.session.post(stack.ari_url + "/channels", params=params) as response:
            await response.read()
            call.placed_ok = response.status == 200
    except aiohttp.ClientError:
        call.placed_ok = False
    if not call.placed_ok:
        call.settled.set()


async def hang_up(stack: Stack, channel_id: str) -> None:
    with contextlib.suppress(aiohttp.ClientError):
        async with stack.session.delete(f"{stack.ari_url}/channels/{channel_id}") as response:
            await response.read()


def hanging_up(stack: Stack, channel_id: str) -> Callable[[], Awaitable[None]]:
    return lambda: hang_up(stack, channel_id)


async def abandon(stack: Stack, call: CallSeen, limit: float) -> None:
    """Hang up once the caller's legs ring (or when they never do)."""
    ringing = asyncio.ensure_future(call.ringing_ready.wait())
    ended = asyncio.ensure_future(call.settled.wait())  # bridged or gone: no use waiting
    await asyncio.wait({ringing, ended}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    for waiting in (ringing, ended):
        waiting.cancel()
    if call.ringing_ready.is_set():
        await asyncio.sleep(stack.rng.uniform(*ABANDON_AFTER_S))
    if call.placed_ok and call.destroyed is None:
        await hang_up(stack, call.phone_id)


async def list_ids(stack: Stack, what: str) -> list[dict[str, Any]]:
    async with stack.session.get(f"{stack.ari_url}/{what}") as response:
        found: list[dict[str, Any]] = await response.json()
        return found


async def settle(stack: Stack, calls: list[CallSeen], controller: bool) -> dict[str, Any]:
    """Until every channel of the phase is gone from Asterisk and the controller has no call;
    what was left after SETTLE_TIMEOUT_S is reported, then cleared for the next phase."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    channels: list[dict[str, Any]] = []
    bridges: list[dict[str, Any]] = []
    in_progress: int | None = 0
    while True:
        late = time.monotonic() >= deadline
        if not late and any(
            destroyed is None for call in calls for _, destroyed in call.channels()
        ):
            await asyncio.sleep(0.25)
            continue
        # Every channel the observer knows of is gone (or time is up): ask Asterisk itself.
        channels = [
            channel
            for channel in await list_ids(stack, "channels")
            if FLOOR_PHONE not in str(channel.get("name", ""))
        ]
        bridges = await list_ids(stack, "bridges")
        in_progress = await stack.controller_calls() if controller else 0
        if late or (not channels and not bridges and in_progress == 0):
            break
        await asyncio.sleep(0.5)
    left = {
        "channels_left": len(channels),
        "channels_left_names": sorted({str(c.get("name", "")) for c in channels})[:10],
        "bridges_left": len(bridges),
        "controller_calls_left": in_progress,
    }
    for channel in channels:
        await hang_up(stack, str(channel["id"]))
    for bridge in bridges:
        with contextlib.suppress(aiohttp.ClientError):
            async with stack.session.delete(f"{stack.ari_url}/bridges/{bridge['id']}") as resp:
                await resp.read()
    return left


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_from(path: Path, offset: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def log_key(line: str) -> str:
    """An Asterisk log line by level, module and the start of its message, without the
    thread, call and channel: `WARNING res_stasis_playback.c: Playback failed for`."""
    text = line.partition("] ")[2]
    level, _, rest = text.partition("[")
    module, _, message = rest.partition("] ")[2].partition(": ")
    if message.count(": ") and not message.startswith(" "):
        message = message.split(": ", 1)[1]
    return f"{level} {module}: {' '.join(message.split()[:3])}"


def controller_log(lines: list[str]) -> tuple[dict[str, str], collections.Counter[str]]:
    """The controller's own verdict per caller channel (`call_finished` reason), and its
    warnings and errors by event."""
    reasons: dict[str, str] = {}
    trouble: collections.Counter[str] = collections.Counter()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("event") == "call_finished":
            reasons[str(entry.get("channel_id"))] = str(entry.get("reason"))
        if entry.get("level") in ("warning", "error", "critical"):
            trouble[f"{entry.get('level')}: {entry.get('event')}"] += 1
    return reasons, trouble


async def run_phase(
    stack: Stack, flow: str, count: int, abandon_every: int, record: bool = True
) -> dict[str, Any]:
    """N callers placed at once through one flow, until every one has ended."""
    stack.serial += 1
    context, connect_ext, abandon_ext = DIALS[flow]
    calls: list[CallSeen] = []
    for index in range(count):
        abandons = abandon_every > 0 and index % abandon_every == abandon_every - 1
        tag = f"b{stack.serial}-{flow[:3]}-{index}"
        calls.append(
            CallSeen(
                index=index,
                expect="abandoned" if abandons else "connected",
                channel_id=tag,
                phone_id=f"{tag}-phone",
                # Unique per call; its last two digits set when the accepting phone
                # answers and presses 1 (BENCH_DIALPLAN), the same draw for every flow.
                number=f"+4930{stack.serial:03d}{index:04d}{stack.rng.randrange(100):02d}",
                ringing_wanted=RINGING_LEGS[flow],
            )
        )
    observer = stack.observer
    observer.track(calls)
    controller = flow in CONTROLLER_FLOWS
    log_mark = file_size(stack.controller_log)
    asterisk_log_mark = file_size(stack.asterisk.log_file)
    cpu_before = stack.cpu()
    busy_before, wall_before = machine_busy_s(), time.monotonic()
    sampler = CpuSampler({"asterisk": stack.asterisk.pid, "controller": stack.controller.pid})
    sampler.start()
    await stack.floor.ask("begin", 10)
    if stack.inside is not None and controller:
        await stack.inside.ask("begin", 10)
    limit = CONNECT_TIMEOUT_S + CONNECT_PER_CALL_S * count

    def job(call: CallSeen) -> Callable[[], Awaitable[None]]:
        extension = abandon_ext if call.expect == "abandoned" else connect_ext
        return lambda: place(stack, call, context, extension)

    placing_started = time.monotonic()
    began = time.time()  # the clock of Asterisk's timestamps (the same machine)
    abandoning = [
        asyncio.ensure_future(abandon(stack, call, limit))
        for call in calls
        if call.expect == "abandoned"
    ]
    await bounded(PLACING_AT_ONCE, [job(call) for call in calls])
    placing_s = time.monotonic() - placing_started
    talkers = [call for call in calls if call.expect == "connected"]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            await asyncio.gather(*(call.settled.wait() for call in talkers))
    await asyncio.sleep(HOLD_S)
    await asyncio.gather(*abandoning)
    # The floor while the calls were set up: one ARI request and its event, in a process of
    # its own, against this Asterisk under this load.
    floor = await stack.floor.ask("end", 10)
    talking = sum(
        1 for call in talkers if call.bridged_leg() is not None and call.destroyed is None
    )
    await bounded(
        PLACING_AT_ONCE,
        [
            hanging_up(stack, call.phone_id)
            for call in talkers
            if call.placed_ok and call.destroyed is None
        ],
    )
    left = await settle(stack, calls, controller)
    inside: dict[str, Any] = {}
    if stack.inside is not None and controller:
        told = await stack.inside.ask("end", INSIDE_END_TIMEOUT_S)
        inside = {key: told.get(key) for key in INSIDE_FIGURES}
        left["controller_calls_left"] = told.get("calls_unfinished")
    await sampler.stop()
    wall = time.monotonic() - wall_before
    busy = machine_busy_s() - busy_before
    cpu_after = stack.cpu()
    observer.forget(calls)
    if not record:
        return {}
    reasons, trouble = controller_log(read_from(stack.controller_log, log_mark))
    asterisk_trouble = collections.Counter(
        log_key(line)
        for line in read_from(stack.asterisk.log_file, asterisk_log_mark)
        if "WARNING[" in line or "ERROR[" in line
    )
    figures = judge(flow, calls, reasons if controller else None, observer.bridges_created, began)
    spent = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
    ours = sum(spent.values())
    # Per call: net of what each process spends when no call is up (the floor's probe, the
    # controller's sweeps, Asterisk's timers), measured before the runs.
    per_call = {
        name: max(0.0, used - stack.idle_cores.get(name, 0.0) * wall) * 1000.0 / count
        for name, used in spent.items()
    }
    return {
        "flow": flow,
        "concurrent_calls": count,
        **figures,
        "talking_at_once": talking,
        "floor_ms": floor.get("floor_ms"),
        "placing_s": round(placing_s, 3),
        "phase_s": round(wall, 2),
        **{f"{name}_cpu_ms_per_call": round(used, 2) for name, used in per_call.items()},
        **{
            f"{name}_cpu_ms_per_call_gross": round(used * 1000.0 / count, 2)
            for name, used in spent.items()
        },
        "asterisk_cpu_peak_pct": round(sampler.peak["asterisk"] * 100.0, 1),
        "controller_cpu_peak_pct": round(sampler.peak["controller"] * 100.0, 1),
        "asterisk_cpu_mean_pct": round(spent["asterisk"] * 100.0 / wall, 1),
        "controller_cpu_mean_pct": round(spent["controller"] * 100.0 / wall, 1),
        "machine_busy_cores": round(busy / wall, 2),
        "machine_busy_peak_cores": round(sampler.machine_peak, 2),
        # Every half second: [seconds after the first call, Asterisk, controller, machine]
        # in cores.
        "cpu_timeline": [
            [round(sample[0] - began, 2), *(round(v, 2) for v in sample[1:])]
            for sample in sampler.timeline
        ],
        "other_busy_cores": round(max(0.0, busy - ours) / wall, 2),
        **left,
        "controller_warnings": dict(trouble.most_common(10)),
        **({"controller_inside": inside} if inside else {}),
        "asterisk_warnings": dict(asterisk_trouble.most_common(10)),
    }


# ---- what the events say ------------------------------------------------------------------


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def spread(values: list[float]) -> dict[str, float | int | None]:
    """p50, p99 and max in milliseconds (Asterisk's timestamps have 1 ms resolution)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {
        "n": len(values),
        "p50": ms(percentile(values, 50)),
        "p99": ms(percentile(values, 99)),
        "max": ms(max(values)),
    }


@dataclass
class Verdict:
    """Why a call failed (None: it went as its script says), and the figure it gives:
    accept -> both in the bridge for a connected call, the caller's hang-up -> its last
    ringing leg gone for an abandoned one; `started` is the accept or the hang-up."""

    failure: str | None
    figure: float | None = None
    started: float | None = None
    steps: dict[str, float] = field(default_factory=dict)


def verdict(call: CallSeen, bridges_created: dict[str, float]) -> Verdict:
    if not call.placed_ok:
        return Verdict("originate failed")
    if call.expect == "connected":
        return connected_verdict(call, bridges_created)
    return abandoned_verdict(call)


def connected_verdict(call: CallSeen, bridges_created: dict[str, float]) -> Verdict:
    leg = call.bridged_leg()
    if leg is None or call.entered is None or leg.entered is None:
        if call.first_hangup_by == "system":
            return Verdict("ended by the system before any bridge")
        return Verdict("never bridged")
    if leg.script != ACCEPT_SCRIPT:
        return Verdict(f"bridged to {leg.script}, who did not accept")
    bridged = max(call.entered, leg.entered)
    digits = [when for when, digit in leg.digits if digit == ACCEPT_DIGIT and when <= bridged]
    if not digits:
        return Verdict("bridged before the accepting digit")
    if call.first_hangup_by == "system":
        return Verdict("caller hung up by the system while talking")
    accepted = digits[-1]
    # Where the time went, each step from the digit: the accept prompt stopped, the legs
    # still ringing hung up, the bridge created, both parties in it.
    steps: dict[str, float] = {"both_in_bridge": bridged - accepted}
    prompt_ends = [when for when in leg.prompt_ends if when >= accepted]
    if prompt_ends:
        steps["prompt_stopped"] = min(prompt_ends) - accepted
    ringing = [
        other.hangup_requested
        for other in call.legs.values()
        if other is not leg and other.ringing_at(accepted) and other.hangup_requested is not None
    ]
    if ringing:
        steps["ringing_legs_hung_up"] = max(ringing) - accepted
    created = bridges_created.get(call.bridge or "")
    if created is not None:
        steps["bridge_created"] = created - accepted
    return Verdict(None, bridged - accepted, accepted, steps)


def abandoned_verdict(call: CallSeen) -> Verdict:
    if call.bridge is not None:
        return Verdict("bridged, though the caller hung up while ringing")
    if call.first_hangup_by == "system":
        return Verdict("ended by the system before the caller hung up")
    if not call.ringing_ready.is_set():
        return Verdict(f"fewer than {call.ringing_wanted} legs rang")
    hung_up = call.hangup_requested
    if hung_up is None:
        return Verdict("the caller's hang-up was not seen")
    ringing = [leg for leg in call.legs.values() if leg.ringing_at(hung_up)]
    if len(ringing) < call.ringing_wanted:
        return Verdict(f"{len(ringing)} legs ringing at the hang-up")
    left = [leg for leg in ringing if leg.destroyed is None]
    if left:
        return Verdict(f"{len(left)} ringing legs left up after the caller hung up")
    return Verdict(None, max(leg.destroyed or hung_up for leg in ringing) - hung_up, hung_up)


CONTROLLER_REASON: dict[Expect, str] = {"connected": "connected", "abandoned": "abandoned"}
SLOWEST = 5


def slowest(samples: list[tuple[float, float, str]], began: float) -> list[dict[str, Any]]:
    """The slowest calls: how long, and when (seconds after the first call was placed)."""
    return [
        {"call": call_id, "ms": ms(figure), "at_s": round(started - began, 3)}
        for figure, started, call_id in sorted(samples, reverse=True)[:SLOWEST]
    ]


def offsets(moments: list[float], began: float) -> dict[str, float | None]:
    if not moments:
        return {"first": None, "p50": None, "last": None}
    return {
        "first": round(min(moments) - began, 2),
        "p50": round(percentile(moments, 50) - began, 2),
        "last": round(max(moments) - began, 2),
    }


def judge(
    flow: str,
    calls: list[CallSeen],
    reasons: dict[str, str] | None,
    bridges_created: dict[str, float],
    began: float,
) -> dict[str, Any]:
    """Failed calls (by Asterisk's events, and by the controller's own verdict when it ran
    the calls) and the figures of the calls that went as their scripts say."""
    failures: collections.Counter[str] = collections.Counter()
    examples: list[str] = []
    accept: list[tuple[float, float, str]] = []
    gone: list[tuple[float, float, str]] = []
    steps: dict[str, list[float]] = collections.defaultdict(list)
    for call in calls:
        seen = verdict(call, bridges_created)
        why = seen.failure
        if why is None and reasons is not None:
            said = reasons.get(call.channel_id)
            if said is None:
                why = "no call_finished from the controller"
            elif said != CONTROLLER_REASON[call.expect]:
                why = f"the controller ended it as {said}"
        if why is not None:
            failures[why] += 1
            if len(examples) < SLOWEST:
                examples.append(f"{call.channel_id} ({call.expect}): {why}")
            continue
        if seen.figure is None or seen.started is None:
            continue
        sample = (seen.figure, seen.started, call.channel_id)
        if call.expect == "connected":
            accept.append(sample)
            for name, value in seen.steps.items():
                steps[name].append(value)
        else:
            gone.append(sample)
    hunts = [
        min(leg.ringing for leg in call.legs.values() if leg.ringing is not None)
        for call in calls
        if any(leg.ringing is not None for leg in call.legs.values())
    ]
    result: dict[str, Any] = {
        "calls_to_connect": sum(1 for call in calls if call.expect == "connected"),
        "calls_to_abandon": sum(1 for call in calls if call.expect == "abandoned"),
        "failed_calls": sum(failures.values()),
        "failures": dict(failures),
        "failure_examples": examples,
        "accept_to_bridged_ms": spread([figure for figure, _, _ in accept]),
        "hangup_to_legs_gone_ms": spread([figure for figure, _, _ in gone]),
        "ringing_legs_per_abandon": RINGING_LEGS[flow],
        # When things happened, in seconds after the first call was placed.
        "first_leg_ringing_s": offsets(hunts, began),
        "accepts_s": offsets([started for _, started, _ in accept], began),
        "hangups_s": offsets([started for _, started, _ in gone], began),
        "slowest_accepts": slowest(accept, began),
        "slowest_hangups": slowest(gone, began),
    }
    if steps:
        result["accept_steps_p50_ms"] = {
            name: ms(percentile(values, 50)) for name, values in sorted(steps.items())
        }
    return result


# ---- the run -----------------------------------------------------------------------------


def targets_met(run: dict[str, Any]) -> bool:
    p99 = run["accept_to_bridged_ms"]["p99"]
    return (
        run["failed_calls"] <= TARGET_FAILED
        and p99 is not None
        and p99 < TARGET_ACCEPT_P99_MS
        and not run["channels_left"]
    )


def conclusions(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per flow: whether the targets hold at 100 callers, and the highest load where they do."""
    out: dict[str, Any] = {}
    for flow in FLOWS:
        mine = sorted(
            (r for r in runs if r["flow"] == flow), key=lambda r: int(r["concurrent_calls"])
        )
        if not mine:
            continue
        held = [int(r["concurrent_calls"]) for r in mine if targets_met(r)]
        at_target = [r for r in mine if r["concurrent_calls"] == TARGET_CALLERS]
        out[flow] = {
            "targets_met_at_100": targets_met(at_target[0]) if at_target else None,
            "highest_load_meeting_targets": max(held) if held else None,
            # Loads at which the whole machine was busy (every core, for half a second).
            "cores_saturated_at": [
                int(r["concurrent_calls"])
                for r in mine
                if r["machine_busy_peak_cores"] >= SATURATED * (os.cpu_count() or 1)
            ],
        }
    return out


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(runs: list[dict[str, Any]]) -> None:
    header = (
        f"{'flow':<13}{'N':>5}{'failed':>8}{'accept->bridged p50/p99/max ms':>32}"
        f"{'hang-up->legs gone p50/p99 ms':>31}{'Asterisk ms/call (peak %)':>27}"
        f"{'controller ms/call (peak %)':>29}{'floor p50/p99 ms':>18}"
        f"{'busy cores mean/peak':>22}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        accept, gone = run["accept_to_bridged_ms"], run["hangup_to_legs_gone_ms"]
        accept_text = f"{fmt(accept['p50'])} / {fmt(accept['p99'])} / {fmt(accept['max'])}"
        gone_text = f"{fmt(gone['p50'])} / {fmt(gone['p99'])}"
        asterisk = (
            f"{fmt(run['asterisk_cpu_ms_per_call'])} ({fmt(run['asterisk_cpu_peak_pct'], 0)})"
        )
        controller = (
            f"{fmt(run['controller_cpu_ms_per_call'])} ({fmt(run['controller_cpu_peak_pct'], 0)})"
            if run["flow"] in CONTROLLER_FLOWS
            else "-"
        )
        floor = run.get("floor_ms") or {}
        floor_text = f"{fmt(floor.get('p50'))} / {fmt(floor.get('p99'))}"
        busy_text = (
            f"{fmt(run['machine_busy_cores'], 2)} / {fmt(run['machine_busy_peak_cores'], 2)}"
        )
        print(
            f"{run['flow']:<13}{run['concurrent_calls']:>5}{run['failed_calls']:>8}"
            f"{accept_text:>32}{gone_text:>31}{asterisk:>27}{controller:>29}{floor_text:>18}"
            f"{busy_text:>22}"
        )
        if run["failures"]:
            print(f"{'':<13}failures: {run['failures']}")
        if run.get("accept_steps_p50_ms"):
            print(f"{'':<13}accept steps p50 ms: {run['accept_steps_p50_ms']}")
        if run["channels_left"] or run["bridges_left"] or run["controller_calls_left"]:
            print(
                f"{'':<13}left: {run['channels_left']} channels "
                f"{run['channels_left_names']}, {run['bridges_left']} bridges, "
                f"{run['controller_calls_left']} controller calls"
            )


async def prepare_database(dsn: str | None, stack: contextlib.AsyncExitStack) -> tuple[str, Any]:
    if dsn is not None:
        await migrate(dsn)
        return dsn, None
    server = ThrowawayPostgres()
    await asyncio.to_thread(server.start)
    stack.callback(server.stop)
    await migrate(server.dsn)
    process = getattr(server, "_process", None)
    return server.dsn, process.pid if process is not None else None


async def main_async(args: argparse.Namespace) -> int:
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    flows = [flow.strip() for flow in args.flows.split(",") if flow.strip()]
    unknown = set(flows) - set(FLOWS)
    if unknown:
        raise SystemExit(f"unknown flows {sorted(unknown)}: pick from {', '.join(FLOWS)}")
    load_before = os.getloadavg()
    work_dir = Path(tempfile.mkdtemp(prefix="ari-bench-asterisk-"))
    runs: list[dict[str, Any]] = []
    version = ""
    idle_cores: dict[str, float] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            dsn, postgres_pid = await prepare_database(args.dsn, stack)
            asterisk = ThrowawayAsterisk(
                app=CONTROLLER_APP,
                # controller_process.py (--instrumented) logs in with the bench's password.
                ari_password=ARI_PASSWORD if args.instrumented else None,
                extra_dialplan=BENCH_DIALPLAN,
                extra_files={"followme.conf": FOLLOWME_CONF},
            )
            await asyncio.to_thread(asterisk.start)
            stack.callback(asterisk.stop)
            http_port = free_port()
            config = work_dir / "controller.yaml"
            config.write_text(yaml.safe_dump(controller_config(asterisk, dsn, http_port, work_dir)))
            log = work_dir / "controller.log"
            inside: Child | None = None
            if args.instrumented:
                # Its work directory holds the prompts: Asterisk's sounds directory's parent.
                inside = await Child.start(
                    "controller",
                    [PYTHON, str(HERE / "controller_process.py"), "--config", str(config),
                     "--ari-url", asterisk.ari_url, "--dsn", dsn,
                     "--work-dir", str(asterisk.sounds_dir.parent)],
                    log,
                )  # fmt: skip
                stack.push_async_callback(inside.stop)
                controller = inside.process
            else:
                controller = await start_controller(config, log)
                stack.push_async_callback(stop_controller, controller)
            token = base64.b64encode(
                f"{asterisk.ari_user}:{asterisk.ari_password}".encode()
            ).decode()
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    headers={"Authorization": f"Basic {token}"},
                    connector=aiohttp.TCPConnector(limit=POOL_CONNECTIONS),
                    timeout=aiohttp.ClientTimeout(total=30),
                )
            )
            if inside is not None:
                await inside.answer(STARTUP_TIMEOUT_S)
                controller_http = ""
            else:
                controller_http = f"http://127.0.0.1:{http_port}"
                await wait_ready(session, controller_http, controller, log)
            observer = Observer(session, asterisk.ari_url)
            await observer.start()
            stack.push_async_callback(observer.stop)
            floor = await Child.start(
                "floor",
                [PYTHON, str(HERE / "floor.py"), "--ari-url", asterisk.ari_url,
                 "--user", asterisk.ari_user, "--password", asterisk.ari_password,
                 "--formats", "ulaw", "--pause", str(FLOOR_PAUSE_S)],
                work_dir / "floor.log",
            )  # fmt: skip
            stack.push_async_callback(floor.stop)
            await floor.answer(STARTUP_TIMEOUT_S)
            async with session.get(asterisk.ari_url + "/asterisk/info") as response:
                version = str((await response.json()).get("system", {}).get("version", ""))
            bench = Stack(
                asterisk, session, observer, controller, log, controller_http, postgres_pid,
                floor, work_dir, inside,
            )  # fmt: skip
            print(f"Asterisk {version}, load average before: {load_before}", flush=True)
            for flow in flows:
                # Warm-up: prompt files, database connections, FollowMe's sounds.
                await run_phase(bench, flow, WARMUP_CALLS, 2, record=False)
            bench.idle_cores = await measure_idle(bench)
            idle_cores = bench.idle_cores
            print(f"idle, in cores: {idle_cores}", flush=True)
            for count in sizes:
                for flow in flows:
                    print(f"-- {flow}, {count} concurrent callers", flush=True)
                    run = await run_phase(bench, flow, count, args.abandon_every)
                    runs.append(run)
                    print(json.dumps(run), flush=True)
            if args.keep_logs:
                shutil.copy(asterisk.log_file, work_dir / "asterisk-messages.log")
    finally:
        if args.keep_logs:
            print(f"logs kept in {work_dir}", flush=True)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    if not runs:
        return 0
    verdicts = conclusions(runs)
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "asterisk_version": version,
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "settings": {
            "abandon_every": args.abandon_every,
            "legs_per_caller": 4,
            "hold_s": HOLD_S,
            "arrival": "all at once",
            "formats": "ulaw",
        },
        "targets": {
            "at_concurrent_callers": TARGET_CALLERS,
            "failed_calls": TARGET_FAILED,
            "accept_to_bridged_p99_ms": TARGET_ACCEPT_P99_MS,
        },
        "conclusions": verdicts,
        "idle_cores": idle_cores,
        "runs": runs,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print_table(runs)
    print()
    for flow, said in verdicts.items():
        print(
            f"{flow}: targets met at {TARGET_CALLERS} callers: {said['targets_met_at_100']}; "
            f"highest load meeting them: {said['highest_load_meeting_targets']}; "
            f"all cores busy at: {said['cores_saturated_at']}"
        )
    print(f"written to {args.out}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,30,100", help="concurrent callers per run")
    parser.add_argument("--flows", default=",".join(FLOWS), help=", ".join(FLOWS))
    parser.add_argument(
        "--abandon-every",
        type=int,
        default=4,
        help="every n-th caller hangs up while the legs ring (0: none)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results-asterisk.json")
    parser.add_argument("--dsn", help="an existing Postgres to use (default: a throwaway one)")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--instrumented",
        action="store_true",
        help="diagnostic: run the controller as bench/controller_process.py, whose "
        "instruments report its reaction times, REST latency and loop lag from inside",
    )
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
