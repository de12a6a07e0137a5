"""Local channels: a call between the app and a scripted phone.

`Local/<script>@<context>` makes two halves. `;1` is the channel the app sees; `;2` is the
phone, running <script> (phones.py). Three ways in, as in the traces:

- inbound: `POST /channels` with `context`/`extension`: when the phone answers, `;1` runs
  the from-pstn dialplan and enters the app with args [DID] (or falls back to the `fallback`
  context when no websocket is connected). Only `;1` is seen, and only while in Stasis.
- originate: `POST /channels?app=`: the app is subscribed to both halves from the start
  (`GET /applications/{app}` lists `leg;2` too, though only `;1` ever enters Stasis); `;1`
  enters Stasis on answer; Dial events follow the phone.
- create: `POST /channels/create` + `/dial`: `;1` is in Stasis while it rings; a known
  `originator` is subscribed to the app too.

`originator` (a channel id or name) and `formats` (codec names) are checked as Asterisk
does (resource_channels.c): both at once, an unknown originator (`POST /channels` only) or
an unknown format is a 400. A leg with an originator joins the originator's call (linkedid).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path

from ari_controller.simulator.audio import Audio, read_wav
from ari_controller.simulator.events import parse_caller_id
from ari_controller.simulator.model import AriError, CallRecord, Channel
from ari_controller.simulator.phones import BUSY_SECONDS, Step, run_script
from ari_controller.simulator.state import Asterisk

FALLBACK_WAIT = 10.0
# asterisk/extensions.conf's from-pstn: Stasis() failing (no controller connected) is tried
# again this many times, this far apart, with ringing for the caller, before the fallback:
# a restarted or a standby controller takes over within it (STASIS_RETRIES,
# STASIS_RETRY_WAIT there; a test keeps the two the same).
STASIS_RETRIES = 12
STASIS_RETRY_WAIT = 0.5
# Answer() returns at the first media frame from the app's side (a playback or MOH on `;1`),
# or 500 ms after the line is up without one (main/channel.c __ast_answer; in the traces).
ANSWER_MEDIA_WAIT = 0.5
# From an originated leg going Up to its StasisStart (real seconds, not scaled).
STASIS_ENTRY_DELAY_S = 0.005
# The format names Asterisk 22 knows (main/codec_builtin.c), matched without regard to case.
KNOWN_FORMATS = frozenset(
    "codec2 g723 ulaw alaw gsm g726 g726aal2 adpcm slin slin12 slin16 slin24 slin32 slin44 "
    "slin48 slin96 slin192 lpc10 g729 speex speex16 speex32 ilbc g722 siren7 siren14 g719 "
    "opus jpeg png h261 h263 h263p h264 h265 mpeg4 vp8 vp9 red t140 t38 none silk8 silk12 "
    "silk16 silk24".split()
)


class LocalCall:
    def __init__(
        self,
        asterisk: Asterisk,
        kind: str,
        script_name: str,
        context: str,
        steps: tuple[Step, ...] | None,
        one: Channel,
        two: Channel,
    ) -> None:
        self.asterisk = asterisk
        self.kind = kind
        self.script_name = script_name
        self.context = context
        self.steps = steps
        self.one = one
        self.two = two
        self.app: str | None = None
        self.app_args: list[str] = []
        self.did = ""
        self.answered = False
        self.dialing = False
        # The `originator` of a /channels/create: the app keeps hearing about it after
        # StasisEnd.
        self.linked = False
        self.pending_caller: tuple[str, str] | None = None
        self.script_task: asyncio.Task[None] | None = None
        self.timer: asyncio.Task[None] | None = None
        self.record: CallRecord | None = None
        asterisk.add_local_pair(self)

    @property
    def dialstring(self) -> str:
        return f"{self.script_name}@{self.context}"

    # --- starting ------------------------------------------------------------------------

    def start_script(self) -> None:
        assert self.steps is not None
        self.script_task = self.asterisk.spawn(self._run(), f"phone-{self.two.id}")

    async def _run(self) -> None:
        assert self.steps is not None
        await run_script(self.steps, self)

    def start_timer(self, seconds: float, on_expiry: str) -> None:
        if seconds > 0:
            self.timer = self.asterisk.spawn(self._expire(seconds, on_expiry))

    async def _expire(self, seconds: float, on_expiry: str) -> None:
        await self.asterisk.clock.sleep(seconds)
        if not self.answered and self.one.alive:
            self.timer = None
            if on_expiry == "dial":
                self._dial_timeout()
            elif on_expiry == "originate":
                self._originate_timeout()
            else:
                self.stop_tasks()
                self._quiet_end(19)

    def stop_tasks(self) -> None:
        current = asyncio.current_task()
        for task in (self.script_task, self.timer):
            if task is not None and task is not current:
                task.cancel()

    def dial_event(self, status: str, dialstring: str | None = None) -> None:
        text = self.dialstring if dialstring is None else dialstring
        self.asterisk.emit_to(
            self.one.apps,
            "Dial",
            dialstatus=status,
            dialstring=text,
            forward="",
            peer=self.one.snapshot(),
        )

    def dial_status(self, status: str) -> None:
        # Originated legs repeat the dial string; /dial shows it only on the first event.
        self.dial_event(status, self.dialstring if self.kind == "originate" else "")

    # --- PhoneLine: what the phone does --------------------------------------------------

    async def step_started(self, priority: int, step: Step) -> None:
        two = self.two
        two.priority = priority
        two.app_name, two.app_data = step.dialplan()
        if self.pending_caller is not None:
            two.caller = self.pending_caller
        self.asterisk.channel_event(
            two, "ChannelDialplan", dialplan_app=two.app_name, dialplan_app_data=two.app_data
        )
        if self.pending_caller is not None:
            self.pending_caller = None
            self._caller_id_event(two)

    def _caller_id_event(self, channel: Channel) -> None:
        self.asterisk.channel_event(
            channel,
            "ChannelCallerId",
            caller_presentation=0,
            caller_presentation_txt="Presentation Allowed, Not Screened",
        )

    def peer_caller_changed(self, caller: tuple[str, str]) -> None:
        """Bridged to someone: the phone learns who it talks to at its next step."""
        if self.kind == "originate":
            self.pending_caller = caller

    async def ring(self) -> None:
        if self.kind == "inbound" or self.answered:
            return
        self.asterisk.set_state(self.one, "Ringing")
        if self.kind == "originate" or self.dialing:
            self.dial_status("RINGING")

    async def answer(self) -> None:
        if self.answered:
            return
        ast = self.asterisk
        self.answered = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.record is not None:
            self.record.answered = ast.clock.now()
        ast.set_state(self.one, "Up")
        if self.kind == "inbound":
            self.two.state = "Up"
            self._enter_from_pstn()
            # The caller's clock starts once the app picks up the call.
            await self.one.answered_by_app.wait()
            return
        self.dial_status("ANSWER")
        if self.kind == "originate":
            assert self.app is not None
            # Asterisk's StasisStart comes from another thread some milliseconds after the
            # leg went Up (ChannelStateChange, Dial ANSWER): a play sent on those is refused
            # with 409 until then.
            await asyncio.sleep(STASIS_ENTRY_DELAY_S)
            if not ast.hub.is_connected(self.app):
                self._stasis_failed()
                return
            ast.enter_stasis(self.one, self.app, self.app_args, announce=True)
        ast.set_state(self.two, "Up")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.one.heard.wait(), ast.clock.wall_seconds(ANSWER_MEDIA_WAIT))

    def _enter_from_pstn(self) -> None:
        ast = self.asterisk
        one = self.one
        one.context, one.exten, one.priority = "from-pstn", self.did, 2
        app = ast.inbound_app()
        if ast.hub.is_connected(app):
            ast.enter_stasis(one, app, [self.did], announce=False)
            return
        self.asterisk.spawn(self._retry_stasis(app))

    async def _retry_stasis(self, app: str) -> None:
        """STASISSTATUS=FAILED: the from-pstn dialplan rings and tries again, then falls back."""
        ast, one = self.asterisk, self.one
        for _ in range(STASIS_RETRIES):
            one.app_name, one.app_data = "Wait", f"{STASIS_RETRY_WAIT:g}"
            await ast.clock.sleep(STASIS_RETRY_WAIT)
            if not one.alive:
                return
            if ast.hub.is_connected(app):
                ast.enter_stasis(one, app, [self.did], announce=False)
                return
        if self.record is not None:
            self.record.fell_back = True
        self.run_fallback()

    def run_fallback(self) -> None:
        one = self.one
        one.context, one.exten, one.priority = "fallback", "s", 2
        one.app_name, one.app_data = "Playback", "vm-nobodyavail"
        self.asterisk.spawn(self._fallback())

    async def _fallback(self) -> None:
        ast = self.asterisk
        sound = ast.sounds.sound("vm-nobodyavail")
        await ast.clock.sleep(sound.duration if sound is not None else 0.0)
        self.one.priority, self.one.app_name, self.one.app_data = 3, "Wait", "10"
        await ast.clock.sleep(FALLBACK_WAIT)
        if self.one.alive:
            self.stop_tasks()
            self._quiet_end(16)

    async def send_dtmf(self, digit: str) -> None:
        one = self.one
        if one.in_stasis():
            self.asterisk.channel_event(one, "ChannelDtmfReceived", digit=digit, duration_ms=100)
            self.asterisk.dtmf_for_recording(one, digit)

    async def speak(self, sound: str) -> None:
        ast = self.asterisk
        audio = _phone_audio(ast, sound)
        if audio is None:
            return  # Playback() of a missing file: the dialplan goes on
        utterance = self.one.voice.say(ast.clock.now(), audio)
        try:
            await ast.clock.sleep(audio.duration)
        finally:
            utterance.cut_at = ast.clock.now()

    async def busy(self, cause: int) -> None:
        ast = self.asterisk
        status = "BUSY" if cause == 17 else "CONGESTION"
        if self.kind == "originate":
            ast.set_state(self.two, "Busy")
            self.dial_status(status)
            ast.hangup_request(self.two, 0, soft=False)
            self.stop_tasks()
            ast.destroy(self.one, 0)
            ast.hangup_request(self.two, 16, soft=True)
            ast.destroy(self.two, cause)
            return
        if self.dialing:
            self.dial_status(status)
        await ast.clock.sleep(BUSY_SECONDS)
        await self.hangup(cause)

    async def hangup(self, cause: int) -> None:
        self._phone_hangup(cause)

    async def sleep(self, seconds: float) -> None:
        await self.asterisk.clock.sleep(seconds)

    # --- endings -------------------------------------------------------------------------

    def _phone_hangup(self, cause: int) -> None:
        """The phone hangs up (or its dialplan ends)."""
        ast = self.asterisk
        one, two = self.one, self.two
        if not one.alive:
            ast.destroy(two, cause)
            return
        self.stop_tasks()
        if self.kind == "originate" and not self.answered:
            ast.hangup_request(two, cause, soft=True)
            ast.destroy(one, cause)
            ast.destroy(two, cause)
            return
        if self.kind == "originate":
            ast.hangup_request(two, cause, soft=True)
        ast.hangup_request(one, cause, soft=False)
        if self.kind == "originate":
            self._destroy_two(cause)
        self._end_one(cause)
        ast.destroy(two, cause)

    def _stasis_failed(self) -> None:
        """Answered while the app has no websocket: Stasis() fails ("Stasis app '...' not
        active") and both halves go with cause 0 (controller_gone_ringing_legs; the events
        reach no one, since the app is not connected)."""
        ast = self.asterisk
        one, two = self.one, self.two
        assert self.app is not None
        one.app_name, one.app_data = "Stasis", ",".join([self.app, *self.app_args])
        ast.varset(one, "STASISSTATUS", "")
        ast.varset(one, "STASISSTATUS", "FAILED")
        self.stop_tasks()
        ast.set_state(two, "Up")
        ast.hangup_request(two, 0, soft=False)
        self._base_dialplan()
        ast.destroy(one, 0)
        ast.hangup_request(two, 16, soft=True)
        ast.destroy(two, 0)

    def _end_one(self, cause: int) -> None:
        """`;1` leaves the app (if there) and is destroyed."""
        ast = self.asterisk
        one = self.one
        keep = self.kind != "inbound" or self.linked
        ast.leave_stasis(one, keep_subscription=keep)
        self._base_dialplan()
        ast.destroy(one, cause)

    def _destroy_two(self, cause: int) -> None:
        """The phone's half goes; a caller id it had not taken yet is announced last."""
        two = self.two
        apps = set(two.apps)
        pending = self.pending_caller
        if pending is not None and two.alive:
            two.caller = pending
        self.asterisk.destroy(two, cause)
        if pending is not None and apps:
            self.pending_caller = None
            self.asterisk.emit_to(
                apps,
                "ChannelCallerId",
                channel=two.snapshot(),
                caller_presentation=0,
                caller_presentation_txt="Presentation Allowed, Not Screened",
            )

    def _base_dialplan(self) -> None:
        one = self.one
        if self.kind == "originate" or self.kind == "inbound":
            one.app_name, one.app_data = "AppDial2", "(Outgoing Line)"
        else:
            one.app_name, one.app_data = "", ""

    def _quiet_end(self, cause: int) -> None:
        ast = self.asterisk
        ast.end_channel_media(self.one)
        ast.destroy(self.one, cause)
        ast.destroy(self.two, cause)

    def far_half_hangup(self) -> None:
        """`DELETE /channels/{id}` on `;2`: a soft hangup request there, then the phone's
        side ends, which ends `;1` as a phone hanging up does (app_subscriptions)."""
        self.asterisk.hangup_request(self.two, 32, soft=True)
        self._phone_hangup(16)

    def app_hangup(self) -> None:
        """`DELETE /channels/{id}` on `;1`."""
        ast = self.asterisk
        one, two = self.one, self.two
        self.stop_tasks()
        ast.hangup_request(one, 32, soft=True)
        if self.kind == "originate" and not self.answered:
            self.dial_status("NOANSWER")
        if self.kind == "inbound":
            linked = one.stasis_app is not None and self.linked
            ast.leave_stasis(one, keep_subscription=linked)
            if linked:
                # Back in from-pstn after Stasis(): the dialplan hangs up.
                ast.hangup_request(one, 16, soft=True)
            self._base_dialplan()
            ast.destroy(one, 16)
            ast.destroy(two, 16)
            return
        ast.leave_stasis(one, keep_subscription=True)
        if self.kind == "originate":
            ast.hangup_request(two, 16, soft=False)
        self._base_dialplan()
        ast.destroy(one, 16)
        if self.kind == "originate":
            ast.hangup_request(two, 16, soft=True)
        self._destroy_two(16)

    def _originate_timeout(self) -> None:
        ast = self.asterisk
        self.stop_tasks()
        ast.hangup_request(self.two, 19, soft=False)
        ast.destroy(self.one, 19)
        ast.hangup_request(self.two, 16, soft=True)
        ast.destroy(self.two, 19)

    def _dial_timeout(self) -> None:
        ast = self.asterisk
        self.stop_tasks()
        ast.hangup_request(self.one, 32, soft=True)
        ast.leave_stasis(self.one, keep_subscription=True)
        self._base_dialplan()
        ast.destroy(self.one, 19)
        ast.destroy(self.two, 19)

    def continue_in_dialplan(self, context: str) -> None:
        """`POST /channels/{id}/continue`: the app lets go; the dialplan takes over."""
        ast = self.asterisk
        ast.leave_stasis(self.one, keep_subscription=self.linked or self.kind != "inbound")
        if context == "fallback":
            self.run_fallback()
        else:
            self.one.context = context


def _phone_audio(ast: Asterisk, sound: str) -> Audio | None:
    """What a phone's `speak` step says: a sound name or a WAV file (small, local)."""
    audio = ast.sounds.sound(sound.removeprefix("sound:"))
    if audio is None and sound.endswith(".wav") and Path(sound).is_file():
        audio = read_wav(Path(sound))
    return audio


# --- how calls start -----------------------------------------------------------------------


def _check_endpoint(endpoint: str) -> None:
    tech, _, device = endpoint.partition("/")
    if not tech or not device:
        raise AriError(400, "Invalid endpoint specified")


def _originator_and_formats(
    ast: Asterisk, params: dict[str, str], unknown_originator_fails: bool
) -> tuple[Channel | None, tuple[str, ...]]:
    """The `originator` channel and the `formats` asked for, checked as Asterisk does."""
    name = params.get("originator", "")
    originator = ast.find_channel(name) if name else None
    if name and originator is None and unknown_originator_fails:
        raise AriError(400, "Provided originator channel was not found")
    if originator is not None:
        return originator, originator.formats
    text = params.get("formats", "")
    if not text:
        return None, ()
    formats = tuple(f.strip() for f in text.split(","))
    for fmt in formats:
        if fmt.lower() not in KNOWN_FORMATS:
            raise AriError(400, f"Provided format ({fmt}) was not found")
    return None, tuple(f.lower() for f in formats)


def _both_given(params: dict[str, str]) -> None:
    if params.get("originator") and params.get("formats"):
        raise AriError(400, "Originator and formats can't both be specified")


def _parse_local(endpoint: str) -> tuple[str, str]:
    tech, _, resource = endpoint.partition("/")
    if tech.lower() != "local" or "@" not in resource:
        # What Asterisk 22.10.1 answers for an endpoint it cannot dial (duplicate_channel_id).
        raise AriError(409, "Channel with given unique ID already exists")
    exten, _, context = resource.partition("@")
    return exten, context.split("/")[0]


def _make_pair(
    ast: Asterisk,
    endpoint: str,
    kind: str,
    channel_id: str | None,
    other_id: str | None,
    caller: tuple[str, str],
    originator: Channel | None = None,
    formats: tuple[str, ...] = (),
) -> LocalCall:
    exten, context = _parse_local(endpoint)
    for ident in (channel_id, other_id):
        if ident and (ident in ast.channels):
            raise AriError(409, "Channel with given unique ID already exists")
    serial = ast.next_local_serial()
    base = f"Local/{exten}@{context}-{serial}"
    one = ast.new_channel(channel_id, f"{base};1", caller)
    two_id = other_id or (f"{channel_id};2" if channel_id else None)
    two = ast.new_channel(two_id, f"{base};2", caller)
    one.context, one.exten = context, exten
    two.context, two.exten, two.state = context, exten, "Ring"
    # Both halves are one call: the originator's, or the new `;1`'s own.
    linkedid = originator.linkedid if originator is not None else one.id
    for half in (one, two):
        half.linkedid, half.formats = linkedid, formats
    call = LocalCall(ast, kind, exten, context, ast.scripts.get(exten), one, two)
    call.record = CallRecord(
        endpoint,
        one.id,
        one.name,
        kind,
        ast.clock.now(),
        originator=originator.id if originator is not None else None,
        formats=formats,
        linkedid=linkedid,
    )
    ast.history.append(call.record)
    return call


def originate(ast: Asterisk, params: dict[str, str]) -> Channel:
    """`POST /channels`: an inbound call (context/extension) or a leg for the app."""
    endpoint = params.get("endpoint", "")
    if not endpoint:
        raise AriError(400, "Endpoint must be specified")
    _both_given(params)
    _check_endpoint(endpoint)
    app = params.get("app")
    if not app and not params.get("extension"):
        raise AriError(400, "Application or extension must be specified")
    if app:
        ast.check_app(app)
    caller = parse_caller_id(params.get("callerId", ""))
    originator, formats = _originator_and_formats(ast, params, unknown_originator_fails=True)
    kind = "originate" if app else "inbound"
    call = _make_pair(
        ast,
        endpoint,
        kind,
        params.get("channelId"),
        params.get("otherChannelId"),
        caller,
        originator,
        formats,
    )
    one = call.one
    one.app_name, one.app_data = "AppDial2", "(Outgoing Line)"
    timeout = _float(params.get("timeout"), 30.0)
    if app:
        call.app = app
        call.app_args = _args(params.get("appArgs", ""))
        one.apps.add(app)
        call.two.apps.add(app)
    else:
        call.did = params.get("extension", "")
    ast.spawn(_begin_originate(call, timeout))
    return one


async def _begin_originate(call: LocalCall, timeout: float) -> None:
    ast = call.asterisk
    await asyncio.sleep(0)
    if call.steps is None:
        # No such extension: the originate fails at once (cause 0), as in the trace.
        ast.destroy(call.two, 0)
        ast.destroy(call.one, 0)
        return
    if call.kind == "originate":
        call._caller_id_event(call.two)
        ast.channel_event(call.two, "ChannelConnectedLine")
        call.dial_event("")
        call.start_timer(timeout, "originate")
    else:
        call.start_timer(timeout, "inbound")
    call.start_script()


def create(ast: Asterisk, params: dict[str, str]) -> Channel:
    """`POST /channels/create`: a leg in Stasis before it is dialled."""
    endpoint = params.get("endpoint", "")
    app = params.get("app", "")
    _both_given(params)
    if not endpoint:
        raise AriError(400, "Endpoint must be specified")
    if not app:
        raise AriError(400, "Application must be specified")
    ast.check_app(app)
    _check_endpoint(endpoint)
    # Unlike POST /channels, an unknown originator is no error here: it is left out.
    originator, formats = _originator_and_formats(ast, params, unknown_originator_fails=False)
    variables = json.loads(params.get("__variables") or "{}")
    call = _make_pair(
        ast,
        endpoint,
        "create",
        params.get("channelId"),
        params.get("otherChannelId"),
        _party(variables, "CALLERID"),
        originator,
        formats,
    )
    # As Asterisk sets the body's variables (functions too) on the new channel: both halves
    # show the caller ID and connected line they set (probed on 22.10.1).
    connected = _party(variables, "CONNECTEDLINE")
    for half in (call.one, call.two):
        half.connected = connected
    call.one.variables.update({k: str(v) for k, v in variables.items() if _PARTY.match(k) is None})
    call.app = app
    call.app_args = _args(params.get("appArgs", ""))
    call.one.apps.add(app)
    if originator is not None:
        # The app is subscribed to the originator too: it keeps hearing about a caller
        # after the caller's StasisEnd (create_and_dial).
        originator.apps.add(app)
        pair = ast.local_pair(originator)
        if isinstance(pair, LocalCall):
            pair.linked = True
    ast.spawn(_begin_create(call))
    return call.one


async def _begin_create(call: LocalCall) -> None:
    await asyncio.sleep(0)
    ast = call.asterisk
    one = call.one
    assert call.app is not None
    one.app_name = "Stasis"
    one.app_data = ",".join([call.app, *call.app_args])
    ast.channel_event(
        one, "ChannelDialplan", dialplan_app=one.app_name, dialplan_app_data=one.app_data
    )
    ast.enter_stasis(one, call.app, call.app_args, announce=True)


def dial(ast: Asterisk, channel: Channel, params: dict[str, str]) -> None:
    """`POST /channels/{id}/dial`: ring a created leg."""
    call = ast.local_pair(channel)
    if not isinstance(call, LocalCall) or call.kind != "create" or call.dialing:
        raise AriError(409, "Channel is not in a state to be dialed")
    caller_id = params.get("caller")
    caller = ast.find_channel(caller_id) if caller_id else None
    if caller is not None:
        channel.connected = caller.caller
        ast.channel_event(channel, "ChannelConnectedLine")
    call.dialing = True
    call.dial_event("")
    if call.steps is None:
        call._phone_hangup(0)
        return
    call.start_timer(_float(params.get("timeout"), 0.0), "dial")
    call.start_script()


_PARTY = re.compile(r"^(?P<what>CALLERID|CONNECTEDLINE)\((?P<part>name|num)(,i)?\)$")


def _party(variables: dict[str, object], what: str) -> tuple[str, str]:
    """(name, number) the CALLERID(...) or CONNECTEDLINE(...) variables set."""
    name = number = ""
    for key, value in variables.items():
        found = _PARTY.match(key)
        if found is not None and found["what"] == what:
            if found["part"] == "name":
                name = str(value)
            else:
                number = str(value)
    return name, number


def _args(text: str) -> list[str]:
    return [a for a in text.split(",") if a] if text else []


def _float(text: str | None, default: float) -> float:
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        raise AriError(400, f"invalid number: {text}") from None
