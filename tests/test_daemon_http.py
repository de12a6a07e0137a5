"""The daemon's HTTP face (/healthz, /readyz, /metrics) and how it rides out a dropped or
taken-over ARI connection; in-process, against the simulator and a real Postgres."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ari_controller.config import Config, parse_config
from ari_controller.simulator.inspect import NOTHING_LEFT
from ari_controller.testing.harness import SIM_PASSWORD, SIM_USER, Stack, running_stack
from ari_controller.testing.postgres import free_port

TIME_SCALE = 10.0

SCRIPTS: dict[str, list[Any]] = {
    # a caller who stays on the line for 2 s (real time)
    "stay2": ["answer", {"wait": 20}, "hangup"],
    # callers who stay on the line for 4 s, 9 s
    "stay4": ["answer", {"wait": 40}, "hangup"],
    "stay9": ["answer", {"wait": 90}, "hangup"],
    # a responder who answers at once and accepts with 1
    "quick_accept": ["answer", {"wait": 2}, {"dtmf": "1"}, {"wait": 300}, "hangup"],
    # responders whose phone rings for 5 s (1.5 s), then answer and accept
    "slow_accept": ["ring", {"wait": 50}, "answer", {"wait": 5}, {"dtmf": "1"}, {"wait": 300},
                    "hangup"],
    "gap_accept": ["ring", {"wait": 15}, "answer", {"wait": 10}, {"dtmf": "1"}, {"wait": 300},
                   "hangup"],
}  # fmt: skip

CONFIG = {
    "users": [
        {"id": "quinn", "name": "Quinn", "contacts": ["Local/quick_accept@responders"]},
        {"id": "sam", "name": "Sam", "contacts": ["Local/slow_accept@responders"]},
        {"id": "gus", "name": "Gus", "contacts": ["Local/gap_accept@responders"]},
    ],
    "escalation_policies": [
        {"id": "quick", "name": "Quick", "rules": [{"users": ["quinn"]}]},
        {"id": "slow", "name": "Slow", "rules": [{"users": ["sam"]}]},
        {"id": "gap", "name": "Gap", "rules": [{"users": ["gus"]}]},
    ],
    "numbers": [
        {"did": did, "name": "Acme Operations", "routes": [{"label": "ops", "policy": policy}],
         "responders": {"ring_timeout_s": 120, "accept_window_s": 5, "accept_keys": "1"},
         "voicemail": {"enabled": False}}
        for did, policy in (("101", "quick"), ("102", "slow"), ("103", "gap"))
    ],
}  # fmt: skip


def config() -> Config:
    return parse_config(CONFIG)


@pytest.fixture
async def stack(database: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(config(), database, tmp_path, time_scale=TIME_SCALE) as running:
        for name, steps in SCRIPTS.items():
            running.sim.register_script(name, steps)
        yield running


async def get(stack: Stack, path: str) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{stack.daemon.http_port}{path}"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, timeout=aiohttp.ClientTimeout(5)) as reply:
            if path == "/metrics":
                return reply.status, await reply.text()
            return reply.status, await reply.json()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_ready(stack: Stack, expected: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await get(stack, "/readyz")
        if status == expected:
            return dict(body)
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz stayed {status}: {body}")
        await asyncio.sleep(0.05)


@pytest.mark.timeout(30)
async def test_health_readiness_and_metrics_after_a_call(stack: Stack) -> None:
    assert await get(stack, "/healthz") == (200, {"status": "alive"})
    ready = await wait_ready(stack, 200, 5)
    assert ready["ari_connected"] and ready["database"] and ready["accepting_calls"]

    caller = await stack.place_call("stay2", "101")
    await stack.wait_calls_done(15)
    (alert,) = await stack.alerts()
    assert alert["ended_reason"] == "connected"
    assert stack.leftovers() == NOTHING_LEFT

    status, text = await get(stack, "/metrics")
    assert status == 200
    found = samples(text)
    assert found[("callrouting_calls_total", (("outcome", "connected"),))] == 1
    assert found[("callrouting_legs_total", (("outcome", "accepted"),))] == 1
    assert found[("callrouting_calls_in_progress", ())] == 0
    assert found[("callrouting_time_to_answer_seconds_count", ())] == 1
    assert found[("callrouting_hunt_duration_seconds_count", ())] == 1
    # The responder accepted within a second of being called (phones run 10x fast).
    assert 0 < found[("callrouting_time_to_answer_seconds_sum", ())] < 1.0
    assert found[("callrouting_db_write_seconds_count", ())] >= 2  # alert, legs, timeline ...
    assert found[("callrouting_db_write_failures_total", ())] == 0
    assert found[("callrouting_db_pending_records", ())] == 0
    assert found[("callrouting_ari_connected", ())] == 1
    assert found[("callrouting_ari_reconnects_total", ())] == 0
    assert caller in stack.sim.asterisk.gone_channels

    # A call to a number we do not route is counted too (and makes no alert).
    await stack.place_call("stay2", "999")
    await stack.wait_calls_done(10)
    _, text = await get(stack, "/metrics")
    assert samples(text)[("callrouting_calls_total", (("outcome", "unknown_number"),))] == 1


@pytest.mark.timeout(30)
async def test_readyz_is_503_while_asterisk_is_away_and_200_again_after_reconnecting(
    stack: Stack,
) -> None:
    await wait_ready(stack, 200, 5)
    # Asterisk restarts: the websocket drops and ARI answers 503 while it boots.
    await stack.sim.restart(downtime=1.5)
    body = await wait_ready(stack, 503, 2)
    assert body["ari_connected"] is False and body["database"] is True
    assert (await get(stack, "/healthz"))[0] == 200  # alive all along: no restart wanted

    body = await wait_ready(stack, 200, 8)
    assert body["ari_connected"] is True
    _, text = await get(stack, "/metrics")
    assert samples(text)[("callrouting_ari_reconnects_total", ())] == 1


@pytest.mark.timeout(20)
async def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    nowhere = f"postgresql://callrouting@127.0.0.1:{free_port()}/callrouting"
    async with running_stack(config(), nowhere, tmp_path, time_scale=TIME_SCALE) as stack:
        body = await wait_ready(stack, 503, 5)
        assert body["database"] is False and body["ari_connected"] is True
        assert (await get(stack, "/healthz"))[0] == 200


@pytest.mark.timeout(30)
async def test_a_dropped_websocket_during_hold_music_does_not_lose_the_call(
    stack: Stack,
) -> None:
    caller = await stack.place_call("stay9", "102")
    sim = stack.sim
    # The responder's phone rings for 5 s while the caller hears hold music.
    await wait_until(lambda: bool(sim.channels_of_script("slow_accept")), 5, "the responder leg")
    await wait_until(
        lambda: caller in sim.asterisk.channels and sim.asterisk.channels[caller].moh is not None,
        5,
        "hold music",
    )
    # A network failure is instant; a fault hook that takes longer tests something else.
    async with asyncio.timeout(3):
        await sim.drop_websockets()
    await wait_until(lambda: stack.daemon.events.is_connected, 5, "the reconnection")

    await stack.wait_calls_done(20)
    (alert,) = await stack.alerts()
    assert alert["ended_reason"] == "connected", alert["calls"][0]["timeline"]
    assert alert["acknowledged_by"] == "sam"
    assert stack.leftovers() == NOTHING_LEFT
    assert stack.daemon.controller.calls == {}
    assert len(stack.daemon.router) == 0, "mailboxes of the call are still registered"
    _, text = await get(stack, "/metrics")
    assert samples(text)[("callrouting_ari_reconnects_total", ())] == 1


@pytest.mark.timeout(20)
async def test_application_replaced_marks_not_ready_and_steps_aside(stack: Stack) -> None:
    await wait_ready(stack, 200, 5)
    auth = base64.b64encode(f"{SIM_USER}:{SIM_PASSWORD}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as session:
        # Another controller opens the events websocket of the same app.
        async with session.ws_connect(
            f"{stack.sim.ari_url}/events", params={"app": "callrouting"}
        ) as intruder:
            body = await wait_ready(stack, 503, 5)
            assert body["owns_app"] is False
            assert stack.daemon.replaced
            # It does not fight back: after a while the newcomer still owns the app.
            await asyncio.sleep(0.5)
            assert not stack.daemon.events.is_connected
            assert not intruder.closed
            assert (await get(stack, "/healthz"))[0] == 200


@pytest.mark.timeout(30)
async def test_a_responder_answering_while_the_websocket_is_down_is_noticed_at_reconnect(
    stack: Stack,
) -> None:
    await stack.place_call("stay9", "103")
    sim = stack.sim
    await wait_until(lambda: bool(sim.channels_of_script("gap_accept")), 5, "the responder leg")
    # The websocket is down for 2.5 s; the responder answers 1.5 s after being called.
    sim.faults.booting_until = time.monotonic() + 2.5
    async with asyncio.timeout(3):
        await sim.drop_websockets()
    await wait_until(lambda: stack.daemon.events.is_connected, 8, "the reconnection")

    await stack.wait_calls_done(20)
    (alert,) = await stack.alerts()
    # Asterisk cannot put a leg answered in the gap into an app without a websocket, and hangs
    # it up (DESIGN: new Stasis entries fail while disconnected). What matters is that the
    # controller notices at once after reconnecting, instead of leaving the caller holding
    # until the ring guard or the caller gives up: the hunt moves on (here: nobody left).
    legs = alert["calls"][0]["legs"]
    assert [leg["outcome"] for leg in legs] == ["failed"], alert["calls"][0]["timeline"]
    assert alert["ended_reason"] == "nobody_available"
    assert (legs[0]["ended_at"] - legs[0]["placed_at"]).total_seconds() < 6
    assert stack.leftovers() == NOTHING_LEFT
