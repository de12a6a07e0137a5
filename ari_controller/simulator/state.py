"""The simulated Asterisk: channels in and out of Stasis, bridges, media, and the events
each change produces (shaped and ordered as in tests/ari_traces).

Operations raise `AriError` with the status code and message Asterisk answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine
from typing import Any

from ari_controller.simulator.audio import attenuated
from ari_controller.simulator.clock import Clock
from ari_controller.simulator.events import JSON, cause_text, event
from ari_controller.simulator.hub import Hub
from ari_controller.simulator.media import RecordingStore, SoundLibrary
from ari_controller.simulator.model import (
    AriError,
    Bridge,
    CallRecord,
    Channel,
    LiveRecording,
    LocalPair,
    MediaEvent,
    Playback,
)
from ari_controller.simulator.phones import ScriptBook

DEFAULT_APP = "callrouting"
TICK = 0.02  # call seconds between checks of a running recording or talk detector
# Silence a recording ended by maxSilenceSeconds keeps at its end.
KEPT_SILENCE = 0.2
TALK_START = 0.16  # TALK_DETECT's default talking threshold
TALK_SILENCE = 2.5  # TALK_DETECT's default silence threshold
DTMF_TRIM = 0.2  # Asterisk drops the tail of a recording ended by a key
FAILED_PLAYBACK_DELAY = 0.005
SNOOP_DESTROY_DELAY = 0.02


class Asterisk:
    """All state of one simulated Asterisk (lost on restart, as on a real one)."""

    def __init__(
        self,
        clock: Clock,
        hub: Hub,
        scripts: ScriptBook,
        sounds: SoundLibrary,
        recordings: RecordingStore,
        app: str | None,
    ) -> None:
        self.clock = clock
        self.hub = hub
        self.scripts = scripts
        self.sounds = sounds
        self.recordings = recordings
        self.only_app = app
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.playbacks: dict[str, Playback] = {}
        self.live_recordings: dict[str, LiveRecording] = {}
        self.history: list[CallRecord] = []
        # channel id -> its record; `history` only grows, so `_record_index` catches up lazily
        # (a scan of the whole history per hang-up made a long run quadratic).
        self._records: dict[str, CallRecord] = {}
        self._records_indexed = 0
        self.gone_channels: dict[str, Channel] = {}
        # channel id -> the Local pair the live channel is a half of (localcalls.py)
        self._local_pairs: dict[str, LocalPair] = {}
        self._unique = 1
        self._local_serial = 0
        self._snoop_serial = -1  # res_stasis_snoop numbers its channels from 0
        self._tasks: set[asyncio.Task[Any]] = set()
        # Asterisk's registry of Stasis applications (res_stasis.c apps_registry). An app
        # whose websocket is gone stays registered, inactive, while it is subscribed to
        # something; it is dropped at the next clean-up point once it is not.
        self.registered_apps: set[str] = set()
        # A line echo: a prompt played to a channel comes back in what its phone sends, this
        # many dB below it (None: a perfect line). A snoop or a recording hears it.
        self.line_echo_db: float | None = None

    # --- bookkeeping -------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def next_unique_id(self) -> str:
        self._unique += 1
        return f"{self.clock.epoch()}.{self._unique}"

    def next_local_serial(self) -> str:
        self._local_serial += 1
        return f"{self._local_serial:08x}"

    def inbound_app(self) -> str:
        """The app `Stasis(${STASIS_APP})` of the from-pstn context names."""
        if self.only_app:
            return self.only_app
        apps = self.hub.apps()
        return apps[-1] if apps else DEFAULT_APP

    def check_app(self, app: str) -> None:
        if self.only_app and app != self.only_app:
            raise AriError(400, f"Application '{app}' not registered")

    def new_channel(self, channel_id: str | None, name: str, caller: tuple[str, str]) -> Channel:
        now = self.clock.now()
        channel = Channel(
            id=channel_id or self.next_unique_id(),
            name=name,
            creationtime=self.clock.timestamp(now),
            created=now,
            caller=caller,
            connected=caller,
        )
        self.channels[channel.id] = channel
        return channel

    def add_local_pair(self, pair: LocalPair) -> None:
        """Both halves of a new Local channel belong to `pair` until they are destroyed."""
        self._local_pairs[pair.one.id] = pair
        self._local_pairs[pair.two.id] = pair

    def local_pair(self, channel: Channel) -> LocalPair | None:
        """The Local pair `channel` is a half of, if any."""
        pair = self._local_pairs.get(channel.id)
        if pair is None or (channel is not pair.one and channel is not pair.two):
            return None
        return pair

    def channel(self, channel_id: str) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None or not channel.alive:
            raise AriError(404, "Channel not found")
        return channel

    def find_channel(self, name_or_id: str) -> Channel | None:
        """A live channel by unique id or by name (names match without regard to case), as
        Asterisk looks up an `originator` or a dial `caller`."""
        channel = self.channels.get(name_or_id)
        if channel is None:
            wanted = name_or_id.lower()
            channel = next((c for c in self.channels.values() if c.name.lower() == wanted), None)
        return channel if channel is not None and channel.alive else None

    def subscribed_channels(self, app: str) -> list[Channel]:
        """Channels whose events `app` receives: those in Stasis in it, both halves of a
        Local channel it originated, a `/channels/create` originator; not necessarily in
        Stasis (`GET /applications/{app}` lists them all)."""
        return [c for c in self.channels.values() if c.alive and app in c.apps]

    # --- the application registry ------------------------------------------------------

    def register_app(self, app: str) -> None:
        """A websocket connected for `app` (a new one, or one that replaces another)."""
        self.registered_apps.add(app)
        self.cleanup_apps()

    def is_registered(self, app: str) -> bool:
        """Whether `GET /applications/{app}` finds the app: connected, or not connected
        but still subscribed to channels or bridges (the events in between are lost)."""
        return app in self.registered_apps

    def cleanup_apps(self) -> None:
        """Drop the apps that have no websocket and no subscription any more. Asterisk
        does this when a websocket connects or goes and when a channel leaves Stasis
        (res_stasis.c cleanup()), not the moment an app's last channel is destroyed."""
        for app in list(self.registered_apps):
            if self.hub.is_connected(app):
                continue
            channels = any(c.alive and app in c.apps for c in self.channels.values())
            bridges = any(b.subscribed for b in self.bridges.values())
            if not channels and not bridges:
                self.registered_apps.discard(app)

    def stasis_channel(self, channel_id: str) -> Channel:
        channel = self.channel(channel_id)
        if not channel.in_stasis():
            raise AriError(409, "Channel not in Stasis application")
        return channel

    # --- events ------------------------------------------------------------------------

    def emit_to(self, apps: set[str], kind: str, **fields: Any) -> None:
        stamp = self.clock.timestamp()
        for app in sorted(apps):
            self.hub.publish(app, event(kind, app, stamp, **fields))

    def channel_event(self, channel: Channel, kind: str, **fields: Any) -> None:
        if channel.apps:
            self.emit_to(channel.apps, kind, channel=channel.snapshot(), **fields)

    def set_state(self, channel: Channel, state: str) -> None:
        if channel.state != state:
            channel.state = state
            self.channel_event(channel, "ChannelStateChange")

    def varset(self, channel: Channel, variable: str, value: str) -> None:
        channel.variables[variable] = value
        self.channel_event(channel, "ChannelVarset", variable=variable, value=value)

    def hangup_request(self, channel: Channel, cause: int, soft: bool) -> None:
        fields: dict[str, Any] = {"cause": cause}
        if soft:
            fields["soft"] = True
        self.channel_event(channel, "ChannelHangupRequest", **fields)

    def destroy(self, channel: Channel, cause: int) -> None:
        """The channel is gone: ChannelDestroyed for whoever still listens."""
        if not channel.alive:
            return
        self._end_snoops_of(channel)
        pair = self.local_pair(channel)
        if pair is not None:
            del self._local_pairs[channel.id]
            if channel is pair.two:
                # The phone's half has left its dialplan: no application any more.
                channel.app_name = channel.app_data = ""
        self.channel_event(channel, "ChannelDestroyed", cause=cause, cause_txt=cause_text(cause))
        channel.alive = False
        channel.apps.clear()
        if channel.talk_detect is not None:
            channel.talk_detect.cancel()
        if self.channels.get(channel.id) is channel:  # a snoop's id may be in use again
            del self.channels[channel.id]
        self.gone_channels[channel.id] = channel
        record = self.record_of(channel)
        if record is not None and record.destroyed is None:
            record.destroyed = self.clock.now()
            record.cause = cause

    def record_of(self, channel: Channel) -> CallRecord | None:
        return self._record_index().get(channel.id)

    def _record_index(self) -> dict[str, CallRecord]:
        if len(self.history) < self._records_indexed:  # history was cut: start over
            self._records.clear()
            self._records_indexed = 0
        for record in self.history[self._records_indexed :]:
            self._records.setdefault(record.channel_id, record)  # the first record wins
        self._records_indexed = len(self.history)
        return self._records

    # --- Stasis --------------------------------------------------------------------------

    def enter_stasis(self, channel: Channel, app: str, args: list[str], announce: bool) -> None:
        """`Stasis(app,args)`: the app gets the channel (StasisStart)."""
        channel.stasis_app = app
        channel.stasis_args = args
        channel.app_name = "Stasis"
        channel.app_data = ",".join([app, *args])
        channel.apps.add(app)
        if announce:
            self.varset(channel, "STASISSTATUS", "")
        self.channel_event(channel, "StasisStart", args=args)
        record = self.record_of(channel)
        if record is not None:
            record.entered_stasis = True

    def leave_stasis(self, channel: Channel, keep_subscription: bool) -> None:
        """End of Stasis for this channel: media stops, it leaves its bridge, StasisEnd."""
        self.leave_bridge(channel, by_app=False)
        self.end_channel_media(channel)
        app = channel.stasis_app
        if app is None:
            return
        self.channel_event(channel, "StasisEnd")
        channel.stasis_app = None
        if keep_subscription:
            self.varset(channel, "STASISSTATUS", "SUCCESS")
        else:
            channel.apps.discard(app)
        self.cleanup_apps()

    # --- media on channels ---------------------------------------------------------------

    def end_channel_media(self, channel: Channel) -> None:
        """A hangup ends every playback (failed), the recording (done) and MOH."""
        for playback in list(channel.playbacks):
            self.finish_playback(playback, "failed")
        channel.playbacks.clear()
        if channel.recording is not None:
            recording = channel.recording
            recording.stop = recording.stop or "hangup"
            self.complete_recording(recording)
        self.stop_moh(channel)

    def stop_moh(self, channel: Channel) -> None:
        if channel.moh is not None:
            channel.moh.ended = self.clock.now()
            channel.moh = None

    def start_moh(self, channel: Channel, moh_class: str) -> None:
        self.stop_moh(channel)
        channel.moh = MediaEvent("moh", moh_class, self.clock.now())
        channel.media_log.append(channel.moh)
        channel.heard.set()

    def start_bridge_moh(self, bridge: Bridge, moh_class: str) -> None:
        bridge.moh = MediaEvent("moh", moh_class, self.clock.now())
        bridge.media_log.append(bridge.moh)
        for member in bridge.channels:
            member.heard.set()

    def play(
        self, target: Channel | Bridge, media_uri: str, playback_id: str | None, app: str
    ) -> Playback:
        if playback_id and playback_id in self.playbacks:
            raise AriError(409, f"Playback with id '{playback_id}' already exists")
        if isinstance(target, Channel):
            target_uri = f"channel:{target.id}"
        else:
            target_uri = f"bridge:{target.id}"
        playback = Playback(playback_id or str(uuid.uuid4()), media_uri, target_uri, app)
        self.playbacks[playback.id] = playback
        target.playbacks.append(playback)
        if len(target.playbacks) == 1:
            self.start_playback(target, playback)
        return playback

    def start_playback(self, target: Channel | Bridge, playback: Playback) -> None:
        playback.state = "playing"
        if isinstance(target, Channel):
            # Channel MOH stops on play and does not come back.
            self.stop_moh(target)
            target.idle.clear()
            target.heard.set()
        else:
            for member in target.channels:
                member.heard.set()
        if isinstance(target, Bridge) and target.kind == "mixing" and len(target.channels) == 1:
            # Asterisk's announcer joins the bridge to play.
            member = target.channels[0]
            member.bridge_peer = f"Announcer/ARI-{self.next_local_serial()};2"
            self.varset(member, "BRIDGEPEER", member.bridge_peer)
            self.channel_event(member, "ChannelConnectedLine")
        playback.log = MediaEvent("playback", playback.media_uri, self.clock.now())
        target.media_log.append(playback.log)
        self.emit_to({playback.app}, "PlaybackStarted", playback=playback.to_json())
        playback.task = self.spawn(self._run_playback(target, playback), f"pb-{playback.id}")

    async def _run_playback(self, target: Channel | Bridge, playback: Playback) -> None:
        audio = await self.sounds.resolve(playback.media_uri)
        if audio is None:
            await self.clock.sleep(FAILED_PLAYBACK_DELAY)
            self.finish_playback(playback, "failed", target)
            return
        echo = None
        if isinstance(target, Channel) and self.line_echo_db is not None:
            echo = target.voice.say(self.clock.now(), attenuated(audio, self.line_echo_db))
        try:
            await self.clock.sleep(audio.duration)
        finally:
            if echo is not None:
                echo.cut_at = self.clock.now()
        self.finish_playback(playback, "done", target)

    def finish_playback(
        self, playback: Playback, state: str, target: Channel | Bridge | None = None
    ) -> None:
        if playback.state in ("done", "failed", "stopped"):
            return
        was_playing = playback.state == "playing"
        playback.state = state
        self.playbacks.pop(playback.id, None)
        current = asyncio.current_task()
        if playback.task is not None and playback.task is not current:
            playback.task.cancel()
        if playback.log is not None:
            playback.log.ended = self.clock.now()
            playback.log.outcome = state
            playback.log.stopped_early = playback.stop_requested or state == "failed"
        if was_playing:
            self.emit_to({playback.app}, "PlaybackFinished", playback=playback.to_json())
        owner = target or self.playback_target(playback)
        if owner is None:
            return
        if playback in owner.playbacks:
            owner.playbacks.remove(playback)
        alive = not isinstance(owner, Channel) or owner.alive
        if owner.playbacks and alive and state != "failed":
            self.start_playback(owner, owner.playbacks[0])
        elif isinstance(owner, Channel) and not owner.playbacks:
            owner.idle.set()

    def playback_target(self, playback: Playback) -> Channel | Bridge | None:
        kind, _, ident = playback.target_uri.partition(":")
        if kind == "channel":
            return self.channels.get(ident) or self.gone_channels.get(ident)
        return self.bridges.get(ident)

    def stop_playback(self, playback_id: str) -> None:
        playback = self.playbacks.get(playback_id)
        if playback is None:
            raise AriError(404, "Playback not found")
        playback.stop_requested = True
        if playback.state == "queued":
            owner = self.playback_target(playback)
            if owner is not None and playback in owner.playbacks:
                owner.playbacks.remove(playback)
            playback.state = "stopped"
            self.playbacks.pop(playback.id, None)
            return
        # A stopped playback finishes "done", as in the traces.
        self.finish_playback(playback, "done")

    # --- recordings ----------------------------------------------------------------------

    def record(self, channel: Channel, params: dict[str, str], app: str) -> LiveRecording:
        name = params.get("name", "")
        fmt = params.get("format", "")
        if not name:
            raise AriError(400, "Recording name is required")
        if not fmt:
            raise AriError(400, "Recording format is required")
        if fmt != "wav":
            raise AriError(422, f"Recording format '{fmt}' not supported")
        if_exists = params.get("ifExists", "fail")
        if if_exists not in ("fail", "overwrite", "append"):
            raise AriError(400, f"ifExists invalid: {if_exists}")
        terminate_on = params.get("terminateOn", "none")
        if name in self.live_recordings:
            raise AriError(409, f"Recording '{name}' already in progress")
        if if_exists == "fail" and self.recordings.exists(name):
            raise AriError(409, f"Recording '{name}' already exists and can not be overwritten")
        recording = LiveRecording(
            name=name,
            format=fmt,
            target_uri=f"channel:{channel.id}",
            app=app,
            channel=channel,
            max_duration=_seconds(params.get("maxDurationSeconds")),
            max_silence=_seconds(params.get("maxSilenceSeconds")),
            terminate_on=terminate_on,
            append=if_exists == "append",
            beep=params.get("beep", "false").lower() == "true",
        )
        self.live_recordings[name] = recording
        if channel.bridge is not None:
            self.spawn(self._fail_recording(recording, "Cannot record channel while in bridge"))
            return recording
        channel.recording = recording
        if not channel.idle.is_set():
            # Operations on a channel are queued on its control: the recording starts once
            # the playback is over (record_queued_behind_playback).
            recording.task = self.spawn(self._record_when_idle(recording), f"rec-{name}")
            return recording
        self._start_recording(recording)
        return recording

    async def _record_when_idle(self, recording: LiveRecording) -> None:
        await recording.channel.idle.wait()
        if recording.stop is None and recording.channel.alive:
            self._start_recording(recording)

    def _start_recording(self, recording: LiveRecording) -> None:
        channel = recording.channel
        recording.state = "recording"
        recording.log = MediaEvent("recording", recording.name, self.clock.now())
        channel.media_log.append(recording.log)
        self.emit_to({recording.app}, "RecordingStarted", recording=recording.to_json())
        recording.task = self.spawn(self._run_recording(recording), f"rec-{recording.name}")

    async def _fail_recording(self, recording: LiveRecording, cause: str) -> None:
        await asyncio.sleep(0)
        recording.state = "failed"
        recording.result = {"cause": cause}
        self.live_recordings.pop(recording.name, None)
        self.emit_to({recording.app}, "RecordingFailed", recording=recording.to_json())

    async def _run_recording(self, recording: LiveRecording) -> None:
        beep = self.sounds.sound("beep") if recording.beep else None
        start = self.clock.now() + (beep.duration if beep is not None else 0.0)
        silent_since = start
        while recording.stop is None:
            await self.clock.sleep(TICK)
            now = self.clock.now()
            if now < start:
                continue
            if recording.channel.voice.voiced_at(now):
                silent_since = now
            if recording.max_duration and now - start >= recording.max_duration:
                recording.stop = "max_duration"
            elif recording.max_silence and now - silent_since >= recording.max_silence:
                recording.stop = "max_silence"
        self.complete_recording(recording)

    def dtmf_for_recording(self, channel: Channel, digit: str) -> None:
        recording = channel.recording
        if recording is None or recording.stop is not None:
            return
        keys = recording.terminate_on
        if keys == "any" or (keys not in ("none", "") and digit in keys):
            recording.stop = "dtmf"
            self.complete_recording(recording)

    def complete_recording(self, recording: LiveRecording) -> None:
        """Write the file and announce RecordingFinished (or drop it when canceled)."""
        if recording.state not in ("recording", "paused"):
            return
        now = self.clock.now()
        beep = self.sounds.sound("beep") if recording.beep else None
        assert recording.log is not None
        start = recording.log.started + (beep.duration if beep is not None else 0.0)
        end = now
        if recording.stop == "dtmf":
            end -= DTMF_TRIM
        elif recording.stop == "max_silence":
            # Asterisk trims the trailing silence but for its first 200 ms (app.c,
            # `ast_stream_rewind(..., dspsilence - 200)`): a word's tail is never cut.
            end -= max(0.0, recording.max_silence - KEPT_SILENCE)
        end = max(start, end)
        voice = recording.channel.voice
        audio = voice.audio_between(start, end)
        talking = _talking_seconds(voice, start, end)
        recording.channel.recording = None
        self.live_recordings.pop(recording.name, None)
        recording.log.ended = now
        recording.log.outcome = recording.stop or "done"
        if recording.task is not None and recording.task is not asyncio.current_task():
            recording.task.cancel()
        if recording.stop == "cancel":
            recording.state = "canceled"
            return
        self.recordings.save(recording.name, audio, append=recording.append)
        # Asterisk reports whole seconds and leaves out about a second of lead-in.
        duration = max(0, int(audio.duration - 1.0))
        silence = max(0, min(duration, int(audio.duration - talking)))
        recording.state = "done"
        recording.result = {
            "duration": duration,
            "silence_duration": silence,
            "talking_duration": duration - silence,
        }
        self.emit_to({recording.app}, "RecordingFinished", recording=recording.to_json())

    # --- snoop channels ------------------------------------------------------------------

    def snoop(self, channel: Channel, params: dict[str, str]) -> Channel:
        """`POST /channels/{id}/snoop`: a channel that hears what `channel`'s phone says
        (spy=in), in the app at once (snoop_record_during_prompt)."""
        app = params.get("app", "")
        if not app:
            raise AriError(400, "app: Missing required parameter")
        spy = params.get("spy", "none")
        if spy not in ("none", "in", "out", "both"):
            raise AriError(400, f"spy invalid: {spy}")
        snoop_id = params.get("snoopId") or None
        taken = self.channels.get(snoop_id) if snoop_id is not None else None
        if taken is not None and taken.stasis_app is not None:
            # One that has left the app is being destroyed: its id is free again.
            raise AriError(500, "Snoop channel could not be created")
        snoop = self.new_channel(
            snoop_id, f"Snoop/{channel.id}-{self._next_snoop_serial()}", ("", "")
        )
        snoop.state = "Up"
        snoop.context, snoop.exten = "default", "s"
        snoop.snoop_of = channel.id
        if spy in ("in", "both"):
            snoop.voice = channel.voice
        args = [a for a in params.get("appArgs", "").split(",") if a]
        self.enter_stasis(snoop, app, args, announce=False)
        return snoop

    def _next_snoop_serial(self) -> str:
        self._snoop_serial += 1
        return f"{self._snoop_serial:08x}"

    def end_snoop(self, snoop: Channel) -> None:
        """A snoop ends (we hung it up, or its channel went): its recording finishes and is
        kept, StasisEnd, and no ChannelDestroyed reaches the app (snoop_caller_hangs_up)."""
        self.leave_stasis(snoop, keep_subscription=False)
        # Asterisk destroys it a moment later: `GET /channels/{id}` right after the hang-up
        # still finds it, outside any application (snoop_record_during_prompt).
        snoop.app_name = snoop.app_data = ""
        self.spawn(self._destroy_later(snoop), f"snoop-end-{snoop.id}")

    async def _destroy_later(self, channel: Channel) -> None:
        await self.clock.sleep(SNOOP_DESTROY_DELAY)
        self.destroy(channel, 16)

    def _end_snoops_of(self, channel: Channel) -> None:
        for snoop in [c for c in self.channels.values() if c.snoop_of == channel.id]:
            self.end_snoop(snoop)

    # --- talk detection ------------------------------------------------------------------

    def set_talk_detect(self, channel: Channel, enabled: bool) -> None:
        if channel.talk_detect is not None:
            channel.talk_detect.cancel()
            channel.talk_detect = None
        if enabled:
            channel.talk_detect = self.spawn(self._detect_talking(channel), f"td-{channel.id}")

    async def _detect_talking(self, channel: Channel) -> None:
        talking_since: float | None = None
        voiced_since: float | None = None
        silent_since = self.clock.now()
        while channel.alive:
            await self.clock.sleep(TICK)
            now = self.clock.now()
            if channel.voice.voiced_at(now):
                voiced_since = now if voiced_since is None else voiced_since
                silent_since = now
                if talking_since is None and now - voiced_since >= TALK_START:
                    talking_since = voiced_since
                    self.channel_event(channel, "ChannelTalkingStarted")
            else:
                voiced_since = None
                if talking_since is not None and now - silent_since >= TALK_SILENCE:
                    duration = int((silent_since - talking_since) * 1000)
                    talking_since = None
                    self.channel_event(channel, "ChannelTalkingFinished", duration=duration)

    # --- bridges -------------------------------------------------------------------------

    def bridge(self, bridge_id: str) -> Bridge:
        bridge = self.bridges.get(bridge_id)
        if bridge is None:
            raise AriError(404, "Bridge not found")
        return bridge

    def create_bridge(self, bridge_id: str | None, kind: str, name: str) -> Bridge:
        kinds = [k for k in kind.split(",") if k] or ["mixing"]
        bridge_kind = "holding" if "holding" in kinds else "mixing"
        if bridge_id and bridge_id in self.bridges:
            raise AriError(409, f"Bridge with id '{bridge_id}' already exists")
        bridge = Bridge(
            id=bridge_id or str(uuid.uuid4()),
            kind=bridge_kind,
            name=name,
            creationtime=self.clock.timestamp(),
        )
        self.bridges[bridge.id] = bridge
        return bridge

    async def add_to_bridge(self, bridge: Bridge, channels: list[Channel]) -> None:
        for channel in channels:
            # A channel busy with a playback joins once the playback is over.
            await channel.idle.wait()
            if not channel.alive or not channel.in_stasis():
                continue
            if channel.bridge is bridge:
                continue
            if channel.bridge is not None:
                self.leave_bridge(channel, by_app=True)
            channel.bridge = bridge
            bridge.channels.append(channel)
            bridge.subscribed = True
            self.channel_event(channel, "ChannelEnteredBridge", bridge=bridge.to_json())
        if bridge.kind == "mixing" and len(bridge.channels) == 2:
            first, second = bridge.channels
            for member, peer in ((first, second), (second, first)):
                if member.bridge_peer != peer.name:
                    member.bridge_peer = peer.name
                    self.varset(member, "BRIDGEPEER", peer.name)
            for member, peer in ((first, second), (second, first)):
                member.connected = peer.caller
                self.channel_event(member, "ChannelConnectedLine")
                pair = self.local_pair(member)
                if pair is not None:
                    pair.peer_caller_changed(peer.caller)

    def leave_bridge(self, channel: Channel, by_app: bool) -> None:
        bridge = channel.bridge
        if bridge is None:
            return
        if channel.bridge_peer:
            channel.bridge_peer = ""
            self.varset(channel, "BRIDGEPEER", "")
        bridge.channels.remove(channel)
        channel.bridge = None
        self.channel_event(channel, "ChannelLeftBridge", bridge=bridge.to_json())
        if by_app and not bridge.channels:
            # The app no longer hears about a bridge it emptied itself (holding_bridge_moh).
            bridge.subscribed = False

    def destroy_bridge(self, bridge: Bridge) -> None:
        for channel in list(bridge.channels):
            self.leave_bridge(channel, by_app=True)
        for playback in list(bridge.playbacks):
            self.finish_playback(playback, "done", bridge)
        if bridge.moh is not None:
            bridge.moh.ended = self.clock.now()
            bridge.moh = None
        del self.bridges[bridge.id]
        if bridge.subscribed:
            self.emit_to(set(self.hub.apps()), "BridgeDestroyed", bridge=bridge.to_json())

    # --- inspection helpers --------------------------------------------------------------

    def leftovers(self) -> JSON:
        return {
            "channels": sorted(self.channels),
            "bridges": sorted(self.bridges),
            "playbacks": sorted(self.playbacks),
            "recordings": sorted(self.live_recordings),
        }


def _seconds(text: str | None) -> float:
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        raise AriError(400, f"invalid number: {text}") from None


def _talking_seconds(voice: Any, start: float, end: float) -> float:
    steps = int((end - start) / TICK)
    voiced = sum(1 for i in range(steps) if voice.voiced_at(start + i * TICK))
    return voiced * TICK
