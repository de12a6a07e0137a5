"""`ari-controller run` as systemd runs it: a real subprocess, signalled like a service.

The simulated Asterisk runs in the test's own loop (so the test can look at what each channel
heard), the database is a real Postgres, and a unix datagram socket the test binds stands in
for systemd's $NOTIFY_SOCKET.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml

from ari_controller.announcements import greeting_and_menu, responder_sentences
from ari_controller.config import Config, load_config
from ari_controller.daemon.setup import config_digest, make_library
from ari_controller.numbers import numbered_routes
from ari_controller.simulator.server import Simulator
from ari_controller.store.queries import get_alert, list_alerts

SIM_USER = "callrouting"
SIM_PASSWORD = "service-secret"
TIME_SCALE = 10.0  # phones, audio and Asterisk-side waits run 10x faster than real time

# Scripted phones of these tests, in simulated seconds (a tenth of that in real time).
SCRIPTS: dict[str, list[Any]] = {
    # a caller who stays on the line for 4 s
    "stay4": ["answer", {"wait": 40}, "hangup"],
    # a caller who stays on the line for 2.5 s
    "stay2": ["answer", {"wait": 25}, "hangup"],
    # a responder who answers at once and accepts with 1
    "quick_accept": ["answer", {"wait": 2}, {"dtmf": "1"}, {"wait": 300}, "hangup"],
    # a responder whose phone rings for 2 s before answering, then accepts with 1
    "late_accept": ["ring", {"wait": 20}, "answer", {"wait": 5}, {"dtmf": "1"}, {"wait": 300},
                    "hangup"],
}  # fmt: skip


# ---- the pieces around the process --------------------------------------------------------


class NotifySocket:
    """What systemd would receive from the service on $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def sent(self, message: str) -> list[float]:
        """When each `message` (e.g. "WATCHDOG=1") arrived."""
        return [at for at, line in self.messages if line == message]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sock.close()


# Longer log lines than asyncio's default 64 KiB are read whole: a reader that gave up would
# leave the daemon blocked on a full pipe.
LOG_LINE_LIMIT = 16 * 1024 * 1024


class DaemonProcess:
    """`ari-controller run --config X` with its JSON log lines collected as they come."""

    def __init__(self, config_path: Path, notify: NotifySocket, drain_s: float) -> None:
        self.config_path = config_path
        self.notify = notify
        self.drain_s = drain_s
        self.logs: list[dict[str, Any]] = []
        self.http_port: int | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._new_line = asyncio.Event()

    async def start(self, *, standby: bool = False) -> None:
        """Until the daemon serves (a `standby`: until it runs, not yet connected)."""
        env = {k: v for k, v in os.environ.items() if k not in ("ARI_PASSWORD", "WATCHDOG_PID")}
        env.update(NOTIFY_SOCKET=str(self.notify.path), WATCHDOG_USEC="200000")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ari_controller.cli", "--log-format", "json",
            "run", "--config", str(self.config_path), "--drain-seconds", str(self.drain_s),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=LOG_LINE_LIMIT,
        )  # fmt: skip
        self._reader = asyncio.get_running_loop().create_task(self._read())
        started = await self.wait_log("daemon_started", timeout=20)
        self.http_port = int(started["http_port"])
        if not standby:
            await self.wait_log("calls_picked_up", timeout=10)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").strip()
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"event": "raw", "line": line}
            self.logs.append(entry if isinstance(entry, dict) else {"event": "raw", "line": line})
            self._new_line.set()

    async def wait_log(
        self,
        event: str,
        timeout: float,
        where: Callable[[dict[str, Any]], bool] = lambda _e: True,
        after: int = 0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = after
        while True:
            for entry in self.logs[seen:]:
                if entry.get("event") == event and where(entry):
                    return entry
            seen = len(self.logs)
            self._new_line.clear()
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc is not None and self.proc.returncode is not None):
                tail = "\n".join(json.dumps(e) for e in self.logs[-15:])
                raise AssertionError(f"no {event!r} log line; last lines:\n{tail}")
            try:
                async with asyncio.timeout(min(left, 0.2)):
                    await self._new_line.wait()
            except TimeoutError:
                pass

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        return code

    async def get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"http://127.0.0.1:{self.http_port}{path}", timeout=aiohttp.ClientTimeout(5)
            ) as reply:
                body = await reply.json() if path != "/metrics" else await reply.text()
                return reply.status, body

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


def connections(sim: Simulator, dsn: str) -> dict[str, Any]:
    """The configuration sections that say where the daemon's Asterisk, database, HTTP server
    and prompts are."""
    return {
        "asterisk": {"url": sim.ari_url, "username": SIM_USER, "password": SIM_PASSWORD},
        "database": {"dsn": dsn, "spool_dir": "spool"},
        "http": {"host": "127.0.0.1", "port": 0},
        "prompts": {"media": "sound", "cache_dir": "sounds/callrouting"},
    }


def service_config(sim: Simulator, dsn: str, work: Path, number_name: str) -> dict[str, Any]:
    """Two numbers: 100 rings a phone nobody answers, 101 one that accepts at once; 102 rings
    a phone that answers after a while (time to hear whose call it is)."""
    responders = {"ring_timeout_s": 120, "accept_window_s": 5, "accept_keys": "1"}
    return {
        **connections(sim, dsn),
        "users": [
            {"id": "nora", "name": "Nora", "contacts": ["Local/noanswer@responders"]},
            {"id": "quinn", "name": "Quinn", "contacts": ["Local/quick_accept@responders"]},
            {"id": "lee", "name": "Lee", "contacts": ["Local/late_accept@responders"]},
        ],
        "escalation_policies": [
            {"id": "unanswered", "name": "Unanswered", "rules": [{"users": ["nora"]}]},
            {"id": "quick", "name": "Quick", "rules": [{"users": ["quinn"]}]},
            {"id": "late", "name": "Late", "rules": [{"users": ["lee"]}]},
        ],
        "numbers": [
            {"did": did, "name": number_name, "routes": [{"label": "ops", "policy": policy}],
             "responders": responders, "voicemail": {"enabled": False}}
            for did, policy in (("100", "unanswered"), ("101", "quick"), ("102", "late"))
        ],
    }  # fmt: skip


def write_config(path: Path, data: dict[str, Any]) -> None:
    # Write then rename: the daemon must never read half a file on SIGHUP.
    partial = path.with_suffix(".partial")
    partial.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    partial.replace(path)


async def place_call(sim: Simulator, script: str, did: str) -> str:
    """An inbound call from a scripted caller; the id of the channel that enters the app."""
    auth = base64.b64encode(f"{SIM_USER}:{SIM_PASSWORD}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as session:
        async with session.post(
            sim.ari_url + "/channels",
            params={"endpoint": f"Local/{script}@caller", "context": "from-pstn",
                    "extension": did, "priority": "1", "callerId": "Caller <+4930555>"},
            timeout=aiohttp.ClientTimeout(5),
        ) as reply:  # fmt: skip
            body = await reply.json()
            assert reply.status == 200, body
            return str(body["id"])


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def alerts_by_channel(dsn: str) -> dict[str, dict[str, Any]]:
    """Every alert in the database, by the caller's channel id."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        found = [await get_alert(pool, row["id"]) for row in await list_alerts(pool, limit=100)]
    finally:
        await pool.close()
    return {a["calls"][0]["caller_channel_id"]: a for a in found if a is not None and a["calls"]}


def timeline_kinds(alert: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in alert["calls"][0]["timeline"]]


class Heard:
    """Which prepared sentence each played URI is: the daemon's prompt keys, recomputed here."""

    def __init__(self, config: Config, base_dir: Path) -> None:
        self.library = make_library(config, base_dir)
        self.texts: dict[str, str] = {}

    def know(self, sentences: list[str], language: str = "en") -> None:
        for text in sentences:
            self.texts[self.library.uri_for_key(self.library.prompt_key(text, language))] = text

    def of(self, sim: Simulator, channel_id: str) -> list[str]:
        return [
            self.texts.get(str(item.get("media")), str(item.get("media")))
            for item in sim.media(channel_id)
            if item.get("kind") == "playback"
        ]


# ---- fixtures -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def simulator(
    tmp_path: Path, scripts: dict[str, list[Any]], time_scale: float
) -> AsyncIterator[Simulator]:
    """The simulated Asterisk the daemon process connects to, with the test's phones."""
    sim = Simulator(
        user=SIM_USER,
        password=SIM_PASSWORD,
        app="callrouting",
        time_scale=time_scale,
        sounds_dirs=[tmp_path / "sounds"],
    )
    for name, steps in scripts.items():
        sim.register_script(name, steps)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with simulator(tmp_path, SCRIPTS, TIME_SCALE) as started:
        yield started


@pytest.fixture
async def notify(tmp_path: Path) -> AsyncIterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    sock.start()
    try:
        yield sock
    finally:
        await sock.close()


@pytest.fixture
async def service(
    sim: Simulator, database: str, notify: NotifySocket, tmp_path: Path
) -> AsyncIterator[DaemonProcess]:
    config_path = tmp_path / "config.yaml"
    write_config(config_path, service_config(sim, database, tmp_path, "Acme Operations"))
    daemon = DaemonProcess(config_path, notify, drain_s=4.0)
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.kill()


# ---- tests --------------------------------------------------------------------------------


@pytest.mark.timeout(40)
async def test_sigterm_finishes_short_calls_hands_back_the_rest_and_exits_0(
    service: DaemonProcess, sim: Simulator, notify: NotifySocket, database: str
) -> None:
    # systemd hears READY=1 once started, then watchdog pings from the event loop.
    await wait_until(lambda: len(notify.sent("WATCHDOG=1")) >= 3, 5, "watchdog pings")
    assert notify.messages[0][1] == "READY=1"

    finishing = await place_call(sim, "stay2", "101")  # connected, caller hangs up in 2.5 s
    waiting = await place_call(sim, "listen", "100")  # its responder never answers
    await wait_until(lambda: len(sim.channels_of_script("noanswer")) == 1, 5, "the hunt")
    await wait_until(lambda: len(sim.channels_of_script("quick_accept")) == 1, 5, "a responder")

    service.signal(signal.SIGTERM)
    await service.wait_log("daemon_stopping", timeout=5)
    # A call arriving while the daemon drains goes straight back to the dialplan.
    late = await place_call(sim, "stay4", "101")

    code = await service.wait_exit(timeout=15)
    assert code == 0

    stopping = notify.sent("STOPPING=1")
    assert stopping, notify.messages
    assert any(at > stopping[0] for at in notify.sent("WATCHDOG=1")), "no pings while draining"

    alerts = await alerts_by_channel(database)
    assert alerts[finishing]["ended_reason"] == "connected"
    assert alerts[waiting]["ended_reason"] == "handed_back"
    assert "handed_back_to_dialplan" in str(alerts[waiting]["calls"][0]["timeline"])
    assert [leg["outcome"] for leg in alerts[waiting]["calls"][0]["legs"]] != ["accepted"]
    assert late not in alerts  # never handled as a call

    # Handed back: the caller left the app for the dialplan's fallback, which speaks to them
    # (asterisk/extensions.conf: a staffed phone or voicemail) instead of hanging up.
    for channel_id in (waiting, late):
        channel = sim.asterisk.channels.get(channel_id) or sim.asterisk.gone_channels.get(
            channel_id
        )
        assert channel is not None and channel.stasis_app is None, channel_id
        assert channel.context == "fallback", (channel_id, channel.context)
    # Nothing the controller started is left: no leg still ringing, no bridge, no playback.
    assert sim.leftovers() == {"channels": [], "bridges": [], "playbacks": [], "recordings": []}
    stopped = await service.wait_log("daemon_stopped", timeout=1)
    assert stopped["handed_back"] == 1 and stopped["all_written"] is True


@pytest.mark.timeout(40)
async def test_a_second_sigterm_stops_waiting_and_hands_calls_back_at_once(
    sim: Simulator, database: str, notify: NotifySocket, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.yaml"
    write_config(config_path, service_config(sim, database, tmp_path, "Acme Operations"))
    # A drain long enough that only the second signal can end it within the test.
    service = DaemonProcess(config_path, notify, drain_s=300.0)
    try:
        await service.start()
        # The caller would wait two real minutes; the responder's phone rings for 120 s.
        sim.register_script("patient", [{"answer": {}}, {"wait": 1200}, {"hangup": {}}])
        waiting = await place_call(sim, "patient", "100")
        await wait_until(lambda: len(sim.channels_of_script("noanswer")) == 1, 5, "the hunt")
        service.signal(signal.SIGTERM)
        await service.wait_log("daemon_stopping", timeout=5)
        service.signal(signal.SIGTERM)
        await service.wait_log("stop_hurried", timeout=5)
        assert await service.wait_exit(timeout=15) == 0
    finally:
        await service.kill()
    alerts = await alerts_by_channel(database)
    assert alerts[waiting]["ended_reason"] == "handed_back"
    channel = sim.asterisk.channels.get(waiting) or sim.asterisk.gone_channels.get(waiting)
    assert channel is not None and channel.context == "fallback"
    assert sim.leftovers() == {"channels": [], "bridges": [], "playbacks": [], "recordings": []}


@pytest.mark.timeout(40)
async def test_sighup_reloads_for_new_calls_keeps_old_for_calls_in_progress_rejects_bad_files(
    service: DaemonProcess, sim: Simulator, database: str, tmp_path: Path
) -> None:
    path = service.config_path
    old, new = "Acme Operations", "Acme Nightshift"
    status, ready = await service.get("/readyz")
    assert status == 200, ready
    assert ready["config"]["digest"] == config_digest(load_config(path))

    # A call starts with the old name; its responder answers only after the reload.
    in_progress = await place_call(sim, "stay4", "102")
    await wait_until(lambda: len(sim.channels_of_script("late_accept")) == 1, 5, "the hunt")

    write_config(path, service_config(sim, database, tmp_path, new))
    mark = len(service.logs)
    service.signal(signal.SIGHUP)
    await service.wait_log("reloaded", timeout=10, after=mark)
    status, ready = await service.get("/readyz")
    assert status == 200
    assert ready["config"]["digest"] == config_digest(load_config(path))
    new_digest = ready["config"]["digest"]

    after_reload = await place_call(sim, "stay2", "101")

    # A broken file is rejected, with the reason; the running configuration stays.
    path.write_text("numbers:\n  - {did: '100', name: X, routes: [{label: x, policy: nowhere}]}\n")
    mark = len(service.logs)
    service.signal(signal.SIGHUP)
    rejected = await service.wait_log("reload_rejected", timeout=10, after=mark)
    assert "nowhere" in json.dumps(rejected), rejected
    status, ready = await service.get("/readyz")
    assert status == 200 and ready["config"]["digest"] == new_digest
    assert service.proc is not None and service.proc.returncode is None

    still_new = await place_call(sim, "stay2", "101")
    await wait_until(
        lambda: not sim.leftovers()["channels"] and not sim.asterisk.channels, 15, "calls to end"
    )

    alerts = await alerts_by_channel(database)
    assert alerts[in_progress]["number_name"] == old
    assert alerts[in_progress]["ended_reason"] == "connected"
    assert alerts[after_reload]["number_name"] == new
    assert alerts[still_new]["number_name"] == new

    # What people heard: the old name to the responder of the call in progress, the new one
    # to callers after the reload.
    heard = Heard(load_config_text(service_config(sim, database, tmp_path, old)), tmp_path)
    for name in (old, new):
        number = load_config_text(service_config(sim, database, tmp_path, name)).numbers[1]
        heard.know(greeting_and_menu(number, numbered_routes(number.routes)))
        heard.know(responder_sentences(number))
    (responder_leg,) = sim.channels_of_script("late_accept")
    assert f"This is {old}. You have a caller on hold." in heard.of(sim, responder_leg)
    assert f"You have reached {new}." in heard.of(sim, after_reload)
    assert f"You have reached {new}." in heard.of(sim, still_new)
    assert f"You have reached {old}." in heard.of(sim, in_progress)

    service.signal(signal.SIGTERM)
    assert await service.wait_exit(timeout=10) == 0


def load_config_text(data: dict[str, Any]) -> Config:
    from ari_controller.config import parse_config

    return parse_config(data)
