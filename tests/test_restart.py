"""`ari-controller run` SIGKILLed with calls in every phase, started again 2 s later.

Ten calls are in progress at the kill (greeting, menu, sequential and simultaneous ringing, a
responder hearing the whisper, two conversations, two voicemails being recorded, a caller on
hold); three of the callers hang up while no daemon runs. The simulated Asterisk keeps them
all, as a real one does (channels stay in Stasis, media and recordings go on, events are
lost). The restarted daemon must end each call as it would have ended without the crash:
one alert per call, nothing left in Asterisk, and every caller hearing something again
within 3 s of the restart.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ari_controller.simulator.server import Simulator
from tests.restart_sections import restart_sections, simulated_responders
from tests.test_daemon_service import (
    SIM_PASSWORD,
    SIM_USER,
    DaemonProcess,
    NotifySocket,
    alerts_by_channel,
    connections,
    notify,  # noqa: F401 (a fixture the test takes)
    place_call,
    simulator,
    wait_until,
    write_config,
)

# Real time: the daemon's own timeouts and the phones' waits are on the same clock.
TIME_SCALE = 1.0
GAP_S = 2.0  # from the kill to the new process
# Phones act well after the restart (the kill comes once every call is in its phase).
LATER_S = 16

SCRIPTS: dict[str, list[Any]] = {
    # callers of number 300 (the test hangs up some of them while no daemon runs)
    "in_greeting": ["answer", {"wait": LATER_S}, {"dtmf": "1"}, {"wait": 6}, "hangup"],
    "in_menu": ["answer", {"wait": LATER_S + 10}, {"dtmf": "1"}, {"wait": 6}, "hangup"],
    "to_slow": ["answer", {"wait": 1}, {"dtmf": "2"}, {"wait": LATER_S + 8}, "hangup"],
    "to_both": ["answer", {"wait": 1}, {"dtmf": "3"}, {"wait": LATER_S + 8}, "hangup"],
    "to_whisper": ["answer", {"wait": 1}, {"dtmf": "4"}, {"wait": LATER_S + 8}, "hangup"],
    "to_quick": ["answer", {"wait": 1}, {"dtmf": "1"}, {"wait": LATER_S}, "hangup"],
    "to_quick_2": ["answer", {"wait": 1}, {"dtmf": "1"}, {"wait": 600}, "hangup"],
    "to_nobody": ["answer", {"wait": 1}, {"dtmf": "5"}, {"wait": 600}, "hangup"],
    # callers of number 301 (voicemail): one ends the message with # after the restart
    "leaves_message": ["answer", {"wait": 1}, {"dtmf": "1"}, {"wait": LATER_S}, {"dtmf": "#"},
                       {"wait": 10}, "hangup"],
    "leaves_message_2": ["answer", {"wait": 1}, {"dtmf": "1"}, {"wait": 600}, "hangup"],
    # responders
    **simulated_responders(LATER_S),
}  # fmt: skip


def restart_config(sim: Simulator, dsn: str) -> dict[str, Any]:
    return {
        **connections(sim, dsn),
        **restart_sections(lambda script: f"Local/{script}@responders", "300", "301"),
    }


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with simulator(tmp_path, SCRIPTS, TIME_SCALE) as started:
        yield started


async def hang_up(sim: Simulator, channel_id: str) -> None:
    """The caller hangs up (as the phone would: Asterisk ends the channel)."""
    auth = base64.b64encode(f"{SIM_USER}:{SIM_PASSWORD}".encode()).decode()
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as session,
        session.delete(sim.ari_url + f"/channels/{channel_id}") as reply,
    ):
        assert reply.status in (204, 404), await reply.text()


def media_after(sim: Simulator, channel_id: str, moment: float) -> float | None:
    """How long after `moment` (simulator clock) the channel has a prompt, hold music or a
    recording going again: 0 when one was still going on at that moment."""
    starts = []
    for item in sim.media(channel_id):
        ended = item["ended"]
        if item["started"] <= moment and (ended is None or ended > moment):
            return 0.0
        if item["started"] > moment:
            starts.append(item["started"] - moment)
    return min(starts) if starts else None


@pytest.mark.timeout(120)
async def test_a_daemon_killed_mid_call_picks_every_call_up_where_it_was(
    sim: Simulator,
    database: str,
    notify: NotifySocket,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "config.yaml"
    write_config(config_path, restart_config(sim, database))
    first = DaemonProcess(config_path, notify, drain_s=5.0)
    second = DaemonProcess(config_path, notify, drain_s=5.0)
    ast = sim.asterisk
    try:
        await first.start()
        calls = {
            "menu": await place_call(sim, "in_menu", "300"),
            "sequential": await place_call(sim, "to_slow", "300"),
            "simultaneous": await place_call(sim, "to_both", "300"),
            "whisper": await place_call(sim, "to_whisper", "300"),
            "connected": await place_call(sim, "to_quick", "300"),
            "connected_ends_in_gap": await place_call(sim, "to_quick_2", "300"),
            "hold_ends_in_gap": await place_call(sim, "to_nobody", "300"),
            "recording": await place_call(sim, "leaves_message", "301"),
            "recording_ends_in_gap": await place_call(sim, "leaves_message_2", "301"),
        }

        def live_legs(script: str) -> list[Any]:
            return [c for c in ast.channels.values() if c.id in sim.channels_of_script(script)]

        def recording_on(caller: str) -> bool:
            return any(r.channel.id == caller for r in ast.live_recordings.values())

        def bridged(caller: str) -> bool:
            channel = ast.channels.get(caller)
            return channel is not None and channel.bridge is not None

        # Every call in its phase before the kill.
        await wait_until(lambda: len(live_legs("slow")) == 2, 15, "the slow responders ringing")
        await wait_until(lambda: len(live_legs("rings_on")) == 2, 15, "ringing on and on")
        await wait_until(lambda: len(live_legs("whisperer")) == 1, 15, "the whisperer")
        await wait_until(lambda: bridged(calls["connected"]), 15, "a conversation")
        await wait_until(lambda: bridged(calls["connected_ends_in_gap"]), 15, "a conversation")
        await wait_until(lambda: recording_on(calls["recording"]), 15, "a message recorded")
        await wait_until(
            lambda: recording_on(calls["recording_ends_in_gap"]), 15, "a message recorded"
        )
        whisper_leg = live_legs("whisperer")[0]
        await wait_until(lambda: bool(sim.media(whisper_leg.id)), 5, "the whisper playing")

        def prompts_over(caller: str) -> bool:
            heard = sim.media(caller)
            return bool(heard) and all(item["ended"] is not None for item in heard)

        await wait_until(lambda: prompts_over(calls["menu"]), 15, "the menu caller's choice")
        # One more caller, still hearing the greeting when the daemon dies.
        calls["greeting"] = await place_call(sim, "in_greeting", "300")
        await wait_until(lambda: bool(sim.media(calls["greeting"])), 5, "the greeting")
        await asyncio.sleep(1.0)  # a second of each message is recorded before the crash
        assert not prompts_over(calls["greeting"])
        heard_before = {phase: len(sim.media(calls[phase])) for phase in ("greeting", "menu")}

        killed_at = ast.clock.now()
        await first.kill()
        # While no daemon runs: three callers hang up (one talking, one on hold, one leaving
        # a message); Asterisk ends the recording and keeps it.
        for phase in ("connected_ends_in_gap", "hold_ends_in_gap", "recording_ends_in_gap"):
            await hang_up(sim, calls[phase])
        await asyncio.sleep(GAP_S)
        restarted_at = ast.clock.now()
        started = time.monotonic()
        await second.start()
        picked_up = time.monotonic() - started
        resumed = await second.wait_log("calls_resumed", timeout=5)
        assert resumed["calls"] == 10, resumed

        async def all_ended() -> bool:
            alerts = await alerts_by_channel(database)
            return all(alerts.get(c, {}).get("ended_reason") for c in calls.values())

        deadline = time.monotonic() + 60
        while not await all_ended():
            assert time.monotonic() < deadline, second.logs[-20:]
            await asyncio.sleep(0.3)
        await wait_until(
            lambda: sim.leftovers()["channels"] == [] and sim.leftovers()["bridges"] == [],
            15,
            "nothing left in Asterisk",
        )
    finally:
        await first.kill()
        await second.kill()

    alerts = await alerts_by_channel(database)
    # One alert per call, never two: a caller picked up again is the same call.
    assert len(alerts) == len(calls)
    assert len({a["id"] for a in alerts.values()}) == len(calls)

    def alert(phase: str) -> dict[str, Any]:
        return alerts[calls[phase]]

    def legs(phase: str) -> list[tuple[str, str]]:
        return [(leg["user_id"], leg["outcome"]) for leg in alert(phase)["calls"][0]["legs"]]

    def kinds(phase: str) -> list[str]:
        return [event["kind"] for event in alert(phase)["calls"][0]["timeline"]]

    ended = {phase: alert(phase)["ended_reason"] for phase in calls}
    assert ended == {
        "menu": "connected",
        "greeting": "connected",
        "sequential": "connected",
        "simultaneous": "connected",
        "whisper": "connected",
        "connected": "connected",
        "connected_ends_in_gap": "connected",
        "hold_ends_in_gap": "abandoned",
        "recording": "voicemail",
        "recording_ends_in_gap": "voicemail",
    }, ended
    for phase in calls:
        assert "call_resumed" in kinds(phase), (phase, kinds(phase))
        seqs = [event["seq"] for event in alert(phase)["calls"][0]["timeline"]]
        assert seqs == list(range(1, len(seqs) + 1)), (phase, seqs)  # one timeline, no gaps

    # The callers in the greeting and in the menu chose after the restart, without hearing
    # the greeting again.
    for phase in ("greeting", "menu"):
        assert legs(phase) == [("quinn", "accepted")], phase
        assert alert(phase)["acknowledged_by"] == "quinn"
    # The ringing legs were adopted, not rung again: the same responder picks up the call.
    assert legs("sequential") == [("sam", "accepted")]
    assert sorted(legs("simultaneous")) == [("nora", "taken_by_other"), ("sue", "accepted")]
    assert legs("whisper") == [("wendy", "accepted")]
    assert "leg_adopted" in kinds("whisper")
    # Answered before the crash: the answer stays on record (it was not lost with the run).
    assert alert("whisper")["calls"][0]["legs"][0]["answered_at"] is not None
    # Conversations: completed (resolved on end) when they end, before or after the restart.
    for phase in ("connected", "connected_ends_in_gap"):
        assert legs(phase) == [("quinn", "accepted")]
        assert alert(phase)["status"] == "resolved", alert(phase)
    assert "caller_left_during_restart" in kinds("connected_ends_in_gap")
    # The caller who gave up on hold: the leg is let go and the team hears of it.
    assert legs("hold_ends_in_gap") == [("nora", "abandoned")]
    assert alert("hold_ends_in_gap")["escalation_count"] == 1
    # Messages: both kept with their audio, one ended by # after the restart, one by a
    # hang-up while no daemon ran; each escalated once.
    for phase in ("recording", "recording_ends_in_gap"):
        voicemail = alert(phase)["voicemail"]
        assert voicemail is not None and voicemail["audio_bytes"] > 44, (phase, str(voicemail))
        assert alert(phase)["escalation_count"] == 1
    assert sim.leftovers() == {"channels": [], "bridges": [], "playbacks": [], "recordings": []}

    # Without a driver: every caller still there hears something again soon after restart.
    silent = {
        phase: media_after(sim, calls[phase], restarted_at)
        for phase in ("greeting", "menu", "sequential", "simultaneous", "whisper", "recording")
    }
    print(
        f"\nkilled at {killed_at:.2f}, restarted {GAP_S} s later, calls picked up"
        f" {picked_up:.2f} s after the new process started; caller silent after the restart"
        f" (s): {silent}"
    )
    for phase, wait in silent.items():
        assert wait is not None and wait < 3.0, (phase, wait)
    # The greeting was not played again after the restart: the menu was.
    for phase in ("greeting", "menu"):
        heard = sim.media(calls[phase])
        greeting_uri = heard[0]["media"]
        replayed = [item["media"] for item in heard[heard_before[phase] :]]
        assert replayed and greeting_uri not in replayed, (phase, greeting_uri, replayed)


@pytest.mark.timeout(60)
async def test_a_responder_who_answers_while_no_daemon_runs_loses_it_and_the_hunt_goes_on(
    sim: Simulator,
    database: str,
    notify: NotifySocket,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """The known limit, pinned: a leg originated with `app=` enters the application only on
    answer, and Asterisk hangs it up when no daemon is connected then (cause 0). The
    restarted daemon records the leg as over and rings the next responder of the plan."""
    sim.register_script("answers_in_gap", ["ring", {"wait": 3}, "answer", {"wait": 8},
                                           {"dtmf": "1"}, {"wait": 600}, "hangup"])  # fmt: skip
    config = restart_config(sim, database)
    config["users"].append(
        {"id": "gia", "name": "Gia", "contacts": ["Local/answers_in_gap@responders"]}
    )
    config["escalation_policies"].append(
        {"id": "gap", "rules": [{"users": ["gia"]}, {"users": ["quinn"]}]}
    )
    config["numbers"][0]["routes"].append({"label": "gap", "policy": "gap", "digit": "6"})
    sim.register_script("to_gap", ["answer", {"wait": 1}, {"dtmf": "6"}, {"wait": 20}, "hangup"])
    config_path = tmp_path / "config.yaml"
    write_config(config_path, config)
    first = DaemonProcess(config_path, notify, drain_s=5.0)
    second = DaemonProcess(config_path, notify, drain_s=5.0)
    try:
        await first.start()
        caller = await place_call(sim, "to_gap", "300")
        await wait_until(lambda: bool(sim.channels_of_script("answers_in_gap")), 15, "the ring")
        (leg,) = sim.channels_of_script("answers_in_gap")
        await asyncio.sleep(1.0)
        await first.kill()
        await wait_until(lambda: leg in sim.asterisk.gone_channels, 5, "the answer in the gap")
        await asyncio.sleep(max(0.0, GAP_S - 1.0))
        await second.start()

        async def ended() -> dict[str, Any] | None:
            alert = (await alerts_by_channel(database)).get(caller)
            return alert if alert is not None and alert["ended_reason"] else None

        deadline = time.monotonic() + 40
        while (alert := await ended()) is None:
            assert time.monotonic() < deadline, second.logs[-20:]
            await asyncio.sleep(0.3)
    finally:
        await first.kill()
        await second.kill()
    assert alert["ended_reason"] == "connected"
    assert alert["acknowledged_by"] == "quinn"
    legs = [(leg["user_id"], leg["outcome"]) for leg in alert["calls"][0]["legs"]]
    assert legs == [("gia", "unobserved"), ("quinn", "accepted")]
    assert sim.leftovers() == {"channels": [], "bridges": [], "playbacks": [], "recordings": []}
