"""The simulator's HTTP face: ARI under `/ari` (REST + events websocket), and a
read-only inspection mirror plus fault hooks under `/_sim`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from ari_controller.simulator import inspect, localcalls
from ari_controller.simulator.clock import Clock
from ari_controller.simulator.events import JSON, event
from ari_controller.simulator.faults import Faults
from ari_controller.simulator.hub import Connection, Hub
from ari_controller.simulator.media import RecordingStore, SoundLibrary
from ari_controller.simulator.model import AriError, Channel
from ari_controller.simulator.phones import ScriptBook
from ari_controller.simulator.sessions import DEFAULT_SESSION_LIMIT, SessionGate
from ari_controller.simulator.state import Asterisk

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Simulator:
    """An in-process simulated Asterisk speaking ARI on 127.0.0.1 (or `host`).

    `session_limit` is Asterisk's http.conf `sessionlimit`: at most that many HTTP
    connections (REST and websockets of every client, `/_sim` included) are open at once;
    one more is closed without an answer."""

    def __init__(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        app: str | None = None,
        time_scale: float = 1.0,
        sounds_dirs: list[Path] | None = None,
        scripts_files: list[Path] | None = None,
        recordings_dir: Path | None = None,
        session_limit: int = DEFAULT_SESSION_LIMIT,
    ) -> None:
        self.user = user
        self.password = password
        self.clock = Clock(time_scale)
        self.hub = Hub()
        self.scripts = ScriptBook.with_builtins(scripts_files or [])
        self._own_dir = recordings_dir is None
        self.recordings_dir = recordings_dir or Path(tempfile.mkdtemp(prefix="ari-sim-rec-"))
        self.recordings = RecordingStore(self.recordings_dir)
        self.sounds = SoundLibrary(list(sounds_dirs or []), self.recordings)
        self.app = app
        self.faults = Faults()
        self.sessions = SessionGate(session_limit)
        self.asterisk = self._new_asterisk()
        self.port = 0
        self.host = "127.0.0.1"
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    def _new_asterisk(self) -> Asterisk:
        return Asterisk(self.clock, self.hub, self.scripts, self.sounds, self.recordings, self.app)

    # --- life cycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._runner = web.AppRunner(build_app(self), handle_signals=False)
        await self._runner.setup()
        http = self._runner.server
        assert http is not None
        # Served without web.TCPSite: every connection passes the session gate first.
        self._server = await asyncio.get_running_loop().create_server(
            self.sessions.protocol_factory(http), host, port, reuse_address=True, backlog=128
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.drop_websockets()
        await self.asterisk.shutdown()
        if self._server is not None:
            self._server.close()  # no new connections; the runner closes the open ones
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._own_dir:
            shutil.rmtree(self.recordings_dir, ignore_errors=True)

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ari_url(self) -> str:
        return f"{self.url}/ari"

    # --- scripts -------------------------------------------------------------------------

    def register_script(self, name: str, steps: Any) -> None:
        """Add a phone script, e.g. `[{"answer": {}}, {"wait": 1}, {"dtmf": "1"}]`."""
        self.scripts.register(name, steps)

    # --- faults --------------------------------------------------------------------------

    async def drop_websockets(self) -> None:
        for connection in self.hub.drop_all():
            await connection.close_now()
        self.asterisk.cleanup_apps()

    async def restart(self, downtime: float = 1.0) -> None:
        """Asterisk restarts: every call and websocket is gone; ARI answers 503 for
        `downtime` wall seconds while it boots."""
        self.faults.booting_until = time.monotonic() + downtime
        await self.drop_websockets()
        await self.asterisk.shutdown()
        self.asterisk = self._new_asterisk()

    def slow_requests(self, delay_ms: float) -> None:
        self.faults.delay_ms = delay_ms

    def fail_requests(self, path_pattern: str, count: int, status: int = 500) -> None:
        self.faults.fail_next(path_pattern, count, status)

    def clear_faults(self) -> None:
        self.faults.clear()

    # --- inspection ----------------------------------------------------------------------

    def media(self, channel_id: str) -> list[JSON]:
        return inspect.channel_media(self.asterisk, channel_id)

    def bridge_media(self, bridge_id: str) -> list[JSON]:
        return inspect.bridge_media(self.asterisk, bridge_id)

    def history(self) -> list[JSON]:
        return inspect.history(self.asterisk)

    def leftovers(self) -> JSON:
        return inspect.leftovers(self.asterisk)

    def live(self) -> JSON:
        return {
            "channels": inspect.live_channels(self.asterisk),
            "bridges": inspect.live_bridges(self.asterisk),
            "playbacks": inspect.live_playbacks(self.asterisk),
            "recordings": inspect.live_recordings(self.asterisk),
        }

    def channels_of_script(self, script: str) -> list[str]:
        """Ids of the app-facing channels created for `Local/<script>@...`."""
        return [r.channel_id for r in self.asterisk.history if f"/{script}@" in r.endpoint]


# --- helpers -------------------------------------------------------------------------------


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _no_content() -> web.Response:
    return web.Response(status=204)


async def _params(request: web.Request) -> dict[str, str]:
    """Query parameters, plus a JSON body's fields (ARI accepts both)."""
    params = dict(request.query)
    if request.can_read_body and request.content_type == "application/json":
        with contextlib.suppress(ValueError):
            body = await request.json()
            if isinstance(body, dict):
                for key, value in body.items():
                    if key == "variables" and isinstance(value, dict):
                        params["__variables"] = json.dumps(value)
                    elif isinstance(value, str | int | float | bool):
                        params.setdefault(
                            key, str(value).lower() if isinstance(value, bool) else str(value)
                        )
    return params


def _authorized(sim: Simulator, request: web.Request) -> bool:
    if sim.user is None:
        return True
    expected = f"{sim.user}:{sim.password or ''}"
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            if base64.b64decode(header[6:]).decode() == expected:
                return True
    return request.query.get("api_key") == expected


def build_app(sim: Simulator) -> web.Application:
    @web.middleware
    async def ari_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/ari"):
            return await handler(request)
        verdict = sim.faults.decide(request.path, time.monotonic())
        if verdict.delay_seconds:
            await asyncio.sleep(verdict.delay_seconds)
        if verdict.status is not None:
            return _error(
                verdict.status,
                "Service unavailable" if verdict.status == 503 else "Internal Server Error",
            )
        if not _authorized(sim, request):
            return web.json_response(
                {"message": "Authentication required"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        try:
            response = await handler(request)
        except AriError as exc:
            response = _error(exc.status, exc.message)
        # Events an operation caused go out before its reply, as Asterisk's often do.
        await sim.hub.flush()
        return response

    app = web.Application(middlewares=[ari_gate])
    routes = AriRoutes(sim)
    app.router.add_routes(routes.table())
    app.router.add_routes(sim_routes(sim))
    return app


class AriRoutes:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def ast(self) -> Asterisk:
        return self.sim.asterisk

    def table(self) -> list[web.RouteDef]:
        r = web
        return [
            r.get("/ari/events", self.events),
            r.get("/ari/channels", self.list_channels),
            r.post("/ari/channels", self.originate),
            r.post("/ari/channels/create", self.create),
            r.get("/ari/channels/{id}", self.get_channel),
            r.delete("/ari/channels/{id}", self.hangup),
            r.post("/ari/channels/{id}/dial", self.dial),
            r.post("/ari/channels/{id}/answer", self.answer),
            r.post("/ari/channels/{id}/ring", self.ring),
            r.delete("/ari/channels/{id}/ring", self.ring_stop),
            r.post("/ari/channels/{id}/play", self.play_channel),
            r.post("/ari/channels/{id}/record", self.record),
            r.post("/ari/channels/{id}/snoop", self.snoop),
            r.post("/ari/channels/{id}/moh", self.moh_start),
            r.delete("/ari/channels/{id}/moh", self.moh_stop),
            r.post("/ari/channels/{id}/variable", self.set_variable),
            r.get("/ari/channels/{id}/variable", self.get_variable),
            r.post("/ari/channels/{id}/continue", self.continue_dialplan),
            r.get("/ari/bridges", self.list_bridges),
            r.post("/ari/bridges", self.create_bridge),
            r.post("/ari/bridges/{id}", self.create_bridge_with_id),
            r.get("/ari/bridges/{id}", self.get_bridge),
            r.delete("/ari/bridges/{id}", self.delete_bridge),
            r.post("/ari/bridges/{id}/addChannel", self.add_channel),
            r.post("/ari/bridges/{id}/removeChannel", self.remove_channel),
            r.post("/ari/bridges/{id}/moh", self.bridge_moh_start),
            r.delete("/ari/bridges/{id}/moh", self.bridge_moh_stop),
            r.post("/ari/bridges/{id}/play", self.play_bridge),
            r.get("/ari/playbacks/{id}", self.get_playback),
            r.delete("/ari/playbacks/{id}", self.stop_playback),
            r.get("/ari/recordings/stored", self.list_stored),
            r.get("/ari/recordings/stored/{name}", self.get_stored),
            r.get("/ari/recordings/stored/{name}/file", self.stored_file),
            r.delete("/ari/recordings/stored/{name}", self.delete_stored),
            r.get("/ari/recordings/live/{name}", self.get_live),
            r.post("/ari/recordings/live/{name}/stop", self.stop_live),
            r.delete("/ari/recordings/live/{name}", self.cancel_live),
            r.get("/ari/applications", self.list_applications),
            r.get("/ari/applications/{app}", self.get_application),
            r.get("/ari/asterisk/info", self.info),
        ]

    # --- websocket -----------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        app = request.query.get("app", "")
        if not app:
            return _error(400, "Missing app parameter")
        if self.sim.app and app != self.sim.app:
            return _error(400, f"Application '{app}' not allowed")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        transport = request.transport
        connection = Connection(
            app, ws.send_str, ws.close, drop=transport.abort if transport is not None else None
        )
        hub = self.sim.hub
        old = hub.attach(connection)
        self.ast.register_app(app)
        if old is not None:
            stamp = self.sim.clock.timestamp()
            replaced = event("ApplicationReplaced", app, stamp)
            # Asterisk tells the old websocket and stops talking to it, but leaves it open.
            old.push(replaced)
        try:
            async for message in ws:
                if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            hub.detach(connection)
            connection.abort()
            # The app stays registered, inactive, while it is subscribed to something.
            self.ast.cleanup_apps()
        return ws

    # --- channels ------------------------------------------------------------------------

    def _channel(self, request: web.Request) -> Channel:
        return self.ast.channel(request.match_info["id"])

    async def list_channels(self, request: web.Request) -> web.Response:
        return web.json_response([c.snapshot() for c in self.ast.channels.values()])

    async def originate(self, request: web.Request) -> web.Response:
        channel = localcalls.originate(self.ast, await _params(request))
        return web.json_response(channel.snapshot())

    async def create(self, request: web.Request) -> web.Response:
        channel = localcalls.create(self.ast, await _params(request))
        return web.json_response(channel.snapshot())

    async def get_channel(self, request: web.Request) -> web.Response:
        return web.json_response(self._channel(request).snapshot())

    async def hangup(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        pair = self.ast.local_pair(channel)
        if pair is not None and channel is pair.one:
            pair.app_hangup()
        elif pair is not None:
            pair.far_half_hangup()
        elif channel.snoop_of is not None:
            self.ast.hangup_request(channel, 32, soft=True)
            self.ast.end_snoop(channel)
        else:
            self.ast.hangup_request(channel, 32, soft=True)
            self.ast.leave_stasis(channel, keep_subscription=True)
            self.ast.destroy(channel, 16)
        return _no_content()

    async def snoop(self, request: web.Request) -> web.Response:
        channel = self.ast.channels.get(request.match_info["id"])
        if channel is None or not channel.alive:
            raise AriError(404, "Provided channel was not found")
        return web.json_response(self.ast.snoop(channel, await _params(request)).snapshot())

    async def dial(self, request: web.Request) -> web.Response:
        # Asterisk's create answers before the leg has entered Stasis (its StasisStart comes
        # from another thread): a dial sent before then is refused with 409.
        channel = self.ast.stasis_channel(request.match_info["id"])
        localcalls.dial(self.ast, channel, await _params(request))
        return _no_content()

    async def answer(self, request: web.Request) -> web.Response:
        channel = self.ast.stasis_channel(request.match_info["id"])
        if channel.state != "Up":
            self.ast.set_state(channel, "Up")
        channel.answered_by_app.set()
        return _no_content()

    async def ring(self, request: web.Request) -> web.Response:
        self.ast.stasis_channel(request.match_info["id"])
        return _no_content()

    async def ring_stop(self, request: web.Request) -> web.Response:
        self.ast.stasis_channel(request.match_info["id"])
        return _no_content()

    async def play_channel(self, request: web.Request) -> web.Response:
        params = await _params(request)
        channel = self.ast.stasis_channel(request.match_info["id"])
        media = params.get("media", "")
        if not media:
            raise AriError(400, "media: Missing required parameter")
        assert channel.stasis_app is not None
        playback = self.ast.play(channel, media, params.get("playbackId"), channel.stasis_app)
        return web.json_response(playback.to_json() | {"state": "queued"}, status=201)

    async def record(self, request: web.Request) -> web.Response:
        params = await _params(request)
        channel = self.ast.stasis_channel(request.match_info["id"])
        assert channel.stasis_app is not None
        recording = self.ast.record(channel, params, channel.stasis_app)
        return web.json_response(recording.to_json() | {"state": "queued"}, status=201)

    async def moh_start(self, request: web.Request) -> web.Response:
        params = await _params(request)
        channel = self.ast.stasis_channel(request.match_info["id"])
        self.ast.start_moh(channel, params.get("mohClass", "default"))
        return _no_content()

    async def moh_stop(self, request: web.Request) -> web.Response:
        channel = self.ast.stasis_channel(request.match_info["id"])
        self.ast.stop_moh(channel)
        return _no_content()

    async def set_variable(self, request: web.Request) -> web.Response:
        params = await _params(request)
        channel = self.ast.stasis_channel(request.match_info["id"])
        name = params.get("variable", "")
        if not name:
            raise AriError(400, "Variable name is required")
        value = params.get("value", "")
        if name.upper().startswith("TALK_DETECT("):
            self.ast.set_talk_detect(channel, name[12:-1].lower() != "remove")
        else:
            channel.variables[name] = value
        return _no_content()

    async def get_variable(self, request: web.Request) -> web.Response:
        params = await _params(request)
        channel = self._channel(request)
        name = params.get("variable", "")
        if not name:
            raise AriError(400, "Variable name is required")
        if name not in channel.variables:
            raise AriError(404, "Provided variable was not found")
        return web.json_response({"value": channel.variables[name]})

    async def continue_dialplan(self, request: web.Request) -> web.Response:
        params = await _params(request)
        channel = self.ast.stasis_channel(request.match_info["id"])
        pair = self.ast.local_pair(channel)
        if pair is not None:
            pair.continue_in_dialplan(params.get("context", channel.context))
        else:
            self.ast.leave_stasis(channel, keep_subscription=False)
        return _no_content()

    # --- bridges -------------------------------------------------------------------------

    async def list_bridges(self, request: web.Request) -> web.Response:
        return web.json_response([b.to_json() for b in self.ast.bridges.values()])

    async def create_bridge(self, request: web.Request) -> web.Response:
        params = await _params(request)
        bridge = self.ast.create_bridge(
            params.get("bridgeId"), params.get("type", "mixing"), params.get("name", "")
        )
        return web.json_response(bridge.to_json())

    async def create_bridge_with_id(self, request: web.Request) -> web.Response:
        params = await _params(request)
        bridge_id = request.match_info["id"]
        existing = self.ast.bridges.get(bridge_id)
        if existing is not None:
            return web.json_response(existing.to_json())
        bridge = self.ast.create_bridge(
            bridge_id, params.get("type", "mixing"), params.get("name", "")
        )
        return web.json_response(bridge.to_json())

    async def get_bridge(self, request: web.Request) -> web.Response:
        return web.json_response(self.ast.bridge(request.match_info["id"]).to_json())

    async def delete_bridge(self, request: web.Request) -> web.Response:
        self.ast.destroy_bridge(self.ast.bridge(request.match_info["id"]))
        return _no_content()

    def _member_channels(self, params: dict[str, str]) -> list[Channel]:
        ids = [c for c in params.get("channel", "").split(",") if c]
        if not ids:
            raise AriError(400, "channel: Missing required parameter")
        channels = []
        for channel_id in ids:
            channel = self.ast.channels.get(channel_id)
            if channel is None or not channel.alive:
                raise AriError(400, "Channel not found")
            channels.append(channel)
        return channels

    async def add_channel(self, request: web.Request) -> web.Response:
        params = await _params(request)
        bridge = self.ast.bridge(request.match_info["id"])
        channels = self._member_channels(params)
        if any(not c.in_stasis() for c in channels):
            raise AriError(422, "Channel not in Stasis application")
        await self.ast.add_to_bridge(bridge, channels)
        return _no_content()

    async def remove_channel(self, request: web.Request) -> web.Response:
        params = await _params(request)
        bridge = self.ast.bridge(request.match_info["id"])
        channels = self._member_channels(params)
        if any(c.bridge is not bridge for c in channels):
            raise AriError(422, "Channel not in this bridge")
        for channel in channels:
            self.ast.leave_bridge(channel, by_app=True)
        return _no_content()

    async def bridge_moh_start(self, request: web.Request) -> web.Response:
        params = await _params(request)
        bridge = self.ast.bridge(request.match_info["id"])
        self.ast.start_bridge_moh(bridge, params.get("mohClass", "default"))
        return _no_content()

    async def bridge_moh_stop(self, request: web.Request) -> web.Response:
        bridge = self.ast.bridge(request.match_info["id"])
        if bridge.moh is not None:
            bridge.moh.ended = self.ast.clock.now()
            bridge.moh = None
        return _no_content()

    async def play_bridge(self, request: web.Request) -> web.Response:
        params = await _params(request)
        bridge = self.ast.bridge(request.match_info["id"])
        media = params.get("media", "")
        if not media:
            raise AriError(400, "media: Missing required parameter")
        apps = {c.stasis_app for c in bridge.channels if c.stasis_app}
        app = sorted(apps)[0] if apps else self.ast.inbound_app()
        playback = self.ast.play(bridge, media, params.get("playbackId"), app)
        return web.json_response(playback.to_json() | {"state": "queued"}, status=201)

    # --- playbacks and recordings --------------------------------------------------------

    async def get_playback(self, request: web.Request) -> web.Response:
        playback = self.ast.playbacks.get(request.match_info["id"])
        if playback is None:
            raise AriError(404, "Playback not found")
        return web.json_response(playback.to_json())

    async def stop_playback(self, request: web.Request) -> web.Response:
        self.ast.stop_playback(request.match_info["id"])
        return _no_content()

    async def list_stored(self, request: web.Request) -> web.Response:
        names = self.ast.recordings.names()
        return web.json_response([{"format": "wav", "name": n} for n in names])

    async def get_stored(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not self.ast.recordings.exists(name):
            raise AriError(404, "Recording not found")
        return web.json_response({"format": "wav", "name": name})

    async def stored_file(self, request: web.Request) -> web.Response:
        path = self.ast.recordings.path(request.match_info["name"])
        if path is None:
            raise AriError(404, "Recording not found")
        return web.Response(body=path.read_bytes(), content_type="audio/wav")

    async def delete_stored(self, request: web.Request) -> web.Response:
        if not self.ast.recordings.delete(request.match_info["name"]):
            raise AriError(404, "Recording not found")
        return _no_content()

    def _live(self, request: web.Request) -> Any:
        recording = self.ast.live_recordings.get(request.match_info["name"])
        if recording is None:
            raise AriError(404, "Recording not found")
        return recording

    async def get_live(self, request: web.Request) -> web.Response:
        return web.json_response(self._live(request).to_json())

    async def stop_live(self, request: web.Request) -> web.Response:
        recording = self._live(request)
        recording.stop = "stop"
        self.ast.complete_recording(recording)
        return _no_content()

    async def cancel_live(self, request: web.Request) -> web.Response:
        recording = self._live(request)
        recording.stop = "cancel"
        self.ast.complete_recording(recording)
        return _no_content()

    # --- applications --------------------------------------------------------------------

    def _application(self, app: str) -> JSON:
        # Every channel the app is subscribed to, in Stasis or not (a `leg;2` half).
        channels = [c.id for c in self.ast.subscribed_channels(app)]
        bridges = [b.id for b in self.ast.bridges.values() if b.subscribed]
        return {
            "bridge_ids": bridges,
            "channel_ids": channels,
            "device_names": [],
            "endpoint_ids": [],
            "events_allowed": [],
            "events_disallowed": [],
            "name": app,
        }

    async def list_applications(self, request: web.Request) -> web.Response:
        apps = sorted(self.ast.registered_apps)
        return web.json_response([self._application(a) for a in apps])

    async def get_application(self, request: web.Request) -> web.Response:
        app = request.match_info["app"]
        if not self.ast.is_registered(app):
            raise AriError(404, "Application not found")
        return web.json_response(self._application(app))

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {"version": "22.10.1-simulated"}})


def sim_routes(sim: Simulator) -> list[web.RouteDef]:
    async def live(request: web.Request) -> web.Response:
        return web.json_response(sim.live())

    async def history(request: web.Request) -> web.Response:
        return web.json_response(sim.history())

    async def leftovers(request: web.Request) -> web.Response:
        return web.json_response(sim.leftovers())

    async def media(request: web.Request) -> web.Response:
        return web.json_response(sim.media(request.match_info["id"]))

    async def scripts(request: web.Request) -> web.Response:
        return web.json_response(sim.scripts.names())

    async def sessions(request: web.Request) -> web.Response:
        return web.json_response(sim.sessions.to_json())

    async def drop(request: web.Request) -> web.Response:
        await sim.drop_websockets()
        return _no_content()

    async def restart(request: web.Request) -> web.Response:
        await sim.restart(float(request.query.get("downtime", "1.0")))
        return _no_content()

    async def slow(request: web.Request) -> web.Response:
        sim.slow_requests(float(request.query.get("ms", "0")))
        return _no_content()

    async def fail(request: web.Request) -> web.Response:
        sim.fail_requests(
            request.query.get("path", ".*"),
            int(request.query.get("count", "1")),
            int(request.query.get("status", "500")),
        )
        return _no_content()

    async def clear(request: web.Request) -> web.Response:
        sim.clear_faults()
        return _no_content()

    return [
        web.get("/_sim/live", live),
        web.get("/_sim/history", history),
        web.get("/_sim/leftovers", leftovers),
        web.get("/_sim/channels/{id}/media", media),
        web.get("/_sim/scripts", scripts),
        web.get("/_sim/sessions", sessions),
        web.post("/_sim/faults/drop-websockets", drop),
        web.post("/_sim/faults/restart", restart),
        web.post("/_sim/faults/slow", slow),
        web.post("/_sim/faults/fail", fail),
        web.delete("/_sim/faults", clear),
    ]
