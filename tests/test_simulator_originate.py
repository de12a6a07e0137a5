"""Responder legs as Asterisk 22.10.1 makes them (tests/ari_traces app_subscriptions and
originator_formats): the app is subscribed to both halves of a Local channel it originates,
`originator` and `formats` are checked, and a leg with an originator joins its call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from ari_controller.simulator import Simulator
from tests.fixtures_simulator import SIM_APP, AriTestClient


def _leg(**params: Any) -> dict[str, Any]:
    return {
        "endpoint": "Local/accept@responders",
        "app": SIM_APP,
        "appArgs": "responder",
        "timeout": 10,
        **params,
    }


def _live(simulator: Simulator, channel_id: str) -> dict[str, Any]:
    channels: list[dict[str, Any]] = simulator.live()["channels"]
    (found,) = [c for c in channels if c["id"] == channel_id]
    return found


def _record(simulator: Simulator, channel_id: str) -> dict[str, Any]:
    (found,) = [r for r in simulator.history() if r["channel_id"] == channel_id]
    return found


async def _subscribed(ari: AriTestClient) -> set[str]:
    status, body = await ari.rest("GET", f"/applications/{SIM_APP}")
    assert status == 200
    return set(body["channel_ids"])


async def test_the_app_is_subscribed_to_both_halves_of_a_leg_it_originates(
    simulator: Simulator, ari: AriTestClient
) -> None:
    caller = await ari.inbound_call("listen")
    await ari.rest("POST", f"/channels/{caller}/answer")
    # The caller's own `;2` half (originated without app) is not the app's.
    assert await _subscribed(ari) == {caller}
    assert (await ari.rest("POST", "/channels", **_leg(channelId="leg")))[0] == 200
    await ari.wait_type("StasisStart", "leg")
    assert await _subscribed(ari) == {caller, "leg", "leg;2"}
    status, half = await ari.rest("GET", "/channels/leg;2")
    assert status == 200
    # Listed, but not in Stasis: it runs the phone's dialplan (Answer() still, no media yet).
    assert (half["state"], half["dialplan"]["app_name"]) == ("Up", "Answer")
    status, channels = await ari.rest("GET", "/channels")
    states = {c["id"]: (c["state"], c["dialplan"]["app_name"]) for c in channels}
    assert states["leg"] == ("Up", "Stasis") and states["leg;2"] == ("Up", "Answer")
    assert states[caller] == ("Up", "Stasis")
    not_in_stasis = (409, {"message": "Channel not in Stasis application"})
    assert await ari.rest("POST", "/channels/leg;2/answer") == not_in_stasis
    assert await ari.rest("POST", "/channels/leg;2/play", media="sound:beep") == not_in_stasis
    # The app hears the half's events.
    assert any(e["type"] == "ChannelDialplan" and e["channel"]["id"] == "leg;2" for e in ari.events)
    # Hanging up the half ends the leg.
    assert (await ari.rest("DELETE", "/channels/leg;2"))[0] == 204
    await ari.wait_type("StasisEnd", "leg")
    await ari.wait_type("ChannelDestroyed", "leg")
    requests = [
        e["cause"]
        for e in ari.events
        if e["type"] == "ChannelHangupRequest" and e["channel"]["id"] == "leg;2"
    ]
    assert requests == [32, 16]
    destroyed = next(
        e for e in ari.events if e["type"] == "ChannelDestroyed" and e["channel"]["id"] == "leg;2"
    )
    assert destroyed["channel"]["dialplan"]["app_name"] == ""  # out of its dialplan
    assert await _subscribed(ari) == {caller}


def _stamp(event: dict[str, Any]) -> float:
    return datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


@pytest.mark.parametrize("media", [False, True])
async def test_answer_on_the_phone_side_waits_for_media_or_half_a_second(
    media: bool, simulator: Simulator, ari: AriTestClient
) -> None:
    simulator.register_script("answer_then_wait", ["answer", {"wait": 30}, "hangup"])
    leg = f"leg-{media}"
    await ari.rest(
        "POST", "/channels", **_leg(endpoint="Local/answer_then_wait@responders", channelId=leg)
    )
    start = await ari.wait_type("StasisStart", leg)
    if media:
        await ari.rest("POST", f"/channels/{leg}/play", media="sound:tt-monkeys")
    waiting = await ari.wait_for(
        lambda e: (
            e["type"] == "ChannelDialplan"
            and e["channel"]["id"] == f"{leg};2"
            and e["dialplan_app"] == "Wait"
        )
    )
    took = _stamp(waiting) - _stamp(start)  # call seconds (time scale 20)
    if media:
        assert took < 0.3
    else:
        assert 0.45 <= took < 0.9


async def test_originator_gives_the_leg_the_callers_call(
    simulator: Simulator, ari: AriTestClient
) -> None:
    caller = await ari.inbound_call("listen")
    status, body = await ari.rest("POST", "/channels", **_leg(channelId="o1", originator=caller))
    assert status == 200 and body["id"] == "o1"
    await ari.wait_type("StasisStart", "o1")
    linkedid = _live(simulator, caller)["linkedid"]
    assert _live(simulator, "o1")["linkedid"] == linkedid
    assert _live(simulator, "o1;2")["linkedid"] == linkedid
    record = _record(simulator, "o1")
    assert (record["originator"], record["linkedid"]) == (caller, linkedid)
    # By name too, as Asterisk looks channels up.
    name = _live(simulator, caller)["name"]
    assert (await ari.rest("POST", "/channels", **_leg(channelId="o2", originator=name)))[0] == 200
    assert _record(simulator, "o2")["originator"] == caller
    # Without an originator a leg is a call of its own.
    assert (await ari.rest("POST", "/channels", **_leg(channelId="o3")))[0] == 200
    assert _live(simulator, "o3")["linkedid"] == "o3"


async def test_formats_are_checked_and_kept(simulator: Simulator, ari: AriTestClient) -> None:
    status, _ = await ari.rest("POST", "/channels", **_leg(channelId="f1", formats="ulaw"))
    assert status == 200
    assert _record(simulator, "f1")["formats"] == "ulaw"
    assert _live(simulator, "f1")["formats"] == "ulaw"
    status, _ = await ari.rest("POST", "/channels", **_leg(channelId="f2", formats="ALAW, slin16"))
    assert status == 200 and _record(simulator, "f2")["formats"] == "alaw,slin16"
    assert _record(simulator, "f2")["originator"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"originator": "no-such-channel"}, "Provided originator channel was not found"),
        ({"formats": "nosuchcodec"}, "Provided format (nosuchcodec) was not found"),
        ({"formats": "ulaw,nosuchcodec"}, "Provided format (nosuchcodec) was not found"),
        ({"formats": "ulaw,"}, "Provided format () was not found"),
        (
            {"originator": "leg-x", "formats": "ulaw"},
            "Originator and formats can't both be specified",
        ),
        ({"endpoint": "nothing"}, "Invalid endpoint specified"),
    ],
)
async def test_bad_originator_or_formats_give_400(
    params: dict[str, str], message: str, simulator: Simulator, ari: AriTestClient
) -> None:
    status, body = await ari.rest("POST", "/channels", **_leg(channelId="bad", **params))
    assert (status, body) == (400, {"message": message})
    assert simulator.history() == []  # nothing was created
    assert (await ari.rest("GET", "/channels/bad"))[0] == 404


async def test_create_ignores_an_unknown_originator_and_subscribes_a_known_one(
    simulator: Simulator, ari: AriTestClient
) -> None:
    create = {"endpoint": "Local/accept@responders", "app": SIM_APP}
    status, _ = await ari.rest(
        "POST", "/channels/create", **create, channelId="c1", originator="no-such-channel"
    )
    assert status == 200  # Asterisk leaves an unknown originator out here
    assert _record(simulator, "c1")["originator"] is None
    status, body = await ari.rest(
        "POST", "/channels/create", **create, channelId="c2", formats="nosuchcodec"
    )
    assert (status, body) == (400, {"message": "Provided format (nosuchcodec) was not found"})
    caller = await ari.inbound_call("listen")
    status, _ = await ari.rest(
        "POST", "/channels/create", **create, channelId="c3", originator=caller
    )
    assert status == 200
    assert _live(simulator, "c3")["linkedid"] == _live(simulator, caller)["linkedid"]
    # The app now hears about the caller after it leaves Stasis, until it is gone.
    await ari.rest("DELETE", f"/channels/{caller}")
    await ari.wait_type("ChannelDestroyed", caller)


async def test_create_sets_the_caller_id_and_connected_line_its_variables_name(
    simulator: Simulator, ari: AriTestClient
) -> None:
    """As probed on Asterisk 22.10.1: CALLERID(...) and CONNECTEDLINE(...,i) in the body's
    variables show on both halves of a created Local leg, the others are channel variables."""
    variables = {
        "CALLERID(name)": "Acme Desk",
        "CALLERID(num)": "101",
        "CONNECTEDLINE(name,i)": "Acme Desk",
        "CONNECTEDLINE(num,i)": "101",
        "TEAM": "dba",
    }
    status, body = await ari.rest(
        "POST",
        "/channels/create",
        endpoint="Local/accept@responders",
        app=SIM_APP,
        channelId="leg-cid",
        json={"variables": variables},
    )
    assert status == 200
    party = {"name": "Acme Desk", "number": "101"}
    assert (body["caller"], body["connected"]) == (party, party)
    for half in ("leg-cid", "leg-cid;2"):
        live = _live(simulator, half)
        assert (live["caller"], live["connected"]) == (party, party), half
    status, body = await ari.rest("GET", "/channels/leg-cid/variable", variable="TEAM")
    assert (status, body) == (200, {"value": "dba"})
