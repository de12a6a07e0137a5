"""`ari-controller run` SIGKILLed with calls in every phase, started again 2 s later, on a
real Asterisk (the counterpart of tests/test_restart.py, which runs on the simulator).

Nine calls are in progress at the kill: a caller in the greeting and menu, a sequential and a
simultaneous hunt ringing, a responder hearing the whisper (answered, not yet accepted), two
conversations, two voicemails being recorded and a caller on hold while a phone rings. Three
callers hang up while no daemon runs (one talking, one on hold, one leaving a message): the
test hangs their channels up over ARI. Asterisk keeps every call meanwhile (channels stay in
Stasis, playbacks, hold music and recordings go on, events are lost). The restarted daemon
must end each call as it would have ended without the crash: one alert per call, the legs
adopted rather than rung again, nothing left in Asterisk, and every caller still waiting
hearing something again within 3 s of the restart.

No responder answers inside the gap: on a real Asterisk a leg of `POST /channels?app=`
answered while the app has no websocket fails Stasis() and is hung up (cause 0), a known
limit (README) this module does not test. The phones that act after the restart do so
LATER_S seconds after they start; the kill comes once every call is in its phase (about 9 s
in), so the restart is done well before.

Hold music has no ARI event: when it started and stopped on a caller is read from Asterisk's
own verbose log (a logger channel the test adds: "Started music on hold ... on channel").
"""

from __future__ import annotations

import array
import datetime as dt
import io
import math
import re
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from ari_controller.announcements import greeting_and_menu
from ari_controller.numbers import numbered_routes
from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import CallView, RealStack, summarise, wait_until
from tests.restart_sections import dialplan_responders, restart_sections

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]

GAP_S = 2.0  # from the kill to the new process
# Phones act this long after they start: well after the restart (the kill comes ~9 s in).
LATER_S = 20.0
# A waiting caller hears something again within this long after the new process started.
SILENT_LIMIT_S = 3.0
# Asterisk's verbose log (in its log directory), added by the test at run time.
VERBOSE_LOG = "restart-verbose.log"

SECTIONS: dict[str, Any] = restart_sections(responder, "5300", "5301")

# What the phones' timings were computed from (filled in when the stack renders the dialplan).
DURATIONS: dict[str, Durations] = {}


def phones(d: Durations) -> str:
    DURATIONS["d"] = d
    later = f"{LATER_S:.2f}"
    return dialplan(
        {
            CALLERS: {
                # Listens to the greeting and menu; chooses 1 after the restart, talks, hangs up.
                "in_greeting": f"Answer > Wait({later}) > SendDTMF(1) > Wait(8) > Hangup",
                # Choose at once, then wait (on hold, then talking) until well after the restart.
                "to_slow": f"Answer > Wait(1) > SendDTMF(2) > Wait({LATER_S + 12:.2f}) > Hangup",
                "to_both": f"Answer > Wait(1) > SendDTMF(3) > Wait({LATER_S + 12:.2f}) > Hangup",
                "to_whisper": (
                    f"Answer > Wait(1) > SendDTMF(4) > Wait({LATER_S + 12:.2f}) > Hangup"
                ),
                # Talking at the kill; hangs up after the restart.
                "to_quick": f"Answer > Wait(1) > SendDTMF(1) > Wait({later}) > Hangup",
                # Waiting for ever: the test hangs them up while no daemon runs.
                "to_quick_2": "Answer > Wait(1) > SendDTMF(1) > Wait(600) > Hangup",
                "to_nobody": "Answer > Wait(1) > SendDTMF(5) > Wait(600) > Hangup",
                # Speak (hold music from the phone: a Local channel that sends no audio at all
                # is recorded for 4 s only) through the message; one ends it with # after the
                # restart, the other is hung up while no daemon runs.
                "leaves_message": (
                    f"Answer > Wait(1) > SendDTMF(1) > MusicOnHold(default,{LATER_S:.0f})"
                    " > SendDTMF(#) > Wait(15) > Hangup"
                ),
                "leaves_message_2": (
                    "Answer > Wait(1) > SendDTMF(1) > MusicOnHold(default,600) > Hangup"
                ),
            },
            RESPONDERS: dialplan_responders(LATER_S),
        }
    )


# phase: (caller script, DID)
CALLS = {
    "greeting": ("in_greeting", "5300"),
    "sequential": ("to_slow", "5300"),
    "simultaneous": ("to_both", "5300"),
    "whisper": ("to_whisper", "5300"),
    "connected": ("to_quick", "5300"),
    "connected-ends-in-gap": ("to_quick_2", "5300"),
    "hold-ends-in-gap": ("to_nobody", "5300"),
    "recording": ("leaves_message", "5301"),
    "recording-ends-in-gap": ("leaves_message_2", "5301"),
}
HUNG_UP_IN_GAP = ("connected-ends-in-gap", "hold-ends-in-gap", "recording-ends-in-gap")
# The callers still waiting at the restart, whose silence after it is measured.
WAITING = ("greeting", "sequential", "simultaneous", "whisper", "recording")


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("restart", SECTIONS, phones, drain_s=5.0) as stack:
        # Hold music has no ARI event; Asterisk logs when it starts and stops (verbosity 3).
        stack.asterisk.cli(f"logger add channel {VERBOSE_LOG} verbose(3)")
        yield stack


@dataclass
class Restart:
    """What happened: the calls, when the daemon was killed and restarted, and each call as
    the store has it once it ended."""

    calls: dict[str, str]  # phase -> caller channel id
    call_ids: dict[str, str]  # phase -> call id
    killed_at: float  # time.monotonic()
    restarted_at: float  # time.monotonic(), the new process started
    restarted_wall: float  # time.time() at the same moment
    ready_at: float  # /readyz said ready (calls picked up)
    live_recordings_at_restart: dict[str, str | None]  # phase -> state Asterisk gave
    views: dict[str, CallView] = field(default_factory=dict)
    ended_at: float = 0.0


def call_id_of(stack: RealStack, caller: str) -> str | None:
    view = stack.alert_of(caller)
    return str(view.call["id"]) if view is not None else None


def legs_of(stack: RealStack, caller: str) -> list[dict[str, Any]]:
    view = stack.alert_of(caller)
    return view.legs if view is not None else []


def ringing(stack: RealStack, caller: str, user_id: str) -> bool:
    """The user's leg of the call was placed and rings (not answered, not gone)."""
    observer = stack.observer
    for leg in legs_of(stack, caller):
        if leg["user_id"] == user_id and observer.first("ChannelCreated", leg["id"]):
            return observer.destroyed(leg["id"]) is None and not observer.answered(leg["id"])
    return False


def hearing_whisper(stack: RealStack, caller: str, user_id: str) -> str | None:
    """The user's leg answered and is played the whisper: its id."""
    observer = stack.observer
    for leg in legs_of(stack, caller):
        if leg["user_id"] == user_id and observer.answered(leg["id"]):
            if observer.playbacks(leg["id"]) and observer.destroyed(leg["id"]) is None:
                return str(leg["id"])
    return None


def live_recording(stack: RealStack, call_id: str) -> str | None:
    """The state of the call's voicemail recording as Asterisk has it live (None: none)."""
    status, body = stack.loop.run(stack.rest.request("GET", f"/recordings/live/vm-{call_id}"))
    return str(body.get("state")) if status == 200 and isinstance(body, dict) else None


def recording(stack: RealStack, call_id: str) -> bool:
    return live_recording(stack, call_id) == "recording"


def ended_in_store(stack: RealStack, caller: str) -> CallView | None:
    """The call once Asterisk destroyed its caller and every leg, and the store has its end."""
    observer = stack.observer
    if observer.destroyed(caller) is None:
        return None
    view = stack.alert_of(caller)
    if view is None or view.call["ended_at"] is None or view.alert["ended_reason"] is None:
        return None
    if any(leg["ended_at"] is None or not observer.destroyed(leg["id"]) for leg in view.legs):
        return None
    return view


@pytest.fixture(scope="module")
def restart(stack: RealStack) -> Restart:
    observer = stack.observer
    daemon = stack.daemon
    calls = {phase: stack.place_call(script, did, phase) for phase, (script, did) in CALLS.items()}
    call_ids = {
        phase: wait_until(partial(call_id_of, stack, caller), 15, f"the call of {phase}")
        for phase, caller in calls.items()
    }

    # Every call in its phase before the kill.
    def in_bridge(caller: str) -> bool:
        return observer.first("ChannelEnteredBridge", caller) is not None

    wait_until(lambda: ringing(stack, calls["sequential"], "sam"), 30, "sam's phone ringing")
    wait_until(lambda: ringing(stack, calls["simultaneous"], "nora"), 30, "nora ringing")
    wait_until(lambda: ringing(stack, calls["simultaneous"], "sue"), 30, "sue ringing")
    wait_until(lambda: ringing(stack, calls["hold-ends-in-gap"], "nora"), 30, "nora ringing")
    wait_until(lambda: hearing_whisper(stack, calls["whisper"], "wendy"), 30, "the whisper")
    wait_until(lambda: in_bridge(calls["connected"]), 30, "a conversation")
    wait_until(lambda: in_bridge(calls["connected-ends-in-gap"]), 30, "a conversation")
    for phase in ("recording", "recording-ends-in-gap"):
        wait_until(partial(recording, stack, call_ids[phase]), 30, f"{phase}: a message recorded")
    greeting = calls["greeting"]
    assert observer.playbacks(greeting), "the greeting is playing"
    time.sleep(1.0)  # a second of each message is recorded before the crash
    greeting_view = stack.alert_of(greeting)
    assert greeting_view is not None and "route_chosen" not in greeting_view.kinds()

    killed_at = time.monotonic()
    daemon.kill()
    # While no daemon runs: three callers hang up (one talking, one on hold, one leaving a
    # message); Asterisk ends the recording and keeps it.
    for phase in HUNG_UP_IN_GAP:
        stack.hangup(calls[phase])
    time.sleep(max(0.0, killed_at + GAP_S - time.monotonic()))
    recordings = {
        phase: live_recording(stack, call_ids[phase])
        for phase in ("recording", "recording-ends-in-gap")
    }
    restarted_at, restarted_wall = time.monotonic(), time.time()
    daemon.start()
    ready_at = time.monotonic()
    result = Restart(calls, call_ids, killed_at, restarted_at, restarted_wall, ready_at, recordings)

    # Precondition: the phones meant to act after the restart had not acted before it (else
    # the test staged something other than it means to).
    for phase, user_id in (("sequential", "sam"), ("simultaneous", "sue")):
        leg = next(leg for leg in legs_of(stack, calls[phase]) if leg["user_id"] == user_id)
        assert not observer.answered(leg["id"]), f"{phase}: {user_id} answered before the restart"
    assert observer.digits(greeting) == [], "the greeting caller chose before the restart"

    deadline = time.monotonic() + 90
    for phase, caller in calls.items():
        try:
            result.views[phase] = wait_until(
                partial(ended_in_store, stack, caller),
                max(deadline - time.monotonic(), 1.0),
                f"the {phase} call to end ({caller})",
                step=0.3,
            )
        except AssertionError as exc:
            seen = summarise(observer.snapshot(), [caller])
            raise AssertionError(f"{exc}\n{seen}\n{daemon.log_tail(30)}") from None
    result.ended_at = time.monotonic()
    return result


# ---- the calls as the store has them ------------------------------------------------------


def view(restart: Restart, phase: str) -> CallView:
    return restart.views[phase]


def legs(restart: Restart, phase: str) -> list[tuple[str, str]]:
    return [(leg["user_id"], leg["outcome"]) for leg in view(restart, phase).legs]


def story(stack: RealStack, restart: Restart, phase: str) -> str:
    caller = restart.calls[phase]
    ids = [caller, *(leg["id"] for leg in view(restart, phase).legs)]
    return summarise(stack.observer.snapshot(), ids)


def test_the_new_process_picks_up_all_nine_calls(stack: RealStack, restart: Restart) -> None:
    resumed = stack.daemon.logged("calls_resumed")
    assert len(resumed) == 1 and resumed[0]["calls"] == len(CALLS), resumed
    assert stack.daemon.logged("resume_failed") == []
    assert stack.daemon.logged("call_failed") == []
    # No caller was taken for a new call (that would be a second alert and a new greeting).
    assert stack.daemon.logged("channel_adopted") == []
    print(
        f"\nrestart: process started {restart.restarted_at - restart.killed_at:.2f} s after the"
        f" kill, ready (calls picked up) {restart.ready_at - restart.restarted_at:.2f} s later;"
        f" all calls ended {restart.ended_at - restart.restarted_at:.1f} s after the restart"
    )


def test_one_alert_per_call_never_two(stack: RealStack, restart: Restart) -> None:
    rows = stack.sql(
        "SELECT c.caller_channel_id, c.alert_id FROM calls c JOIN alerts a ON a.id = c.alert_id"
    )
    by_caller: dict[str, list[str]] = {}
    for row in rows:
        by_caller.setdefault(row["caller_channel_id"], []).append(str(row["alert_id"]))
    assert sorted(by_caller) == sorted(restart.calls.values()), by_caller
    assert all(len(alerts) == 1 for alerts in by_caller.values()), by_caller
    assert len(stack.sql("SELECT id FROM alerts")) == len(CALLS)


def test_each_call_ends_as_it_would_have_without_the_crash(
    stack: RealStack, restart: Restart
) -> None:
    ended = {phase: view(restart, phase).alert["ended_reason"] for phase in CALLS}
    assert ended == {
        "greeting": "connected",
        "sequential": "connected",
        "simultaneous": "connected",
        "whisper": "connected",
        "connected": "connected",
        "connected-ends-in-gap": "connected",
        "hold-ends-in-gap": "abandoned",
        "recording": "voicemail",
        "recording-ends-in-gap": "voicemail",
    }, ended


@pytest.mark.parametrize("phase", list(CALLS))
def test_one_whole_timeline_that_says_the_call_was_resumed(
    stack: RealStack, restart: Restart, phase: str
) -> None:
    call = view(restart, phase)
    assert "call_resumed" in call.kinds(), (phase, call.kinds())
    assert call.kinds().count("call_resumed") == 1
    assert call.kinds().count("call_started") == 1
    # Asterisk and the store agree on the call (legs, causes, bridge, complete timeline).
    stack.check_call(restart.calls[phase], call)


def answered_when(stack: RealStack, channel_id: str) -> float:
    """When Asterisk said the channel was Up (answered)."""
    for event in stack.observer.about_channel(channel_id):
        if event.raw.get("channel", {}).get("state") == "Up":
            return event.at
    raise AssertionError(f"{channel_id} was never answered")


def test_an_adopted_answered_leg_keeps_its_answer(stack: RealStack, restart: Restart) -> None:
    call = view(restart, "whisper")
    (leg,) = call.legs
    # The first process saw the answer and wrote it in the timeline, before the kill.
    noted = [e for e in call.timeline if e["kind"] == "leg_answered"]
    assert [e["data"]["leg"] for e in noted] == [leg["id"]], call.kinds()
    assert noted[0]["at"].timestamp() < call.at("call_resumed")
    assert answered_when(stack, leg["id"]) < restart.killed_at
    # The answer was stored when it happened (not with the leg's end, after the restart).
    assert leg["answered_at"] is not None
    assert abs((leg["answered_at"] - noted[0]["at"]).total_seconds()) < 0.1


def test_ringing_legs_are_adopted_not_rung_again(stack: RealStack, restart: Restart) -> None:
    observer = stack.observer
    # The caller in the greeting chose after the restart.
    assert legs(restart, "greeting") == [("quinn", "accepted")]
    assert view(restart, "greeting").alert["acknowledged_by"] == "quinn"
    # The same responder picks up the call, on the leg the first process placed.
    assert legs(restart, "sequential") == [("sam", "accepted")], story(stack, restart, "sequential")
    assert sorted(legs(restart, "simultaneous")) == [
        ("nora", "taken_by_other"),
        ("sue", "accepted"),
    ], story(stack, restart, "simultaneous")
    assert legs(restart, "whisper") == [("wendy", "accepted")], story(stack, restart, "whisper")
    for phase, users in (
        ("sequential", ["sam"]),
        ("simultaneous", ["nora", "sue"]),
        ("whisper", ["wendy"]),
    ):
        call = view(restart, phase)
        adopted = sorted(entry["user"] for entry in call.entries("leg_adopted"))
        assert adopted == users, (phase, call.kinds())
        # Asterisk created no other leg for the call than those on record (none rung anew),
        # and every one was placed before the kill.
        created = observer.channels_named(f"{restart.call_ids[phase]}-leg")
        assert sorted(created) == sorted(leg["id"] for leg in call.legs), (phase, created)
        for leg in created:
            assert observer.when("ChannelCreated", leg) < restart.killed_at, (phase, leg)
        accepted = next(leg for leg in call.legs if leg["outcome"] == "accepted")
        assert observer.digits(accepted["id"]) == ["1"]
        assert observer.when("ChannelDtmfReceived", accepted["id"]) > restart.ready_at
        assert call.alert["acknowledged_by"] == accepted["user_id"]


def test_conversations_complete_when_they_end(stack: RealStack, restart: Restart) -> None:
    for phase in ("connected", "connected-ends-in-gap"):
        call = view(restart, phase)
        assert legs(restart, phase) == [("quinn", "accepted")]
        assert call.alert["status"] == "resolved", (phase, call.alert["status"])
        assert call.alert["acknowledged_by"] == "quinn"
    assert view(restart, "connected").entries("hangup") == [{"by": "caller"}]
    gap = view(restart, "connected-ends-in-gap")
    assert "caller_left_during_restart" in gap.kinds(), gap.kinds()
    # The responder left alone in the bridge was hung up once the new process found out.
    leg = gap.legs[0]["id"]
    assert stack.observer.when("ChannelDestroyed", leg) > restart.restarted_at
    for phase in ("greeting", "sequential", "simultaneous", "whisper"):
        assert view(restart, phase).alert["status"] == "resolved", phase


def test_the_caller_who_gave_up_on_hold_is_reported(stack: RealStack, restart: Restart) -> None:
    call = view(restart, "hold-ends-in-gap")
    assert legs(restart, "hold-ends-in-gap") == [("nora", "abandoned")]
    assert "caller_left_during_restart" in call.kinds(), call.kinds()
    assert call.alert["escalation_count"] == 1
    # Nora's phone rang on through the gap and was let go by the new process.
    leg = call.legs[0]["id"]
    assert stack.observer.when("ChannelDestroyed", leg) > restart.restarted_at


def wav_level(audio: bytes) -> tuple[float, float]:
    """(seconds, RMS level 0..1) of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(audio)) as wav:
        frames = wav.readframes(wav.getnframes())
        seconds = wav.getnframes() / wav.getframerate()
    samples = array.array("h", frames)
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1)) / 32768
    return seconds, rms


def test_both_messages_are_kept_with_their_audio(stack: RealStack, restart: Restart) -> None:
    durations = {}
    for phase in ("recording", "recording-ends-in-gap"):
        call = view(restart, phase)
        voicemail = call.alert["voicemail"]
        assert voicemail is not None, phase
        audio = voicemail.get("audio")
        assert voicemail["audio_bytes"] and voicemail["audio_bytes"] > 44, (phase, voicemail)
        assert audio is not None and audio[:4] == b"RIFF"
        seconds, level = wav_level(audio)
        assert level > 0.01, f"{phase}: the stored message is silent (RMS {level:.4f})"
        durations[phase] = seconds
        assert call.alert["escalation_count"] == 1, (phase, call.alert["escalation_count"])
        assert "voicemail_recorded_during_restart" in call.kinds(), call.kinds()
    # One was recorded through the restart until its # (about LATER_S s of speech); the
    # other until its caller hung up in the gap.
    assert durations["recording"] > durations["recording-ends-in-gap"], durations
    assert stack.observer.digits(restart.calls["recording"]) == ["1", "#"]
    heard = stack.heard(restart.calls["recording"])
    assert heard[-2:] == [stack.say("voicemail_saved"), stack.say("goodbye")], heard


def test_the_greeting_is_not_played_again_the_menu_is(stack: RealStack, restart: Restart) -> None:
    d = DURATIONS["d"]
    number = d.numbers["5300"]
    sentences = greeting_and_menu(number, numbered_routes(number.routes))
    caller = restart.calls["greeting"]
    after = [
        stack.library.text_of(str(e.raw["playback"]["media_uri"]))
        for e in stack.observer.playbacks(caller)
        if e.at > restart.restarted_at
    ]
    assert after, "nothing was played to the caller after the restart"
    assert sentences[0] not in after, after
    assert sentences[1] in after, (sentences, after)


# ---- silence after the restart ---------------------------------------------------------------

_CONSOLE_LINE = re.compile(r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\] VERBOSE\[[^]]*\]")
_MOH_STARTED = re.compile(r"Started music on hold, class '[^']*', on channel '(?P<name>[^']+)'")
_MOH_STOPPED = re.compile(r"Stopped music on hold on (?P<name>\S+)")


def moh_intervals(
    stack: RealStack, name: str, offset: float, log_name: str = VERBOSE_LOG
) -> list[tuple[float, float | None]]:
    """When hold music played on the channel (time.monotonic(); None: not stopped), as
    Asterisk logged it in `log_name` (a verbose(3) logger channel the module added).
    `offset`: time.time() - time.monotonic()."""
    root = stack.asterisk.root
    assert root is not None
    intervals: list[tuple[float, float | None]] = []
    started: float | None = None
    for line in (root / "log" / log_name).read_text(errors="replace").splitlines():
        stamp = _CONSOLE_LINE.match(line)
        if stamp is None:
            continue
        at = dt.datetime.strptime(stamp["at"], "%Y-%m-%d %H:%M:%S.%f").timestamp() - offset
        if (m := _MOH_STARTED.search(line)) and m["name"] == name:
            started = at if started is None else started
        elif (m := _MOH_STOPPED.search(line)) and m["name"] == name and started is not None:
            intervals.append((started, at))
            started = None
    if started is not None:
        intervals.append((started, None))
    return intervals


def media_intervals(
    stack: RealStack, channel_id: str, offset: float, log_name: str = VERBOSE_LOG
) -> list[tuple[str, float, float | None]]:
    """What the caller had going, as Asterisk told: prompts (PlaybackStarted/Finished), hold
    music (its log), a bridge (ChannelEntered/LeftBridge), a recording (RecordingStarted/
    Finished); each (what, from, until), in time.monotonic()."""
    found: list[tuple[str, float, float | None]] = []
    events = stack.observer.snapshot()
    gone = stack.observer.destroyed(channel_id)
    end_of_channel = gone.at if gone is not None else None
    open_items: dict[tuple[str, str], float] = {}
    for event in events:
        raw = event.raw
        if event.type in ("PlaybackStarted", "PlaybackFinished"):
            if event.playback_target != channel_id:
                continue
            key = ("playback", str(raw["playback"]["id"]))
        elif event.type in ("ChannelEnteredBridge", "ChannelLeftBridge"):
            if event.channel_id != channel_id:
                continue
            key = ("bridge", str(event.bridge_id))
        elif event.type in ("RecordingStarted", "RecordingFinished", "RecordingFailed"):
            if raw.get("recording", {}).get("target_uri") != f"channel:{channel_id}":
                continue
            key = ("recording", str(raw["recording"]["name"]))
        else:
            continue
        if event.type in ("PlaybackStarted", "ChannelEnteredBridge", "RecordingStarted"):
            open_items[key] = event.at
        elif key in open_items:
            found.append((key[0], open_items.pop(key), event.at))
    found += [(kind, at, end_of_channel) for (kind, _id), at in open_items.items()]
    created = stack.observer.first("ChannelCreated", channel_id)
    assert created is not None
    name = str(created.raw["channel"]["name"])
    found += [
        ("moh", start, end if end is not None else end_of_channel)
        for start, end in moh_intervals(stack, name, offset, log_name)
    ]
    return sorted(found, key=lambda item: item[1])


def silent_after(
    intervals: list[tuple[str, float, float | None]], moment: float
) -> tuple[float, str] | None:
    """How long after `moment` the caller had something going again (0 when something still
    went on at that moment), and what; None if nothing came."""
    for kind, start, end in intervals:
        if start <= moment and (end is None or end > moment):
            return 0.0, kind
    later = [(start - moment, kind) for kind, start, _end in intervals if start > moment]
    return min(later) if later else None


def test_every_waiting_caller_hears_something_again_soon_after_the_restart(
    stack: RealStack, restart: Restart, capsys: pytest.CaptureFixture[str]
) -> None:
    offset = restart.restarted_wall - restart.restarted_at
    silent: dict[str, tuple[float, str] | None] = {}
    details = {}
    for phase in WAITING:
        intervals = media_intervals(stack, restart.calls[phase], offset)
        silent[phase] = silent_after(intervals, restart.restarted_at)
        details[phase] = [
            (kind, round(start - restart.restarted_at, 2),
             None if end is None else round(end - restart.restarted_at, 2))
            for kind, start, end in intervals
        ]  # fmt: skip
    # The message being recorded went on in Asterisk through the gap.
    assert restart.live_recordings_at_restart["recording"] == "recording"
    assert restart.live_recordings_at_restart["recording-ends-in-gap"] is None
    if silent["recording"] is None or silent["recording"][0] > 0:
        silent["recording"] = (0.0, "recording (GET /recordings/live)")
    with capsys.disabled():
        print(
            f"\n[restart] killed, new process {restart.restarted_at - restart.killed_at:.2f} s"
            f" later, ready after {restart.ready_at - restart.restarted_at:.2f} s; caller"
            " silent after the restart (s, what came or went on):"
        )
        for phase in WAITING:
            value = silent[phase]
            shown = "never" if value is None else f"{value[0]:.2f} ({value[1]})"
            around = [item for item in details[phase] if item[2] is None or item[2] > -3]
            print(f"[restart]   {phase:13s} {shown}; around the restart: {around[:4]}")
    for phase, value in silent.items():
        assert value is not None and value[0] < SILENT_LIMIT_S, (phase, value, details[phase])


# ---- nothing left ------------------------------------------------------------------------


def test_afterwards_nothing_is_left_in_asterisk(stack: RealStack, restart: Restart) -> None:
    observer = stack.observer
    assert stack.wait_nothing_left(15) == {"channels": [], "bridges": [], "recordings": []}
    # Every playback Asterisk started (the first process's included) finished.
    started = {
        str(e.raw["playback"]["id"]) for e in observer.snapshot() if e.type == "PlaybackStarted"
    }
    finished = {
        str(e.raw["playback"]["id"]) for e in observer.snapshot() if e.type == "PlaybackFinished"
    }
    assert started - finished == set()
    for playback in started:
        status, _body = stack.loop.run(stack.rest.request("GET", f"/playbacks/{playback}"))
        assert status == 404, playback
    # No recording is live any more; the messages were fetched and deleted from Asterisk.
    for phase in ("recording", "recording-ends-in-gap"):
        assert live_recording(stack, restart.call_ids[phase]) is None
    assert observer.disconnects == []
