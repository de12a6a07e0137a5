"""The fault matrix: an active and a standby daemon (`ari-controller run`, real processes)
for one simulated Asterisk and one Postgres; seven calls, one in each phase (greeting, menu,
ringing one responder, ringing two at once, a responder hearing the whisper, a conversation,
a message being recorded); then one fault, and what the callers noticed.

Each run starts from nothing: a new simulator, database and pair. While the calls go on, the
test looks at every caller's channel every 50 ms (the simulator runs in the test's own loop):
a caller is attended while a playback, hold music or a recording runs on their channel, or
while they are in a bridge. Ringing legs do not count: the caller hears hold music meanwhile,
or nothing. "Without a driver" is the time a caller spends unattended from the fault until
a daemon drives the calls again, and, if the caller was unattended just then, until that
daemon gives them something to hear: the standby's (or the reconnected daemon's) calls
picked up, then the menu said again, the next prompt, a bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from ari_controller.simulator.server import Simulator
from ari_controller.store.queries import get_alert, list_alerts
from ari_controller.testing.postgres import ThrowawayPostgres
from tests.events_proxy import EventsProxy
from tests.restart_sections import restart_sections, simulated_responders
from tests.test_daemon_service import (
    SIM_PASSWORD,
    SIM_USER,
    DaemonProcess,
    NotifySocket,
    place_call,
    simulator,
    wait_until,
    write_config,
)

LEASE_S = 1.5
RENEW_S = 0.25
SAMPLE_S = 0.05
# The callers and responders act this long after the call began: after the fault (about
# 13 s after the first call, once all seven are in their phases) and any takeover.
LATER_S = 20

DESK, MESSAGES = "300", "301"
PHASES = (
    "greeting",
    "menu",
    "ringing sequentially",
    "ringing simultaneously",
    "whisper",
    "connected",
    "recording voicemail",
)
# Each phase's caller: script and number; the outcome of the call when nothing goes wrong.
CALLERS: dict[str, tuple[str, str, str]] = {
    "greeting": ("in_greeting", DESK, "connected"),
    "menu": ("in_menu", DESK, "connected"),
    "ringing sequentially": ("to_slow", DESK, "connected"),
    "ringing simultaneously": ("to_both", DESK, "connected"),
    "whisper": ("to_whisper", DESK, "connected"),
    "connected": ("to_quick", DESK, "connected"),
    "recording voicemail": ("leaves_message", MESSAGES, "voicemail"),
}

SCRIPTS: dict[str, list[Any]] = {
    # callers
    "in_greeting": ["answer", {"wait": LATER_S}, {"dtmf": "1"}, {"wait": 6}, "hangup"],
    "in_menu": ["answer", {"wait": LATER_S + 8}, {"dtmf": "1"}, {"wait": 6}, "hangup"],
    "to_slow": ["answer", {"wait": 1}, {"dtmf": "2"}, {"wait": LATER_S + 8}, "hangup"],
    "to_both": ["answer", {"wait": 1}, {"dtmf": "3"}, {"wait": LATER_S + 8}, "hangup"],
    "to_whisper": ["answer", {"wait": 1}, {"dtmf": "4"}, {"wait": LATER_S + 8}, "hangup"],
    "to_quick": ["answer", {"wait": 1}, {"dtmf": "1"}, {"wait": LATER_S + 4}, "hangup"],
    "leaves_message": ["answer", {"wait": 1}, {"dtmf": "1"}, {"wait": LATER_S}, {"dtmf": "#"},
                       {"wait": 4}, "hangup"],
    # responders
    **simulated_responders(LATER_S),
}  # fmt: skip


@dataclass
class Pair:
    """The two daemons of a run, each reaching the simulator through its own proxy (so that
    one daemon's websocket can be cut while the other's stays)."""

    sim: Simulator
    database: str
    active: DaemonProcess
    standby: DaemonProcess
    proxies: dict[str, EventsProxy]

    @property
    def daemons(self) -> tuple[DaemonProcess, DaemonProcess]:
        return self.active, self.standby


@dataclass
class Outcome:
    """One run of one fault: per phase, what its caller went through."""

    fault: str
    takeover_s: float | None
    dropped: dict[str, bool] = field(default_factory=dict)
    ended: dict[str, str | None] = field(default_factory=dict)  # the alert's ended_reason
    undriven_s: dict[str, float] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)  # alerts for the call: 1 is right
    left: dict[str, int] = field(default_factory=dict)  # channels and bridges left behind
    left_unattributed: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "takeover_s": self.takeover_s,
            "dropped": self.dropped,
            "ended": self.ended,
            "undriven_s": self.undriven_s,
            "alerts": self.alerts,
            "left": self.left,
            "left_unattributed": self.left_unattributed,
            "notes": self.notes,
        }


# ---- what each caller hears -----------------------------------------------------------------


class Attendance:
    """Every SAMPLE_S, whether each caller is attended (media on their channel, or a bridge);
    a caller whose channel is gone is no longer sampled."""

    def __init__(self, sim: Simulator, callers: dict[str, str]) -> None:
        self.sim = sim
        self.callers = callers  # phase -> channel id
        self.samples: dict[str, list[tuple[float, bool]]] = {phase: [] for phase in callers}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            for phase, channel_id in self.callers.items():
                channel = self.sim.asterisk.channels.get(channel_id)
                if channel is None:
                    continue
                playing = any(item.ended is None for item in channel.media_log)
                self.samples[phase].append((now, playing or channel.bridge is not None))
            await asyncio.sleep(SAMPLE_S)

    def undriven(self, phase: str, fault_at: float, back_at: float | None) -> float:
        """Unattended time from the fault until the driver was back and, if the caller was
        unattended then, until they were attended again (or gone)."""
        if back_at is None:
            return 0.0
        samples = self.samples[phase]
        total = 0.0
        for (at, attended), (following, _) in itertools.pairwise(samples):
            if following <= fault_at:
                continue
            if at >= back_at:
                if attended:
                    break
            elif attended:
                continue
            total += following - max(at, fault_at)
        return round(total, 3)


# ---- one run --------------------------------------------------------------------------------


def sections(proxy: EventsProxy, dsn: str, member: str) -> dict[str, Any]:
    return {
        "asterisk": {
            "url": f"http://127.0.0.1:{proxy.port}/ari",
            "username": SIM_USER,
            "password": SIM_PASSWORD,
        },
        "database": {"dsn": dsn, "spool_dir": "spool"},
        "http": {"host": "127.0.0.1", "port": 0},
        "prompts": {"media": "sound", "cache_dir": "sounds/callrouting"},
        "failover": {
            "enabled": True,
            "lease_s": LEASE_S,
            "renew_every_s": RENEW_S,
            "member": member,
        },
        **restart_sections(lambda script: f"Local/{script}@responders", DESK, MESSAGES),
    }


@contextlib.asynccontextmanager
async def pair_of_daemons(work: Path, database: str, notify: NotifySocket) -> AsyncIterator[Pair]:
    (work / "sounds").mkdir(parents=True)
    async with simulator(work, SCRIPTS, 1.0) as sim:
        proxies = {member: EventsProxy(sim.port) for member in ("a", "b")}
        daemons: dict[str, DaemonProcess] = {}
        try:
            for member, proxy in proxies.items():
                await proxy.start()
                home = work / member
                home.mkdir()
                (home / "sounds").symlink_to(work / "sounds", target_is_directory=True)
                write_config(home / "config.yaml", sections(proxy, database, member))
                daemons[member] = DaemonProcess(home / "config.yaml", notify, drain_s=2.0)
            await daemons["a"].start()
            await daemons["b"].start(standby=True)
            yield Pair(sim, database, daemons["a"], daemons["b"], proxies)
        finally:
            for member, each in daemons.items():
                if each.proc is not None and each.proc.returncode is None:
                    each.signal(signal.SIGCONT)
                await each.kill()
                keep_log(work / f"{member}.log", each.logs)
            for proxy in proxies.values():
                await proxy.stop()


def keep_log(path: Path, lines: list[dict[str, Any]]) -> None:
    """A daemon's log lines, for a look at a run afterwards."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


async def callers_in_their_phases(pair: Pair) -> dict[str, str]:
    """Places the seven calls and returns once each is in its phase (phase -> channel id)."""
    sim = pair.sim
    ast = sim.asterisk
    calls = {
        phase: await place_call(sim, script, did)
        for phase, (script, did, _) in CALLERS.items()
        if phase != "greeting"
    }

    def legs(script: str) -> list[Any]:
        return [c for c in ast.channels.values() if c.id in sim.channels_of_script(script)]

    def bridged(caller: str) -> bool:
        channel = ast.channels.get(caller)
        return channel is not None and channel.bridge is not None

    def recording(caller: str) -> bool:
        return any(r.channel.id == caller for r in ast.live_recordings.values())

    def prompts_over(caller: str) -> bool:
        """Every prompt played and none for a moment (the menu is several playbacks, one
        after the other: between two, for a few milliseconds, none plays)."""
        heard = sim.media(caller)
        if not heard or any(item["ended"] is None for item in heard):
            return False
        return sim.asterisk.clock.now() - max(item["ended"] for item in heard) > 0.3

    await wait_until(lambda: len(legs("slow")) == 2, 15, "the slow responders ringing")
    await wait_until(lambda: len(legs("rings_on")) == 1, 15, "ringing on and on")
    await wait_until(lambda: len(legs("whisperer")) == 1, 15, "the whisperer")
    whisperer = legs("whisperer")[0]
    await wait_until(lambda: bool(sim.media(whisperer.id)), 5, "the whisper playing")
    await wait_until(lambda: bridged(calls["connected"]), 15, "a conversation")
    await wait_until(lambda: recording(calls["recording voicemail"]), 15, "a message")
    await wait_until(lambda: prompts_over(calls["menu"]), 15, "the menu caller's choice")
    script, did, _ = CALLERS["greeting"]
    calls["greeting"] = await place_call(sim, script, did)
    await wait_until(lambda: bool(sim.media(calls["greeting"])), 5, "the greeting")
    await asyncio.sleep(0.5)
    in_phase = {
        "greeting": not prompts_over(calls["greeting"]),
        "menu": prompts_over(calls["menu"]),
        "ringing sequentially": all(leg.state == "Ringing" for leg in legs("slow")[:1]),
        "ringing simultaneously": [leg.state for leg in legs("rings_on") + legs("slow")[1:]]
        == ["Ringing", "Ringing"],
        "whisper": whisperer.state == "Up" and not bridged(calls["whisper"]),
        "connected": bridged(calls["connected"]),
        "recording voicemail": recording(calls["recording voicemail"]),
    }
    assert all(in_phase.values()), (
        f"not every call is in its phase at the fault: {in_phase}; the menu caller heard"
        f" {sim.media(calls['menu'])}"
    )
    return {phase: calls[phase] for phase in PHASES}


async def driver_back(*waits: Callable[[], Awaitable[Any]]) -> float:
    """When the first of `waits` (a daemon saying it drives the calls) came true; a wait that
    fails (its daemon exited: the one that stepped aside) leaves the others to come true."""
    tasks = {asyncio.ensure_future(wait()) for wait in waits}
    failures: list[BaseException] = []
    try:
        while tasks:
            done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED, timeout=30)
            assert done, "no daemon drove the calls again within 30 s"
            for task in done:
                if task.exception() is None:
                    return time.monotonic()
                failures.append(task.exception())  # type: ignore[arg-type]
        raise AssertionError(f"no daemon drove the calls again: {failures}")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def picked_up_after(daemon: DaemonProcess, seen: int) -> Callable[[], Awaitable[Any]]:
    return lambda: daemon.wait_log("calls_picked_up", timeout=30, after=seen)


def reconnected_after(daemon: DaemonProcess, seen: int) -> Callable[[], Awaitable[Any]]:
    return lambda: daemon.wait_log(
        "ari_events_connected", timeout=30, after=seen, where=lambda e: bool(e.get("reconnect"))
    )


@dataclass
class Fault:
    """What happens to the pair at the fault, and when a daemon drove the calls again (None:
    the driver never went away, or the calls went with Asterisk)."""

    name: str
    strike: Callable[[Pair, ThrowawayPostgres], Awaitable[float | None]]
    calls_survive: bool = True


async def sigkill(pair: Pair, _postgres: ThrowawayPostgres) -> float | None:
    seen = len(pair.standby.logs)
    await pair.active.kill()
    return await driver_back(picked_up_after(pair.standby, seen))


FROZEN_S = 10.0


async def sigstop(pair: Pair, _postgres: ThrowawayPostgres) -> float | None:
    seen = len(pair.standby.logs)
    frozen_at = time.monotonic()
    pair.active.signal(signal.SIGSTOP)
    back = await driver_back(picked_up_after(pair.standby, seen))
    await asyncio.sleep(max(0.0, frozen_at + FROZEN_S - time.monotonic()))
    pair.active.signal(signal.SIGCONT)
    # Woken, it finds its lease taken and steps aside without touching a call.
    assert await pair.active.wait_exit(15) == 1
    return back


CUT_S = 5.0


async def websocket_cut(pair: Pair, _postgres: ThrowawayPostgres) -> float | None:
    """The active daemon's events websocket is cut and kept away for CUT_S (longer than the
    lease): it gives the lease up and the standby, which reaches Asterisk, takes over."""
    seen = {d.config_path: len(d.logs) for d in pair.daemons}
    dropped = await pair.proxies["a"].cut(CUT_S)
    assert dropped == 1, "the active daemon had no events websocket"
    return await driver_back(
        picked_up_after(pair.standby, seen[pair.standby.config_path]),
        reconnected_after(pair.active, seen[pair.active.config_path]),
    )


POSTGRES_DOWN_S = 60.0


async def postgres_down(pair: Pair, postgres: ThrowawayPostgres) -> float | None:
    """Postgres stops for POSTGRES_DOWN_S: the active daemon drives on (its records wait in
    its spool), the standby cannot take the lease; afterwards the holder keeps it."""
    await asyncio.to_thread(postgres.stop_server)
    await asyncio.sleep(POSTGRES_DOWN_S)
    await asyncio.to_thread(postgres.start_server)
    await asyncio.sleep(LEASE_S * 3)
    status, body = await pair.active.get("/readyz")
    assert (status, body["role"], body["fencing"]) == (200, "active", 1), body
    return None


async def asterisk_restart(pair: Pair, _postgres: ThrowawayPostgres) -> float | None:
    """Asterisk restarts (3 s to boot): every call ends with it."""
    await pair.sim.restart(downtime=3.0)
    return None


FAULTS = {
    fault.name: fault
    for fault in (
        Fault("SIGKILL", sigkill),
        Fault(f"SIGSTOP {FROZEN_S:g} s", sigstop),
        Fault(f"websocket cut {CUT_S:g} s", websocket_cut),
        Fault(f"Postgres down {POSTGRES_DOWN_S:g} s", postgres_down),
        Fault("Asterisk restart", asterisk_restart, calls_survive=False),
    )
}


async def run_once(
    fault: Fault, work: Path, database: str, postgres: ThrowawayPostgres, notify: NotifySocket
) -> Outcome:
    async with pair_of_daemons(work, database, notify) as pair:
        deadline = time.monotonic() + 5
        while not (await pair.active.get("/readyz"))[1].get("standby_present"):
            assert time.monotonic() < deadline, "the active daemon never saw its standby"
            await asyncio.sleep(0.1)
        calls = await callers_in_their_phases(pair)
        attendance = Attendance(pair.sim, calls)
        attendance.start()
        await asyncio.sleep(SAMPLE_S * 2)
        fault_at = time.monotonic()
        back_at = await fault.strike(pair, postgres)
        survivors = set(pair.sim.asterisk.channels)
        outcome = Outcome(fault.name, None if back_at is None else round(back_at - fault_at, 3))
        alerts = await all_written(database, calls, 90 if fault.calls_survive else 30)
        with contextlib.suppress(AssertionError):  # what is left is counted below
            await wait_until(lambda: nothing_left(pair.sim), 15, "nothing left in Asterisk")
        await attendance.stop()
        left = pair.sim.leftovers()
        if not nothing_left(pair.sim):
            outcome.notes.append(f"left in Asterisk: {left}")
        for phase, channel_id in calls.items():
            found = [a for a in alerts if a["calls"][0]["caller_channel_id"] == channel_id]
            outcome.alerts[phase] = len(found)
            expected = CALLERS[phase][2]
            ended = found[0]["ended_reason"] if found else None
            outcome.ended[phase] = ended
            outcome.dropped[phase] = (
                ended != expected if fault.calls_survive else channel_id not in survivors
            )
            outcome.undriven_s[phase] = (
                attendance.undriven(phase, fault_at, back_at) if fault.calls_survive else 0.0
            )
            outcome.left[phase] = int(channel_id in left["channels"])
        outcome.left_unattributed = (
            len(left["channels"]) - sum(outcome.left.values()) + len(left["bridges"])
        )
        return outcome


async def all_written(database: str, calls: dict[str, str], timeout: float) -> list[Any]:
    """Every alert of the run once each call's alert says how it ended (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await alerts_listed(database)
        ended = {
            a["calls"][0]["caller_channel_id"] for a in found if a.get("ended_reason") is not None
        }
        if set(calls.values()) <= ended or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def alerts_listed(database: str) -> list[dict[str, Any]]:
    """Every alert with a call (a doubled alert shows as two entries for one channel); none
    while Postgres is away."""
    try:
        pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    except OSError:
        return []
    try:
        rows = await list_alerts(pool, limit=100)
        found = [await get_alert(pool, row["id"]) for row in rows]
        return [a for a in found if a is not None and a["calls"]]
    finally:
        await pool.close()


def nothing_left(sim: Simulator) -> bool:
    left = sim.leftovers()
    return not left["channels"] and not left["bridges"]


# ---- the table --------------------------------------------------------------------------------


def summary(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    """Per phase, over the runs of one fault: the cell of the table."""
    cells: dict[str, dict[str, Any]] = {}
    takeovers = [o.takeover_s for o in outcomes if o.takeover_s is not None]
    for phase in PHASES:
        undriven = [o.undriven_s[phase] for o in outcomes]
        cells[phase] = {
            "runs": len(outcomes),
            "dropped": sum(o.dropped[phase] for o in outcomes),
            "undriven_p50_s": round(statistics.median(undriven), 2),
            "undriven_max_s": round(max(undriven), 2),
            "takeover_p50_s": round(statistics.median(takeovers), 2) if takeovers else None,
            "takeover_max_s": round(max(takeovers), 2) if takeovers else None,
            "alerts_lost": sum(o.alerts[phase] == 0 for o in outcomes),
            "alerts_doubled": sum(o.alerts[phase] > 1 for o in outcomes),
            "left": sum(o.left[phase] for o in outcomes),
        }
    return cells
