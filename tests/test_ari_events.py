"""Event routing and the events websocket, over a real websocket on 127.0.0.1.

Routing rules are checked directly on `EventRouter` with events shaped like the real traces;
the connection tests run `EventConnection` against `FakeAri` (tests/test_ari_client.py) and cut,
close and replace its websocket the ways Asterisk does.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ari_controller.ari import AriClient, AriEvent, EventConnection, EventRouter, Mailbox
from ari_controller.ari.events import backoff_delay
from tests.test_ari_client import CHANNEL_JSON, PASSWORD, USER, FakeAri, Reply, SeenRequest

APP = "callrouting"


def channel_event(event_type: str, channel_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "application": APP,
        "timestamp": "2026-11-23T10:11:36.827+0000",
        "channel": {**CHANNEL_JSON, "id": channel_id},
        **fields,
    }


def playback_event(event_type: str, playback_id: str, target: str, state: str) -> dict[str, Any]:
    return {
        "type": event_type,
        "application": APP,
        "playback": {
            "id": playback_id,
            "media_uri": "sound:vm-intro",
            "state": state,
            "target_uri": target,
        },
    }


def recording_event(event_type: str, name: str, target: str, state: str) -> dict[str, Any]:
    return {
        "type": event_type,
        "recording": {"name": name, "format": "wav", "state": state, "target_uri": target},
    }


def dial_event(peer_id: str, status: str, caller_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "Dial",
        "dialstatus": status,
        "peer": {**CHANNEL_JSON, "id": peer_id, "state": "Ringing"},
    }
    if caller_id is not None:
        event["caller"] = {**CHANNEL_JSON, "id": caller_id}
    return event


def bridge_event(event_type: str, bridge_id: str, channel_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": event_type,
        "bridge": {"id": bridge_id, "bridge_type": "mixing", "channels": []},
    }
    if channel_id is not None:
        event["channel"] = {**CHANNEL_JSON, "id": channel_id}
    return event


def ev(data: dict[str, Any]) -> AriEvent:
    return AriEvent.from_json(data)


async def drained(box: Mailbox) -> list[AriEvent]:
    """Every event waiting in `box`, in order."""
    return [await box.get(0) for _ in range(box.pending())]


# routing


async def test_events_reach_the_mailbox_of_the_id_they_are_about() -> None:
    router = EventRouter()
    call, other = Mailbox("call"), Mailbox("other")
    router.register(call, "chan-1", "pb-1", "vm-1", "br-1", "leg-1")
    router.register(other, "chan-2")

    router.dispatch(ev(channel_event("ChannelDtmfReceived", "chan-1", digit="2")))
    router.dispatch(ev(playback_event("PlaybackFinished", "pb-1", "channel:chan-2", "done")))
    router.dispatch(ev(recording_event("RecordingFinished", "vm-1", "channel:chan-2", "done")))
    router.dispatch(ev(dial_event("leg-1", "BUSY")))
    router.dispatch(ev(bridge_event("BridgeDestroyed", "br-1", None)))
    router.dispatch(ev(channel_event("StasisEnd", "chan-2")))

    got = await drained(call)
    assert [e.type for e in got] == [
        "ChannelDtmfReceived",
        "PlaybackFinished",  # the playback's own id wins over its target channel
        "RecordingFinished",
        "Dial",
        "BridgeDestroyed",
    ]
    assert got[0].digit == "2"
    assert (got[1].playback_id, got[1].playback_state) == ("pb-1", "done")
    assert (got[2].recording_name, got[2].recording_state) == ("vm-1", "done")
    assert (got[3].channel_id, got[3].dialstatus, got[3].channel_state) == (
        "leg-1",
        "BUSY",
        "Ringing",
    )
    assert got[4].bridge_id == "br-1"
    assert [e.type for e in await drained(other)] == ["StasisEnd"]


async def test_unregistered_playback_and_recording_follow_their_target() -> None:
    router = EventRouter()
    call, conference = Mailbox(), Mailbox()
    router.register(call, "chan-1")
    router.register(conference, "br-9")

    router.dispatch(ev(playback_event("PlaybackStarted", "pb-x", "channel:chan-1", "playing")))
    router.dispatch(ev(recording_event("RecordingFailed", "vm-x", "channel:chan-1", "failed")))
    router.dispatch(ev(playback_event("PlaybackStarted", "pb-y", "bridge:br-9", "playing")))

    assert [e.type for e in await drained(call)] == ["PlaybackStarted", "RecordingFailed"]
    assert [e.playback_id for e in await drained(conference)] == ["pb-y"]


async def test_bridge_membership_goes_to_the_channel_owner_once() -> None:
    router = EventRouter()
    caller_call, bridge_owner = Mailbox(), Mailbox()
    router.register(caller_call, "chan-1", "br-1")
    router.register(bridge_owner, "br-2")

    router.dispatch(ev(bridge_event("ChannelEnteredBridge", "br-1", "chan-1")))
    router.dispatch(ev(bridge_event("ChannelEnteredBridge", "br-2", "chan-1")))
    router.dispatch(ev(bridge_event("ChannelLeftBridge", "br-2", "chan-unknown")))

    entered = await drained(caller_call)
    assert [(e.type, e.bridge_id) for e in entered] == [
        ("ChannelEnteredBridge", "br-1"),  # found by channel and bridge: delivered once
        ("ChannelEnteredBridge", "br-2"),  # the channel is more specific than the bridge
    ]
    assert [(e.type, e.channel_id) for e in await drained(bridge_owner)] == [
        ("ChannelLeftBridge", "chan-unknown")
    ]


async def test_dial_falls_back_to_the_dialling_channel() -> None:
    router = EventRouter()
    call = Mailbox()
    router.register(call, "caller-1")

    router.dispatch(ev(dial_event("leg-unregistered", "RINGING", caller_id="caller-1")))

    (event,) = await drained(call)
    assert (event.channel_id, event.dial_caller_id) == ("leg-unregistered", "caller-1")


async def test_unknown_stasis_start_is_a_new_call_and_the_rest_is_unrouted() -> None:
    new_calls: list[AriEvent] = []
    unrouted: list[AriEvent] = []
    router = EventRouter(on_new_channel=new_calls.append, on_unrouted=unrouted.append)
    known = Mailbox()
    router.register(known, "leg-1")

    router.dispatch(ev(channel_event("StasisStart", "1795428696.2", args=["100"])))
    router.dispatch(ev(channel_event("StasisStart", "leg-1", args=["responder"])))
    router.dispatch(ev(channel_event("ChannelVarset", "someone-else")))
    router.dispatch(ev({"type": "DeviceStateChanged", "device_state": {}}))

    assert [(e.channel_id, e.args) for e in new_calls] == [("1795428696.2", ("100",))]
    assert new_calls[0].channel is not None
    assert new_calls[0].channel.caller_number == "+493012345678"
    assert [e.type for e in unrouted] == ["ChannelVarset", "DeviceStateChanged"]
    assert [e.args for e in await drained(known)] == [("responder",)]


def test_unregister_stops_delivery_and_updates_mailbox_ids() -> None:
    unrouted: list[AriEvent] = []
    router = EventRouter(on_unrouted=unrouted.append)
    first, second = Mailbox(), Mailbox()
    router.register(first, "chan-1", "pb-1")
    router.register(second, "pb-1")  # a new owner takes the id over

    assert first.ids() == {"chan-1"}
    assert second.ids() == {"pb-1"}
    router.unregister("chan-1")
    router.unregister_mailbox(second)
    router.dispatch(ev(channel_event("StasisEnd", "chan-1")))
    router.dispatch(ev(playback_event("PlaybackFinished", "pb-1", "channel:x", "done")))

    assert first.ids() == set() and second.ids() == set()
    assert first.pending() == 0 and second.pending() == 0
    assert len(unrouted) == 2
    assert len(router) == 0


def test_event_accessors_tolerate_missing_fields() -> None:
    event = ev({"type": "ApplicationReplaced"})

    assert event.channel_id == "" and event.playback_id == "" and event.bridge_id == ""
    assert event.cause is None and event.digit == "" and event.args == ()
    assert event.channel is None and event.timestamp is None
    destroyed = ev(channel_event("ChannelDestroyed", "leg-1", cause=17, cause_txt="User busy"))
    assert (destroyed.cause, destroyed.cause_txt) == (17, "User busy")
    assert destroyed.timestamp is not None
    with pytest.raises(ValueError):
        AriEvent.from_json([1, 2])
    with pytest.raises(ValueError):
        AriEvent.from_json({"no": "type"})


# mailbox


async def test_mailbox_get_times_out() -> None:
    box = Mailbox()
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await box.get(0.05)
    assert time.monotonic() - started < 0.5


def test_backoff_grows_is_capped_and_jittered() -> None:
    delays = [backoff_delay(n, 0.2, 10.0, 1.0) for n in range(10)]
    assert delays[:4] == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert max(delays) == pytest.approx(10.0)
    assert backoff_delay(3, 0.2, 10.0, 0.0) == pytest.approx(0.8)
    assert backoff_delay(1000, 0.2, 10.0, 0.5) == pytest.approx(7.5)


# the websocket


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server = FakeAri()
    await server.start()
    yield server
    await server.close()


class Harness:
    """An EventConnection running against the fake, with what its callbacks reported."""

    def __init__(self, fake: FakeAri, **options: Any) -> None:
        self.new_calls: list[AriEvent] = []
        self.unrouted: list[AriEvent] = []
        self.connected_flags: list[bool] = []
        self.disconnects: list[str] = []
        self.replaced = 0
        self.router = EventRouter(
            on_new_channel=self.new_calls.append, on_unrouted=self.unrouted.append
        )
        self.connection = EventConnection(
            fake.base_url,
            USER,
            PASSWORD,
            APP,
            self.router,
            on_connected=self._on_connected,
            on_disconnected=self.disconnects.append,
            on_replaced=self._on_replaced,
            **options,
        )
        self.task: asyncio.Task[None] | None = None
        self._hook_ran = asyncio.Condition()

    async def _on_connected(self, is_reconnect: bool) -> None:
        async with self._hook_ran:
            self.connected_flags.append(is_reconnect)
            self._hook_ran.notify_all()

    async def wait_hook_calls(self, count: int) -> None:
        """Until on_connected has run `count` times (2 s at most)."""
        async with asyncio.timeout(2.0), self._hook_ran:
            await self._hook_ran.wait_for(lambda: len(self.connected_flags) >= count)

    def _on_replaced(self) -> None:
        self.replaced += 1

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.connection.run())
        await self.connection.wait_connected(3.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.stop()
        assert self.task is not None
        async with asyncio.timeout(2.0):
            await self.task


async def test_many_interleaved_calls_each_get_their_events_in_order(fake: FakeAri) -> None:
    calls = 60
    per_call = 12
    async with Harness(fake) as h:
        boxes = {f"chan-{n}": Mailbox(f"call-{n}") for n in range(calls)}
        for channel_id, box in boxes.items():
            h.router.register(box, channel_id, f"pb-{channel_id}")
        streams = [
            [(cid, i) for i in range(per_call)] for cid in boxes
        ]  # each call's events, to be shuffled into one websocket stream
        rng = random.Random(7)
        cursors = [0] * calls
        while any(c < per_call for c in cursors):
            n = rng.choice([k for k in range(calls) if cursors[k] < per_call])
            cid, seq = streams[n][cursors[n]]
            cursors[n] += 1
            if seq % 3 == 2:
                await fake.send(playback_event("PlaybackStarted", f"pb-{cid}", "x", str(seq)))
            else:
                await fake.send(channel_event("ChannelDtmfReceived", cid, digit=str(seq)))

        for box in boxes.values():
            got = [await box.get(2.0) for _ in range(per_call)]
            order = [int(e.digit or e.playback_state) for e in got]
            assert order == list(range(per_call)), box
            assert box.pending() == 0
    assert h.unrouted == [] and h.new_calls == []
    assert fake.ws_params[0] == {"app": APP, "subscribeAll": "false"}


async def test_events_before_the_rest_reply_reach_the_registered_mailbox(fake: FakeAri) -> None:
    async def stasis_start_first(seen: SeenRequest) -> Reply | None:
        # Asterisk sends StasisStart before the POST /channels body, as in the traces.
        if seen.method == "POST" and seen.path == "/ari/channels":
            leg = seen.query["channelId"]
            await fake.send(channel_event("StasisStart", leg, args=["responder"]))
            await asyncio.sleep(0.05)
            return 200, {**CHANNEL_JSON, "id": leg}
        return None

    fake.before_reply = stasis_start_first
    async with Harness(fake) as h, AriClient(fake.base_url, USER, PASSWORD) as ari:
        leg_box = Mailbox("leg")
        h.router.register(leg_box, "leg-42")
        await ari.originate("Local/accept@responders", channel_id="leg-42", app=APP)

        assert leg_box.pending() == 1
        event = await leg_box.get(0.1)
    assert (event.type, event.channel_id, event.args) == ("StasisStart", "leg-42", ("responder",))
    assert h.new_calls == []


async def test_server_drop_reconnects_with_backoff_and_delivers_again(fake: FakeAri) -> None:
    async with Harness(fake, backoff_initial=0.2, rand=lambda: 0.0) as h:
        box = Mailbox()
        h.router.register(box, "chan-1")
        await fake.send(channel_event("ChannelDtmfReceived", "chan-1", digit="1"))
        assert (await box.get(1.0)).digit == "1"

        dropped_at = time.monotonic()
        fake.drop()
        await fake.wait_for_connects(2)
        reconnected_after = time.monotonic() - dropped_at
        await h.wait_hook_calls(2)
        assert h.connected_flags == [False, True]
        await fake.send(channel_event("ChannelDtmfReceived", "chan-1", digit="2"))

        assert (await box.get(1.0)).digit == "2"
        assert h.connection.reconnects == 1
        assert len(h.disconnects) == 1
        assert reconnected_after >= 0.1  # backoff_initial * 0.5 with rand 0: not a tight loop
        assert h.connection.is_connected


async def test_clean_close_by_the_server_also_reconnects(fake: FakeAri) -> None:
    async with Harness(fake, backoff_initial=0.05) as h:
        box = Mailbox()
        h.router.register(box, "chan-1")
        await fake.close_cleanly()
        await fake.wait_for_connects(2)
        await h.wait_hook_calls(2)
        assert h.connected_flags == [False, True]
        await fake.send(channel_event("StasisEnd", "chan-1"))

        assert (await box.get(1.0)).type == "StasisEnd"
        assert h.disconnects and "closed" in h.disconnects[0]


async def test_unreachable_asterisk_is_retried_until_it_comes_back(fake: FakeAri) -> None:
    port = fake.port
    await fake.close()
    late = FakeAri()
    router = EventRouter()
    connection = EventConnection(
        f"http://127.0.0.1:{port}/ari", USER, PASSWORD, APP, router, backoff_initial=0.05
    )
    task = asyncio.create_task(connection.run())
    try:
        await asyncio.sleep(0.2)
        assert not connection.is_connected
        await late.start(port)
        await connection.wait_connected(3.0)
        assert connection.reconnects == 0  # the first successful connection is not a reconnect
    finally:
        await connection.stop()
        await task
        await late.close()


async def test_application_replaced_is_reported_and_not_fought(fake: FakeAri) -> None:
    async with Harness(fake, backoff_initial=0.01) as h:
        await fake.send({"type": "ApplicationReplaced", "application": APP})
        assert h.task is not None
        async with asyncio.timeout(2.0):
            await h.task  # run() ends: policy "stop"
        await asyncio.sleep(0.1)

        assert h.replaced == 1
        assert h.connection.replaced
        assert fake.ws_connects == 1
        assert not h.connection.is_connected


async def test_application_replaced_with_reclaim_waits_backoff_max(fake: FakeAri) -> None:
    async with Harness(fake, replaced_policy="reclaim", backoff_max=0.3) as h:
        replaced_at = time.monotonic()
        await fake.send({"type": "ApplicationReplaced", "application": APP})
        await fake.wait_for_connects(2)

        assert time.monotonic() - replaced_at >= 0.3
        assert h.replaced == 1


async def test_malformed_events_are_skipped_and_the_reader_goes_on(fake: FakeAri) -> None:
    async with Harness(fake) as h:
        box = Mailbox()
        h.router.register(box, "chan-1")
        await fake.send("{not json")
        await fake.send(json.dumps([1, 2, 3]))
        await fake.send(json.dumps({"channel": {"id": "chan-1"}}))
        await fake.send(channel_event("ChannelDtmfReceived", "chan-1", digit="5"))

        assert (await box.get(1.0)).digit == "5"
        assert h.connection.malformed == 3
        assert h.connection.reconnects == 0 and h.disconnects == []


async def test_a_failing_callback_does_not_stop_the_reader(fake: FakeAri) -> None:
    async with Harness(fake) as h:

        def broken(event: AriEvent) -> None:
            raise RuntimeError("bug in the new-call handler")

        h.router.on_new_channel = broken
        box = Mailbox()
        h.router.register(box, "chan-1")
        await fake.send(channel_event("StasisStart", "inbound-1", args=["100"]))
        await fake.send(channel_event("StasisStart", "chan-1"))

        assert (await box.get(1.0)).channel_id == "chan-1"
        assert h.connection.reconnects == 0


async def test_a_controller_that_may_no_longer_drive_the_app_does_not_reconnect(
    fake: FakeAri,
) -> None:
    """After a drop, a daemon whose lease was taken over must not open the websocket again:
    Asterisk would give it the app and take it from the daemon that drives the calls now."""
    ours = True

    async def may_connect() -> bool:
        return ours

    async with Harness(fake, backoff_initial=0.05) as h:
        h.connection.may_connect = may_connect
        ours = False  # the lease was taken over meanwhile
        fake.drop()
        assert h.task is not None
        async with asyncio.timeout(2.0):
            await h.task  # run() ends instead of reconnecting
        assert fake.ws_connects == 1
        assert not h.connection.is_connected
