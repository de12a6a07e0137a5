"""An active and a standby daemon (`failover`) for one simulated Asterisk and one Postgres,
as real processes: the standby waits, connected to nothing but the database; when the active
one is killed, the standby takes the lease once it expired and picks every call up, as a
restarted daemon would; an active one frozen past its lease and woken again steps aside
without touching a call. Timers are shortened (a lease of 1.5 s, renewed every 0.25 s)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ari_controller.simulator.server import Simulator
from tests.test_daemon_service import (
    DaemonProcess,
    NotifySocket,
    alerts_by_channel,
    connections,
    notify,  # noqa: F401 (a fixture the tests take)
    place_call,
    simulator,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

LEASE_S = 1.5
RENEW_S = 0.25
# From the active daemon's death to the standby driving the calls, at most (the bar).
TAKEOVER_LIMIT_S = 3.0

SCRIPTS: dict[str, list[Any]] = {
    # chooses at once and talks until well after the takeover
    "talks": ["answer", {"wait": 1}, {"dtmf": "1"}, {"wait": 14}, "hangup"],
    # listens to the menu through the takeover (a key pressed while no daemon drives the
    # call is lost: the menu is said again after it), then chooses
    "chooses_late": ["answer", {"wait": 12}, {"dtmf": "1"}, {"wait": 4}, "hangup"],
    # a responder who answers at once and accepts
    "accepts": ["answer", {"wait": 0.5}, {"dtmf": "1"}, {"wait": 300}, "hangup"],
    # chooses the route whose first responder declines, and waits for the second
    "to_next": ["answer", {"wait": 1}, {"dtmf": "3"}, {"wait": 8}, "hangup"],
    # a responder whose phone rings a moment, then declines (while no daemon drives the call)
    "declines": ["ring", {"wait": 1}, {"hangup": {"cause": 21}}],
}


def sections(sim: Simulator, dsn: str, member: str) -> dict[str, Any]:
    return {
        **connections(sim, dsn),
        "failover": {
            "enabled": True,
            "lease_s": LEASE_S,
            "renew_every_s": RENEW_S,
            "member": member,
        },
        "users": [
            {"id": "quinn", "name": "Quinn", "contacts": ["Local/accepts@responders"]},
            {"id": "rob", "name": "Rob", "contacts": ["Local/declines@responders"]},
        ],
        "escalation_policies": [
            {"id": "quick", "name": "Quick", "rules": [{"users": ["quinn"]}]},
            {"id": "next", "name": "Next", "rules": [{"users": ["rob"]}, {"users": ["quinn"]}]},
        ],
        "numbers": [
            {
                "did": "100",
                "name": "Acme Operations",
                "routes": [
                    {"label": "operations", "policy": "quick"},
                    {"label": "operations again", "policy": "quick"},
                    {"label": "next in line", "policy": "next"},
                ],
                "responders": {"ring_timeout_s": 30, "accept_window_s": 5, "accept_keys": "1"},
                "voicemail": {"enabled": False},
            }
        ],
    }


async def daemon(
    tmp_path: Path, sim: Simulator, dsn: str, member: str, sock: NotifySocket
) -> DaemonProcess:
    home = tmp_path / member
    home.mkdir()
    (home / "sounds").symlink_to(tmp_path / "sounds", target_is_directory=True)
    config = home / "config.yaml"
    write_config(config, sections(sim, dsn, member))
    return DaemonProcess(config, sock, drain_s=2.0)


@pytest.fixture
async def pair(
    tmp_path: Path,
    database: str,
    notify: NotifySocket,  # noqa: F811 (the fixture imported above)
) -> AsyncIterator[tuple[Simulator, DaemonProcess, DaemonProcess]]:
    (tmp_path / "sounds").mkdir()
    async with simulator(tmp_path, SCRIPTS, 1.0) as sim:
        first = await daemon(tmp_path, sim, database, "a", notify)
        second = await daemon(tmp_path, sim, database, "b", notify)
        try:
            await first.start()
            await second.start(standby=True)
            yield sim, first, second
        finally:
            for each in (first, second):
                if each.proc is not None and each.proc.returncode is None:
                    each.signal(signal.SIGCONT)
                await each.kill()


async def talking_to_a_responder(database: str, caller: str) -> None:
    """Until the call is a conversation (in the store): a key pressed while no daemon drives
    a call is lost, so the faults come once the responder has accepted."""
    deadline = time.monotonic() + 15
    while True:
        alert = (await alerts_by_channel(database)).get(caller)
        if alert and any(e["kind"] == "bridged" for e in alert["calls"][0]["timeline"]):
            return
        assert time.monotonic() < deadline, "the caller never talked to a responder"
        await asyncio.sleep(0.1)


async def readyz(process: DaemonProcess) -> dict[str, Any]:
    status, body = await process.get("/readyz")
    assert isinstance(body, dict)
    return {"status": status, **body}


async def test_the_standby_takes_over_a_killed_active_daemon_and_every_call_goes_on(
    pair: tuple[Simulator, DaemonProcess, DaemonProcess], database: str
) -> None:
    sim, active, standby = pair
    seen = await readyz(standby)
    assert (seen["status"], seen["role"], seen["fencing"]) == (200, "standby", None)

    async def standby_seen() -> bool:
        return bool((await readyz(active))["standby_present"])

    deadline = time.monotonic() + 3
    while not await standby_seen():
        assert time.monotonic() < deadline, "the active daemon never saw its standby"
        await asyncio.sleep(0.1)
    seen = await readyz(active)
    assert (seen["role"], seen["fencing"], seen["member"]) == ("active", 1, "a")

    talking = await place_call(sim, "talks", "100")
    choosing = await place_call(sim, "chooses_late", "100")
    await talking_to_a_responder(database, talking)

    killed = time.monotonic()
    await active.kill()
    await standby.wait_log("calls_picked_up", timeout=TAKEOVER_LIMIT_S + 2)
    took = time.monotonic() - killed
    print(f"takeover: {took:.2f} s from the kill to the standby driving the calls")
    assert took < TAKEOVER_LIMIT_S

    seen = await readyz(standby)
    assert (seen["status"], seen["role"], seen["fencing"]) == (200, "active", 2)
    await wait_until(lambda: not sim.asterisk.channels, 30, "both calls ended")
    alerts = await alerts_by_channel(database)
    assert set(alerts) == {talking, choosing}  # one alert each, none doubled
    assert alerts[talking]["ended_reason"] == "connected"
    assert alerts[choosing]["ended_reason"] == "connected"
    kinds = [event["kind"] for event in alerts[choosing]["calls"][0]["timeline"]]
    assert kinds.count("call_resumed") == 1 and kinds.count("route_chosen") == 1
    _, metrics = await standby.get("/metrics")
    assert "callrouting_controller_active 1.0" in metrics
    assert "callrouting_controller_fencing 2.0" in metrics


async def test_an_active_daemon_frozen_past_its_lease_steps_aside_when_it_wakes(
    pair: tuple[Simulator, DaemonProcess, DaemonProcess], database: str
) -> None:
    sim, active, standby = pair
    talking = await place_call(sim, "talks", "100")
    await talking_to_a_responder(database, talking)
    active.signal(signal.SIGSTOP)
    await standby.wait_log("calls_picked_up", timeout=TAKEOVER_LIMIT_S + 2)
    await asyncio.sleep(0.5)
    active.signal(signal.SIGCONT)
    code = await active.wait_exit(15)
    assert code == 1  # for its supervisor to start it again, as a standby
    await active.wait_log("controller_stepping_aside", timeout=1)
    refused = [e for e in active.logs if e.get("event") == "store_write_fenced"]
    await wait_until(lambda: not sim.asterisk.channels, 30, "the call ended")
    alerts = await alerts_by_channel(database)
    assert set(alerts) == {talking}
    story = "\n".join(
        f"{e['at']} {e['kind']} {e['data']}" for e in alerts[talking]["calls"][0]["timeline"]
    )
    assert alerts[talking]["ended_reason"] == "connected", story
    kinds = [event["kind"] for event in alerts[talking]["calls"][0]["timeline"]]
    assert "controller_error" not in kinds, kinds
    assert kinds.count("call_ended") == 1, kinds
    print(f"records the woken daemon was refused: {sum(e['records'] for e in refused)}")


async def test_a_handover_gives_the_calls_to_the_standby_and_the_old_one_exits_0(
    pair: tuple[Simulator, DaemonProcess, DaemonProcess], database: str
) -> None:
    sim, active, standby = pair
    talking = await place_call(sim, "talks", "100")
    choosing = await place_call(sim, "chooses_late", "100")
    await talking_to_a_responder(database, talking)
    await asyncio.sleep(2 * RENEW_S * 4)  # the active one has seen its standby by now
    handover = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ari_controller.cli", "handover",
        "--config", str(standby.config_path), "--wait", "10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await handover.communicate()
    assert handover.returncode == 0, (out, err)
    assert b"b drives 'callrouting' now (fencing 2)" in out
    assert await active.wait_exit(15) == 0
    await active.wait_log("handed_over", timeout=1, where=lambda e: e["all_written"])
    await standby.wait_log("calls_picked_up", timeout=5)
    await wait_until(lambda: not sim.asterisk.channels, 30, "both calls ended")
    alerts = await alerts_by_channel(database)
    assert set(alerts) == {talking, choosing}
    assert [alerts[c]["ended_reason"] for c in (talking, choosing)] == ["connected"] * 2
    for channel in (talking, choosing):
        kinds = [event["kind"] for event in alerts[channel]["calls"][0]["timeline"]]
        assert "controller_error" not in kinds and kinds.count("call_ended") == 1, kinds


async def test_a_handover_without_a_standby_is_refused(
    pair: tuple[Simulator, DaemonProcess, DaemonProcess],
) -> None:
    _sim, active, standby = pair
    await standby.kill()
    await asyncio.sleep(RENEW_S * 5)  # long enough not to count as present any more
    handover = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ari_controller.cli", "handover",
        "--config", str(active.config_path), "--wait", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await handover.communicate()
    assert handover.returncode == 1 and b"no standby" in err
    seen = await readyz(active)
    assert (seen["status"], seen["role"], seen["standby_present"]) == (200, "active", False)


async def test_a_takeover_mid_hunt_goes_on_with_the_next_responder_within_3_s(
    pair: tuple[Simulator, DaemonProcess, DaemonProcess], database: str
) -> None:
    """The active daemon dies while the first responder's phone rings; that responder
    declines a second later, while no daemon drives the call (a takeover takes longer). The
    standby finds the leg gone and rings the next responder: within 3 s of the death, the
    caller is on the way to a person again."""
    sim, active, _standby = pair
    caller = await place_call(sim, "to_next", "100")
    await wait_until(lambda: bool(sim.channels_of_script("declines")), 10, "rob ringing")
    killed = time.monotonic()
    await active.kill()
    await wait_until(
        lambda: bool(sim.channels_of_script("accepts")), TAKEOVER_LIMIT_S + 2, "quinn ringing"
    )
    took = time.monotonic() - killed
    print(f"the next responder rang {took:.2f} s after the active daemon died")
    assert took < TAKEOVER_LIMIT_S
    await wait_until(lambda: not sim.asterisk.channels, 30, "the call ended")
    alert = (await alerts_by_channel(database))[caller]
    legs = [(leg["user_id"], leg["outcome"]) for leg in alert["calls"][0]["legs"]]
    assert [user for user, _ in legs] == ["rob", "quinn"], legs
    assert legs[1][1] == "accepted" and alert["ended_reason"] == "connected", legs


async def test_sigterm_with_a_standby_there_hands_the_calls_over(
    pair: tuple[Simulator, DaemonProcess, DaemonProcess], database: str
) -> None:
    """`systemctl stop` or `restart` of the active daemon (an upgrade, a host going down)
    while a standby is there: the standby takes the calls on, as with `handover`."""
    sim, active, standby = pair
    choosing = await place_call(sim, "chooses_late", "100")
    await wait_until(lambda: bool(sim.media(choosing)), 5, "the greeting")
    await asyncio.sleep(RENEW_S * 4)  # the active one has seen its standby by now
    active.signal(signal.SIGTERM)
    assert await active.wait_exit(15) == 0
    await active.wait_log("handed_over", timeout=1, where=lambda e: e["all_written"])
    await standby.wait_log("calls_picked_up", timeout=5)
    await wait_until(lambda: not sim.asterisk.channels, 30, "the call ended")
    alert = (await alerts_by_channel(database))[choosing]
    kinds = [event["kind"] for event in alert["calls"][0]["timeline"]]
    assert alert["ended_reason"] == "connected", kinds
    assert "call_resumed" in kinds and kinds.count("call_ended") == 1, kinds


async def test_a_clean_stop_without_a_standby_writes_every_record_before_it_lets_go(
    pair: tuple[Simulator, DaemonProcess, DaemonProcess], database: str
) -> None:
    """SIGTERM with nobody to take over: the call still in the menu when the drain ends goes
    back to the dialplan, and that is on record (a released lease takes no more writes)."""
    sim, active, standby = pair
    await standby.kill()
    await asyncio.sleep(RENEW_S * 5)  # long enough not to count as present any more
    caller = await place_call(sim, "chooses_late", "100")
    await wait_until(lambda: bool(sim.media(caller)), 5, "the greeting")
    active.signal(signal.SIGTERM)
    assert await active.wait_exit(15) == 0
    stopped = next(e for e in active.logs if e.get("event") == "daemon_stopped")
    assert stopped["handed_back"] == 1 and stopped["all_written"], stopped
    assert not [e for e in active.logs if e.get("event") == "store_write_fenced"]
    alert = (await alerts_by_channel(database))[caller]
    assert alert["ended_reason"] == "handed_back", alert["calls"][0]["timeline"]
