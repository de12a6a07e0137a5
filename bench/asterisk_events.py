"""What Asterisk itself says happened to each call, for bench/real_asterisk.py.

A second ARI application (`observer`) subscribes to everything (`subscribeAll=true`), narrowed
by an event filter to the few event types the figures need, and files each event under the
call it belongs to: the caller's own channel (the `;1` half of `Local/<script>@caller`, which
enters Stasis or FollowMe) and its phone (the `;2` half), and every responder leg (the `;1`
half of `Local/<script>@responders`). A leg is tied to its call by the Dial event that names
the caller (app_followme's legs), or by the caller's number it carries (the controller's
legs, which it originates with the caller's caller ID; each bench call has its own number).

Every figure is taken from the events' own `timestamp` (Asterisk's clock, 1 ms resolution),
so nothing in this process (its own load, the websocket) shifts them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import aiohttp

OBSERVER_APP = "observer"
# The event types the figures need; every other one is filtered out in Asterisk.
EVENT_TYPES = (
    "ChannelStateChange",
    "Dial",
    "ChannelDtmfReceived",
    "BridgeCreated",
    "ChannelEnteredBridge",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "PlaybackFinished",
)
RESPONDER_CONTEXT = "@responders-"

Expect = Literal["connected", "abandoned"]


def event_time(event: dict[str, Any]) -> float:
    """An ARI event's timestamp ("2026-11-29T21:30:18.935+0000") in seconds since the epoch."""
    return datetime.strptime(str(event["timestamp"]), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def script_of(name: str) -> str:
    """The script a phone runs: Local/bench_accept@responders-00000006;1 -> bench_accept."""
    return name.split("/", 1)[-1].split("@", 1)[0]


@dataclass
class LegSeen:
    """One responder leg (the `;1` half the controller or FollowMe holds)."""

    id: str
    name: str
    ringing: float | None = None
    up: float | None = None
    digits: list[tuple[float, str]] = field(default_factory=list)
    hangup_requested: float | None = None
    destroyed: float | None = None
    prompt_ends: list[float] = field(default_factory=list)
    bridge: str | None = None
    entered: float | None = None

    @property
    def script(self) -> str:
        return script_of(self.name)

    def alive_at(self, moment: float) -> bool:
        # Timestamps have 1 ms resolution: gone in the same millisecond still counts as there.
        return self.destroyed is None or self.destroyed >= moment

    def ringing_at(self, moment: float) -> bool:
        """Ringing and not yet answered at `moment` (and still there)."""
        return (
            self.ringing is not None
            and self.ringing <= moment
            and (self.up is None or self.up >= moment)
            and self.alive_at(moment)
        )


@dataclass
class CallSeen:
    """One bench call: what it should end as, and what Asterisk reported for it."""

    index: int
    expect: Expect
    channel_id: str  # the caller's channel in Stasis (or in FollowMe): `;1`
    phone_id: str  # the caller's phone running the script: `;2`
    number: str
    ringing_wanted: int  # legs ringing at once before an abandoning caller hangs up
    legs: dict[str, LegSeen] = field(default_factory=dict)
    first_hangup_by: str | None = None  # "phone" (the caller hung up) or "system"
    hangup_requested: float | None = None
    destroyed: float | None = None
    bridge: str | None = None
    entered: float | None = None
    placed_ok: bool = True
    ringing_ready: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # bridged, or gone

    def ringing_now(self) -> int:
        return sum(
            1
            for leg in self.legs.values()
            if leg.ringing is not None and leg.up is None and leg.destroyed is None
        )

    def bridged_leg(self) -> LegSeen | None:
        """The leg that shares the caller's bridge, once both are in it."""
        if self.bridge is None:
            return None
        for leg in self.legs.values():
            if leg.bridge == self.bridge and leg.entered is not None:
                return leg
        return None

    def channels(self) -> Iterable[tuple[str, float | None]]:
        """Each channel of the call the system holds, with when it was destroyed."""
        if not self.placed_ok:
            return
        yield self.channel_id, self.destroyed
        for leg in self.legs.values():
            yield leg.id, leg.destroyed


class Observer:
    """Reads the observer app's websocket and keeps each tracked call's story up to date."""

    def __init__(self, session: aiohttp.ClientSession, ari_url: str) -> None:
        self.session = session
        self.ari_url = ari_url.rstrip("/")
        self.events = 0
        self.unparsed = 0
        self._by_channel: dict[str, CallSeen] = {}
        self._by_phone: dict[str, CallSeen] = {}
        self._by_number: dict[str, CallSeen] = {}
        self._leg_call: dict[str, CallSeen] = {}
        self._pending_legs: dict[str, list[dict[str, Any]]] = {}
        self.bridges_created: dict[str, float] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        url = self.ari_url.replace("http", "ws", 1) + "/events"
        self._ws = await self.session.ws_connect(
            url, params={"app": OBSERVER_APP, "subscribeAll": "true"}, heartbeat=30
        )
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws))
        filter_body = {"allowed": [{"type": kind} for kind in EVENT_TYPES]}
        async with self.session.put(
            f"{self.ari_url}/applications/{OBSERVER_APP}/eventFilter", json=filter_body
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"observer event filter refused: {response.status}")

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    def track(self, calls: Iterable[CallSeen]) -> None:
        """Start filing events for these calls (before they are placed)."""
        for call in calls:
            self._by_channel[call.channel_id] = call
            self._by_phone[call.phone_id] = call
            self._by_number[call.number] = call

    def forget(self, calls: Iterable[CallSeen]) -> None:
        for call in calls:
            self._by_channel.pop(call.channel_id, None)
            self._by_phone.pop(call.phone_id, None)
            self._by_number.pop(call.number, None)
            for leg_id in call.legs:
                self._leg_call.pop(leg_id, None)
        self._pending_legs.clear()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                event = json.loads(message.data)
                self.take(event)
            except (ValueError, KeyError, TypeError):
                self.unparsed += 1

    # ---- filing events ------------------------------------------------------------------------

    def take(self, event: dict[str, Any]) -> None:
        self.events += 1
        kind = event.get("type")
        if kind == "BridgeCreated":
            self.bridges_created[event["bridge"]["id"]] = event_time(event)
            return
        if kind == "PlaybackFinished":
            target = str(event.get("playback", {}).get("target_uri", ""))
            if target.startswith("channel:"):
                self._on_leg_event(target[len("channel:") :], None, event)
            return
        if kind == "Dial":
            peer = event.get("peer") or {}
            caller = event.get("caller") or {}
            call = self._by_channel.get(str(caller.get("id", "")))
            if call is not None and RESPONDER_CONTEXT in str(peer.get("name", "")):
                self._tie(str(peer["id"]), str(peer["name"]), call)
            return
        channel = event.get("channel")
        if not isinstance(channel, dict):
            return
        channel_id = str(channel.get("id", ""))
        call = self._by_channel.get(channel_id)
        if call is not None:
            self._on_caller_event(call, event, is_phone=False)
            return
        call = self._by_phone.get(channel_id)
        if call is not None:
            self._on_caller_event(call, event, is_phone=True)
            return
        name = str(channel.get("name", ""))
        if RESPONDER_CONTEXT in name and name.endswith(";1"):
            self._on_leg_event(channel_id, channel, event)

    def _tie(self, leg_id: str, name: str, call: CallSeen) -> None:
        if leg_id in self._leg_call:
            return
        self._leg_call[leg_id] = call
        call.legs[leg_id] = LegSeen(leg_id, name)
        # Events that came before the leg could be tied to its call (FollowMe's first ones).
        for early in self._pending_legs.pop(leg_id, []):
            self._on_leg_event(leg_id, early.get("channel"), early)

    def _on_leg_event(
        self, leg_id: str, channel: dict[str, Any] | None, event: dict[str, Any]
    ) -> None:
        call = self._leg_call.get(leg_id)
        if call is None and channel is not None:
            number = str((channel.get("caller") or {}).get("number", ""))
            found = self._by_number.get(number)
            if found is not None:
                self._tie(leg_id, str(channel.get("name", "")), found)
                call = found
        if call is None:
            if channel is not None and len(self._pending_legs) < 100_000:
                self._pending_legs.setdefault(leg_id, []).append(event)
            return
        leg = call.legs[leg_id]
        when = event_time(event)
        kind = event["type"]
        if kind == "ChannelStateChange":
            state = channel.get("state") if channel else None
            if state == "Ringing" and leg.ringing is None:
                leg.ringing = when
                if call.ringing_now() >= call.ringing_wanted:
                    call.ringing_ready.set()
            elif state == "Up" and leg.up is None:
                leg.up = when
        elif kind == "ChannelDtmfReceived":
            leg.digits.append((when, str(event.get("digit", ""))))
        elif kind == "ChannelHangupRequest":
            if leg.hangup_requested is None:
                leg.hangup_requested = when
        elif kind == "ChannelDestroyed":
            leg.destroyed = when
        elif kind == "PlaybackFinished":
            leg.prompt_ends.append(when)
        elif kind == "ChannelEnteredBridge":
            leg.bridge = str(event["bridge"]["id"])
            leg.entered = when
            self._check_bridged(call)

    def _on_caller_event(self, call: CallSeen, event: dict[str, Any], *, is_phone: bool) -> None:
        when = event_time(event)
        kind = event["type"]
        if kind in ("ChannelHangupRequest", "ChannelDestroyed") and call.first_hangup_by is None:
            call.first_hangup_by = "phone" if is_phone else "system"
            call.hangup_requested = when
        if is_phone:
            return
        if kind == "ChannelDestroyed":
            call.destroyed = when
            call.settled.set()
        elif kind == "ChannelEnteredBridge" and call.bridge is None:
            call.bridge = str(event["bridge"]["id"])
            call.entered = when
            self._check_bridged(call)

    def _check_bridged(self, call: CallSeen) -> None:
        if call.bridged_leg() is not None:
            call.settled.set()
