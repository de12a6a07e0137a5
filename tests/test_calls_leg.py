"""Leg's primitives on their own: one wait for every event, one place for a 404, the wake-up.

The call flows run them end to end against the simulator (tests/test_call_flow.py) and a real
Asterisk (tests/asterisk); here the far end is a stub whose answers each test chooses, and the
events are put in the leg's mailbox the way the router would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from ari_controller.ari import AriClient, AriEvent, EventRouter
from ari_controller.ari.errors import AriError, NotFound, ServiceUnavailable
from ari_controller.ari.models import Channel
from ari_controller.calls.leg import Leg, LegGone

LEG = "call-1-leg1"


class StubAri:
    """Answers what a test set in `states` (a channel's state, or an error to raise), `fail`
    (method name -> error) and `on_play` (told each playback id); records every request as
    (method, first argument)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.states: list[str | AriError] = []
        self.fail: dict[str, AriError] = {}
        self.on_play: Callable[[str], None] | None = None

    def _called(self, method: str, arg: str) -> None:
        self.requests.append((method, arg))
        error = self.fail.get(method)
        if error is not None:
            raise error

    async def get_channel(self, channel_id: str) -> Channel:
        self._called("get_channel", channel_id)
        state = self.states.pop(0)
        if isinstance(state, AriError):
            raise state
        return Channel(id=channel_id, state=state)

    async def play(self, channel_id: str, media: str, *, playback_id: str) -> None:
        self._called("play", channel_id)
        if self.on_play is not None:
            self.on_play(playback_id)

    async def stop_playback(self, playback_id: str) -> bool:
        self._called("stop_playback", playback_id)
        return True

    async def answer(self, channel_id: str) -> None:
        self._called("answer", channel_id)

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        self._called("start_moh", channel_id)

    async def record(self, channel_id: str, **options: Any) -> None:
        self._called("record", channel_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> bool:
        self._called("hangup", channel_id)
        return True


def not_found(path: str) -> NotFound:
    return NotFound(404, "GET", path, "Channel not found")


def event(kind: str, **fields: Any) -> AriEvent:
    return AriEvent.from_json({"type": kind, "channel": {"id": LEG, "state": "Up"}, **fields})


@pytest.fixture
def ari() -> StubAri:
    return StubAri()


@pytest.fixture
def leg(ari: StubAri) -> Leg:
    return Leg(LEG, cast(AriClient, ari), EventRouter())


def put_soon(leg: Leg, *events: AriEvent, after: float = 0.02) -> None:
    def put() -> None:
        for item in events:
            leg.mailbox.put(item)

    asyncio.get_running_loop().call_later(after, put)


def wake_soon(leg: Leg, after: float = 0.02) -> None:
    asyncio.get_running_loop().call_later(after, leg.wake)


# answered


async def test_wait_answered_on_stasis_start(leg: Leg) -> None:
    put_soon(leg, event("Dial", dialstatus="RINGING", peer={"id": LEG}), event("StasisStart"))
    assert await leg.wait_answered(1.0)
    assert leg.in_stasis and leg.dialstatus == "RINGING"


async def test_wait_answered_false_when_destroyed_or_past_the_limit(leg: Leg) -> None:
    put_soon(leg, event("ChannelDestroyed", cause=17))
    assert not await leg.wait_answered(1.0)
    assert leg.gone and leg.cause == 17

    quiet = Leg("call-1-leg2", leg.ari, leg.router)
    assert not await quiet.wait_answered(0.05)
    assert not quiet.gone


async def test_a_reconnect_while_ringing_asks_asterisk(leg: Leg, ari: StubAri) -> None:
    # The check fails, then says ringing: wait on; then Up: originated with app=, in Stasis.
    ari.states = [ServiceUnavailable(503, "GET", "/channels", "booting"), "Ringing", "Up"]
    for after in (0.01, 0.02, 0.03):
        wake_soon(leg, after)
    assert await leg.wait_answered(1.0)
    assert leg.in_stasis and not leg.gone
    assert [r for r, _ in ari.requests] == ["get_channel"] * 3


async def test_a_reconnect_finding_the_leg_gone_ends_the_ring(leg: Leg, ari: StubAri) -> None:
    ari.states = [not_found(f"/channels/{LEG}")]
    wake_soon(leg)
    assert not await leg.wait_answered(1.0)
    assert leg.gone and not leg.in_stasis
    await leg.hangup()
    assert ari.requests == [("get_channel", LEG)]  # gone outside Stasis: nothing to hang up


async def test_a_failed_originate_leaves_nothing_to_hang_up(leg: Leg, ari: StubAri) -> None:
    leg.originate_failed()
    await leg.hangup()
    assert leg.gone and ari.requests == []


# digits and hang-ups


async def test_wait_digit_returns_the_key_or_none(leg: Leg) -> None:
    put_soon(leg, event("ChannelDtmfReceived", digit="7"))
    assert await leg.wait_digit(1.0) == "7"
    assert await leg.wait_digit(0.05) is None  # nothing pressed in time


async def test_a_hang_up_raises_out_of_wait_digit(leg: Leg) -> None:
    put_soon(leg, event("ChannelHangupRequest", cause=16))
    with pytest.raises(LegGone) as gone:
        await leg.wait_digit(1.0)
    assert gone.value.cause == 16


async def test_a_reconnect_during_wait_digit_checks_the_channel(leg: Leg, ari: StubAri) -> None:
    ari.states = ["Up", not_found(f"/channels/{LEG}")]
    wake_soon(leg, 0.01)
    wake_soon(leg, 0.03)
    with pytest.raises(LegGone):
        await leg.wait_digit(1.0)
    assert len(ari.requests) == 2


async def test_wait_gone_and_wait_destroyed(leg: Leg, ari: StubAri) -> None:
    with pytest.raises(TimeoutError):
        await leg.wait_gone(0.05)  # still there
    put_soon(leg, event("ChannelHangupRequest", cause=16), event("ChannelDestroyed", cause=17))
    await leg.wait_gone()
    assert leg.gone and not leg.destroyed and leg.cause == 16
    await leg.wait_destroyed(1.0)
    assert leg.destroyed and leg.cause == 17  # Asterisk's final word

    other = Leg("call-1-leg2", leg.ari, leg.router)
    ari.states = [not_found("/channels/call-1-leg2")]
    wake_soon(other)
    await other.wait_gone(1.0)  # gone in the gap: Asterisk says so
    assert other.gone
    await other.wait_destroyed(0.05)  # its ChannelDestroyed was lost: the wait just ends
    assert not other.destroyed


# playback


async def test_play_ends_on_its_finish_or_on_a_key(leg: Leg, ari: StubAri) -> None:
    def finish(playback_id: str) -> None:
        finished = {"type": "PlaybackFinished", "playback": {"id": playback_id, "state": "done"}}
        put_soon(leg, AriEvent.from_json(finished))

    ari.on_play = finish
    assert await leg.play(["sound:hello"]) is None
    ari.on_play = None

    put_soon(leg, event("ChannelDtmfReceived", digit="1"))
    assert await leg.play(["sound:menu"]) == "1"
    assert [r for r, _ in ari.requests] == ["play", "play", "stop_playback"]


async def test_a_reconnect_during_a_prompt_stops_it_and_goes_on(leg: Leg, ari: StubAri) -> None:
    ari.states = [not_found(f"/channels/{LEG}")]
    wake_soon(leg)
    assert await leg.play(["sound:hello"]) is None  # PlaybackFinished may be lost: go on
    assert leg.gone
    assert [r for r, _ in ari.requests] == ["play", "get_channel", "stop_playback"]
    with pytest.raises(LegGone):
        await leg.play(["sound:next"])  # the next primitive tells the flow


# a 404 means gone


async def test_a_404_makes_the_leg_gone(ari: StubAri) -> None:
    router = EventRouter()
    for method in ("play", "answer", "record"):
        ari.fail = {method: not_found(f"/channels/{LEG}/{method}")}
        leg = Leg(LEG, cast(AriClient, ari), router)
        with pytest.raises(LegGone):
            if method == "play":
                await leg.play(["sound:hello"])
            elif method == "answer":
                await leg.answer()
            else:
                await leg.record("vm-1", max_duration_s=5, max_silence_s=2)
        assert leg.gone, method

    ari.fail = {"start_moh": not_found(f"/channels/{LEG}/moh")}
    leg = Leg(LEG, cast(AriClient, ari), router)
    await leg.start_moh("default")  # no raise: whoever waits on the leg hears of it
    assert leg.gone

    ari.fail = {}
    ari.states = [not_found(f"/channels/{LEG}"), ServiceUnavailable(503, "GET", "/c", "boot")]
    leg = Leg(LEG, cast(AriClient, ari), router)
    assert await leg.check_alive() is None and leg.gone
    other = Leg("call-1-leg2", cast(AriClient, ari), router)
    assert await other.check_alive() is None and not other.gone  # unknown is not gone
