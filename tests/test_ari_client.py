"""The ARI REST client against a small real HTTP server on 127.0.0.1 that answers like Asterisk.

The fake (`FakeAri`) records every request as the server saw it, so the tests check what goes
on the wire: the Authorization header, ARI's parameter spelling, status codes to exceptions.
Its websocket side is used by tests/test_ari_events.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from ari_controller.ari import (
    AriClient,
    AriError,
    AriTimeout,
    AriUnreachable,
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnprocessableEntity,
)
from ari_controller.ari.client import REPEAT_BACKOFF_S, RepeatedRequest

USER = "controller"
PASSWORD = "s3cret:with colon"
GOOD_AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

# A channel as Asterisk 22.10.1 returns it (from the traces), plus a field a later
# version might add.
CHANNEL_JSON: dict[str, Any] = {
    "accountcode": "",
    "caller": {"name": "Caller", "number": "+493012345678"},
    "connected": {"name": "Caller", "number": "+493012345678"},
    "creationtime": "2026-11-23T10:11:36.826+0000",
    "dialplan": {
        "app_data": "callrouting,100",
        "app_name": "Stasis",
        "context": "from-pstn",
        "exten": "100",
        "priority": 2,
    },
    "id": "1795428696.2",
    "language": "en",
    "name": "Local/press2@caller-00000001;1",
    "protocol_id": "",
    "state": "Up",
    "field_from_the_future": {"x": 1},
}


@dataclass
class SeenRequest:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    authorization: str | None
    body: Any


Reply = tuple[int, Any]
Handler = Callable[[SeenRequest], Awaitable[Reply | None]]


@dataclass
class FakeAri:
    """Asterisk's ARI HTTP server, reduced to what the client tests need.

    REST: every request is recorded; the answer comes from `replies[(method, path)]` (status,
    JSON body or bytes), else 204. `before_reply` runs first and may send events or stall.
    Websocket at /ari/events: needs the same credentials; `send` pushes to the newest socket.
    """

    replies: dict[tuple[str, str], Reply] = field(default_factory=dict)
    before_reply: Handler | None = None
    # The next this many requests are seen, then their connection is closed with no answer
    # (Asterisk past its sessionlimit, or a keep-alive connection closing under a request).
    cut_connections: int = 0
    requests: list[SeenRequest] = field(default_factory=list)
    ws_connects: int = 0
    ws_params: list[dict[str, str]] = field(default_factory=list)
    sockets: list[tuple[web.WebSocketResponse, web.Request]] = field(default_factory=list)
    connects_changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ari"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/ari/events", self._events)
        app.router.add_route("*", "/ari/{tail:.*}", self._rest)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for ws, _ in self.sockets:
            if not ws.closed:
                await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    def reply(self, method: str, path: str, status: int, body: Any = None) -> None:
        self.replies[(method, "/ari" + path)] = (status, body)

    def seen(self, method: str, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.method == method and r.path == "/ari" + path]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        seen = SeenRequest(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path,
            query=dict(request.query),
            authorization=request.headers.get("Authorization"),
            body=json.loads(text) if text else None,
        )
        self.requests.append(seen)
        if seen.authorization != GOOD_AUTH:
            return web.json_response({"message": "Authentication required"}, status=401)
        if self.cut_connections > 0:
            self.cut_connections -= 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=204)  # never reaches the client
        if self.before_reply is not None:
            override = await self.before_reply(seen)
            if override is not None:
                return _response(*override)
        status, body = self.replies.get((seen.method, seen.path), (204, None))
        return _response(status, body)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != GOOD_AUTH:
            return web.json_response({"message": "Authentication required"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_connects += 1
        self.ws_params.append(dict(request.query))
        self.sockets.append((ws, request))
        async with self.connects_changed:
            self.connects_changed.notify_all()
        async for msg in ws:  # Asterisk ignores what clients send; so do we
            if msg.type == WSMsgType.ERROR:
                break
        return ws

    async def wait_for_connects(self, count: int) -> None:
        """Until `count` websockets have connected in all (3 s at most)."""
        async with asyncio.timeout(3.0), self.connects_changed:
            await self.connects_changed.wait_for(lambda: self.ws_connects >= count)

    async def send(self, event: dict[str, Any] | str) -> None:
        ws = self.sockets[-1][0]
        await ws.send_str(event if isinstance(event, str) else json.dumps(event))

    def drop(self) -> None:
        """Cut the newest websocket's TCP connection without a close frame."""
        transport = self.sockets[-1][1].transport
        assert transport is not None
        transport.abort()

    async def close_cleanly(self) -> None:
        await self.sockets[-1][0].close()


def _response(status: int, body: Any) -> web.StreamResponse:
    if isinstance(body, bytes):
        return web.Response(status=status, body=body, content_type="audio/wav")
    if body is None:
        return web.Response(status=status)
    return web.json_response(body, status=status)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server = FakeAri()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def client(fake: FakeAri) -> AsyncIterator[AriClient]:
    async with AriClient(fake.base_url, USER, PASSWORD, request_timeout=2.0) as ari:
        yield ari


async def test_sends_basic_auth_and_parses_the_channel(fake: FakeAri, client: AriClient) -> None:
    fake.reply("GET", "/channels/1795428696.2", 200, CHANNEL_JSON)

    channel = await client.get_channel("1795428696.2")

    assert fake.requests[0].authorization == GOOD_AUTH
    assert channel.id == "1795428696.2"
    assert channel.state == "Up"
    assert (channel.caller_number, channel.caller_name) == ("+493012345678", "Caller")
    assert (channel.dialplan_context, channel.dialplan_exten) == ("from-pstn", "100")
    assert channel.dialplan_priority == 2
    assert channel.language == "en"
    assert channel.creationtime is not None
    assert channel.creationtime.utcoffset() is not None
    assert (channel.creationtime.year, channel.creationtime.microsecond) == (2026, 826000)


async def test_wrong_password_is_unauthorized(fake: FakeAri) -> None:
    async with AriClient(fake.base_url, USER, "wrong") as ari:
        with pytest.raises(Unauthorized) as caught:
            await ari.answer("c1")
    assert caught.value.status == 401
    assert caught.value.message == "Authentication required"


async def test_originate_spells_parameters_as_ari_expects(fake: FakeAri, client: AriClient) -> None:
    fake.reply("POST", "/channels", 200, {**CHANNEL_JSON, "id": "leg-1", "state": "Down"})

    channel = await client.originate(
        "PJSIP/+4917012345@trunk",
        channel_id="leg-1",
        app="callrouting",
        app_args="responder",
        caller_id="Hotline <100>",
        timeout=20,
        variables={"CALL_ID": "call-7"},
        originator="1795428696.2",
    )

    (seen,) = fake.seen("POST", "/channels")
    assert seen.query == {
        "endpoint": "PJSIP/+4917012345@trunk",
        "channelId": "leg-1",
        "app": "callrouting",
        "appArgs": "responder",
        "callerId": "Hotline <100>",
        "timeout": "20",
        "originator": "1795428696.2",
    }
    assert seen.body == {"variables": {"CALL_ID": "call-7"}}
    assert (channel.id, channel.state) == ("leg-1", "Down")


async def test_originate_into_dialplan_and_create_and_dial(
    fake: FakeAri, client: AriClient
) -> None:
    fake.reply("POST", "/channels", 200, CHANNEL_JSON)
    fake.reply("POST", "/channels/create", 200, {**CHANNEL_JSON, "id": "leg-dial-1"})

    await client.originate(
        "Local/press2@caller",
        channel_id="c-in",
        context="from-pstn",
        extension="100",
        priority=1,
        timeout=2.5,
    )
    await client.create_channel(
        "Local/accept@responders", channel_id="leg-dial-1", app="callrouting", app_args="r"
    )
    await client.dial("leg-dial-1", caller="c-in", timeout=20)

    assert fake.seen("POST", "/channels")[0].query == {
        "endpoint": "Local/press2@caller",
        "channelId": "c-in",
        "context": "from-pstn",
        "extension": "100",
        "priority": "1",
        "timeout": "3",  # whole seconds, rounded up
    }
    assert fake.seen("POST", "/channels")[0].body is None
    assert fake.seen("POST", "/channels/create")[0].query == {
        "endpoint": "Local/accept@responders",
        "channelId": "leg-dial-1",
        "app": "callrouting",
        "appArgs": "r",
    }
    assert fake.seen("POST", "/channels/leg-dial-1/dial")[0].query == {
        "caller": "c-in",
        "timeout": "20",
    }


async def test_play_record_and_moh_parameters(fake: FakeAri, client: AriClient) -> None:
    fake.reply(
        "POST",
        "/channels/c1/play",
        201,
        {"id": "pb-1", "media_uri": "sound:a", "state": "queued", "target_uri": "channel:c1"},
    )
    fake.reply(
        "POST",
        "/channels/c1/record",
        201,
        {"format": "wav", "name": "vm-1", "state": "queued", "target_uri": "channel:c1"},
    )

    playback = await client.play("c1", ["sound:a", "sound:b"], playback_id="pb-1", lang="de")
    recording = await client.record(
        "c1",
        name="vm-1",
        max_duration_s=30,
        max_silence_s=5,
        beep=True,
        terminate_on="#",
        if_exists="overwrite",
    )
    await client.record("c1", name="vm-2")
    await client.start_moh("c1", "default")
    await client.start_moh("c1")
    await client.stop_moh("c1")

    assert fake.seen("POST", "/channels/c1/play")[0].query == {
        "media": "sound:a,sound:b",
        "playbackId": "pb-1",
        "lang": "de",
    }
    first, second = fake.seen("POST", "/channels/c1/record")
    assert first.query == {
        "name": "vm-1",
        "format": "wav",
        "maxDurationSeconds": "30",
        "maxSilenceSeconds": "5",
        "beep": "true",
        "terminateOn": "#",
        "ifExists": "overwrite",
    }
    assert second.query == {
        "name": "vm-2",
        "format": "wav",
        "beep": "false",
        "terminateOn": "none",
        "ifExists": "fail",
    }
    assert [r.query for r in fake.seen("POST", "/channels/c1/moh")] == [
        {"mohClass": "default"},
        {},
    ]
    assert len(fake.seen("DELETE", "/channels/c1/moh")) == 1
    assert (playback.id, playback.state, playback.target_uri) == ("pb-1", "queued", "channel:c1")
    assert (recording.name, recording.state) == ("vm-1", "queued")


async def test_bridge_operations(fake: FakeAri, client: AriClient) -> None:
    bridge_json = {
        "bridge_class": "stasis",
        "bridge_type": "mixing",
        "channels": [],
        "creationtime": "2026-11-23T10:34:12.651+0000",
        "creator": "Stasis",
        "id": "br-1",
        "name": "call",
        "technology": "simple_bridge",
        "video_mode": "talker",
    }
    fake.reply("POST", "/bridges", 200, bridge_json)
    fake.reply("GET", "/bridges", 200, [{**bridge_json, "channels": ["c1", "c2"]}])
    fake.reply("POST", "/bridges/br-1/play", 201, {"id": "pb-b", "state": "queued"})

    bridge = await client.create_bridge("br-1", name="call")
    await client.add_channel("br-1", ["c1", "c2"], role="participant")
    await client.remove_channel("br-1", ["c2"])
    await client.start_bridge_moh("br-1", "default")
    await client.stop_bridge_moh("br-1")
    playback = await client.play_on_bridge("br-1", "sound:beep", playback_id="pb-b")
    bridges = await client.list_bridges()

    assert fake.seen("POST", "/bridges")[0].query == {
        "bridgeId": "br-1",
        "type": "mixing",
        "name": "call",
    }
    assert fake.seen("POST", "/bridges/br-1/addChannel")[0].query == {
        "channel": "c1,c2",
        "role": "participant",
    }
    assert fake.seen("POST", "/bridges/br-1/removeChannel")[0].query == {"channel": "c2"}
    assert fake.seen("POST", "/bridges/br-1/moh")[0].query == {"mohClass": "default"}
    assert len(fake.seen("DELETE", "/bridges/br-1/moh")) == 1
    assert fake.seen("POST", "/bridges/br-1/play")[0].query == {
        "media": "sound:beep",
        "playbackId": "pb-b",
    }
    assert (bridge.id, bridge.bridge_type, bridge.name) == ("br-1", "mixing", "call")
    assert playback.id == "pb-b"
    assert [b.channels for b in bridges] == [("c1", "c2")]


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (404, NotFound),
        (409, Conflict),
        (412, PreconditionFailed),
        (422, UnprocessableEntity),
        (500, ServerError),
        (502, ServerError),
        (503, ServiceUnavailable),
        (418, AriError),
    ],
)
async def test_each_status_raises_its_error(
    fake: FakeAri, client: AriClient, status: int, error_class: type[AriError]
) -> None:
    fake.reply("POST", "/bridges/br-err/addChannel", status, {"message": "Channel not found"})

    with pytest.raises(error_class) as caught:
        await client.add_channel("br-err", ["no-such-channel"])

    assert type(caught.value) is error_class
    assert caught.value.status == status
    assert caught.value.method == "POST"
    assert caught.value.path == "/bridges/br-err/addChannel"
    assert caught.value.message == "Channel not found"


async def test_error_without_json_body_keeps_the_text(fake: FakeAri, client: AriClient) -> None:
    fake.reply("POST", "/channels/c1/answer", 503, None)
    with pytest.raises(ServiceUnavailable) as caught:
        await client.answer("c1")
    assert caught.value.message == "HTTP 503"


async def test_tear_down_of_something_already_gone_returns_false(
    fake: FakeAri, client: AriClient
) -> None:
    gone = {"message": "Channel not found"}
    fake.reply("DELETE", "/channels/gone", 404, gone)
    fake.reply("DELETE", "/bridges/gone", 404, {"message": "Bridge not found"})
    fake.reply("DELETE", "/playbacks/gone", 404, {"message": "Playback not found"})
    fake.reply("POST", "/recordings/live/gone/stop", 404, {"message": "Recording not found"})
    fake.reply("DELETE", "/recordings/stored/gone", 404, {"message": "Recording not found"})

    assert await client.hangup("gone") is False
    assert await client.destroy_bridge("gone") is False
    assert await client.stop_playback("gone") is False
    assert await client.stop_recording("gone") is False
    assert await client.delete_stored_recording("gone") is False

    assert await client.hangup("alive", reason="busy") is True
    assert await client.destroy_bridge("alive") is True
    assert await client.stop_playback("alive") is True
    assert fake.seen("DELETE", "/channels/alive")[0].query == {"reason": "busy"}
    assert fake.seen("DELETE", "/channels/gone")[0].query == {"reason": "normal"}


async def test_other_errors_on_tear_down_still_raise(fake: FakeAri, client: AriClient) -> None:
    fake.reply("DELETE", "/channels/c1", 503, {"message": "Asterisk is booting"})
    with pytest.raises(ServiceUnavailable):
        await client.hangup("c1")


async def test_a_slow_asterisk_raises_ari_timeout_quickly(fake: FakeAri) -> None:
    async def stall(seen: SeenRequest) -> Reply | None:
        await asyncio.sleep(5)
        return None

    fake.before_reply = stall
    async with AriClient(fake.base_url, USER, PASSWORD, request_timeout=0.2) as ari:
        started = time.monotonic()
        with pytest.raises(AriTimeout) as caught:
            await ari.answer("c1")
        elapsed = time.monotonic() - started

    assert 0.15 < elapsed < 1.0
    assert caught.value.status is None
    assert caught.value.path == "/channels/c1/answer"


async def test_nothing_listening_raises_ari_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AriClient(f"http://127.0.0.1:{port}/ari", USER, PASSWORD) as ari:
        with pytest.raises(AriUnreachable) as caught:
            await ari.list_channels()
    assert caught.value.status is None


async def test_client_not_started_is_a_clear_error() -> None:
    ari = AriClient("http://127.0.0.1:1/ari", USER, PASSWORD)
    with pytest.raises(RuntimeError, match="start"):
        await ari.answer("c1")


async def test_variables_channels_and_dialplan(fake: FakeAri, client: AriClient) -> None:
    fake.reply("GET", "/channels/c1/variable", 200, {"value": "de"})
    fake.reply("GET", "/channels", 200, [CHANNEL_JSON, {**CHANNEL_JSON, "id": "c2"}])

    await client.set_variable("c1", "TALK_DETECT(set)", "")
    value = await client.get_variable("c1", "CHANNEL(language)")
    channels = await client.list_channels()
    await client.continue_in_dialplan("c1", context="fallback", extension="s", priority=1)
    await client.ring("c1")
    await client.answer("c1")

    assert fake.seen("POST", "/channels/c1/variable")[0].query == {
        "variable": "TALK_DETECT(set)",
        "value": "",
    }
    assert fake.seen("GET", "/channels/c1/variable")[0].query == {"variable": "CHANNEL(language)"}
    assert value == "de"
    assert [c.id for c in channels] == ["1795428696.2", "c2"]
    assert fake.seen("POST", "/channels/c1/continue")[0].query == {
        "context": "fallback",
        "extension": "s",
        "priority": "1",
    }
    assert len(fake.seen("POST", "/channels/c1/ring")) == 1
    assert len(fake.seen("POST", "/channels/c1/answer")) == 1


async def test_recordings_and_application(fake: FakeAri, client: AriClient) -> None:
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40))
    fake.reply("GET", "/recordings/stored", 200, [{"format": "wav", "name": "vm-1"}])
    fake.reply("GET", "/recordings/stored/vm-1", 200, {"format": "wav", "name": "vm-1"})
    fake.reply("GET", "/recordings/stored/vm-1/file", 200, wav)
    fake.reply("GET", "/recordings/stored/nope/file", 404, {"message": "Recording not found"})
    fake.reply(
        "GET",
        "/applications/callrouting",
        200,
        {
            "bridge_ids": ["br-1"],
            "channel_ids": ["1795428775.43"],
            "device_names": [],
            "endpoint_ids": [],
            "events_allowed": [],
            "events_disallowed": [],
            "name": "callrouting",
        },
    )

    stored = await client.list_stored_recordings()
    one = await client.get_stored_recording("vm-1")
    audio = await client.get_stored_recording_file("vm-1")
    with pytest.raises(NotFound):
        await client.get_stored_recording_file("nope")
    app = await client.get_application("callrouting")
    assert await client.stop_recording("vm-1") is True
    assert await client.delete_stored_recording("vm-1") is True

    assert [(r.name, r.format) for r in stored] == [("vm-1", "wav")]
    assert one.name == "vm-1"
    assert audio == wav
    assert app.channel_ids == ("1795428775.43",)
    assert app.bridge_ids == ("br-1",)
    assert len(fake.seen("POST", "/recordings/live/vm-1/stop")) == 1


async def test_ids_are_escaped_in_paths(fake: FakeAri, client: AriClient) -> None:
    await client.hangup("odd/id with space")

    assert fake.requests[0].raw_path.startswith("/ari/channels/odd%2Fid%20with%20space?")


# ---- connections closed before an answer: one written rule of what is repeated ----------------


async def test_a_read_or_hang_up_is_repeated_on_a_closed_connection(fake: FakeAri) -> None:
    counted: list[RepeatedRequest] = []
    async with AriClient(
        fake.base_url, USER, PASSWORD, request_timeout=2.0, on_closed_connection=counted.append
    ) as ari:
        fake.cut_connections = 2
        assert await ari.hangup("c1") is True
        fake.cut_connections = 1
        fake.reply("GET", "/channels", 200, [CHANNEL_JSON])
        assert [c.id for c in await ari.list_channels()] == ["1795428696.2"]
        fake.cut_connections = 2
        await ari.start_moh("c1", "default")

    assert len(fake.seen("DELETE", "/channels/c1")) == 3
    assert len(fake.seen("GET", "/channels")) == 2
    assert len(fake.seen("POST", "/channels/c1/moh")) == 3
    # (aiohttp itself repeats a GET or DELETE once on a reused connection; a POST it never does)
    assert counted.count(RepeatedRequest.REPEATED) >= 2
    assert RepeatedRequest.GAVE_UP not in counted


async def test_what_names_its_own_id_counts_409_on_a_repeat_as_done(fake: FakeAri) -> None:
    """The first originate went through before its connection closed: the repeat finds the
    channel id taken (409), which means the leg exists, not that the call failed."""

    async def first_went_through(seen: SeenRequest) -> Reply | None:
        return (409, {"message": "Channel with given unique ID already exists"})

    async with AriClient(fake.base_url, USER, PASSWORD, request_timeout=2.0) as ari:
        fake.cut_connections = 1
        fake.before_reply = first_went_through
        channel = await ari.originate("Local/accept@responders", channel_id="leg-1", app="app")
        assert channel.id == "leg-1"
        assert len(fake.seen("POST", "/channels")) == 2
        # The same 409 without a repeat is a reused id: an error.
        with pytest.raises(Conflict):
            await ari.originate("Local/accept@responders", channel_id="leg-1", app="app")
        # So is a record whose repeat could overwrite (ifExists=overwrite): never repeated.
        fake.before_reply = None
        fake.cut_connections = 1
        with pytest.raises(AriUnreachable):
            await ari.record("c1", name="vm-1", if_exists="overwrite")
    assert len(fake.seen("POST", "/channels/c1/record")) == 1


async def test_a_dial_is_never_repeated(fake: FakeAri) -> None:
    counted: list[RepeatedRequest] = []
    async with AriClient(
        fake.base_url, USER, PASSWORD, request_timeout=2.0, on_closed_connection=counted.append
    ) as ari:
        fake.cut_connections = 1
        with pytest.raises(AriUnreachable):
            await ari.dial("leg-1", timeout=20)
    assert len(fake.seen("POST", "/channels/leg-1/dial")) == 1
    assert counted == [RepeatedRequest.GAVE_UP]


async def test_repeats_end_with_an_error_when_connections_keep_closing(fake: FakeAri) -> None:
    counted: list[RepeatedRequest] = []
    async with AriClient(
        fake.base_url, USER, PASSWORD, request_timeout=2.0, on_closed_connection=counted.append
    ) as ari:
        fake.cut_connections = 100
        started = time.monotonic()
        with pytest.raises(AriUnreachable):
            await ari.answer("c1")
        elapsed = time.monotonic() - started
    tries = 1 + len(REPEAT_BACKOFF_S)
    assert len(fake.seen("POST", "/channels/c1/answer")) == tries
    assert counted == [RepeatedRequest.REPEATED] * (tries - 1) + [RepeatedRequest.GAVE_UP]
    assert sum(REPEAT_BACKOFF_S) <= elapsed < 2.0


async def test_a_play_is_repeated_only_when_asterisk_has_no_such_playback(fake: FakeAri) -> None:
    """Asterisk plays a reused playback id a second time instead of refusing it, so before
    repeating a play the client asks for the playback: a caller must not hear a prompt twice."""
    playback = {"id": "pb-1", "media_uri": "sound:hello", "state": "playing"}
    async with AriClient(fake.base_url, USER, PASSWORD, request_timeout=2.0) as ari:
        # Lost before Asterisk saw it: no such playback, so it is sent again.
        fake.cut_connections = 1
        fake.reply("GET", "/playbacks/pb-1", 404, {"message": "Playback not found"})
        fake.reply("POST", "/channels/c1/play", 201, playback)
        assert (await ari.play("c1", "sound:hello", playback_id="pb-1")).state == "playing"
        assert len(fake.seen("POST", "/channels/c1/play")) == 2
        # Went through, then the connection closed: the playback exists and is not repeated.
        fake.cut_connections = 1
        fake.reply("GET", "/playbacks/pb-2", 200, dict(playback, id="pb-2"))
        assert (await ari.play("c2", "sound:hello", playback_id="pb-2")).id == "pb-2"
        assert len(fake.seen("POST", "/channels/c2/play")) == 1
        assert len(fake.seen("GET", "/playbacks/pb-2")) == 1


async def test_a_sent_originate_is_seen_through_before_its_cancellation(fake: FakeAri) -> None:
    """The caller hangs up while a leg's originate is on its way: the leg will exist, so the
    cancellation waits for Asterisk's answer (the hang-up that follows then finds the leg);
    an originate still waiting for a free connection is simply not sent."""
    answered = asyncio.Event()

    async def slow(seen: SeenRequest) -> Reply | None:
        await asyncio.sleep(0.3)
        answered.set()
        return (200, dict(CHANNEL_JSON, id=seen.query["channelId"]))

    fake.before_reply = slow
    # Two connections: one originate in flight at a time.
    async with AriClient(fake.base_url, USER, PASSWORD, max_connections=2) as ari:
        first = asyncio.ensure_future(ari.originate("Local/a@x", channel_id="leg-1", app="a"))
        second = asyncio.ensure_future(ari.originate("Local/b@x", channel_id="leg-2", app="a"))
        await asyncio.sleep(0.1)
        first.cancel()
        second.cancel()
        started = time.monotonic()
        for task in (first, second):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert answered.is_set(), "the cancellation came before Asterisk answered"
        assert time.monotonic() - started >= 0.15
    assert [r.query["channelId"] for r in fake.seen("POST", "/channels")] == ["leg-1"]
