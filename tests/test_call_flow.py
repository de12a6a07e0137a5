"""The call flow end to end: the simulator plays Asterisk and the phones, the daemon handles
the calls, Postgres keeps the alerts. Each test asserts what the caller heard, which legs were
placed, the alert and its timeline, and that nothing is left over in Asterisk."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ari_controller.config import Config, load_config
from ari_controller.simulator import inspect
from ari_controller.simulator.inspect import NOTHING_LEFT
from ari_controller.testing.harness import Stack, running_stack

FLOW = Path(__file__).parent / "data" / "flow.yaml"
TIME_SCALE = 40.0


@pytest.fixture(scope="session")
def sounds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prompts are rendered once for the whole session."""
    return tmp_path_factory.mktemp("sounds")


# Callers who hang up a while after being connected, so each test's call ends soon.
CALLERS = {
    "dial1": [{"answer": {}}, {"wait": 3}, {"dtmf": "1"}, {"wait": 40}, {"hangup": {}}],
    "dial3": [{"answer": {}}, {"wait": 3}, {"dtmf": "3"}, {"wait": 40}, {"hangup": {}}],
    "dial7": [{"answer": {}}, {"wait": 3}, {"dtmf": "7"}, {"wait": 80}, {"hangup": {}}],
    "dial9then1": [
        {"answer": {}},
        {"wait": 2},
        {"dtmf": "9"},
        {"wait": 3},
        {"dtmf": "1"},
        {"wait": 40},
        {"hangup": {}},
    ],
    "star_then1": [
        {"answer": {}},
        {"wait": 2},
        {"dtmf": "*"},
        {"wait": 8},  # long enough for the replayed menu to be heard, even on a busy machine
        {"dtmf": "1"},
        {"wait": 40},
        {"hangup": {}},
    ],
    "hold_on": [{"answer": {}}, {"wait": 40}, {"hangup": {}}],
}


@pytest.fixture
def flow_config() -> Config:
    return load_config(FLOW)


@pytest.fixture
async def stack(
    flow_config: Config, database: str, tmp_path: Path, sounds_dir: Path
) -> AsyncIterator[Stack]:
    async with running_stack(
        flow_config, database, tmp_path, time_scale=TIME_SCALE, sounds_dir=sounds_dir
    ) as running:
        for name, steps in CALLERS.items():
            running.sim.register_script(name, steps)
        yield running
        # Every test ends with nothing left behind in Asterisk.
        await running.wait_calls_done(30)
        assert running.leftovers() == NOTHING_LEFT


async def one_call(
    stack: Stack, script: str, did: str, timeout: float = 30
) -> tuple[str, dict[str, Any]]:
    channel = await stack.place_call(script, did)
    await stack.wait_calls_done(timeout)
    alerts = await stack.alerts()
    assert len(alerts) == 1
    return channel, alerts[0]


def timeline(alert: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["kind"], e["data"]) for e in alert["calls"][0]["timeline"]]


def kinds(alert: dict[str, Any]) -> list[str]:
    return [kind for kind, _ in timeline(alert)]


def legs(alert: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(leg["user_id"], leg["contact"], leg["outcome"]) for leg in alert["calls"][0]["legs"]]


def originated(stack: Stack) -> list[str]:
    return [h["endpoint"] for h in inspect.history(stack.sim.asterisk) if h["kind"] != "inbound"]


MENU_100 = [
    "You have reached Acme Operations.",
    "For the database team, press 1.",
    "For site reliability, press 2.",
    "For a field engineer, press 3.",
    "For the slow team, press 7.",
    "To hear these options again, press star.",
]


async def test_sequential_hunt_busy_decline_accept_then_bridge(stack: Stack) -> None:
    caller, alert = await one_call(stack, "dial1", "100")
    heard = stack.heard(caller)
    # The digit cut the menu short; then the caller was asked to hold.
    assert heard[0] == MENU_100[0]
    assert heard[-1] == "Please hold while we connect you."
    assert all(text in MENU_100 for text in heard[:-1])
    assert originated(stack) == [
        "Local/busy@responders",
        "Local/decline@responders",
        "Local/accept@responders",
    ]
    assert legs(alert) == [
        ("bea-busy", "Local/busy@responders", "busy"),
        ("dan-declines", "Local/decline@responders", "declined"),
        ("ana-accepts", "Local/accept@responders", "accepted"),
    ]
    accepted_leg = alert["calls"][0]["legs"][2]
    assert accepted_leg["answered_at"] is not None
    assert stack.heard(accepted_leg["id"])[0] == (
        "This is Acme Operations. You have a caller on hold."
    )
    assert alert["route"] == "the database team"
    assert alert["status"] == "resolved"  # resolve_on_end
    assert alert["acknowledged_by"] == "ana-accepts" and alert["ended_reason"] == "connected"
    k = kinds(alert)
    assert k.index("route_chosen") < k.index("plan") < k.index("leg_placed") < k.index("bridged")
    assert k[-1] == "call_ended"
    bridged = dict(timeline(alert))["bridged"]
    assert bridged["responder"] == "ana-accepts"
    # The caller held with music between prompt and bridge.
    media = inspect.channel_media(stack.sim.asterisk, caller)
    assert any(m["kind"] == "moh" for m in media)


async def test_bridge_membership_while_talking(stack: Stack) -> None:
    caller = await stack.place_call("dial1", "100")
    for _ in range(400):
        bridges = list(stack.sim.asterisk.bridges.values())
        if bridges and len(bridges[0].channels) == 2:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("caller and responder were never bridged")
    members = {channel.id for channel in bridges[0].channels}
    assert caller in members
    assert bridges[0].kind == "mixing"
    # The responder hangs up first (their script ends); the caller is then hung up too.
    await stack.wait_calls_done(60)
    alert = (await stack.alerts())[0]
    assert dict(timeline(alert))["hangup"]["by"] in ("caller", "responder")


async def test_no_answer_decline_key_silence_and_rejection_move_on(stack: Stack) -> None:
    caller, alert = await one_call(stack, "dial9then1", "100")  # 9 is invalid, then 1...
    # ... so it reached the database team after hearing that 9 is not valid.
    assert "Sorry, that is not a valid choice." in stack.heard(caller)
    assert alert["route"] == "the database team"


async def test_slow_team_outcomes(stack: Stack, flow_config: Config) -> None:
    _, alert = await one_call(stack, "dial7", "100", timeout=60)
    assert legs(alert) == [
        ("nick-noanswer", "Local/noanswer@responders", "no_answer"),  # ring timeout
        ("kim-key", "Local/decline_key@responders", "declined"),  # pressed the decline key
        ("sid-silent", "Local/silent@responders", "no_answer"),  # answered, never pressed
        ("rex-rejects", "Local/hangup_while_ringing@responders", "declined"),  # cause 21
        ("ana-accepts", "Local/accept@responders", "accepted"),
    ]
    causes = [leg["hangup_cause"] for leg in alert["calls"][0]["legs"]]
    assert causes[0] == 19 and causes[3] == 21


async def test_each_contact_of_a_person_in_order(stack: Stack) -> None:
    _, alert = await one_call(stack, "dial3", "100")
    assert legs(alert) == [
        ("max-two", "Local/congested@responders", "failed"),
        ("max-two", "Local/accept@responders", "accepted"),
    ]


async def test_simultaneous_first_accept_wins_and_the_others_are_told(stack: Stack) -> None:
    _, alert = await one_call(stack, "hold_on", "102")
    outcomes = {user: outcome for user, _, outcome in legs(alert)}
    assert outcomes["fay-fast"] == "accepted"
    assert outcomes["ana-accepts"] in ("taken_by_other",)
    assert outcomes["nick-noanswer"] == "taken_by_other"
    placed = [leg["placed_at"] for leg in alert["calls"][0]["legs"]]
    assert max(placed) - min(placed) < dt.timedelta(seconds=0.5)
    assert alert["acknowledged_by"] == "fay-fast"


async def test_two_accepts_in_the_same_instant_exactly_one_wins(stack: Stack) -> None:
    _, alert = await one_call(stack, "hold_on", "101")
    outcomes = sorted(outcome for _, _, outcome in legs(alert))
    assert outcomes == ["accepted", "taken_by_other"]
    loser = next(leg for leg in alert["calls"][0]["legs"] if leg["outcome"] == "taken_by_other")
    assert stack.heard(loser["id"])[-1] == "The call was taken by someone else. Goodbye."
    # caller_id: number -> the responder's phone shows the number, not the caller
    shown = stack.sim.asterisk.gone_channels[loser["id"]].caller
    assert shown == ("Acme Twins", "101")


async def test_outside_hours_voicemail_is_stored_with_the_alert(stack: Stack) -> None:
    # Starts talking during the prompts and goes on well past the beep, then presses #.
    stack.sim.register_script(
        "leave_message",
        [
            {"answer": {}},
            {"wait": 5},
            {"speak": "tt-monkeys"},
            {"dtmf": "#"},
            {"wait": 30},
            {"hangup": {}},
        ],
    )
    caller, alert = await one_call(stack, "leave_message", "200")
    assert stack.heard(caller)[:2] == [
        "You are calling outside our support hours.",
        "Nobody is available. Please leave a message after the tone, "
        "and press hash when you are done.",
    ]
    assert alert["ended_reason"] == "voicemail"
    assert alert["escalation_count"] == 1
    voicemail = alert["voicemail"]
    # about 5 s of 8 kHz 16-bit speech
    assert voicemail is not None and voicemail["audio_bytes"] > 40_000
    assert legs(alert) == []  # straight to voicemail outside hours
    assert "voicemail_stored" in kinds(alert)
    # Escalated at once to the policy of the number's route (no route was chosen).
    (escalated,) = [data for kind, data in timeline(alert) if kind == "alert_escalated"]
    assert escalated == {"reason": "voicemail", "policy": "seq", "hold_until": None}
    # The recording was fetched into the database and removed from Asterisk.
    assert stack.sim.recordings.names() == []


async def test_a_caller_who_hangs_up_during_the_thanks_still_left_a_voicemail(
    stack: Stack,
) -> None:
    """Callers often hang up once they have said their piece, during "Thank you. Your
    message has been recorded.": the call ended with a voicemail, escalated once."""
    stack.sim.register_script(
        "message_then_gone",
        [{"answer": {}}, {"wait": 5}, {"speak": "vm-intro"}, {"dtmf": "#"}, {"wait": 0.3}],
    )
    _, alert = await one_call(stack, "message_then_gone", "200")
    assert alert["ended_reason"] == "voicemail"
    assert alert["escalation_count"] == 1
    assert alert["voicemail"] is not None
    assert "caller_hung_up" not in kinds(alert)


async def test_a_voicemail_escalates_as_the_number_says(stack: Stack) -> None:
    """Held until the support hours begin on one number; not escalated at all on another."""
    stack.sim.register_script(
        "short_message",
        [{"answer": {}}, {"wait": 5}, {"speak": "tt-monkeys"}, {"dtmf": "#"}, {"wait": 30}],
    )
    now = dt.datetime.now(dt.UTC)
    if now.hour == 3 and now.minute == 0:
        pytest.skip("number 203 is open during this very minute")
    _, held = await one_call(stack, "short_message", "203")
    (escalated,) = [data for kind, data in timeline(held) if kind == "alert_escalated"]
    opening = dt.datetime.fromisoformat(escalated["hold_until"])
    assert (opening.hour, opening.minute) == (3, 0) and opening > now
    assert opening - now <= dt.timedelta(days=1)
    assert held["escalation_count"] == 1

    stack.sim.register_script(
        "short_message2",
        [{"answer": {}}, {"wait": 5}, {"speak": "tt-monkeys"}, {"dtmf": "#"}, {"wait": 30}],
    )
    channel = await stack.place_call("short_message2", "204")
    await stack.wait_calls_done(30)
    quiet = next(a for a in await stack.alerts() if a["calls"][0]["caller_channel_id"] == channel)
    assert quiet["ended_reason"] == "voicemail" and quiet["voicemail"] is not None
    assert quiet["escalation_count"] == 0
    assert "alert_escalated" not in kinds(quiet)


async def test_outside_hours_message(stack: Stack) -> None:
    caller, alert = await one_call(stack, "listen", "201")
    assert stack.heard(caller) == ["We are closed for the holidays.", "Goodbye."]
    assert alert["ended_reason"] == "outside_hours" and legs(alert) == []


async def test_outside_hours_other_routes(stack: Stack) -> None:
    caller, alert = await one_call(stack, "hold_on", "202")
    assert stack.heard(caller)[0] == "You have reached Acme Night."  # one route: no menu
    assert alert["route"] == "emergencies"
    assert [user for user, _, _ in legs(alert)] == ["max-two", "max-two"]


async def test_nobody_available_without_voicemail(stack: Stack) -> None:
    caller, alert = await one_call(stack, "listen", "300")
    heard = stack.heard(caller)
    assert heard[-2:] == ["Sorry, nobody is available to take your call right now.", "Goodbye."]
    assert alert["ended_reason"] == "nobody_available"
    assert alert["status"] == "open" and alert["escalation_count"] == 1
    assert [o for _, _, o in legs(alert)] == ["busy", "declined"]


async def test_caller_hangs_up_during_the_hunt(stack: Stack) -> None:
    stack.sim.register_script("wait_then_hangup", [{"answer": {}}, {"wait": 20}, {"hangup": {}}])
    _, alert = await one_call(stack, "wait_then_hangup", "301")
    assert alert["ended_reason"] == "abandoned"
    assert legs(alert) == [("nick-noanswer", "Local/noanswer@responders", "abandoned")]
    assert "caller_hung_up" in kinds(alert)
    assert alert["escalation_count"] == 1  # the team hears that a caller gave up on them
    leg = alert["calls"][0]["legs"][0]
    # The ringing leg was hung up as soon as the caller left, not at its ring timeout.
    assert (leg["ended_at"] - leg["placed_at"]).total_seconds() < 2.5


async def test_caller_hangs_up_during_the_greeting(stack: Stack) -> None:
    caller, alert = await one_call(stack, "hangup2", "100")
    assert stack.heard(caller) == ["You have reached Acme Operations."]
    assert alert["ended_reason"] == "abandoned" and alert["route"] is None
    assert alert["escalation_count"] == 0 and legs(alert) == []


async def test_no_input_repeats_then_default(stack: Stack) -> None:
    caller, alert = await one_call(stack, "listen", "100")
    heard = stack.heard(caller)
    assert "Sorry, we did not receive your choice." in heard
    assert heard.count("For the database team, press 1.") == 2  # max_attempts: 2
    assert alert["ended_reason"] == "voicemail"  # menu default


async def test_star_repeats_the_menu(stack: Stack) -> None:
    caller, alert = await one_call(stack, "star_then1", "100")
    heard = stack.heard(caller)
    steps = [(d["digit"], d["step"]) for kind, d in timeline(alert) if kind == "menu_input"]
    assert steps == [("*", "Repeat"), ("1", "Chosen")]
    assert heard.count("For the database team, press 1.") >= 2
    assert "Sorry, that is not a valid choice." not in heard
    assert alert["route"] == "the database team"


async def test_only_greeting_in_german_then_default_route(stack: Stack) -> None:
    caller, alert = await one_call(stack, "hold_on", "400")
    heard = stack.heard(caller)
    assert heard[0] == "Willkommen beim Acme Support."
    assert not any(text.startswith("Für") for text in heard)  # no generated menu
    assert alert["route"] == "Bereitschaft"  # the default after no input


async def test_unknown_number(stack: Stack) -> None:
    caller = await stack.place_call("listen", "999")
    await stack.wait_calls_done(10)
    assert stack.heard(caller) == ["This number is not in service."]
    assert await stack.alerts() == []


async def test_a_database_outage_neither_drops_the_call_nor_loses_the_alert(
    flow_config: Config, tmp_path: Path, sounds_dir: Path
) -> None:
    from ari_controller.store.migrate import migrate
    from ari_controller.testing.postgres import ThrowawayPostgres

    with ThrowawayPostgres() as server:
        await migrate(server.dsn)
        async with running_stack(
            flow_config, server.dsn, tmp_path, time_scale=TIME_SCALE, sounds_dir=sounds_dir
        ) as stack:
            for name, steps in CALLERS.items():
                stack.sim.register_script(name, steps)
            server.stop_server()  # Postgres goes away before the call
            caller = await stack.place_call("dial1", "100")
            await stack.wait_calls_done(30)
            # The call went its whole way: menu, hunt, bridge.
            assert "Please hold while we connect you." in stack.heard(caller)
            assert any(
                h["endpoint"] == "Local/accept@responders"
                for h in inspect.history(stack.sim.asterisk)
            )
            writer = stack.daemon.writer
            assert writer.pending > 0 and writer.failures > 0
            server.start_server()  # ... and comes back: everything is written, once
            assert await writer.flush(30)
            alerts = await stack.alerts()
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert["ended_reason"] == "connected" and alert["acknowledged_by"] == "ana-accepts"
        assert [o for _, _, o in legs(alert)] == ["busy", "declined", "accepted"]
        seqs = [e["seq"] for e in alert["calls"][0]["timeline"]]
        assert seqs == list(range(1, len(seqs) + 1))


async def test_a_failing_hangup_is_retried_so_no_channel_is_left(stack: Stack) -> None:
    # A caller who would stay on the line for minutes: only our hang-up ends the call.
    stack.sim.register_script("stays_long", [{"answer": {}}, {"wait": 4000}, {"hangup": {}}])
    caller = await stack.place_call("stays_long", "300")
    # Asterisk, overloaded, answers the first two hang-ups of the caller with 503.
    stack.sim.fail_requests(f"/channels/{caller}$", 2, status=503)
    for _ in range(1000):
        if not stack.daemon.controller.calls:
            break
        await asyncio.sleep(0.02)
    assert caller not in stack.sim.asterisk.channels  # hung up on the third try
    (alert,) = await stack.alerts()
    assert alert["ended_reason"] == "nobody_available"
