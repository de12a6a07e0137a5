"""The simulator while the app has no events websocket for a few seconds: the controller was
killed (its websocket drops without a close frame) and a new one connects for the same app
later. As Asterisk 22.10.1 does it (tests/ari_traces/controller_gone_*.jsonl): calls and their
media go on, every event in the gap is lost and none is replayed, an app still subscribed to
something stays registered (inactive), a leg the app originated that is answered in the gap
fails Stasis() (cause 0) while a created leg stays in Stasis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ari_controller.simulator import Simulator
from tests.fixtures_simulator import FAST, SIM_APP, AriTestClient


def call_seconds(seconds: float) -> float:
    """Wall seconds for `seconds` of call time in the 20x simulator."""
    return seconds / FAST


async def kill(client: AriTestClient) -> None:
    """The controller is SIGKILLed: its TCP connection goes, no websocket close frame."""
    assert client.ws is not None
    client.ws._writer.transport.abort()
    if client._reader is not None:
        client._reader.cancel()
    client.ws = None
    await asyncio.sleep(0.02)  # the simulator sees the connection go


@pytest.fixture
async def restarted(simulator: Simulator) -> AsyncIterator[list[AriTestClient]]:
    """New controllers (new websockets for the same app), closed at the end."""
    clients: list[AriTestClient] = []
    yield clients
    for client in clients:
        await client.close()


async def reconnect(simulator: Simulator, clients: list[AriTestClient]) -> AriTestClient:
    client = AriTestClient(simulator)
    clients.append(client)
    await client.connect()
    await asyncio.sleep(0.02)
    return client


def _about(events: list[dict[str, Any]], channel: str) -> list[dict[str, Any]]:
    return [e for e in events if (e.get("channel") or e.get("peer") or {}).get("id") == channel]


async def test_playbacks_go_on_in_the_gap_and_nothing_is_replayed(
    simulator: Simulator, ari: AriTestClient, restarted: list[AriTestClient]
) -> None:
    # (Two scripts: inbound_call finds a call by its script.)
    short = await ari.inbound_call("listen")
    long_ = await ari.inbound_call("silent_caller")
    for caller in (short, long_):
        await ari.rest("POST", f"/channels/{caller}/answer")
    await ari.rest("POST", f"/channels/{short}/play", media="sound:vm-nobodyavail", playbackId="s")
    await ari.rest("POST", f"/channels/{long_}/play", media="sound:tt-monkeys", playbackId="l")
    await kill(ari)
    status, body = await ari.rest("GET", "/playbacks/s")
    assert (status, body["state"]) == (200, "playing")
    await asyncio.sleep(call_seconds(2.79) + 0.1)  # vm-nobodyavail is over
    new = await reconnect(simulator, restarted)
    assert (await new.rest("GET", "/playbacks/s"))[0] == 404
    status, body = await new.rest("GET", "/playbacks/l")
    assert (status, body["state"]) == (200, "playing")
    assert new.events == []  # no replay of what happened in the gap
    # The playback the old controller started finishes on the new websocket.
    finished = await new.wait_type("PlaybackFinished")
    assert (finished["playback"]["id"], finished["playback"]["state"]) == ("l", "done")
    assert [e["type"] for e in new.events] == ["PlaybackFinished"]
    played = simulator.media(short)[-1]
    assert (played["kind"], played["outcome"], played["stopped_early"]) == (
        "playback",
        "done",
        False,
    )
    # The calls are still the app's, in Stasis; the phones' halves run their dialplan.
    status, channels = await new.rest("GET", "/channels")
    dialplan = {c["id"]: (c["state"], c["dialplan"]["app_name"]) for c in channels}
    assert dialplan[short] == dialplan[long_] == ("Up", "Stasis")
    halves = [v for k, v in dialplan.items() if k not in (short, long_)]
    assert sorted(halves) == [("Up", "Wait"), ("Up", "Wait")]
    status, app = await new.rest("GET", f"/applications/{SIM_APP}")
    assert set(app["channel_ids"]) == {short, long_}


async def test_channel_moh_goes_on_across_the_gap(
    simulator: Simulator, ari: AriTestClient, restarted: list[AriTestClient]
) -> None:
    caller = await ari.inbound_call("listen")
    await ari.rest("POST", f"/channels/{caller}/answer")
    await ari.rest("POST", f"/channels/{caller}/moh", mohClass="default")
    await kill(ari)
    await asyncio.sleep(call_seconds(3))
    new = await reconnect(simulator, restarted)
    (moh,) = simulator.media(caller)
    assert moh["kind"] == "moh" and moh["ended"] is None  # still playing
    assert (await new.rest("DELETE", f"/channels/{caller}/moh"))[0] == 204
    assert simulator.media(caller)[0]["ended"] is not None


async def test_recordings_end_in_the_gap_and_are_stored(
    simulator: Simulator, ari: AriTestClient, restarted: list[AriTestClient]
) -> None:
    hashed = await ari.inbound_call("speakhash")  # presses # 6.7 s after answering
    talker = await ari.inbound_call("voicemail")  # talks for 22 s
    leaver = await ari.inbound_call("hangup2")  # hangs up after 2 s
    for caller in (hashed, talker, leaver):
        await ari.rest("POST", f"/channels/{caller}/answer")
    common = {"format": "wav", "terminateOn": "#", "ifExists": "overwrite"}
    await ari.rest("POST", f"/channels/{hashed}/record", name="by-hash", **common)
    await ari.rest(
        "POST", f"/channels/{talker}/record", name="by-length", maxDurationSeconds=3, **common
    )
    await ari.rest("POST", f"/channels/{leaver}/record", name="by-hangup", **common)
    await kill(ari)
    names = ("by-hash", "by-length", "by-hangup")
    for name in names:
        status, body = await ari.rest("GET", f"/recordings/live/{name}")
        assert (status, body["state"]) == (200, "recording")
    await asyncio.sleep(call_seconds(8))
    new = await reconnect(simulator, restarted)
    for name in names:
        assert (await new.rest("GET", f"/recordings/live/{name}"))[0] == 404
        assert (await new.rest("GET", f"/recordings/stored/{name}"))[0] == 200
    outcomes = [simulator.media(c)[-1]["outcome"] for c in (hashed, talker, leaver)]
    assert outcomes == ["dtmf", "max_duration", "hangup"]
    # The recording survived the caller's hangup; its end was told to no one.
    assert (await new.rest("GET", f"/channels/{leaver}"))[0] == 404
    status, app = await new.rest("GET", f"/applications/{SIM_APP}")
    assert set(app["channel_ids"]) == {hashed, talker}
    assert new.events == []


async def test_an_app_stays_registered_in_the_gap_while_it_is_subscribed(
    simulator: Simulator, ari: AriTestClient, restarted: list[AriTestClient]
) -> None:
    caller = await ari.inbound_call("hangup2")
    await ari.rest("POST", f"/channels/{caller}/answer")
    await kill(ari)
    status, app = await ari.rest("GET", f"/applications/{SIM_APP}")
    assert (status, app["channel_ids"]) == (200, [caller])
    status, apps = await ari.rest("GET", "/applications")
    assert [a["name"] for a in apps] == [SIM_APP]
    # Its last channel leaves Stasis (the caller hangs up): the app is gone.
    await asyncio.sleep(call_seconds(2) + 0.1)
    assert await ari.rest("GET", f"/applications/{SIM_APP}") == (
        404,
        {"message": "Application not found"},
    )
    assert await ari.rest("GET", "/applications") == (200, [])
    new = await reconnect(simulator, restarted)
    status, app = await new.rest("GET", f"/applications/{SIM_APP}")
    assert (status, app["channel_ids"]) == (200, [])
    # With nothing subscribed, the app is gone as soon as its websocket is.
    await kill(new)
    assert (await new.rest("GET", f"/applications/{SIM_APP}"))[0] == 404


async def test_a_leg_answered_in_the_gap_fails_stasis_and_is_hung_up(
    simulator: Simulator, ari: AriTestClient, restarted: list[AriTestClient]
) -> None:
    status, _ = await ari.rest(
        "POST",
        "/channels",
        endpoint="Local/accept@responders",  # answers after 2 s of ringing
        app=SIM_APP,
        appArgs="responder,X",
        channelId="leg-gap",
        timeout=20,
    )
    assert status == 200
    await ari.wait_for(lambda e: e["type"] == "Dial" and e["dialstatus"] == "RINGING")
    await kill(ari)
    status, app = await ari.rest("GET", f"/applications/{SIM_APP}")
    assert set(app["channel_ids"]) == {"leg-gap", "leg-gap;2"}
    await asyncio.sleep(call_seconds(3))
    new = await reconnect(simulator, restarted)
    assert (await new.rest("GET", "/channels/leg-gap"))[0] == 404
    assert (await new.rest("GET", "/channels"))[1] == []
    status, app = await new.rest("GET", f"/applications/{SIM_APP}")
    assert app["channel_ids"] == []
    (record,) = [r for r in simulator.history() if r["channel_id"] == "leg-gap"]
    # "Stasis app 'callrouting' not active": both halves go with cause 0.
    assert record["answered"] is not None and not record["entered_stasis"]
    assert record["cause"] == 0
    assert new.events == []


async def test_ringing_legs_are_the_new_websockets_after_a_reconnect(
    simulator: Simulator, ari: AriTestClient, restarted: list[AriTestClient]
) -> None:
    simulator.register_script("ring_long", [{"ring": {}}, {"wait": 10}, "answer", {"wait": 300}])
    for leg, script, timeout in (("leg-late", "ring_long", 30), ("leg-na", "noanswer", 6)):
        status, _ = await ari.rest(
            "POST",
            "/channels",
            endpoint=f"Local/{script}@responders",
            app=SIM_APP,
            appArgs="responder,X",
            channelId=leg,
            timeout=timeout,
        )
        assert status == 200
    await asyncio.sleep(call_seconds(1))
    await kill(ari)
    new = await reconnect(simulator, restarted)
    status, app = await new.rest("GET", f"/applications/{SIM_APP}")
    assert set(app["channel_ids"]) == {"leg-late", "leg-late;2", "leg-na", "leg-na;2"}
    # The app's subscriptions outlive its websocket: the timeout reaches the new one...
    destroyed = await new.wait_type("ChannelDestroyed", "leg-na")
    assert destroyed["cause"] == 19
    assert (await new.wait_type("ChannelDestroyed", "leg-na;2"))["cause"] == 19
    # ...and so does the answer, with the originate's args.
    start = await new.wait_type("StasisStart", "leg-late")
    assert start["args"] == ["responder", "X"]
    kinds = [e["type"] for e in _about(new.events, "leg-late")]
    assert kinds.index("Dial") < kinds.index("StasisStart")
    status, body = await new.rest("GET", "/channels/leg-late")
    assert (body["state"], body["dialplan"]["app_data"]) == ("Up", f"{SIM_APP},responder,X")


async def test_a_created_leg_answered_in_the_gap_stays_in_stasis(
    simulator: Simulator, ari: AriTestClient, restarted: list[AriTestClient]
) -> None:
    status, _ = await ari.rest(
        "POST",
        "/channels/create",
        endpoint="Local/accept@responders",  # answers after 2 s, presses 1 2 s later
        app=SIM_APP,
        appArgs="responder",
        channelId="leg-cr",
    )
    assert status == 200
    await ari.wait_type("StasisStart", "leg-cr")
    assert (await ari.rest("POST", "/channels/leg-cr/dial", timeout=10))[0] == 204
    await kill(ari)
    await asyncio.sleep(call_seconds(3))
    new = await reconnect(simulator, restarted)
    status, body = await new.rest("GET", "/channels/leg-cr")
    assert (status, body["state"], body["dialplan"]["app_name"]) == (200, "Up", "Stasis")
    assert body["dialplan"]["app_data"] == f"{SIM_APP},responder"
    status, app = await new.rest("GET", f"/applications/{SIM_APP}")
    assert app["channel_ids"] == ["leg-cr"]
    digit = await new.wait_type("ChannelDtmfReceived", "leg-cr")
    assert digit["digit"] == "1"
    assert new.events[0]["type"] == "ChannelDtmfReceived"  # the answer itself was lost
