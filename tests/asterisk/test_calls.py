"""Every path of a call through a real Asterisk, all calls at once on one daemon.

The module's calls are placed together when its stack starts (each on its own DID and scripted
phones), and each test then waits for its own call and checks it from three sides: what
Asterisk did (the observer application's events: channels, DTMF, playbacks, bridges), what the
store holds (alert, call, legs, timeline, voicemail), and what the daemon logged. The orphan
sweep runs every 2 s throughout, so every call here also shows that the sweep leaves live calls
alone (the `;2` halves of Local responder legs included).
"""

from __future__ import annotations

import array
import io
import itertools
import math
import wave
from collections.abc import Iterator
from typing import Any

import pytest

from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import CallView, RealStack, summarise, wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(300)]

SWEEP_S = 2.0
# The long conversation lasts more than three sweeps (two in a row adopt an unowned channel).
LONG_TALK_S = 4 * SWEEP_S
# How long any one call of this module may take, from the moment all were placed.
CALL_LIMIT_S = 150.0

ACCEPT = {"accept_keys": "1", "decline_key": "2"}
NO_VOICEMAIL = {"enabled": False}


def user(user_id: str, *scripts: str) -> dict[str, Any]:
    return {"id": user_id, "name": user_id.replace("-", " ").title(), "contacts": [
        responder(s) for s in scripts
    ]}  # fmt: skip


def one_route(did: str, name: str, policy: str, **extra: Any) -> dict[str, Any]:
    return {
        "did": did,
        "name": name,
        "routes": [{"label": name.lower(), "policy": policy}],
        **extra,
    }


SECTIONS: dict[str, Any] = {
    "asterisk": {"sweep_interval_s": SWEEP_S},
    "users": [
        user("seq-busy", "busy"),
        user("seq-decline", "decline"),
        user("seq-key-decline", "decline_key"),
        user("seq-whisper-hangup", "whisper_hangup"),
        user("seq-congested", "congested"),
        user("seq-mailbox", "mailbox"),
        user("seq-no-answer", "noanswer"),
        user("seq-accept", "accept_talk"),
        user("sim-winner", "sim_winner"),
        user("sim-listener-a", "listener"),
        user("sim-listener-b", "listener"),
        user("sim-ringer-a", "noanswer"),
        user("sim-ringer-b", "noanswer"),
        user("sim-ringer-c", "noanswer"),
        user("menu-busy", "busy"),
        user("two-phones", "congested", "accept_talk"),
        user("talker", "long_talk"),
    ],
    "escalation_policies": [
        {
            "id": "sequence",
            "name": "Sequence",
            "rules": [
                {"users": [u]}
                for u in (
                    "seq-busy",
                    "seq-decline",
                    "seq-key-decline",
                    "seq-whisper-hangup",
                    "seq-congested",
                    "seq-mailbox",
                    "seq-no-answer",
                    "seq-accept",
                )
            ],
        },
        {
            "id": "everyone",
            "name": "Everyone",
            "call_everyone_on_rule": True,
            "rules": [
                {
                    "users": [
                        "sim-winner",
                        "sim-listener-a",
                        "sim-listener-b",
                        "sim-ringer-a",
                        "sim-ringer-b",
                    ]
                }
            ],
        },
        {"id": "menu-a", "name": "Menu A", "rules": [{"users": ["menu-busy"]}]},
        {"id": "menu-b", "name": "Menu B", "rules": [{"users": ["menu-busy"]}]},
        {"id": "two-phones", "name": "Two phones", "rules": [{"users": ["two-phones"]}]},
        {
            "id": "night",
            "name": "Night",
            "rules": [{"users": ["seq-busy"]}, {"users": ["seq-key-decline"]}],
        },
        {
            "id": "ringers",
            "name": "Ringers",
            "call_everyone_on_rule": True,
            "rules": [{"users": ["sim-ringer-a", "sim-ringer-b", "sim-ringer-c"]}],
        },
        {"id": "talker", "name": "Talker", "rules": [{"users": ["talker"]}]},
    ],
    "numbers": [
        one_route(
            "2001",
            "Sequence Desk",
            "sequence",
            responders={"ring_timeout_s": 5, "accept_window_s": 3, **ACCEPT},
            voicemail=NO_VOICEMAIL,
            resolution="resolve_on_end",
        ),
        one_route(
            "2002",
            "Parallel Desk",
            "everyone",
            mode="simultaneous",
            responders={"ring_timeout_s": 25, "accept_window_s": 6, **ACCEPT},
            voicemail=NO_VOICEMAIL,
        ),
        {
            "did": "2003",
            "name": "Menu Desk",
            "routes": [
                {"label": "alpha", "policy": "menu-a"},
                {"label": "bravo", "policy": "menu-b"},
            ],
            "menu": {
                "input_timeout_s": 3,
                "max_attempts": 2,
                "default": {"action": "route", "route": "2"},
            },
            "responders": {"ring_timeout_s": 5},
            "voicemail": NO_VOICEMAIL,
        },
        one_route("2004", "Field Desk", "two-phones", responders={"ring_timeout_s": 8, **ACCEPT}),
        one_route(
            "2005",
            "After Hours",
            "night",
            support_hours={"time_zone": "UTC", "windows": []},
            outside_hours={"action": "voicemail"},
            voicemail={"enabled": True, "max_duration_s": 20, "max_silence_s": 3},
        ),
        one_route(
            "2006",
            "Night Desk",
            "night",
            responders={"ring_timeout_s": 5, "accept_window_s": 3, **ACCEPT},
            voicemail=NO_VOICEMAIL,
            resolution="leave_open",
        ),
        one_route(
            "2007",
            "Waiting Desk",
            "ringers",
            mode="simultaneous",
            responders={"ring_timeout_s": 30},
            voicemail=NO_VOICEMAIL,
        ),
        one_route("2008", "Talk Desk", "talker", responders={"ring_timeout_s": 8, **ACCEPT}),
    ],
}
UNKNOWN_DID = "2999"


def phones(d: Durations) -> str:
    whisper = d.responder_prompt("2001")
    assert whisper > 3.0, "the whisper-hang-up phone hangs up 1.5 s into the prompt"
    menu = d.greeting_and_menu("2003")
    before_beep = d.say("outside_hours") + d.say("voicemail_prompt") + 1.5
    while_ringing = d.greeting_and_menu("2007") + d.say("please_hold") + 4
    return dialplan(
        {
            CALLERS: {
                # Waits on the line; the other side ends the call.
                "hold": "Answer > Wait(240) > Hangup",
                # Presses 1 a second after the whole menu was played (within the input timeout).
                "late_choice": f"Answer > Wait({menu + 1:.2f}) > SendDTMF(1) > Wait(120) > Hangup",
                # `*` during the menu (it starts again), then 1 during the repeat.
                "star_then_1": (
                    "Answer > Wait(2) > SendDTMF(*) > Wait(2.5) > SendDTMF(1) > Wait(120) > Hangup"
                ),
                # An invalid digit, then 1 while being told it was invalid.
                "invalid_then_1": (
                    "Answer > Wait(2) > SendDTMF(9) > Wait(2.5) > SendDTMF(1) > Wait(120) > Hangup"
                ),
                "silent": "Answer > Wait(120) > Hangup",
                # Leaves a message after the beep: speaks (a sound file), then presses #.
                "message": (
                    f"Answer > Wait({before_beep:.2f}) > Playback(vm-intro) > SendDTMF(#)"
                    " > Wait(30) > Hangup"
                ),
                # Gives up while the phones ring.
                "abandon": f"Answer > Wait({while_ringing:.2f}) > Hangup",
            },
            RESPONDERS: {
                "busy": "Busy(5)",
                "congested": "Congestion(5)",
                "noanswer": "Ringing > Wait(600) > Hangup",
                # Answers, listens to the whole prompt, hangs up without a key.
                "decline": f"Ringing > Wait(1) > Answer > Wait({whisper + 1.2:.2f}) > Hangup",
                "decline_key": (
                    "Ringing > Wait(1) > Answer > Wait(1) > SendDTMF(2) > Wait(30) > Hangup"
                ),
                # Answers and hangs up in the middle of the whisper prompt.
                "whisper_hangup": "Ringing > Wait(1) > Answer > Wait(1.5) > Hangup",
                # A personal mailbox: answers at once and talks (plays its greeting and a
                # beep), never presses a key.
                "mailbox": (
                    "Answer > Wait(0.3) > Playback(vm-nobodyavail) > Playback(beep) > Wait(60)"
                    " > Hangup"
                ),
                # Accepts with 1 during the prompt, talks 3 s, hangs up.
                "accept_talk": (
                    "Ringing > Wait(1) > Answer > Wait(1.5) > SendDTMF(1) > Wait(3) > Hangup"
                ),
                # Rings 2 s, accepts 2 s after answering (the listeners answered before).
                "sim_winner": (
                    "Ringing > Wait(2) > Answer > Wait(2) > SendDTMF(1) > Wait(3) > Hangup"
                ),
                # Answers at once and listens without pressing anything.
                "listener": "Answer > Wait(60) > Hangup",
                # Accepts at once (before a sweep could see its leg twice), then talks for
                # more than three orphan sweeps and hangs up itself.
                "long_talk": f"Answer > Wait(0.5) > SendDTMF(1) > Wait({LONG_TALK_S:.2f}) > Hangup",
            },
        }
    )


# name: (caller script, DID)
CALLS = {
    "seq": ("hold", "2001"),
    "sim": ("hold", "2002"),
    "menu-late": ("late_choice", "2003"),
    "menu-star": ("star_then_1", "2003"),
    "menu-invalid": ("invalid_then_1", "2003"),
    "menu-silence": ("silent", "2003"),
    "two-phones": ("hold", "2004"),
    "after-hours": ("message", "2005"),
    "nobody": ("hold", "2006"),
    "abandon": ("abandon", "2007"),
    "long-talk": ("hold", "2008"),
    "unknown": ("hold", UNKNOWN_DID),
}


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("calls", SECTIONS, phones) as stack:
        yield stack


@pytest.fixture(scope="module")
def calls(stack: RealStack) -> dict[str, str]:
    """Every call of the module, placed at once: name -> the caller's channel id."""
    return {name: stack.place_call(script, did, name) for name, (script, did) in CALLS.items()}


# ---- checks every call gets ----------------------------------------------------------------


def done(stack: RealStack, calls: dict[str, str], name: str) -> CallView:
    """The call once it is over, checked for consistency (`RealStack.check_call`)."""
    return stack.wait_call_done(calls[name], CALL_LIMIT_S)


def dialplan_apps(stack: RealStack, channel_id: str) -> list[str]:
    """The dialplan applications a channel ran, in order."""
    return [
        str(e.raw.get("dialplan_app"))
        for e in stack.observer.about_channel(channel_id)
        if e.type == "ChannelDialplan"
    ]


# ---- sequential -----------------------------------------------------------------------------


def test_sequential_hunt_goes_past_every_kind_of_no_to_the_accept(
    stack: RealStack, calls: dict[str, str]
) -> None:
    view = done(stack, calls, "seq")
    observer = stack.observer
    legs = view.legs
    assert [leg["user_id"] for leg in legs] == [
        "seq-busy",
        "seq-decline",
        "seq-key-decline",
        "seq-whisper-hangup",
        "seq-congested",
        "seq-mailbox",
        "seq-no-answer",
        "seq-accept",
    ]
    assert view.outcomes == [
        "busy",
        "declined",  # answered, heard the prompt, hung up
        "declined",  # pressed the decline key
        "declined",  # hung up during the whisper prompt
        "failed",  # congestion
        "no_answer",  # a mailbox that talked but never pressed a key
        "no_answer",  # rang past the ring timeout
        "accepted",
    ]
    ids = [leg["id"] for leg in legs]
    story = summarise(observer.snapshot(), [calls["seq"], *ids])
    # One at a time: each leg was placed once the one before it was hung up (by either side).
    for before, after in itertools.pairwise(ids):
        ended = min(
            e.at
            for e in observer.about_channel(before)
            if e.type in ("ChannelHangupRequest", "ChannelDestroyed")
        )
        assert ended <= observer.when("ChannelCreated", after), story
    busy, decline, key, whisper, congested, mailbox, noanswer, accept = ids
    # Busy, congestion and no answer never answered; Asterisk says why.
    for leg in (busy, congested, noanswer):
        assert not stack.observer.answered(leg), story
    assert observer.dial_status(busy) == "BUSY", story
    assert observer.dial_status(congested) == "CONGESTION", story
    rang_out = observer.destroyed(noanswer)
    assert rang_out is not None and rang_out.raw["cause"] == 19, story
    ring = observer.when("ChannelDestroyed", noanswer) - observer.when("ChannelCreated", noanswer)
    assert 4.5 <= ring <= 7.0, f"the no-answer phone rang {ring:.1f} s (ring timeout 5 s)"
    # The decline key, pressed on the responder's phone, reached Asterisk on the leg.
    assert observer.digits(key) == ["2"], story
    # The whisper: played to every answered phone; one hung up in the middle of it.
    assert stack.heard(decline)[:2] == [
        "This is Sequence Desk. You have a caller on hold.",
        "Press 1 to connect, or 2 to decline.",
    ], story
    whisper_started = observer.playbacks(whisper)[0].at
    assert observer.when("ChannelDestroyed", whisper) - whisper_started < 3.0, story
    # The mailbox answered and talked, heard the prompt twice, pressed nothing, and was let go.
    assert observer.digits(mailbox) == [], story
    assert stack.heard(mailbox).count("Press 1 to connect, or 2 to decline.") == 2, story
    # The accept: its key, then caller and responder in one bridge until the responder left.
    assert observer.digits(accept) == ["1"], story
    bridge = view.entries("bridged")[0]["bridge"]
    in_bridge = {
        e.channel_id
        for e in observer.snapshot()
        if e.type == "ChannelEnteredBridge" and e.bridge_id == bridge
    }
    assert in_bridge == {calls["seq"], accept}, story
    assert view.alert["ended_reason"] == "connected"
    assert view.alert["acknowledged_by"] == "seq-accept"
    assert view.alert["status"] == "resolved"  # resolve_on_end
    assert view.entries("hangup") == [{"by": "responder"}]


# ---- simultaneous ---------------------------------------------------------------------------


def test_simultaneous_first_accept_wins_the_others_are_told_and_released(
    stack: RealStack, calls: dict[str, str]
) -> None:
    view = done(stack, calls, "sim")
    observer = stack.observer
    by_user = {leg["user_id"]: leg for leg in view.legs}
    ids = [leg["id"] for leg in view.legs]
    story = summarise(observer.snapshot(), [calls["sim"], *ids])
    assert {u: leg["outcome"] for u, leg in by_user.items()} == {
        "sim-winner": "accepted",
        "sim-listener-a": "taken_by_other",
        "sim-listener-b": "taken_by_other",
        "sim-ringer-a": "taken_by_other",
        "sim-ringer-b": "taken_by_other",
    }, story
    assert view.alert["acknowledged_by"] == "sim-winner"
    winner = by_user["sim-winner"]["id"]
    acknowledged_at = next(
        e.at for e in observer.about_channel(winner) if e.type == "ChannelDtmfReceived"
    )
    # Everyone rang at once: all legs were created together, long before the accept.
    created = [observer.when("ChannelCreated", leg) for leg in ids]
    assert max(created) - min(created) < 1.0, story
    assert max(created) < acknowledged_at - 2.0, story
    taken = stack.say("call_taken")
    for name in ("sim-listener-a", "sim-listener-b"):
        leg = by_user[name]["id"]
        # Answered before the accept, told that the call was taken, then hung up by us.
        assert stack.observer.answered(leg), story
        assert stack.heard(leg)[-1] == taken, story
        told = observer.playbacks(leg)[-1].at
        assert told >= acknowledged_at, story
        assert observer.when("ChannelDestroyed", leg) - acknowledged_at < 8.0, story
    for name in ("sim-ringer-a", "sim-ringer-b"):
        leg = by_user[name]["id"]
        # Still ringing at the accept: hung up at once, never answered.
        assert not stack.observer.answered(leg), story
        assert observer.when("ChannelDestroyed", leg) - acknowledged_at < 2.0, story
    assert view.alert["ended_reason"] == "connected"


# ---- the menu -------------------------------------------------------------------------------


def route_of(view: CallView) -> dict[str, Any]:
    chosen = view.entries("route_chosen")
    assert len(chosen) == 1, view.kinds()
    return chosen[0]


def test_menu_a_choice_after_the_menu_ended_still_counts(
    stack: RealStack, calls: dict[str, str]
) -> None:
    caller = calls["menu-late"]
    view = done(stack, calls, "menu-late")
    observer = stack.observer
    assert route_of(view) == {"digit": "1", "route": "alpha", "how": "digit"}
    assert view.alert["route"] == "alpha"
    assert observer.digits(caller) == ["1"]
    # The digit came after the last menu prompt had finished playing.
    pressed = observer.first("ChannelDtmfReceived", caller)
    finished = [
        e
        for e in observer.snapshot()
        if e.type == "PlaybackFinished" and e.playback_target == caller
    ]
    assert pressed is not None and finished
    assert all(e.at < pressed.at for e in finished[:3]), summarise(observer.snapshot(), [caller])
    assert stack.heard(caller)[:3] == [
        "You have reached Menu Desk.",
        "For alpha, press 1.",
        "For bravo, press 2.",
    ]
    assert view.entries("menu_input")[0]["digit"] == "1"


def test_menu_star_repeats_the_options(stack: RealStack, calls: dict[str, str]) -> None:
    caller = calls["menu-star"]
    view = done(stack, calls, "menu-star")
    assert stack.observer.digits(caller) == ["*", "1"]
    assert [e["digit"] for e in view.entries("menu_input")] == ["*", "1"]
    assert view.entries("menu_input")[0]["step"] == "Repeat"
    assert route_of(view) == {"digit": "1", "route": "alpha", "how": "digit"}
    heard = stack.heard(caller)
    assert heard[0] == "You have reached Menu Desk."
    # The options were started twice: once after the greeting, once after `*`.
    assert heard.count("For alpha, press 1.") == 2, heard
    assert "Sorry, that is not a valid choice." not in heard


def test_menu_an_invalid_digit_is_said_so_and_the_menu_repeats(
    stack: RealStack, calls: dict[str, str]
) -> None:
    caller = calls["menu-invalid"]
    view = done(stack, calls, "menu-invalid")
    assert stack.observer.digits(caller) == ["9", "1"]
    assert [(e["digit"], e["step"]) for e in view.entries("menu_input")] == [
        ("9", "Repeat"),
        ("1", "Chosen"),
    ]
    assert route_of(view) == {"digit": "1", "route": "alpha", "how": "digit"}
    assert stack.say("invalid_choice") in stack.heard(caller)


def test_menu_silence_takes_the_default_route(stack: RealStack, calls: dict[str, str]) -> None:
    caller = calls["menu-silence"]
    view = done(stack, calls, "menu-silence")
    assert stack.observer.digits(caller) == []
    assert [e["digit"] for e in view.entries("menu_input")] == [None, None]
    assert route_of(view) == {"digit": "2", "route": "bravo", "how": "default"}
    heard = stack.heard(caller)
    assert heard.count(stack.say("no_choice")) == 1, heard
    assert heard.count("For bravo, press 2.") == 2, heard
    # The default route was then served: its (busy) responder was called.
    assert view.outcomes == ["busy"]
    assert view.alert["ended_reason"] == "nobody_available"


# ---- one person, two phones -------------------------------------------------------------------


def test_a_person_with_two_phones_is_reached_on_the_second(
    stack: RealStack, calls: dict[str, str]
) -> None:
    view = done(stack, calls, "two-phones")
    assert [(leg["user_id"], leg["contact"], leg["outcome"]) for leg in view.legs] == [
        ("two-phones", responder("congested"), "failed"),
        ("two-phones", responder("accept_talk"), "accepted"),
    ]
    assert view.alert["ended_reason"] == "connected"
    assert view.alert["acknowledged_by"] == "two-phones"
    assert stack.observer.digits(view.legs[1]["id"]) == ["1"]


# ---- voicemail, nobody, abandoned, unknown -----------------------------------------------------


def wav_level(audio: bytes) -> tuple[float, float]:
    """(seconds, RMS level 0..1) of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(audio)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        frames = wav.readframes(wav.getnframes())
        seconds = wav.getnframes() / wav.getframerate()
    samples = array.array("h", frames)
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1)) / 32768
    return seconds, rms


def test_outside_support_hours_the_message_is_recorded_into_postgres(
    stack: RealStack, calls: dict[str, str]
) -> None:
    caller = calls["after-hours"]
    view = done(stack, calls, "after-hours")
    assert view.alert["ended_reason"] == "voicemail"
    assert view.entries("support_hours") == [{"in_hours": False, "action": "voicemail"}]
    assert view.legs == []
    heard = stack.heard(caller)
    assert heard[:2] == [stack.say("outside_hours"), stack.say("voicemail_prompt")], heard
    assert stack.observer.digits(caller) == ["#"]
    rows = stack.sql(
        "SELECT v.id, v.recording_name, v.duration_s, v.format, v.audio, a.voicemail_id"
        " FROM voicemails v JOIN alerts a ON a.id = v.alert_id WHERE v.call_id = $1",
        view.call["id"],
    )
    assert len(rows) == 1
    voicemail = rows[0]
    assert voicemail["voicemail_id"] == voicemail["id"]
    audio = voicemail["audio"]
    assert audio is not None and audio[:4] == b"RIFF", "no WAV audio in voicemails.audio"
    seconds, level = wav_level(audio)
    # vm-intro is about 3 s of speech; what is stored is that speech, not silence.
    assert seconds >= 1.5, seconds
    assert level > 0.01, f"the stored message is silent (RMS {level:.4f})"
    assert view.alert["escalation_count"] >= 1
    assert stack.say("voicemail_saved") in heard


def test_nobody_available_without_voicemail(stack: RealStack, calls: dict[str, str]) -> None:
    caller = calls["nobody"]
    view = done(stack, calls, "nobody")
    assert view.outcomes == ["busy", "declined"]
    assert view.alert["ended_reason"] == "nobody_available"
    assert view.alert["status"] == "open"  # leave_open
    assert view.alert["escalation_count"] == 1
    assert view.entries("alert_escalated") == [
        {"reason": "nobody_available", "policy": "night", "hold_until": None}
    ]
    heard = stack.heard(caller)
    assert heard[-2:] == [stack.say("no_one_available"), stack.say("goodbye")], heard
    # We hung up the caller (its script would have waited four minutes).
    assert "Hangup" not in dialplan_apps(stack, f"{caller}-phone")


def test_caller_hanging_up_while_phones_ring_hangs_up_every_leg(
    stack: RealStack, calls: dict[str, str]
) -> None:
    caller = calls["abandon"]
    view = done(stack, calls, "abandon")
    observer = stack.observer
    ids = [leg["id"] for leg in view.legs]
    story = summarise(observer.snapshot(), [caller, *ids])
    assert len(ids) == 3
    assert view.outcomes == ["abandoned"] * 3, story
    assert view.alert["ended_reason"] == "abandoned"
    assert [e["reason"] for e in view.entries("alert_escalated")] == ["caller_abandoned"]
    assert "caller_hung_up" in view.kinds()
    gone = observer.destroyed(caller)
    assert gone is not None
    # Every leg was still ringing and went within a moment of the caller.
    for leg in ids:
        assert not stack.observer.answered(leg), story
        assert observer.when("ChannelDestroyed", leg) - gone.at < 1.5, story


def test_an_unknown_number_is_told_so_and_hung_up(stack: RealStack, calls: dict[str, str]) -> None:
    caller = calls["unknown"]
    observer = stack.observer
    gone = wait_until(lambda: observer.destroyed(caller), 60, "the unknown-number call to end")
    assert stack.heard(caller) == [stack.say("unknown_number")]
    # Hung up by us right after the message, not by the caller (who would wait 4 minutes).
    assert gone.at - observer.playbacks(caller)[0].at < 5.0
    assert [line.get("did") for line in stack.daemon.logged("unknown_number")] == [UNKNOWN_DID]
    assert stack.sql("SELECT id FROM calls WHERE caller_channel_id = $1", caller) == []


# ---- the orphan sweep and Local responder legs --------------------------------------------------


def test_a_conversation_outlasts_several_orphan_sweeps(
    stack: RealStack, calls: dict[str, str]
) -> None:
    """The sweep must not take the `;2` half of a Local responder leg (which is subscribed to
    the app but runs the dialplan) for a lost caller: it would hang up that half and cut the
    conversation after two sweeps."""
    caller = calls["long-talk"]
    view = done(stack, calls, "long-talk")
    observer = stack.observer
    (leg,) = view.legs
    story = summarise(observer.snapshot(), [caller, leg["id"]])
    assert leg["outcome"] == "accepted"
    entered = observer.first("ChannelEnteredBridge", leg["id"])
    left = observer.destroyed(leg["id"])
    assert entered is not None and left is not None
    talked = left.at - entered.at
    assert talked >= LONG_TALK_S - 0.5, f"conversation cut after {talked:.1f} s\n{story}"
    # The responder's phone ended the call itself: its script reached Hangup().
    phone_half = leg_phone_half(stack, leg["id"])
    apps = dialplan_apps(stack, phone_half)
    assert apps[-1:] == ["Hangup"], (phone_half, apps)
    assert view.entries("hangup") == [{"by": "responder"}]
    assert stack.daemon.logged("channel_adopted") == []
    assert stack.daemon.logged("orphaned_channels_adopted") == []


def leg_phone_half(stack: RealStack, leg_id: str) -> str:
    """The `;2` half of an originated Local leg: the channel named like it, ending in ;2."""
    created = stack.observer.first("ChannelCreated", leg_id)
    assert created is not None
    name = str(created.raw["channel"]["name"]).removesuffix(";1") + ";2"
    for event in stack.observer.snapshot():
        if event.type == "ChannelCreated" and event.raw["channel"]["name"] == name:
            return str(event.channel_id)
    raise AssertionError(f"no ;2 half of {leg_id}")


# ---- afterwards --------------------------------------------------------------------------------


def test_afterwards_nothing_is_left_in_asterisk(stack: RealStack, calls: dict[str, str]) -> None:
    stack.observer.wait_gone(calls.values(), CALL_LIMIT_S)
    assert stack.wait_nothing_left(20) == {"channels": [], "bridges": [], "recordings": []}
    assert stack.observer.disconnects == []
    assert stack.daemon.running, "the daemon stopped"
    assert stack.daemon.logged("call_failed") == []
