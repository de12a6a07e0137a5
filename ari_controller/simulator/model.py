"""The things a simulated Asterisk holds: channels, bridges, playbacks, recordings.

Plain data with their ARI JSON shapes; the behaviour lives in `state.py` and
`localcalls.py`. `LocalPair` names what the rest of the simulator asks of the call that
drives the two halves of a Local channel; a channel does not point back to it (the state
keeps which pair a channel belongs to).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from ari_controller.simulator.events import JSON
from ari_controller.simulator.media import VoiceTimeline


class AriError(Exception):
    """An ARI error reply: status code and Asterisk's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class MediaEvent:
    """One entry of a channel's (or bridge's) media history, for inspection."""

    kind: str  # "playback", "moh", "recording"
    media: str
    started: float
    ended: float | None = None
    stopped_early: bool = False
    outcome: str = ""

    def to_json(self) -> JSON:
        return {
            "kind": self.kind,
            "media": self.media,
            "started": round(self.started, 3),
            "ended": None if self.ended is None else round(self.ended, 3),
            "stopped_early": self.stopped_early,
            "outcome": self.outcome,
        }


@dataclass
class Channel:
    id: str
    name: str
    creationtime: str
    created: float
    caller: tuple[str, str] = ("", "")
    connected: tuple[str, str] = ("", "")
    state: str = "Down"
    context: str = ""
    exten: str = ""
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    stasis_app: str | None = None
    stasis_args: list[str] = field(default_factory=list)
    # Apps that get this channel's events; an originate with app= subscribes from the start.
    apps: set[str] = field(default_factory=set)
    bridge: Bridge | None = None
    bridge_peer: str = ""
    playbacks: list[Playback] = field(default_factory=list)
    moh: MediaEvent | None = None
    recording: LiveRecording | None = None
    talk_detect: asyncio.Task[None] | None = None
    variables: dict[str, str] = field(default_factory=dict)
    voice: VoiceTimeline = field(default_factory=VoiceTimeline)
    media_log: list[MediaEvent] = field(default_factory=list)
    alive: bool = True
    answered_by_app: asyncio.Event = field(default_factory=asyncio.Event)
    # Media reached the channel (a playback or MOH): Answer() on the far half of a Local
    # channel returns at the first media frame, or after 500 ms without one.
    heard: asyncio.Event = field(default_factory=asyncio.Event)
    # Not in ARI's JSON of Asterisk 22: the call it belongs to (an originate with
    # `originator` takes the originator's, as Dial does) and the formats it was asked for
    # (`formats`, or the originator's; empty: any audio format, what a Local channel
    # originated without either gets).
    linkedid: str = ""
    formats: tuple[str, ...] = ()
    # A snoop channel: the id of the channel it spies on (it hears that channel's voice).
    snoop_of: str | None = None
    # Playback currently running on the channel: bridging waits for it, as Asterisk does.
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()
        self.linkedid = self.linkedid or self.id

    def snapshot(self) -> JSON:
        return {
            "accountcode": "",
            "caller": {"name": self.caller[0], "number": self.caller[1]},
            "connected": {"name": self.connected[0], "number": self.connected[1]},
            "creationtime": self.creationtime,
            "dialplan": {
                "app_data": self.app_data,
                "app_name": self.app_name,
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
            },
            "id": self.id,
            "language": "en",
            "name": self.name,
            "protocol_id": "",
            "state": self.state,
        }

    def in_stasis(self) -> bool:
        return self.alive and self.stasis_app is not None


class LocalPair(Protocol):
    """The two halves of a Local channel and what the app's requests do to them:
    `one` is the channel the app sees, `two` the phone's half."""

    @property
    def one(self) -> Channel: ...

    @property
    def two(self) -> Channel: ...

    def app_hangup(self) -> None:
        """`DELETE /channels/{id}` on `one`."""

    def far_half_hangup(self) -> None:
        """`DELETE /channels/{id}` on `two`."""

    def continue_in_dialplan(self, context: str) -> None:
        """`POST /channels/{id}/continue` on `one`."""

    def peer_caller_changed(self, caller: tuple[str, str]) -> None:
        """`one` was bridged to a channel with this caller id."""


@dataclass
class Bridge:
    id: str
    kind: str  # "mixing" or "holding"
    name: str
    creationtime: str
    channels: list[Channel] = field(default_factory=list)
    subscribed: bool = False
    moh: MediaEvent | None = None
    playbacks: list[Playback] = field(default_factory=list)
    media_log: list[MediaEvent] = field(default_factory=list)

    def to_json(self) -> JSON:
        return {
            "bridge_class": "stasis",
            "bridge_type": self.kind,
            "channels": [c.id for c in self.channels],
            "creationtime": self.creationtime,
            "creator": "Stasis",
            "id": self.id,
            "name": self.name,
            "technology": "holding_bridge" if self.kind == "holding" else "simple_bridge",
            "video_mode": "talker",
        }


@dataclass
class Playback:
    id: str
    media_uri: str
    target_uri: str
    app: str
    state: str = "queued"
    task: asyncio.Task[None] | None = None
    log: MediaEvent | None = None
    stop_requested: bool = False

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "language": "en",
            "media_uri": self.media_uri,
            "state": self.state,
            "target_uri": self.target_uri,
        }


@dataclass
class LiveRecording:
    name: str
    format: str
    target_uri: str
    app: str
    channel: Channel
    max_duration: float
    max_silence: float
    terminate_on: str
    append: bool
    beep: bool
    state: str = "queued"
    stop: str | None = None  # why it should end: "dtmf", "stop", "cancel", "hangup"
    task: asyncio.Task[None] | None = None
    result: dict[str, Any] = field(default_factory=dict)
    log: MediaEvent | None = None

    def to_json(self) -> JSON:
        return {
            "format": self.format,
            "name": self.name,
            "state": self.state,
            "target_uri": self.target_uri,
            **self.result,
        }


@dataclass
class CallRecord:
    """History of one originated call, kept after its channels are gone."""

    endpoint: str
    channel_id: str
    name: str
    kind: str  # "inbound", "originate", "create"
    created: float
    answered: float | None = None
    destroyed: float | None = None
    cause: int | None = None
    entered_stasis: bool = False
    fell_back: bool = False
    originator: str | None = None  # the `originator` channel of the request
    formats: tuple[str, ...] = ()  # the formats asked for (see Channel.formats)
    linkedid: str = ""

    def to_json(self) -> JSON:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "endpoint": self.endpoint,
            "channel_id": self.channel_id,
            "name": self.name,
            "kind": self.kind,
            "created": rounded(self.created),
            "answered": rounded(self.answered),
            "destroyed": rounded(self.destroyed),
            "cause": self.cause,
            "entered_stasis": self.entered_stasis,
            "fell_back": self.fell_back,
            "originator": self.originator,
            "formats": ",".join(self.formats),
            "linkedid": self.linkedid,
        }
