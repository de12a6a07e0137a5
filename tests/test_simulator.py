"""The simulator at 20x speed: recordings, media, bridges, faults, inspection."""

from __future__ import annotations

import asyncio
import io
import re
import time
import wave
from pathlib import Path

import aiohttp
import pytest

from ari_controller.simulator import Simulator
from ari_controller.simulator.inspect import NOTHING_LEFT
from ari_controller.simulator.localcalls import STASIS_RETRIES, STASIS_RETRY_WAIT
from ari_controller.simulator.phones import ScriptBook, ScriptError
from tests.fixtures_simulator import FAST, SIM_APP, SIM_PASSWORD, SIM_USER, AriTestClient

FALLBACK_AFTER_S = STASIS_RETRIES * STASIS_RETRY_WAIT
DIALPLAN = Path(__file__).resolve().parent.parent / "asterisk" / "extensions.conf"

TRACES = Path(__file__).parent / "ari_traces"


def _is_pb_finished(playback_id: str):  # type: ignore[no-untyped-def]
    return lambda e: e["type"] == "PlaybackFinished" and e["playback"]["id"] == playback_id


async def test_every_extension_of_the_acceptance_dialplan_has_a_script() -> None:
    conf = (TRACES / "extensions.conf").read_text()
    names: set[str] = set()
    context = ""
    for line in conf.splitlines():
        if line.startswith("["):
            context = line.strip("[]")
        match = re.match(r"exten => (\w+),1,", line)
        if match and context in ("caller", "responders"):
            names.add(match.group(1))
    book = ScriptBook.with_builtins()
    assert names and names <= set(book.names())


async def test_bad_scripts_are_refused_with_a_clear_error() -> None:
    book = ScriptBook()
    with pytest.raises(ScriptError, match="unknown step 'jump'"):
        book.register("x", [{"jump": 1}])
    with pytest.raises(ScriptError, match="dtmf needs digits"):
        book.register("x", [{"dtmf": "x"}])


async def test_wrong_credentials_get_401_and_api_key_works(simulator: Simulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{simulator.ari_url}/channels") as reply:
            assert reply.status == 401
        key = f"{SIM_USER}:{SIM_PASSWORD}"
        async with session.get(f"{simulator.ari_url}/channels", params={"api_key": key}) as reply:
            assert reply.status == 200


async def test_inbound_call_dtmf_and_media_history(
    simulator: Simulator, ari: AriTestClient
) -> None:
    channel = await ari.inbound_call("press2")
    assert (await ari.rest("POST", f"/channels/{channel}/moh"))[0] == 204
    await ari.rest("POST", f"/channels/{channel}/answer")
    await ari.rest("POST", f"/channels/{channel}/play", media="sound:vm-intro", playbackId="m")
    dtmf = await ari.wait_type("ChannelDtmfReceived", channel)
    assert dtmf["digit"] == "2"
    await ari.rest("DELETE", "/playbacks/m")
    await ari.wait_for(_is_pb_finished("m"))
    await ari.rest("DELETE", f"/channels/{channel}")
    await ari.wait_type("StasisEnd", channel)
    media = simulator.media(channel)
    assert [m["kind"] for m in media] == ["moh", "playback"]
    assert media[0]["ended"] is not None  # MOH stopped by the play
    assert media[1]["media"] == "sound:vm-intro" and media[1]["stopped_early"]
    (record,) = [r for r in simulator.history() if r["channel_id"] == channel]
    assert record["entered_stasis"] and record["destroyed"] is not None
    assert simulator.leftovers() == NOTHING_LEFT


async def test_playback_length_follows_the_wav_file_and_time_scale(ari: AriTestClient) -> None:
    channel = await ari.inbound_call("listen")
    await ari.rest("POST", f"/channels/{channel}/answer")
    started = time.monotonic()
    await ari.rest("POST", f"/channels/{channel}/play", media="sound:vm-intro", playbackId="p")
    finished = await ari.wait_for(_is_pb_finished("p"))
    elapsed = time.monotonic() - started
    assert finished["playback"]["state"] == "done"
    assert 5.65 / 20 * 0.8 < elapsed < 5.65 / 20 + 0.2


async def test_missing_sound_fails_quickly(ari: AriTestClient) -> None:
    channel = await ari.inbound_call("listen")
    await ari.rest("POST", f"/channels/{channel}/play", media="sound:no-such", playbackId="x")
    finished = await ari.wait_for(_is_pb_finished("x"), timeout=1)
    assert finished["playback"]["state"] == "failed"


async def test_recording_holds_the_callers_speech_and_ends_on_hash(
    simulator: Simulator, ari: AriTestClient
) -> None:
    channel = await ari.inbound_call("speakhash")
    await ari.rest("POST", f"/channels/{channel}/answer")
    status, body = await ari.rest(
        "POST",
        f"/channels/{channel}/record",
        name="vm",
        format="wav",
        beep=True,
        terminateOn="#",
        maxSilenceSeconds=10,
        ifExists="overwrite",
    )
    assert status == 201 and body["name"] == "vm"
    done = await ari.wait_type("RecordingFinished")
    assert done["recording"]["state"] == "done"
    status, data = await ari.rest("GET", "/recordings/stored/vm/file")
    assert status == 200
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        frames = wav.readframes(wav.getnframes())
        duration = wav.getnframes() / 8000
    # 1 s of silence, 5.65 s of vm-intro, minus the beep and the trimmed key press.
    assert 5.5 < duration < 7.0  # a loaded machine stretches the 20x clock by a few ms
    loud = sum(
        1
        for i in range(0, len(frames), 2)
        if abs(int.from_bytes(frames[i : i + 2], "little", signed=True)) > 1000
    )
    assert loud > 8000  # more than a second of speech
    status, body = await ari.rest(
        "POST", f"/channels/{channel}/record", name="vm", format="wav", ifExists="fail"
    )
    assert status == 409
    assert simulator.media(channel)[-1]["kind"] == "recording"


async def test_recording_stops_after_max_silence(ari: AriTestClient) -> None:
    channel = await ari.inbound_call("listen")
    await ari.rest("POST", f"/channels/{channel}/answer")
    started = time.monotonic()
    await ari.rest(
        "POST", f"/channels/{channel}/record", name="quiet", format="wav", maxSilenceSeconds=2
    )
    done = await ari.wait_type("RecordingFinished")
    assert done["recording"]["state"] == "done"
    assert 2 / 20 * 0.8 < time.monotonic() - started < 2 / 20 + 0.3


async def test_recording_a_bridged_channel_fails(ari: AriTestClient) -> None:
    channel = await ari.inbound_call("listen")
    await ari.rest("POST", "/bridges", type="mixing", bridgeId="b")
    assert (await ari.rest("POST", "/bridges/b/addChannel", channel=channel))[0] == 204
    await ari.rest("POST", f"/channels/{channel}/record", name="r", format="wav")
    failed = await ari.wait_type("RecordingFailed")
    assert failed["recording"]["cause"] == "Cannot record channel while in bridge"


async def test_talk_detect_fires_when_the_caller_speaks(ari: AriTestClient) -> None:
    channel = await ari.inbound_call("voicemail")
    await ari.rest("POST", f"/channels/{channel}/answer")
    await ari.rest("POST", f"/channels/{channel}/variable", variable="TALK_DETECT(set)", value="")
    await ari.wait_type("ChannelTalkingStarted", channel, timeout=2)


async def test_responder_legs_busy_noanswer_accept_and_bridge(
    simulator: Simulator, ari: AriTestClient
) -> None:
    caller = await ari.inbound_call("listen")
    outcomes = {}
    for script in ("busy", "noanswer", "accept"):
        leg = f"leg-{script}"
        await ari.rest(
            "POST",
            "/channels",
            endpoint=f"Local/{script}@responders",
            app=SIM_APP,
            channelId=leg,
            timeout=3,
        )
        ev = await ari.wait_for(
            lambda e, leg=leg: (
                e.get("channel", {}).get("id") == leg
                and e["type"] in ("StasisStart", "ChannelDestroyed")
            )
        )
        outcomes[script] = ev.get("cause", ev["type"])
    assert outcomes == {"busy": 0, "noanswer": 19, "accept": "StasisStart"}
    await ari.wait_type("ChannelDtmfReceived", "leg-accept")
    await ari.rest("POST", "/bridges", type="mixing", bridgeId="call")
    await ari.rest("POST", "/bridges/call/addChannel", channel=f"{caller},leg-accept")
    status, bridge = await ari.rest("GET", "/bridges/call")
    assert status == 200 and sorted(bridge["channels"]) == sorted([caller, "leg-accept"])
    await ari.rest("DELETE", f"/channels/{caller}")
    await ari.rest("DELETE", "/channels/leg-accept")
    await ari.rest("DELETE", "/bridges/call")
    assert simulator.leftovers()["channels"] == []
    assert simulator.asterisk._local_pairs == {}  # a destroyed channel leaves its pair
    causes = {r["channel_id"]: r["cause"] for r in simulator.history()}
    assert causes["leg-busy"] == 0 and causes["leg-noanswer"] == 19


async def test_create_and_dial_with_timeout(ari: AriTestClient) -> None:
    await ari.rest(
        "POST",
        "/channels/create",
        endpoint="Local/noanswer@responders",
        app=SIM_APP,
        channelId="d1",
    )
    await ari.wait_type("StasisStart", "d1")
    await ari.rest("POST", "/channels/d1/dial", timeout=2)
    ringing = await ari.wait_for(lambda e: e["type"] == "Dial" and e["dialstatus"] == "RINGING")
    assert ringing["peer"]["id"] == "d1"
    gone = await ari.wait_type("ChannelDestroyed", "d1", timeout=2)
    assert gone["cause"] == 19


async def test_unknown_script_fails_the_originate(ari: AriTestClient) -> None:
    status, _ = await ari.rest(
        "POST", "/channels", endpoint="Local/nope@responders", app=SIM_APP, channelId="bad"
    )
    assert status == 200
    gone = await ari.wait_type("ChannelDestroyed", "bad")
    assert gone["cause"] == 0


async def test_registered_script_runs(simulator: Simulator, ari: AriTestClient) -> None:
    simulator.register_script("press7", [{"answer": {}}, {"dtmf": "7"}, {"wait": 10}])
    channel = await ari.inbound_call("press7")
    await ari.rest("POST", f"/channels/{channel}/answer")
    assert (await ari.wait_type("ChannelDtmfReceived", channel))["digit"] == "7"


async def test_second_websocket_replaces_the_first(
    simulator: Simulator, ari: AriTestClient
) -> None:
    second = AriTestClient(simulator)
    await second.connect()
    try:
        await ari.wait_type("ApplicationReplaced")
        channel = await second.inbound_call("listen")
        assert not any(e.get("channel", {}).get("id") == channel for e in ari.events)
    finally:
        await second.close()


async def test_without_websocket_calls_stay_and_new_calls_fall_back_after_the_retries(
    simulator: Simulator, ari: AriTestClient
) -> None:
    channel = await ari.inbound_call("listen")
    await simulator.drop_websockets()
    await asyncio.sleep(0.05)
    status, _ = await ari.rest(
        "POST", "/channels", endpoint="Local/listen@caller", extension="100", context="from-pstn"
    )
    assert status == 200
    await asyncio.sleep(0.1)
    status, body = await ari.rest("GET", f"/channels/{channel}")
    assert status == 200 and body["dialplan"]["app_name"] == "Stasis"
    # The dialplan tries Stasis() again for STASIS_RETRIES x STASIS_RETRY_WAIT (6 s, 0.3 s
    # at this time scale) before the fallback.
    assert not [r for r in simulator.history() if r["fell_back"]]
    await asyncio.sleep(FALLBACK_AFTER_S / FAST + 0.2)
    fallback = [r for r in simulator.history() if r["fell_back"]]
    assert len(fallback) == 1 and not fallback[0]["entered_stasis"]


async def test_a_call_arriving_while_no_app_is_connected_reaches_the_app_that_connects(
    simulator: Simulator, ari: AriTestClient
) -> None:
    await simulator.drop_websockets()
    status, _ = await ari.rest(
        "POST", "/channels", endpoint="Local/listen@caller", extension="100", context="from-pstn"
    )
    assert status == 200
    await asyncio.sleep(FALLBACK_AFTER_S / FAST / 2)  # half the retries, as a restart takes
    await ari.connect()
    start = await ari.wait_type("StasisStart", timeout=2)
    assert start["args"] == ["100"]
    assert not [r for r in simulator.history() if r["fell_back"]]


async def test_faults_failing_slow_and_restart(simulator: Simulator, ari: AriTestClient) -> None:
    simulator.fail_requests("/channels$", 2, 503)
    assert (await ari.rest("GET", "/channels"))[0] == 503
    assert (await ari.rest("GET", "/channels"))[0] == 503
    assert (await ari.rest("GET", "/channels"))[0] == 200
    simulator.slow_requests(150)
    started = time.monotonic()
    await ari.rest("GET", "/channels")
    assert time.monotonic() - started >= 0.15
    simulator.clear_faults()
    await ari.inbound_call("listen")
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{simulator.url}/_sim/faults/restart", params={"downtime": "0.3"}
        ) as reply:
            assert reply.status == 204
    assert (await ari.rest("GET", "/channels"))[0] == 503
    await asyncio.sleep(0.35)
    status, channels = await ari.rest("GET", "/channels")
    assert status == 200 and channels == []


async def test_http_media_is_fetched(simulator: Simulator, ari: AriTestClient) -> None:
    from aiohttp import web

    from ari_controller.simulator.audio import encode_wav, tone

    async def serve_wav(request: web.Request) -> web.Response:
        return web.Response(body=encode_wav(tone(440, 2.0)), content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/hello.wav", serve_wav)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        channel = await ari.inbound_call("listen")
        started = time.monotonic()
        await ari.rest(
            "POST",
            f"/channels/{channel}/play",
            media=f"http://127.0.0.1:{port}/hello.wav",
            playbackId="h",
        )
        finished = await ari.wait_for(_is_pb_finished("h"))
        assert finished["playback"]["state"] == "done"
        assert time.monotonic() - started >= 2.0 / 20 * 0.8
    finally:
        await runner.cleanup()


async def test_inspection_mirror_over_http(simulator: Simulator, ari: AriTestClient) -> None:
    channel = await ari.inbound_call("listen")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{simulator.url}/_sim/live") as reply:
            live = await reply.json()
        async with session.get(f"{simulator.url}/_sim/history") as reply:
            history = await reply.json()
    assert channel in [c["id"] for c in live["channels"]]
    assert history[0]["endpoint"] == "Local/listen@caller"


def test_the_simulator_retries_stasis_as_the_shipped_dialplan_does() -> None:
    text = DIALPLAN.read_text()
    retries = re.search(r"^STASIS_RETRIES = (\d+)$", text, re.MULTILINE)
    wait = re.search(r"^STASIS_RETRY_WAIT = ([\d.]+)$", text, re.MULTILINE)
    assert retries and wait
    assert (int(retries.group(1)), float(wait.group(1))) == (STASIS_RETRIES, STASIS_RETRY_WAIT)
