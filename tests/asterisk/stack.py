"""The parts of the real-Asterisk suite: a real Asterisk, the daemon as a subprocess, a second
ARI application that watches everything, and Postgres, all driven from synchronous tests.

- `LoopThread`: an asyncio loop in a thread of its own. The watching websocket, the test's REST
  client and its Postgres pool live there, so a test can sleep or wait on a condition without
  starving the websocket reader (Asterisk drops a websocket whose reader stalls).
- `Observer`: the ARI application `observer`, subscribed to everything (`subscribeAll`): every
  channel, bridge, playback and DTMF event as Asterisk sent it, with the time it arrived.
- `DaemonProcess`: `ari-controller run --config FILE` as a user runs it, with its JSON log in a
  file; SIGTERM, SIGKILL and restart against the same Asterisk and database.
- `EventsProxy`: a TCP proxy between the daemon and Asterisk's HTTP port that can drop the
  daemon's events websocket (and refuse it for a while) without touching its REST requests.
- `RealStack`: all of the above for one test module, with the questions tests ask of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import yaml

from ari_controller.ari.client import basic_auth_header
from ari_controller.prompts.library import PromptLibrary
from ari_controller.store.queries import get_alert
from ari_controller.testing.asterisk import ThrowawayAsterisk
from tests.events_proxy import EventsProxy as EventsProxy  # the suite's modules import it here

T = TypeVar("T")

OBSERVER_APP = "observer"


def daemon_command() -> list[str]:
    """`ari-controller` as installed beside the interpreter running the tests (the venv's
    console script), else the same entry point through `python -m`."""
    script = Path(sys.executable).with_name("ari-controller")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ari_controller.cli"]


def wait_until(
    condition: Callable[[], T | None], timeout: float, what: str, step: float = 0.05
) -> T:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


# ---- a loop for the test's own network clients --------------------------------------------


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="suite-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_all(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# ---- ARI from the test's side -------------------------------------------------------------


class AriRest:
    """The few REST requests the suite makes itself (with the daemon's ARI user)."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url
        self._headers = {"Authorization": basic_auth_header(user, password)}
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=10)
            )
        return self._session

    async def request(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.session.request(method, self.base_url + path, params=params) as reply:
            text = await reply.text()
            try:
                body = json.loads(text) if text else None
            except json.JSONDecodeError:
                body = text
            return reply.status, body

    async def get(self, path: str) -> Any:
        status, body = await self.request("GET", path)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body}")
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass(frozen=True, slots=True)
class Seen:
    """One event as Asterisk sent it to the observer, and when it arrived (time.monotonic)."""

    at: float
    raw: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.raw.get("type", ""))

    @property
    def channel_id(self) -> str | None:
        channel = self.raw.get("channel")
        return channel.get("id") if isinstance(channel, dict) else None

    @property
    def bridge_id(self) -> str | None:
        bridge = self.raw.get("bridge")
        return bridge.get("id") if isinstance(bridge, dict) else None

    @property
    def playback_target(self) -> str | None:
        playback = self.raw.get("playback")
        if not isinstance(playback, dict):
            return None
        target = str(playback.get("target_uri", ""))
        return target.removeprefix("channel:") if target.startswith("channel:") else None

    @property
    def dialplan_context(self) -> str | None:
        channel = self.raw.get("channel")
        if isinstance(channel, dict):
            context = channel.get("dialplan", {}).get("context")
            return str(context) if context is not None else None
        return None


class Observer:
    """A second ARI application that records everything Asterisk does (`subscribeAll`)."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self._url = base_url + "/events"
        self._headers = {"Authorization": basic_auth_header(user, password)}
        self.events: list[Seen] = []
        self.disconnects: list[str] = []
        self._session: aiohttp.ClientSession | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers=self._headers)
        ws = await self._session.ws_connect(
            self._url, params={"app": OBSERVER_APP, "subscribeAll": "true"}, heartbeat=10
        )
        self._reader = asyncio.get_running_loop().create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self.events.append(Seen(time.monotonic(), json.loads(message.data)))
            self.disconnects.append(f"closed ({ws.close_code})")
        except asyncio.CancelledError:
            await ws.close()
            raise
        except Exception as exc:  # noted, and every test that relies on the observer fails
            self.disconnects.append(repr(exc))

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # ---- what it saw (called from the test's thread) ------------------------------------------

    def snapshot(self) -> list[Seen]:
        return list(self.events)

    def about_channel(self, channel_id: str) -> list[Seen]:
        return [e for e in self.snapshot() if e.channel_id == channel_id]

    def first(self, kind: str, channel_id: str | None = None) -> Seen | None:
        for event in self.snapshot():
            if event.type == kind and (channel_id is None or event.channel_id == channel_id):
                return event
        return None

    def first_bridge_event(self, kind: str, bridge_id: str) -> Seen | None:
        for event in self.snapshot():
            if event.type == kind and event.bridge_id == bridge_id:
                return event
        return None

    def destroyed(self, channel_id: str) -> Seen | None:
        return self.first("ChannelDestroyed", channel_id)

    def when(self, kind: str, channel_id: str) -> float:
        """When the first `kind` event about the channel arrived (it must have)."""
        event = self.first(kind, channel_id)
        if event is None:
            raise AssertionError(f"Asterisk sent no {kind} for {channel_id}")
        return event.at

    def wait_gone(self, channel_ids: Iterable[str], timeout: float) -> None:
        """Until Asterisk destroyed every one of the channels."""
        for channel_id in channel_ids:

            def gone(c: str = channel_id) -> bool:
                return self.destroyed(c) is not None

            wait_until(gone, timeout, f"{channel_id} to hang up")

    def answered(self, channel_id: str) -> bool:
        """Whether the channel went Up (a responder leg: the phone answered)."""
        return any(
            e.raw.get("channel", {}).get("state") == "Up" for e in self.about_channel(channel_id)
        )

    def dial_status(self, channel_id: str) -> str | None:
        """The last `Dial` status Asterisk gave for a channel it dialed (BUSY, NOANSWER, ...)."""
        status = None
        for event in self.snapshot():
            peer = event.raw.get("peer")
            if event.type == "Dial" and isinstance(peer, dict) and peer.get("id") == channel_id:
                status = event.raw.get("dialstatus") or status
        return status

    def digits(self, channel_id: str) -> list[str]:
        return [
            str(e.raw["digit"])
            for e in self.about_channel(channel_id)
            if e.type == "ChannelDtmfReceived"
        ]

    def playbacks(self, channel_id: str) -> list[Seen]:
        """PlaybackStarted events on the channel, in order."""
        return [
            e
            for e in self.snapshot()
            if e.type == "PlaybackStarted" and e.playback_target == channel_id
        ]

    def channels_named(self, prefix: str) -> list[str]:
        """Ids of every channel created whose id starts with `prefix`, in creation order (not
        the `;2` halves of Local channels, which Asterisk names `<id>;2`)."""
        seen: list[str] = []
        for event in self.snapshot():
            if event.type == "ChannelCreated" and event.channel_id:
                name = event.channel_id
                if name.startswith(prefix) and not name.endswith(";2") and name not in seen:
                    seen.append(event.channel_id)
        return seen

    def contexts(self, channel_id: str) -> list[str]:
        """The dialplan contexts the channel ran, in order (ChannelDialplan events)."""
        found: list[str] = []
        for event in self.about_channel(channel_id):
            context = event.dialplan_context
            if event.type == "ChannelDialplan" and context and (not found or found[-1] != context):
                found.append(context)
        return found


# ---- the daemon as a subprocess -------------------------------------------------------------


class DaemonProcess:
    """`ari-controller run`, started, signalled, killed and restarted as an operator would.

    Later issues use `kill()` + `start()` to test a daemon that dies mid-call: the same
    configuration, Asterisk and database, a fresh process.
    """

    def __init__(
        self,
        config_path: Path,
        log_path: Path,
        http_port: int,
        env: dict[str, str],
        *,
        drain_s: float = 30.0,
    ) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.http_port = http_port
        self.env = env
        self.drain_s = drain_s
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def argv(self) -> list[str]:
        return [
            *daemon_command(),
            "--log-format",
            "json",
            "run",
            "--config",
            str(self.config_path),
            "--drain-seconds",
            str(self.drain_s),
        ]

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, ready_timeout: float = 30.0) -> None:
        if self.running:
            raise RuntimeError("the daemon is already running")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f'{{"event": "suite_daemon_start", "start": {self.starts}}}\n'.encode())
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.config_path.parent,
            )
        self.wait_ready(ready_timeout)

    def wait_ready(self, timeout: float) -> None:
        """Until /readyz says ready (ARI connected, database reachable)."""
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(f"the daemon exited at start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the daemon was not ready within {timeout} s:\n{self.log_tail()}")

    def signal(self, sig: signal.Signals) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("the daemon is not running")
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit status, once the process ended."""
        assert self.process is not None
        return self.process.wait(timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (a clean stop: drain, hand back, flush) and its exit status."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> int:
        """SIGKILL: the daemon dies on the spot, as in a crash or an OOM kill."""
        self.signal(signal.SIGKILL)
        return self.wait(10)

    def restart(self, ready_timeout: float = 30.0) -> None:
        """Kill the running daemon (if any) and start a new one on the same Asterisk and DB."""
        if self.running:
            self.kill()
        self.start(ready_timeout)

    def stop(self) -> None:
        """Suite clean-up: SIGTERM, then SIGKILL if it does not go."""
        if not self.running:
            return
        try:
            self.terminate(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text: str = reply.read().decode()
            return text

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far (by every start of the daemon)."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                item = json.loads(line)
                if isinstance(item, dict):
                    lines.append(item)
        return lines

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.logs() if line.get("event") == event]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# ---- one module's stack ------------------------------------------------------------------


@dataclass
class CallView:
    """One call as the store has it (`get_alert` with the voicemail audio), with its legs."""

    alert: dict[str, Any]

    @property
    def call(self) -> dict[str, Any]:
        calls: list[dict[str, Any]] = self.alert["calls"]
        return calls[0]

    @property
    def legs(self) -> list[dict[str, Any]]:
        legs: list[dict[str, Any]] = self.call["legs"]
        return legs

    @property
    def outcomes(self) -> list[str]:
        return [leg["outcome"] for leg in self.legs]

    @property
    def timeline(self) -> list[dict[str, Any]]:
        timeline: list[dict[str, Any]] = self.call["timeline"]
        return timeline

    def kinds(self) -> list[str]:
        return [entry["kind"] for entry in self.timeline]

    def entries(self, kind: str) -> list[dict[str, Any]]:
        return [entry["data"] for entry in self.timeline if entry["kind"] == kind]

    def at(self, kind: str) -> float:
        """When the first `kind` entry happened, in seconds since the epoch."""
        for entry in self.timeline:
            if entry["kind"] == kind:
                return float(entry["at"].timestamp())
        raise AssertionError(f"no {kind} in the timeline: {self.kinds()}")


@dataclass
class RealStack:
    asterisk: ThrowawayAsterisk
    loop: LoopThread
    rest: AriRest
    observer: Observer
    daemon: DaemonProcess
    dsn: str
    library: PromptLibrary
    language: str = "en"
    proxy: EventsProxy | None = None
    _pool: asyncpg.Pool | None = None
    placed: dict[str, str] = field(default_factory=dict)  # caller channel id -> script

    # ---- calls ----------------------------------------------------------------------------

    def place_call(
        self, script: str, did: str, name: str, *, context: str = "suite-callers"
    ) -> str:
        """An inbound call from a scripted caller (`Local/<script>@<context>`, whose `;1` half
        dials `did` in from-pstn); returns the caller's channel id (the `;1` half)."""
        channel_id = f"{name}-{os.urandom(3).hex()}"
        params = {
            "endpoint": f"Local/{script}@{context}",
            "context": "from-pstn",
            "extension": did,
            "priority": "1",
            "callerId": f'"{name}" <+4930555{len(self.placed):04d}>',
            "channelId": channel_id,
            "otherChannelId": f"{channel_id}-phone",
            # A PSTN trunk gives ulaw; a Local channel without formats costs Asterisk far more.
            "formats": "ulaw",
        }
        status, body = self.loop.run(self.rest.request("POST", "/channels", params))
        if status != 200:
            raise AssertionError(f"originate {script} -> {did}: {status} {body}")
        self.placed[channel_id] = script
        return channel_id

    def hangup(self, channel_id: str) -> None:
        """Hang a channel up from the test's side (a 404 means it is gone already)."""
        status, body = self.loop.run(self.rest.request("DELETE", f"/channels/{channel_id}"))
        if status not in (204, 404):
            raise AssertionError(f"hangup {channel_id}: {status} {body}")

    def heard(self, channel_id: str) -> list[str]:
        """What was played to the channel, as sentences (or media URIs Asterisk played)."""
        texts = []
        for event in self.observer.playbacks(channel_id):
            uri = str(event.raw["playback"].get("media_uri", ""))
            texts.append(self.library.text_of(uri) or uri)
        return texts

    def say(self, key: str, **params: str) -> str:
        from ari_controller.prompts.catalogue import render

        return render(key, self.language, **params)

    # ---- the store ------------------------------------------------------------------------

    async def _alert_of(self, channel_id: str) -> dict[str, Any] | None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
        alert_id = await self._pool.fetchval(
            "SELECT alert_id FROM calls WHERE caller_channel_id = $1", channel_id
        )
        if alert_id is None:
            return None
        return await get_alert(self._pool, alert_id, include_audio=True)

    def alert_of(self, channel_id: str) -> CallView | None:
        alert = self.loop.run(self._alert_of(channel_id))
        return CallView(alert) if alert is not None else None

    def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        async def fetch() -> list[dict[str, Any]]:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
            return [dict(row) for row in await self._pool.fetch(query, *args)]

        return self.loop.run(fetch())

    def wait_call_done(self, channel_id: str, timeout: float) -> CallView:
        """Until the caller's channel is gone in Asterisk, every leg of the call is gone, and
        the store has the call ended with every leg's outcome."""
        wait_until(lambda: self.observer.destroyed(channel_id), timeout, f"{channel_id} hung up")

        def stored() -> CallView | None:
            view = self.alert_of(channel_id)
            if view is None or view.call["ended_at"] is None or view.alert["ended_reason"] is None:
                return None
            if any(leg["ended_at"] is None for leg in view.legs):
                return None
            if any(not self.observer.destroyed(leg["id"]) for leg in view.legs):
                return None
            return view

        view = wait_until(stored, 15, f"the call of {channel_id} ended in the store", step=0.2)
        self.check_call(channel_id, view)
        return view

    def check_call(self, caller: str, view: CallView) -> None:
        """What every finished call must show, the same in Asterisk and in the store."""
        observer = self.observer
        call_id = str(view.call["id"])
        did = view.alert["number_did"]
        story = summarise(observer.snapshot(), [caller, *(leg["id"] for leg in view.legs)])
        # Asterisk: the caller entered our application with the DID as its argument.
        assert any(
            e.type == "ChannelDialplan" and e.raw.get("dialplan_app_data") == f"callrouting,{did}"
            for e in observer.about_channel(caller)
        ), story
        assert view.call["caller_channel_id"] == caller and view.call["did"] == did
        # Every responder channel Asterisk created for the call is a leg in the store (and no
        # other), numbered in order, gone; answered in the store exactly when Asterisk says
        # the phone answered; the stored hang-up cause is Asterisk's.
        created = observer.channels_named(f"{call_id}-leg")
        assert sorted(created) == sorted(leg["id"] for leg in view.legs), story
        assert [leg["attempt"] for leg in view.legs] == list(range(1, len(view.legs) + 1))
        for leg in view.legs:
            destroyed = observer.destroyed(leg["id"])
            assert destroyed is not None, f"{leg['id']} is still up\n{story}"
            assert (leg["answered_at"] is not None) == observer.answered(leg["id"]), leg
            if leg["hangup_cause"] is not None:
                assert leg["hangup_cause"] == destroyed.raw["cause"], (
                    f"{leg}\nAsterisk: {destroyed.raw}\n{story}"
                )
            ended = [e for e in view.entries("leg_ended") if e["leg"] == leg["id"]]
            assert [e["outcome"] for e in ended] == [leg["outcome"]], leg
        # The timeline: complete and in order, from the call's start to its end.
        assert [e["seq"] for e in view.timeline] == list(range(1, len(view.timeline) + 1))
        assert view.kinds()[0] == "call_started" and view.kinds()[-1] == "call_ended"
        assert view.entries("call_ended")[0]["reason"] == view.alert["ended_reason"]
        assert view.call["outcome"] == view.alert["ended_reason"]
        # A bridge, when there was one, was made in Asterisk with caller and responder in it,
        # and destroyed.
        for entry in view.entries("bridged"):
            bridge = entry["bridge"]
            assert observer.first_bridge_event("BridgeCreated", bridge) is not None, story
            members = {
                e.channel_id
                for e in observer.snapshot()
                if e.type == "ChannelEnteredBridge" and e.bridge_id == bridge
            }
            accepted = [leg["id"] for leg in view.legs if leg["outcome"] == "accepted"]
            assert members == {caller, *accepted}, story
            assert observer.first_bridge_event("BridgeDestroyed", bridge) is not None, story

    # ---- Asterisk's own view --------------------------------------------------------------

    def leftovers(self) -> dict[str, list[str]]:
        async def read() -> dict[str, list[str]]:
            channels = await self.rest.get("/channels")
            bridges = await self.rest.get("/bridges")
            recordings = await self.rest.get("/recordings/stored")
            return {
                "channels": [f"{c['id']} ({c['name']})" for c in channels],
                "bridges": [b["id"] for b in bridges],
                "recordings": [r["name"] for r in recordings],
            }

        return self.loop.run(read())

    def wait_nothing_left(self, timeout: float) -> dict[str, list[str]]:
        """Until Asterisk has no channel, bridge or stored recording (or `timeout` passed):
        what it still has."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.leftovers()
            if not any(found.values()) or time.monotonic() >= deadline:
                return found
            time.sleep(0.5)

    def close(self) -> None:
        async def close_clients() -> None:
            await self.observer.stop()
            await self.rest.close()
            if self.proxy is not None:
                await self.proxy.stop()
            if self._pool is not None:
                await self._pool.close()

        with contextlib.suppress(Exception):
            self.loop.run(close_clients(), 15)


def write_config(path: Path, sections: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def summarise(events: Iterable[Seen], channel_ids: Iterable[str]) -> str:
    """The observer's view of some channels, one line per event, for assertion messages."""
    wanted = set(channel_ids)
    start: float | None = None
    lines = []
    for event in events:
        if event.channel_id not in wanted and event.playback_target not in wanted:
            continue
        if event.type in ("ChannelVarset", "DeviceStateChanged"):
            continue
        start = event.at if start is None else start
        detail = {
            k: v
            for k, v in event.raw.items()
            if k in ("cause", "digit", "dialstatus", "args", "dialplan_app", "dialplan_app_data")
        }
        who = event.channel_id or event.playback_target
        lines.append(f"+{event.at - start:6.2f}s {event.type} {who} {detail}")
    return "\n".join(lines)
