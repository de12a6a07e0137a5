"""Record real ARI traces of an app whose controller is gone for a few seconds.

The controller process is killed (its events websocket drops without a closing handshake)
and a new one connects for the same app a few seconds later. What goes on in the gap:
playbacks, MOH and recordings carry on, ringing legs the app originated are answered into
Stasis (or not), and the new websocket hears about the app's channels again, without
replay. Uses the Recorder of record_traces.py (same environment, same record format);
record_traces.py runs these scenarios too.

usage: python record_controller_gone.py OUTDIR [scenario ...]
"""
import asyncio
import sys

import record_traces
from record_traces import APP, Recorder, is_, originate_leg, place_call


async def drop(r: Recorder):
    """The controller is SIGKILLed: the TCP connection goes, no websocket close frame."""
    r.ws._writer.transport.abort()
    r.reader.cancel()
    r.log({"dir": "ws", "what": "dropped"})


async def s_controller_gone_playback_moh(r):
    """A playback ending in the gap, one outlasting it, MOH across it."""
    short = await place_call(r, "listen")
    await r.rest("POST", f"/channels/{short}/answer")
    long_ = await place_call(r, "listen")
    await r.rest("POST", f"/channels/{long_}/answer")
    held = await place_call(r, "listen")
    await r.rest("POST", f"/channels/{held}/answer")
    await r.rest("POST", f"/channels/{held}/moh", mohClass="default")
    await r.rest("POST", f"/channels/{short}/play", media="sound:vm-nobodyavail",
                 playbackId="pb-gone-short")
    await r.rest("POST", f"/channels/{long_}/play", media="sound:tt-monkeys",
                 playbackId="pb-gone-long")
    await asyncio.sleep(0.3)
    await drop(r)
    await asyncio.sleep(1)
    await r.rest("GET", "/playbacks/pb-gone-short")
    await r.rest("GET", f"/applications/{APP}")
    await r.rest("GET", "/applications")
    await asyncio.sleep(2)
    await r.connect()
    await r.rest("GET", "/playbacks/pb-gone-short")
    await r.rest("GET", "/playbacks/pb-gone-long")
    await r.rest("GET", f"/applications/{APP}")
    await r.rest("GET", "/channels")
    await r.wait(lambda e: e["type"] == "PlaybackFinished"
                 and e["playback"]["id"] == "pb-gone-long", 20)
    await r.rest("DELETE", f"/channels/{held}/moh")
    for caller in (short, long_, held):
        await r.rest("DELETE", f"/channels/{caller}")
        await r.wait(is_("StasisEnd", caller), 5)
    await asyncio.sleep(0.5)


async def s_controller_gone_recording(r):
    """Recordings ending in the gap: by #, by maxDurationSeconds, by the caller's hangup."""
    hashed = await place_call(r, "speakhash")  # presses # about 6.7 s after it answered
    await r.rest("POST", f"/channels/{hashed}/answer")
    await asyncio.sleep(2.5)
    talker = await place_call(r, "voicemail")
    await r.rest("POST", f"/channels/{talker}/answer")
    leaver = await place_call(r, "hangup2")
    await r.rest("POST", f"/channels/{leaver}/answer")
    await r.rest("POST", f"/channels/{hashed}/record", name="rec-gone-hash", format="wav",
                 maxDurationSeconds=30, maxSilenceSeconds=10, terminateOn="#", ifExists="overwrite")
    await r.rest("POST", f"/channels/{talker}/record", name="rec-gone-maxdur", format="wav",
                 maxDurationSeconds=3, terminateOn="#", ifExists="overwrite")
    await r.rest("POST", f"/channels/{leaver}/record", name="rec-gone-hangup", format="wav",
                 maxDurationSeconds=30, maxSilenceSeconds=10, terminateOn="#", ifExists="overwrite")
    names = ("rec-gone-hash", "rec-gone-maxdur", "rec-gone-hangup")
    await asyncio.sleep(0.3)
    await drop(r)
    await asyncio.sleep(0.7)
    for name in names:
        await r.rest("GET", f"/recordings/live/{name}")
    await asyncio.sleep(4.3)
    await r.connect()
    for name in names:
        await r.rest("GET", f"/recordings/live/{name}")
        await r.rest("GET", f"/recordings/stored/{name}")
        await r.rest("GET", f"/recordings/stored/{name}/file")  # its size: how long it is
    await r.rest("GET", f"/applications/{APP}")
    await r.rest("GET", "/channels")
    for caller in (hashed, talker):
        await r.rest("DELETE", f"/channels/{caller}")
        await r.wait(is_("StasisEnd", caller), 5)
    for name in names:
        await r.rest("DELETE", f"/recordings/stored/{name}")
    await asyncio.sleep(0.5)


async def s_controller_gone_ringing_legs(r):
    """Legs from `POST /channels?app=` still ringing when the websocket drops."""
    # Answered after the new websocket connected: StasisStart there, with the args; a leg
    # that times out: its Dial and ChannelDestroyed reach the new websocket.
    await originate_leg(r, "accept", "leg-gone-late", timeout=20)
    await originate_leg(r, "noanswer", "leg-gone-na", timeout=4)
    await asyncio.sleep(0.2)
    await drop(r)
    await asyncio.sleep(0.5)
    await r.rest("GET", f"/applications/{APP}")
    await asyncio.sleep(0.5)
    await r.connect()
    await r.rest("GET", f"/applications/{APP}")
    await r.wait(is_("StasisStart", "leg-gone-late"), 5)
    await r.wait(is_("ChannelDestroyed", "leg-gone-na"), 6)
    await r.rest("GET", "/channels")
    await r.rest("DELETE", "/channels/leg-gone-late")
    await r.wait(is_("StasisEnd", "leg-gone-late"), 5)
    await asyncio.sleep(1)
    # Answered while no websocket is connected: Stasis() fails, the leg is hung up.
    await originate_leg(r, "accept", "leg-gone-gap", timeout=20)
    await asyncio.sleep(0.2)
    await drop(r)
    await asyncio.sleep(3)
    await r.connect()
    await r.rest("GET", "/channels/leg-gone-gap")
    await r.rest("GET", f"/applications/{APP}")
    await r.rest("GET", "/channels")
    await asyncio.sleep(0.5)


async def s_controller_gone_create_dial(r):
    """An app with nothing subscribed is gone in the gap; a created leg answered in the gap
    stays in Stasis."""
    await drop(r)
    await asyncio.sleep(0.5)
    await r.rest("GET", f"/applications/{APP}")
    await r.connect()
    await r.rest("GET", f"/applications/{APP}")
    await r.rest("POST", "/channels/create", endpoint="Local/accept@responders", app=APP,
                 appArgs="responder", channelId="leg-gone-cr")
    await r.wait(is_("StasisStart", "leg-gone-cr"), 5)
    await r.rest("POST", "/channels/leg-gone-cr/dial", timeout=10)
    await asyncio.sleep(0.2)
    await drop(r)
    await asyncio.sleep(3)
    await r.connect()
    await r.rest("GET", "/channels/leg-gone-cr")
    await r.rest("GET", f"/applications/{APP}")
    await r.wait(is_("ChannelDtmfReceived", "leg-gone-cr"), 5)
    await r.rest("DELETE", "/channels/leg-gone-cr")
    await r.wait(is_("StasisEnd", "leg-gone-cr"), 5)
    await asyncio.sleep(0.5)


SCENARIOS = {name[2:]: fn for name, fn in globals().items() if name.startswith("s_")}


if __name__ == "__main__":
    record_traces.SCENARIOS.update(SCENARIOS)
    asyncio.run(record_traces.main(sys.argv[1], sys.argv[2:] or list(SCENARIOS)))
