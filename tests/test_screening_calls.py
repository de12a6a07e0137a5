"""Caller screening end to end: the simulator plays Asterisk and the phones, the daemon screens
each call against the numbers' lists, PINs and limits, and Postgres keeps what happened (the
alerts, and the calls turned away in screened_calls)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ari_controller.config import Config, parse_config
from ari_controller.prompts.audio import Pcm, resample, write_wav
from ari_controller.prompts.tts import EspeakNgEngine
from ari_controller.screening.pins import hash_pin
from ari_controller.simulator.inspect import NOTHING_LEFT
from ari_controller.testing.harness import Stack, running_stack

TIME_SCALE = 10.0
ACME_PIN = "4321"
ANNA = "Anna <+4930999001>"
BEN = "Ben <+4930999002>"
SPAMMER = "Spam <+4930666123>"

ONE_ROUTE = [{"label": "operations", "policy": "ops"}]
QUICK = {"ring_timeout_s": 10, "accept_window_s": 3}

CONFIG: dict[str, Any] = {
    "asterisk": {"app": "callrouting"},
    "screening": {"default_country": "DE", "lists": {"nuisance": ["+4930666*"]}},
    "users": [{"id": "ana", "name": "Ana Accepts", "contacts": ["Local/accept@responders"]}],
    "escalation_policies": [{"id": "ops", "rules": [{"users": ["ana"]}]}],
    "numbers": [
        {
            "did": "030 600",  # the trunk sends +4930600: the same number
            "name": "Acme Hotline",
            "routes": ONE_ROUTE,
            "responders": QUICK,
            "resolution": "accept_on_answer",
            "screening": {
                "repeat_calls": {"window_minutes": 60},
                "block": ["@nuisance", "withheld"],
                "blocked": {"message": "This number does not take your calls."},
                "rate_limit": {
                    "calls": 2,
                    "minutes": 10,
                    "message": "You have called several times. We are on it.",
                },
            },
        },
        {
            "did": "+4930601",
            "name": "Acme Customers",
            "routes": ONE_ROUTE,
            "responders": QUICK,
            "screening": {
                "allow": ["+4930999002"],
                "allow_only": True,
                "not_allowed": {"action": "pin"},
                "pin": {
                    "pins": [{"label": "ACME", "hash": hash_pin(ACME_PIN)}],
                    "attempts": 2,
                },
            },
        },
        {
            "did": "+4930602",
            "name": "Acme Monitoring Line",
            "routes": ONE_ROUTE,
            "voicemail": {"enabled": True, "max_duration_s": 20, "max_silence_s": 2},
            "screening": {"voicemail_only": True},
        },
        {
            "did": "+4930603",
            "name": "Acme Flood",
            "routes": ONE_ROUTE,
            "responders": QUICK,
            "screening": {
                "flood": {
                    "new_calls_per_minute": 2,
                    "calm_minutes": 5,
                    "action": "message",
                    "message": "We know about the outage. Please call later.",
                },
            },
        },
    ],
}

CALLERS = {
    # Stays on the line until connected and a while after.
    "hold_on": [{"answer": {}}, {"wait": 60}, {"hangup": {}}],
    "pin_right": [
        {"answer": {}},
        {"wait": 4},
        {"dtmf": f"{ACME_PIN}#"},
        {"wait": 60},
        {"hangup": {}},
    ],
    "pin_wrong": [
        {"answer": {}},
        {"wait": 4},
        {"dtmf": "1111#"},
        {"wait": 6},
        {"dtmf": "2222#"},
        {"wait": 30},
        {"hangup": {}},
    ],
    "leaves_message": [
        {"answer": {}},
        {"wait": 12},
        {"speak": "tt-monkeys"},
        {"hangup": {}},
    ],
}


@pytest.fixture
async def stack(database: str, tmp_path: Path) -> AsyncIterator[Stack]:
    config: Config = parse_config(CONFIG, "screening-test")
    async with running_stack(config, database, tmp_path, time_scale=TIME_SCALE) as running:
        for name, steps in CALLERS.items():
            running.sim.register_script(name, steps)
        yield running
        await running.wait_calls_done(30)
        assert running.leftovers() == NOTHING_LEFT


async def _call(stack: Stack, script: str, did: str, caller: str) -> str:
    channel = await stack.place_call(script, did, caller)
    await stack.wait_calls_done(30)
    return channel


async def _screened(stack: Stack) -> list[dict[str, Any]]:
    await stack.daemon.writer.flush(10)
    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch("SELECT * FROM screened_calls ORDER BY started_at")
    finally:
        await conn.close()
    return [dict(row) for row in rows]


def _timeline(call: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["kind"], e["data"]) for e in call["timeline"]]


async def test_a_blocked_caller_hears_the_message_and_pages_nobody(stack: Stack) -> None:
    channel = await _call(stack, "hold_on", "+4930600", SPAMMER)
    assert await stack.alerts() == []
    [screened] = await _screened(stack)
    assert screened["verdict"] == "blocked"
    assert screened["rule"] == "+4930666* (@nuisance)" or "+4930666*" in screened["rule"]
    assert screened["caller_key"] == "+4930666123"
    heard = stack.heard(channel)
    assert heard == ["This number does not take your calls.", "Goodbye."]


async def test_a_withheld_caller_on_a_number_that_blocks_them_is_rejected_unanswered(
    stack: Stack,
) -> None:
    await _call(stack, "hold_on", "+4930600", "anonymous")
    [screened] = await _screened(stack)
    assert (screened["verdict"], screened["caller_key"]) == ("blocked", "withheld")
    assert await stack.alerts() == []


async def test_an_ordinary_caller_gets_through_with_the_screening_on_the_timeline(
    stack: Stack,
) -> None:
    await _call(stack, "hold_on", "+4930600", ANNA)  # dialled in E.164, configured as 030 600
    [alert] = await stack.alerts()
    assert alert["number_did"] == "030 600"  # the number as configured: the console finds it
    kinds = dict(_timeline(alert["calls"][0]))
    assert kinds["screening"]["action"] == "menu"
    checks = [step["check"] for step in kinds["screening"]["steps"]]
    assert checks[:3] == ["caller_id", "block", "allow"]
    assert [leg["outcome"] for leg in alert["calls"][0]["legs"]] == ["accepted"]
    assert await _screened(stack) == []


async def test_a_screening_that_fails_lets_the_caller_through(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug or a fault in screening itself must not cost the caller their call."""

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug in counting")

    history = stack.daemon.controller.history
    assert history is not None
    monkeypatch.setattr(history, "arrived", broken)
    await _call(stack, "hold_on", "+4930600", ANNA)
    [alert] = await stack.alerts()
    screening = dict(_timeline(alert["calls"][0]))["screening"]
    assert screening["steps"] == [
        {"check": "screening", "outcome": "failed", "rule": "let through"}
    ]
    assert [leg["outcome"] for leg in alert["calls"][0]["legs"]] == ["accepted"]


async def test_a_repeat_caller_joins_the_open_alert_and_past_the_limit_is_counted_on_it(
    stack: Stack,
) -> None:
    await _call(stack, "hold_on", "+4930600", ANNA)
    await _call(stack, "hold_on", "+4930600", ANNA)
    third = await _call(stack, "hold_on", "+4930600", ANNA)
    [alert] = await stack.alerts()  # one alert for all three calls
    first, second = alert["calls"]
    assert ("repeat_call", {"alert": str(alert["id"])}) in _timeline(second)
    # The responder of the second call hears that the caller is calling again.
    second_leg = second["legs"][0]["id"]
    assert stack.heard(second_leg)[0].endswith("You have a caller on hold who is calling again.")
    assert "calling again" not in stack.heard(first["legs"][0]["id"])[0]
    [screened] = await _screened(stack)
    assert screened["verdict"] == "rate_limited"
    assert screened["alert_id"] == alert["id"]
    assert stack.heard(third) == ["You have called several times. We are on it.", "Goodbye."]
    metrics = stack.daemon.metrics.exposition().decode()
    assert 'callrouting_screening_verdicts_total{verdict="rate_limited"} 1.0' in metrics
    assert 'callrouting_screening_verdicts_total{verdict="menu"} 2.0' in metrics


async def test_a_right_pin_lets_the_caller_in_and_the_responder_hears_who_it_is(
    stack: Stack,
) -> None:
    channel = await _call(stack, "pin_right", "+4930601", ANNA)
    assert stack.heard(channel)[0] == "Please enter your PIN, then press hash."
    [alert] = await stack.alerts()
    timeline = _timeline(alert["calls"][0])
    assert ("pin_entered", {"attempt": 1, "right": True}) in timeline
    screening = dict(timeline)["screening"]
    assert screening["label"] == "ACME"
    leg = alert["calls"][0]["legs"][0]
    assert leg["outcome"] == "accepted"
    assert stack.heard(leg["id"])[0] == (
        "This is Acme Customers. You have a caller from ACME on hold."
    )


async def test_wrong_pins_turn_the_caller_away_after_the_attempts(stack: Stack) -> None:
    channel = await _call(stack, "pin_wrong", "+4930601", ANNA)
    assert await stack.alerts() == []
    [screened] = await _screened(stack)
    assert screened["verdict"] == "pin_failed"
    detail = screened["detail"]
    detail = detail if isinstance(detail, dict) else __import__("json").loads(detail)
    assert detail["pin_attempts"] == [False, False]
    heard = stack.heard(channel)
    assert heard.count("Please enter your PIN, then press hash.") == 2
    assert "That PIN is not valid." in heard and heard[-1] == "Goodbye."


async def test_an_allow_listed_caller_needs_no_pin(stack: Stack) -> None:
    channel = await _call(stack, "hold_on", "+4930601", BEN)
    assert "Please enter your PIN, then press hash." not in stack.heard(channel)
    [alert] = await stack.alerts()
    assert alert["calls"][0]["legs"][0]["outcome"] == "accepted"


async def test_a_voicemail_only_number_takes_a_message_and_rings_nobody(stack: Stack) -> None:
    channel = await _call(stack, "leaves_message", "+4930602", ANNA)
    [alert] = await stack.alerts()
    assert alert["calls"][0]["legs"] == []
    assert alert["voicemail"] is not None
    assert alert["ended_reason"] == "voicemail"
    heard = stack.heard(channel)
    assert heard[0] == "You have reached Acme Monitoring Line."
    assert "Please leave a message after the tone, and press hash when you are done." in heard


async def test_a_flood_of_callers_switches_the_number_to_its_flood_action(stack: Stack) -> None:
    callers = [f"Caller {n} <+49309998{n:02d}>" for n in range(4)]
    channels = []
    for caller in callers:
        channels.append(await stack.place_call("hold_on", "+4930603", caller))
        # One after another: calls that arrive in the same instant may each count the other.
        await asyncio.sleep(0.5)
    await stack.wait_calls_done(40)
    screened = await _screened(stack)
    assert [s["verdict"] for s in screened] == ["flood", "flood"]  # the 3rd and 4th
    assert len(await stack.alerts()) == 2
    assert stack.heard(channels[3]) == ["We know about the outage. Please call later.", "Goodbye."]
    metrics = stack.daemon.metrics.exposition().decode()
    assert 'callrouting_number_flood{did="+4930603"} 1.0' in metrics


# --- machines: an announcement talking through the menu, against a silent and a hesitant
# person. Real time (scale 1): Asterisk's talk detection counts the talk on its own clock.

MACHINES: dict[str, Any] = {
    "asterisk": {"app": "callrouting"},
    "users": [{"id": "ana", "name": "Ana Accepts", "contacts": ["Local/accept@responders"]}],
    "escalation_policies": [{"id": "ops", "rules": [{"users": ["ana"]}]}],
    "numbers": [
        {
            "did": "700",
            "name": "Acme Ops",
            "routes": [
                {"label": "operations", "policy": "ops"},
                {"label": "security", "policy": "ops"},
            ],
            "menu": {"max_attempts": 1, "input_timeout_s": 3, "default": {"action": "goodbye"}},
            "responders": QUICK,
            "voicemail": {"enabled": True, "max_duration_s": 20, "max_silence_s": 2},
            "screening": {"machines": {"enabled": True, "min_talk_s": 4, "confirm_s": 2}},
        }
    ],
}
# What a monitoring system's voice call says, on and on (synthesized, as such calls are).
ANNOUNCEMENT_TEXT = (
    "This is an automated message from the monitoring system. The database cluster in region "
    "one is not responding. Replication has stopped. This message will repeat. This is an "
    "automated message from the monitoring system. The database cluster is not responding."
)
SILENT = [{"answer": {}}, {"wait": 30}, {"hangup": {}}]
HESITANT = [
    {"answer": {}},
    {"wait": 2},
    {"speak": "vm-intro"},
    {"wait": 1},
    {"dtmf": "1"},
    {"wait": 12},
    {"hangup": {}},
]


@pytest.fixture(scope="module")
def announcement(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The announcement as an 8 kHz WAV (espeak-ng, the prompts' own engine)."""
    pcm, rate = EspeakNgEngine().synthesize(ANNOUNCEMENT_TEXT, "en")
    wav = tmp_path_factory.mktemp("machines") / "announcement.wav"
    write_wav(wav, resample(Pcm(pcm, rate), 8000))
    return wav


@pytest.fixture
async def machines_stack(database: str, tmp_path: Path, announcement: Path) -> AsyncIterator[Stack]:
    config: Config = parse_config(MACHINES, "machines-test")
    async with running_stack(config, database, tmp_path, time_scale=1.0) as running:
        # The announcement, then a moment of silence (the message it leaves is kept).
        talks = [{"answer": {}}, {"speak": str(announcement)}, {"wait": 8}, {"hangup": {}}]
        running.sim.register_script("announcement", talks)
        running.sim.register_script("silent", SILENT)
        running.sim.register_script("hesitant", HESITANT)
        yield running
        await running.wait_calls_done(60)
        assert running.leftovers()["channels"] == []


async def test_an_announcement_talking_through_the_menu_goes_to_voicemail(
    machines_stack: Stack,
) -> None:
    stack = machines_stack
    channel = await stack.place_call("announcement", "700", ANNA)
    await stack.wait_calls_done(60)
    [alert] = await stack.alerts()
    timeline = _timeline(alert["calls"][0])
    check = dict(timeline)["machine_check"]
    assert check["pressed"] is False and check["talked_s"] >= 4
    assert alert["ended_reason"] == "voicemail" and alert["calls"][0]["legs"] == []
    heard = stack.heard(channel)
    asked = heard.index("If you are a person, press any key now.")
    after = heard[asked + 1 :]
    assert "Please leave a message after the tone, and press hash when you are done." in after


async def test_a_silent_caller_is_never_taken_for_a_machine(machines_stack: Stack) -> None:
    stack = machines_stack
    channel = await stack.place_call("silent", "700", ANNA)
    await stack.wait_calls_done(60)
    [alert] = await stack.alerts()
    assert "machine_check" not in dict(_timeline(alert["calls"][0]))
    assert alert["ended_reason"] == "no_choice"
    assert "If you are a person, press any key now." not in stack.heard(channel)


async def test_a_caller_who_speaks_once_then_presses_a_key_is_a_person(
    machines_stack: Stack,
) -> None:
    stack = machines_stack
    await stack.place_call("hesitant", "700", ANNA)
    await stack.wait_calls_done(60)
    [alert] = await stack.alerts()
    assert "machine_check" not in dict(_timeline(alert["calls"][0]))
    assert [leg["outcome"] for leg in alert["calls"][0]["legs"]] == ["accepted"]
