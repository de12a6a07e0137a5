"""The ARI REST API as typed async methods, on one pooled aiohttp session.

Every request is bounded by `request_timeout` (connecting, sending and reading the body): a
controller that waits forever on Asterisk leaves a caller in silence. Errors come back as the
classes of `errors.py`; the few operations whose 404 means "already done" (hangup, destroying a
bridge, stopping a playback or recording, deleting a stored recording) return False instead.

A request whose connection closes before any answer (Asterisk's HTTP server closes
connections beyond its `sessionlimit` at once, and a keep-alive connection may close under a
request) is repeated only where its `Repeat` rule says that a second one cannot act twice; the
rule is written once per method, below, not decided by the caller.

Parameters go out as ARI spells them (`channelId`, `appArgs`, ...), as query parameters, which
is what Asterisk reads; only channel variables travel in a JSON body. Lists are joined with
commas: Asterisk splits multi-valued parameters on commas and keeps only the last of repeated
ones.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from ari_controller.ari.errors import (
    AriError,
    AriTimeout,
    AriUnreachable,
    NotDriving,
    NotFound,
    error_for_status,
)
from ari_controller.ari.models import (
    Application,
    Bridge,
    Channel,
    LiveRecording,
    Playback,
    StoredRecording,
)

ParamValue = str | int | float | bool | None
_Answer = tuple[int, bytes, str]  # status, body, content type

# Asterisk's HTTP server closes idle keep-alive connections after 15 s (http.conf
# session_keep_alive); dropping ours earlier avoids reusing one it is closing at that moment.
_KEEPALIVE_S: Final = 10.0


# A closed connection is repeated after these pauses (then given up), all within the request's
# own timeout: a refused connection clears within milliseconds once another client lets go.
REPEAT_BACKOFF_S: Final = (0.02, 0.05, 0.1, 0.2, 0.4)


class Repeat(enum.Enum):
    """What may be done with a request whose connection closed before Asterisk answered.

    The request may or may not have reached Asterisk; only a repeat that cannot act twice is
    sent again."""

    NEVER = "never"  # a second one could do it twice (a dial)
    SAFE = "safe"  # reads, and requests whose repeat changes nothing (hang-up: 404 once gone)
    # Names what it creates with our id: 409 on a repeat means the first went through (where
    # Asterisk does not refuse a reused id, a probe GET looks before the repeat).
    BY_OUR_ID = "by_our_id"


class RepeatedRequest(enum.Enum):
    """What became of a closed connection, for /metrics."""

    REPEATED = "repeated"  # sent again
    GAVE_UP = "gave_up"  # still closed after every repeat, or not repeatable


def basic_auth_header(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def query_params(params: Mapping[str, ParamValue]) -> dict[str, str]:
    """ARI query parameters: None left out, booleans as "true"/"false", numbers as text."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def whole_seconds(seconds: float | None) -> int | None:
    """ARI takes timeouts in whole seconds; round up so a timeout is never shortened."""
    if seconds is None:
        return None
    return max(0, math.ceil(seconds))


def media_list(media: str | list[str]) -> str:
    return media if isinstance(media, str) else ",".join(media)


def _seg(value: str) -> str:
    """One path segment, escaped so ids with '/' or spaces cannot change the path."""
    return quote(value, safe="")


class AriClient:
    """ARI's REST side. Use `async with AriClient(...)` or call `start()` / `close()`."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        request_timeout: float = 5.0,
        max_connections: int = 32,
        on_closed_connection: Callable[[RepeatedRequest], None] | None = None,
    ) -> None:
        # max_connections stays below Asterisk's http.conf sessionlimit (100 by default), which
        # is shared with the events websocket and every other ARI client of that Asterisk.
        self._base_url = base_url.rstrip("/")
        self._auth = basic_auth_header(username, password)
        self.request_timeout = request_timeout
        self._max_connections = max_connections
        self._on_closed_connection = on_closed_connection
        # Originates in flight take at most half the connections: the burst of legs at the
        # start of a simultaneous hunt must leave room for what connects or frees a caller
        # (hang-ups, bridging), which would otherwise queue behind it.
        self._originating = asyncio.Semaphore(max(1, max_connections // 2))
        self._session: aiohttp.ClientSession | None = None
        # With several controllers for one app: asked before every request whether this one
        # still drives the app (its lease holds); a request it may not send is not sent.
        self.may_send: Callable[[], Awaitable[bool]] | None = None

    async def start(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=_KEEPALIVE_S
        )
        # Per request, the asyncio.timeout in _request bounds everything (connecting included):
        # a second, session-wide total timer would cost a timer handle per request for nothing.
        # ARI sets no cookies, so the cookie jar's work on every request and answer is skipped.
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Authorization": self._auth},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.request_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AriClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, ParamValue] | None = None,
        *,
        body: Mapping[str, Any] | None = None,
        raw: bool = False,
        repeat: Repeat = Repeat.NEVER,
        probe: str | None = None,
    ) -> Any:
        """Send one request; the decoded JSON answer (or bytes with `raw`), None when empty.

        Everything, repeats included, within `request_timeout`. A BY_OUR_ID request whose
        repeat answers 409 went through the first time: it returns None. `probe` (a path) is
        for what Asterisk does not refuse to create twice (a playback id): before a repeat,
        a GET of it tells whether the first one went through, and its answer is returned."""
        if self._session is None:
            raise RuntimeError("AriClient.start() was not called")
        if self.may_send is not None and not await self.may_send():
            raise NotDriving(None, method, path, "this controller no longer drives the app")
        url = URL(self._base_url + path, encoded=True)
        query = query_params(params or {})
        try:
            # asyncio.timeout also covers reading the body, which ClientTimeout alone would not
            # bound if a caller held the response open.
            async with asyncio.timeout(self.request_timeout):
                answer = await self._send_repeating(method, path, url, query, body, repeat, probe)
        except TimeoutError as exc:
            raise AriTimeout(method, path, f"no answer within {self.request_timeout} s") from exc
        status, payload, content_type = answer
        if status >= 400:
            raise error_for_status(status, method, path, _error_message(payload, status))
        if raw:
            return payload
        if not payload:
            return None
        if content_type not in ("application/json", "text/json") and not payload.startswith(
            (b"{", b"[")
        ):
            return payload.decode("utf-8", "replace")
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise AriError(status, method, path, f"invalid JSON in answer: {exc}") from exc

    async def _send_repeating(
        self,
        method: str,
        path: str,
        url: URL,
        query: Mapping[str, str],
        body: Mapping[str, Any] | None,
        repeat: Repeat,
        probe: str | None,
    ) -> _Answer:
        """The answer to the request, sent again on a closed connection where `repeat` allows."""
        pauses = iter(REPEAT_BACKOFF_S if repeat is not Repeat.NEVER else ())
        repeated = False
        resend = True
        while True:
            try:
                if resend:
                    answer = await self._send(method, url, query, body)
                    if answer[0] == 409 and repeated and repeat is Repeat.BY_OUR_ID:
                        return (204, b"", "")  # the first one went through before its close
                    return answer
                if probe is not None:
                    found = await self._send("GET", URL(self._base_url + probe, encoded=True))
                    if found[0] == 200:
                        return found  # the first one went through: this is what it made
                    resend = found[0] == 404
                    if resend:
                        continue
            except aiohttp.ClientConnectorError as exc:
                # Nothing was sent: whatever the rule, trying again cannot act twice, but an
                # Asterisk that is down stays down: give up at once.
                raise AriUnreachable(method, path, str(exc)) from exc
            except (aiohttp.ClientError, OSError) as exc:
                pause = next(pauses, None)
                if pause is None:
                    self._count(RepeatedRequest.GAVE_UP)
                    raise AriUnreachable(method, path, str(exc) or type(exc).__name__) from exc
                self._count(RepeatedRequest.REPEATED)
                repeated = True
                # With a probe, look first; without one, the rule says a resend is harmless.
                resend = probe is None
                await asyncio.sleep(pause)
                continue
            # The probe answered neither "there" nor "absent": nothing safe left to do.
            self._count(RepeatedRequest.GAVE_UP)
            raise AriUnreachable(method, path, "connection closed; whether it was done is unknown")

    async def _send(
        self,
        method: str,
        url: URL,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> _Answer:
        assert self._session is not None
        async with self._session.request(method, url, params=query, json=body) as response:
            return response.status, await response.read(), response.content_type

    def _count(self, what: RepeatedRequest) -> None:
        if self._on_closed_connection is not None:
            self._on_closed_connection(what)

    async def _get(
        self, path: str, params: Mapping[str, ParamValue] | None = None, *, raw: bool = False
    ) -> Any:
        """A read: repeating it changes nothing."""
        return await self._request("GET", path, params, raw=raw, repeat=Repeat.SAFE)

    async def _request_done_if_gone(
        self, method: str, path: str, params: Mapping[str, ParamValue] | None = None
    ) -> bool:
        """For tear-down: True when done now, False when it was already gone (404). A repeat
        changes nothing: the second one finds it gone."""
        try:
            await self._request(method, path, params, repeat=Repeat.SAFE)
        except NotFound:
            return False
        return True

    # channels

    async def originate(
        self,
        endpoint: str,
        *,
        channel_id: str,
        app: str | None = None,
        app_args: str | None = None,
        caller_id: str | None = None,
        timeout: float | None = None,  # ARI's ringing timeout, in whole seconds
        variables: dict[str, str] | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        originator: str | None = None,
        formats: str | None = None,
        other_channel_id: str | None = None,
    ) -> Channel:
        """Dial `endpoint`. With `app`, the leg enters Stasis only once answered.

        `originator` (the caller's channel) gives the leg the caller's formats and linkedid, as
        Dial does; without one, `formats` (e.g. "ulaw") spares Asterisk an expensive choice."""
        params: dict[str, ParamValue] = {
            "endpoint": endpoint,
            "channelId": channel_id,
            "app": app,
            "appArgs": app_args,
            "callerId": caller_id,
            "timeout": whole_seconds(timeout),
            "context": context,
            "extension": extension,
            "priority": priority,
            "originator": originator,
            "formats": formats,
            "otherChannelId": other_channel_id,
        }
        body = {"variables": variables} if variables else None
        data = await self._originate("/channels", params, body)
        return Channel.from_json(data) if data else Channel(id=channel_id)

    async def create_channel(
        self,
        endpoint: str,
        *,
        channel_id: str,
        app: str,
        app_args: str | None = None,
        originator: str | None = None,
        formats: str | None = None,
        variables: dict[str, str] | None = None,
        other_channel_id: str | None = None,
    ) -> Channel:
        """Create a leg without dialling it: it is in Stasis at once; `dial` rings it."""
        params: dict[str, ParamValue] = {
            "endpoint": endpoint,
            "channelId": channel_id,
            "app": app,
            "appArgs": app_args,
            "originator": originator,
            "formats": formats,
            "otherChannelId": other_channel_id,
        }
        body = {"variables": variables} if variables else None
        data = await self._originate("/channels/create", params, body)
        return Channel.from_json(data) if data else Channel(id=channel_id)

    async def _originate(
        self, path: str, params: Mapping[str, ParamValue], body: Mapping[str, Any] | None
    ) -> Any:
        """Place a channel; a cancelled wait for a free slot places nothing.

        Once sent, the request is seen through even when the caller is cancelled meanwhile
        (the caller hung up): Asterisk creates the channel anyway, and a hang-up sent before
        it exists would find nothing (404) and leave a phone ringing for nobody. So the
        cancellation is held until Asterisk has answered, and then raised."""
        async with self._originating:
            sent = asyncio.ensure_future(
                self._request("POST", path, params, body=body, repeat=Repeat.BY_OUR_ID)
            )
            try:
                return await asyncio.shield(sent)
            except asyncio.CancelledError:
                await asyncio.wait({sent})  # bounded by the request timeout
                raise

    async def dial(
        self,
        channel_id: str,
        *,
        caller: str | None = None,
        timeout: float | None = None,  # ARI's ringing timeout, in whole seconds
    ) -> None:
        """Ring a created leg. Without `timeout` Asterisk rings forever: always pass one."""
        params = {"caller": caller, "timeout": whole_seconds(timeout)}
        # Never repeated: whether a second dial of a ringing leg is refused is not ours to bet on.
        await self._request("POST", f"/channels/{_seg(channel_id)}/dial", params)

    async def answer(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/answer", repeat=Repeat.SAFE)

    async def ring(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/ring", repeat=Repeat.SAFE)

    async def ring_stop(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{_seg(channel_id)}/ring", repeat=Repeat.SAFE)

    async def hangup(self, channel_id: str, reason: str = "normal") -> bool:
        """Hang up; False when the channel was already gone."""
        return await self._request_done_if_gone(
            "DELETE", f"/channels/{_seg(channel_id)}", {"reason": reason}
        )

    async def play(
        self,
        channel_id: str,
        media: str | list[str],
        *,
        playback_id: str,
        lang: str | None = None,
    ) -> Playback:
        """Start a playback. DTMF does not stop it, and it ends channel MOH for good."""
        params = {"media": media_list(media), "playbackId": playback_id, "lang": lang}
        return await self._play(f"/channels/{_seg(channel_id)}/play", params, playback_id)

    async def _play(
        self, path: str, params: Mapping[str, ParamValue], playback_id: str
    ) -> Playback:
        # Asterisk plays a reused playback id again (201, no 409): look before repeating.
        data = await self._request(
            "POST",
            path,
            params,
            repeat=Repeat.BY_OUR_ID,
            probe=f"/playbacks/{_seg(playback_id)}",
        )
        return Playback.from_json(data) if data else Playback(id=playback_id)

    async def record(
        self,
        channel_id: str,
        *,
        name: str,
        format: str = "wav",
        max_duration_s: int | None = None,
        max_silence_s: int | None = None,
        beep: bool = False,
        terminate_on: str = "none",
        if_exists: str = "fail",
    ) -> LiveRecording:
        """Record the channel; fails (RecordingFailed) if the channel is in a bridge."""
        params: dict[str, ParamValue] = {
            "name": name,
            "format": format,
            "maxDurationSeconds": max_duration_s,
            "maxSilenceSeconds": max_silence_s,
            "beep": beep,
            "terminateOn": terminate_on,
            "ifExists": if_exists,
        }
        # With ifExists=fail a repeat of a recording that started answers 409; with another
        # policy a repeat could overwrite it: only the first case is repeated.
        data = await self._request(
            "POST",
            f"/channels/{_seg(channel_id)}/record",
            params,
            repeat=Repeat.BY_OUR_ID if if_exists == "fail" else Repeat.NEVER,
        )
        return LiveRecording.from_json(data) if data else LiveRecording(name=name)

    async def snoop(
        self,
        channel_id: str,
        *,
        snoop_id: str,
        app: str,
        spy: str = "in",
        app_args: str | None = None,
    ) -> Channel:
        """A snoop channel on `channel_id` (spy `in`: what its far end says), in `app`.

        It enters the app (StasisStart, `args` as given) and goes when the channel does; a
        recording on it runs while a playback runs on the channel, which a recording on the
        channel itself cannot (tests/ari_traces/snoop_*)."""
        params: dict[str, ParamValue] = {
            "spy": spy,
            "app": app,
            "appArgs": app_args,
            "snoopId": snoop_id,
        }
        # A reused snoop id answers 500, not 409: look for it before repeating.
        data = await self._request(
            "POST",
            f"/channels/{_seg(channel_id)}/snoop",
            params,
            repeat=Repeat.BY_OUR_ID,
            probe=f"/channels/{_seg(snoop_id)}",
        )
        return Channel.from_json(data) if data else Channel(id=snoop_id)

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._request(
            "POST", f"/channels/{_seg(channel_id)}/moh", {"mohClass": moh_class}, repeat=Repeat.SAFE
        )

    async def stop_moh(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{_seg(channel_id)}/moh", repeat=Repeat.SAFE)

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        params = {"variable": variable, "value": value}
        await self._request(
            "POST", f"/channels/{_seg(channel_id)}/variable", params, repeat=Repeat.SAFE
        )

    async def get_variable(self, channel_id: str, variable: str) -> str:
        """A channel variable's value; NotFound when the variable is not set."""
        data = await self._get(f"/channels/{_seg(channel_id)}/variable", {"variable": variable})
        value = data.get("value") if isinstance(data, dict) else None
        return value if isinstance(value, str) else ""

    async def get_channel(self, channel_id: str) -> Channel:
        return Channel.from_json(await self._get(f"/channels/{_seg(channel_id)}"))

    async def list_channels(self) -> list[Channel]:
        return [Channel.from_json(item) for item in _objects(await self._get("/channels"))]

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        """Hand the call back to the dialplan; the app gets StasisEnd and loses the channel.

        A repeat of one that went through finds the channel out of Stasis (409): done."""
        params = {"context": context, "extension": extension, "priority": priority}
        await self._request(
            "POST", f"/channels/{_seg(channel_id)}/continue", params, repeat=Repeat.BY_OUR_ID
        )

    # bridges

    async def create_bridge(
        self, bridge_id: str, *, type: str = "mixing", name: str | None = None
    ) -> Bridge:
        params = {"bridgeId": bridge_id, "type": type, "name": name}
        data = await self._request("POST", "/bridges", params, repeat=Repeat.BY_OUR_ID)
        return Bridge.from_json(data) if data else Bridge(id=bridge_id, bridge_type=type)

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return Bridge.from_json(await self._get(f"/bridges/{_seg(bridge_id)}"))

    async def add_channel(
        self, bridge_id: str, channels: list[str], *, role: str | None = None
    ) -> None:
        """400 for a channel Asterisk does not know, 422 for one not in this app."""
        params = {"channel": ",".join(channels), "role": role}
        # Adding a channel already in the bridge again changes nothing.
        await self._request(
            "POST", f"/bridges/{_seg(bridge_id)}/addChannel", params, repeat=Repeat.SAFE
        )

    async def remove_channel(self, bridge_id: str, channels: list[str]) -> None:
        params = {"channel": ",".join(channels)}
        await self._request("POST", f"/bridges/{_seg(bridge_id)}/removeChannel", params)

    async def destroy_bridge(self, bridge_id: str) -> bool:
        """Destroy the bridge; False when it was already gone."""
        return await self._request_done_if_gone("DELETE", f"/bridges/{_seg(bridge_id)}")

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        await self._request(
            "POST", f"/bridges/{_seg(bridge_id)}/moh", {"mohClass": moh_class}, repeat=Repeat.SAFE
        )

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        await self._request("DELETE", f"/bridges/{_seg(bridge_id)}/moh", repeat=Repeat.SAFE)

    async def play_on_bridge(
        self, bridge_id: str, media: str | list[str], *, playback_id: str
    ) -> Playback:
        params = {"media": media_list(media), "playbackId": playback_id}
        return await self._play(f"/bridges/{_seg(bridge_id)}/play", params, playback_id)

    async def list_bridges(self) -> list[Bridge]:
        return [Bridge.from_json(item) for item in _objects(await self._get("/bridges"))]

    # playbacks, recordings, applications

    async def stop_playback(self, playback_id: str) -> bool:
        """Stop a playback; False when it had already finished."""
        return await self._request_done_if_gone("DELETE", f"/playbacks/{_seg(playback_id)}")

    async def stop_recording(self, name: str) -> bool:
        """Stop a live recording and keep it; False when it had already ended."""
        return await self._request_done_if_gone("POST", f"/recordings/live/{_seg(name)}/stop")

    async def get_live_recording(self, name: str) -> LiveRecording:
        """A recording in progress (404 once it has ended: it is then a stored one)."""
        return LiveRecording.from_json(await self._get(f"/recordings/live/{_seg(name)}"))

    async def get_stored_recording(self, name: str) -> StoredRecording:
        data = await self._get(f"/recordings/stored/{_seg(name)}")
        return StoredRecording.from_json(data)

    async def get_stored_recording_file(self, name: str) -> bytes:
        """The recording's audio as Asterisk stores it (a WAV file for format "wav")."""
        data = await self._get(f"/recordings/stored/{_seg(name)}/file", raw=True)
        return bytes(data)

    async def delete_stored_recording(self, name: str) -> bool:
        return await self._request_done_if_gone("DELETE", f"/recordings/stored/{_seg(name)}")

    async def list_stored_recordings(self) -> list[StoredRecording]:
        data = await self._get("/recordings/stored")
        return [StoredRecording.from_json(item) for item in _objects(data)]

    async def get_application(self, app: str) -> Application:
        """The app's subscriptions: after a reconnect, the channels still in Stasis."""
        return Application.from_json(await self._get(f"/applications/{_seg(app)}"))


def _objects(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, dict)]


def _error_message(payload: bytes, status: int) -> str:
    """Asterisk's {"message": ...} when present, else the body text, else the status."""
    text = payload.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return str(data["message"])
    return text[:200] or f"HTTP {status}"
