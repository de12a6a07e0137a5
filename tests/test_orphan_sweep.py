"""A caller whose arrival the controller missed is not left in silence: the sweep adopts
channels that sit in the application with no call owning them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ari_controller.config import parse_config
from ari_controller.simulator.inspect import NOTHING_LEFT
from ari_controller.testing.harness import running_stack

TIME_SCALE = 8.0
APP = "callrouting"

CONFIG: dict[str, Any] = {
    "asterisk": {"app": APP, "sweep_interval_s": 0.3},
    "users": [{"id": "ana", "name": "Ana Accepts", "contacts": ["Local/accept@responders"]}],
    "escalation_policies": [{"id": "db", "rules": [{"users": ["ana"]}]}],
    "numbers": [
        {
            "did": "100",
            "name": "Acme Operations",
            "routes": [{"label": "database", "policy": "db"}],
            "menu": {"input_timeout_s": 3},
            "voicemail": {"enabled": False},
        }
    ],
}
# Presses 1, is connected, talks a little (simulated seconds), hangs up.
CALLER = [{"answer": {}}, {"wait": 3}, {"dtmf": "1"}, {"wait": 40}, {"hangup": {}}]


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_caller_whose_arrival_was_missed_is_adopted_and_served(
    database: str, tmp_path: Path
) -> None:
    config = parse_config(CONFIG, "orphans")
    async with running_stack(config, database, tmp_path, time_scale=TIME_SCALE) as stack:
        stack.sim.register_script("talks", CALLER)
        router = stack.daemon.router
        handler = router.on_new_channel
        router.on_new_channel = None  # the StasisStart is lost (or handling it failed)
        try:
            missed = await stack.place_call("talks", "100")

            def in_app() -> bool:
                channel = stack.sim.asterisk.channels.get(missed)
                return channel is not None and channel.stasis_app == APP

            await wait_until(in_app, 5, "the caller in the application")
            await asyncio.sleep(0.1)  # its StasisStart has been read (and dropped) by now
        finally:
            router.on_new_channel = handler
        assert router.owner(missed) is None  # nobody serves this caller...
        # ...meanwhile a call that arrives normally is not taken over twice by the sweep.
        normal = await stack.place_call("talks", "100")
        # Seen unowned by two sweeps 0.3 s apart: adopted as if it had just arrived.
        await wait_until(lambda: router.owner(missed) is not None, 5, "the sweep")
        await stack.wait_calls_done(30)
        alerts = {alert["calls"][0]["caller_channel_id"]: alert for alert in await stack.alerts()}
        assert set(alerts) == {missed, normal}
        for channel in (missed, normal):
            assert alerts[channel]["ended_reason"] == "connected", alerts[channel]
            assert alerts[channel]["acknowledged_by"] == "ana"
        assert stack.leftovers() == NOTHING_LEFT


async def test_a_conversation_outlasting_many_sweeps_is_never_cut(
    database: str, tmp_path: Path
) -> None:
    """Asterisk subscribes the app to the `;2` half of every Local leg it originates; that half
    runs the dialplan, not Stasis. The sweep once took it for a missed caller and hung it up,
    ending the responder's side of the conversation after two sweeps."""
    config = parse_config(CONFIG, "long conversation")
    async with running_stack(config, database, tmp_path, time_scale=TIME_SCALE) as stack:
        stack.sim.register_script("talks", CALLER)
        started = time.monotonic()
        caller = await stack.place_call("talks", "100")
        await wait_until(lambda: bool(stack.sim.live()["bridges"]), 10, "the conversation")
        channels = {c["id"]: c for c in stack.sim.live()["channels"]}
        await stack.wait_calls_done(30)
        lasted = time.monotonic() - started
        [alert] = await stack.alerts()
        unknown = stack.daemon.metrics.calls.labels("unknown_number")._value.get()

    assert alert["ended_reason"] == "connected"
    hangups = [e["data"] for e in alert["calls"][0]["timeline"] if e["kind"] == "hangup"]
    # The caller ends the conversation after talking 40 simulated seconds (5 s, about 16
    # sweeps), not the responder's side being hung up under it.
    assert hangups == [{"by": "caller"}]
    assert lasted >= 43 / TIME_SCALE
    assert unknown == 0  # no half of a leg was taken for a call to an unknown number
    # The responder leg was placed on the caller's behalf (originator), as Dial does: one call
    # (linkedid) with the caller's formats.
    [leg] = [c for c in channels.values() if c["id"].endswith("-leg1")]
    assert leg["linkedid"] == channels[caller]["linkedid"]
    assert leg["formats"] == channels[caller]["formats"]
