"""ARI resources and events as typed, immutable values.

Built from Asterisk's JSON with `from_json`, which reads the fields it knows and ignores the
rest: Asterisk adds fields between versions (22.x added `protocol_id`, `tenantid`), and a
controller must not break on them. Missing fields get empty defaults rather than errors, since a
REST body or event that lacks one is still worth acting on.

`AriEvent` keeps the raw dict and reads fields only when asked: with hundreds of calls the
reader parses every event, and most events are routed by one or two lookups and never decoded
further.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JsonObject = dict[str, Any]


def _str(data: JsonObject, key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _int(data: JsonObject, key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _obj(data: JsonObject, key: str) -> JsonObject:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _strings(data: JsonObject, key: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def parse_ari_time(value: object) -> datetime | None:
    """Asterisk's timestamps ("2026-11-23T10:11:36.826+0000") as aware datetimes."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def resource_id(uri: str) -> tuple[str, str] | None:
    """Split a target URI ("channel:ID", "bridge:ID") into its kind and id."""
    kind, sep, ident = uri.partition(":")
    if not sep or not ident:
        return None
    return kind, ident


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    connected_number: str = ""
    connected_name: str = ""
    dialplan_context: str = ""
    dialplan_exten: str = ""
    dialplan_priority: int | None = None
    dialplan_app_name: str = ""
    dialplan_app_data: str = ""
    language: str = ""
    creationtime: datetime | None = None
    accountcode: str = ""
    channelvars: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, data: JsonObject) -> Channel:
        caller = _obj(data, "caller")
        connected = _obj(data, "connected")
        dialplan = _obj(data, "dialplan")
        channelvars = _obj(data, "channelvars")
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name"),
            state=_str(data, "state"),
            caller_number=_str(caller, "number"),
            caller_name=_str(caller, "name"),
            connected_number=_str(connected, "number"),
            connected_name=_str(connected, "name"),
            dialplan_context=_str(dialplan, "context"),
            dialplan_exten=_str(dialplan, "exten"),
            dialplan_priority=_int(dialplan, "priority"),
            dialplan_app_name=_str(dialplan, "app_name"),
            dialplan_app_data=_str(dialplan, "app_data"),
            language=_str(data, "language"),
            creationtime=parse_ari_time(data.get("creationtime")),
            accountcode=_str(data, "accountcode"),
            channelvars={str(k): str(v) for k, v in channelvars.items()},
        )


@dataclass(frozen=True, slots=True)
class Bridge:
    id: str
    bridge_type: str = ""
    bridge_class: str = ""
    technology: str = ""
    creator: str = ""
    name: str = ""
    channels: tuple[str, ...] = ()
    creationtime: datetime | None = None

    @classmethod
    def from_json(cls, data: JsonObject) -> Bridge:
        return cls(
            id=_str(data, "id"),
            bridge_type=_str(data, "bridge_type"),
            bridge_class=_str(data, "bridge_class"),
            technology=_str(data, "technology"),
            creator=_str(data, "creator"),
            name=_str(data, "name"),
            channels=_strings(data, "channels"),
            creationtime=parse_ari_time(data.get("creationtime")),
        )


@dataclass(frozen=True, slots=True)
class Playback:
    id: str
    media_uri: str = ""
    next_media_uri: str = ""
    target_uri: str = ""
    language: str = ""
    state: str = ""  # queued, playing, done, failed (the channel hung up), ...

    @classmethod
    def from_json(cls, data: JsonObject) -> Playback:
        return cls(
            id=_str(data, "id"),
            media_uri=_str(data, "media_uri"),
            next_media_uri=_str(data, "next_media_uri"),
            target_uri=_str(data, "target_uri"),
            language=_str(data, "language"),
            state=_str(data, "state"),
        )


@dataclass(frozen=True, slots=True)
class LiveRecording:
    name: str
    format: str = ""
    target_uri: str = ""
    state: str = ""  # queued, recording, paused, done, failed, canceled
    duration: int | None = None
    talking_duration: int | None = None
    silence_duration: int | None = None
    cause: str = ""  # why it failed ("Cannot record channel while in bridge")

    @property
    def going_on(self) -> bool:
        return self.state in ("queued", "recording", "paused")

    @classmethod
    def from_json(cls, data: JsonObject) -> LiveRecording:
        return cls(
            name=_str(data, "name"),
            format=_str(data, "format"),
            target_uri=_str(data, "target_uri"),
            state=_str(data, "state"),
            duration=_int(data, "duration"),
            talking_duration=_int(data, "talking_duration"),
            silence_duration=_int(data, "silence_duration"),
            cause=_str(data, "cause"),
        )


@dataclass(frozen=True, slots=True)
class StoredRecording:
    name: str
    format: str = ""

    @classmethod
    def from_json(cls, data: JsonObject) -> StoredRecording:
        return cls(name=_str(data, "name"), format=_str(data, "format"))


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    channel_ids: tuple[str, ...] = ()
    bridge_ids: tuple[str, ...] = ()
    endpoint_ids: tuple[str, ...] = ()
    device_names: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: JsonObject) -> Application:
        return cls(
            name=_str(data, "name"),
            channel_ids=_strings(data, "channel_ids"),
            bridge_ids=_strings(data, "bridge_ids"),
            endpoint_ids=_strings(data, "endpoint_ids"),
            device_names=_strings(data, "device_names"),
        )


@dataclass(frozen=True, slots=True)
class AriEvent:
    """One websocket message. Accessors read `raw` on demand and return "" / None when absent."""

    type: str
    raw: JsonObject

    @classmethod
    def from_json(cls, data: object) -> AriEvent:
        """An event from decoded JSON; ValueError when it is not an object with a string type."""
        if not isinstance(data, dict):
            raise ValueError(f"event is not a JSON object: {type(data).__name__}")
        event_type = data.get("type")
        if not isinstance(event_type, str) or not event_type:
            raise ValueError("event has no type")
        return cls(event_type, data)

    def _nested_str(self, outer: str, key: str) -> str:
        inner = self.raw.get(outer)
        if isinstance(inner, dict):
            value = inner.get(key)
            if isinstance(value, str):
                return value
        return ""

    @property
    def channel_id(self) -> str:
        """The channel the event is about: `channel.id`, or the dialled leg (`peer.id`) for Dial."""
        if self.type == "Dial":
            return self._nested_str("peer", "id")
        return self._nested_str("channel", "id")

    @property
    def channel_state(self) -> str:
        if self.type == "Dial":
            return self._nested_str("peer", "state")
        return self._nested_str("channel", "state")

    @property
    def channel(self) -> Channel | None:
        data = self.raw.get("peer" if self.type == "Dial" else "channel")
        return Channel.from_json(data) if isinstance(data, dict) else None

    @property
    def dial_caller_id(self) -> str:
        """For Dial: the channel that placed the dial (`caller.id`), when there is one."""
        return self._nested_str("caller", "id")

    @property
    def digit(self) -> str:
        return _str(self.raw, "digit")

    @property
    def cause(self) -> int | None:
        """Hangup cause (ChannelDestroyed, HangupRequest): 16 normal, 17 busy, 19 no answer."""
        return _int(self.raw, "cause")

    @property
    def cause_txt(self) -> str:
        return _str(self.raw, "cause_txt")

    @property
    def dialstatus(self) -> str:
        return _str(self.raw, "dialstatus")

    @property
    def playback_id(self) -> str:
        return self._nested_str("playback", "id")

    @property
    def playback_state(self) -> str:
        return self._nested_str("playback", "state")

    @property
    def playback(self) -> Playback | None:
        data = self.raw.get("playback")
        return Playback.from_json(data) if isinstance(data, dict) else None

    @property
    def recording_name(self) -> str:
        return self._nested_str("recording", "name")

    @property
    def recording_state(self) -> str:
        return self._nested_str("recording", "state")

    @property
    def recording(self) -> LiveRecording | None:
        data = self.raw.get("recording")
        return LiveRecording.from_json(data) if isinstance(data, dict) else None

    @property
    def target_uri(self) -> str:
        """Where a playback or recording happens ("channel:ID" or "bridge:ID")."""
        return self._nested_str("playback", "target_uri") or self._nested_str(
            "recording", "target_uri"
        )

    @property
    def bridge_id(self) -> str:
        return self._nested_str("bridge", "id")

    @property
    def bridge(self) -> Bridge | None:
        data = self.raw.get("bridge")
        return Bridge.from_json(data) if isinstance(data, dict) else None

    @property
    def args(self) -> tuple[str, ...]:
        """StasisStart arguments (the DID for inbound calls, our appArgs for originated legs)."""
        return _strings(self.raw, "args")

    @property
    def application(self) -> str:
        return _str(self.raw, "application")

    @property
    def timestamp(self) -> datetime | None:
        return parse_ari_time(self.raw.get("timestamp"))
