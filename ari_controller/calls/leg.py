"""Primitives on one channel of a call (the caller, or a responder leg): ARI events as awaitables.

Every wait is bounded. A leg that hangs up raises `LegGone` out of whatever waits on it, so a
call flow reads as a story and handles hang-ups in one place.

`Leg` is the only door to its channel: every primitive waits through `Leg._wait_event` (the
deadline, a hang-up, the reconnect marker) and reaches Asterisk through `Leg._gone_if_404` (a
404 means the channel no longer exists).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import structlog

from ari_controller.ari.client import AriClient
from ari_controller.ari.errors import (
    AriError,
    BadRequest,
    Conflict,
    NotDriving,
    NotFound,
    PreconditionFailed,
    UnprocessableEntity,
)
from ari_controller.ari.events import EventRouter, Mailbox
from ari_controller.ari.models import AriEvent, Channel, JsonObject
from ari_controller.calls import ids

log = structlog.get_logger(__name__)

# Synthetic event `Leg.wake` puts in the leg's mailbox after the events websocket came back:
# anything may have happened in the gap, so waits re-check the far end instead of trusting it.
RECONNECTED = "ControllerReconnected"
_WAKE = AriEvent(RECONNECTED, {"type": RECONNECTED})

# `wait_gone()` without a limit lasts as long as the call: it is bounded by the call's task,
# which cancels it. Meanwhile the mailbox is waited on in slices this long.
_UNBOUNDED_SLICE_S = 3600.0

# Events after which the channel is no longer ours to control.
_GONE = frozenset({"StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"})

# The longest any single prompt may take before we stop waiting for its PlaybackFinished.
PLAYBACK_GUARD_S = 180.0

HANGUP_ATTEMPTS = 3
HANGUP_RETRY_S = 0.5


class LegGone(Exception):
    """The channel hung up or left the application."""

    def __init__(self, leg_id: str, cause: int | None) -> None:
        super().__init__(f"channel {leg_id} is gone (cause {cause})")
        self.leg_id = leg_id
        self.cause = cause


@dataclass(frozen=True, slots=True)
class _RecordingEnd:
    event: AriEvent | None  # RecordingFinished / RecordingFailed; None: we had to stop it
    digit: str | None  # the first key pressed while recording
    hung_up: bool


@dataclass(frozen=True, slots=True)
class RecordingResult:
    name: str
    state: str  # "done", "failed", "canceled"
    duration_s: float | None
    ended_by_caller_hangup: bool


@dataclass(frozen=True, slots=True)
class Heard:
    """What one listen caught: a key (which always wins), or the utterance as a WAV file."""

    digit: str | None
    audio: bytes | None


class Leg:
    """One channel the call controls, with its own ordered inbox of ARI events."""

    def __init__(self, channel_id: str, ari: AriClient, router: EventRouter) -> None:
        self.id = channel_id
        self.ari = ari
        self.router = router
        self.mailbox = Mailbox(channel_id)
        self.gone = False
        self.destroyed = False  # Asterisk said ChannelDestroyed: its cause is the final word
        self.in_stasis = False
        self.cause: int | None = None
        self.dialstatus: str | None = None
        self._digits: deque[str] = deque()
        # Talk detection (`detect_talking`): seconds the far end talked, and since when it
        # has been talking now (Asterisk says how long only when a stretch of talk ends).
        self.talked_s = 0.0
        self._talking_since: float | None = None
        self._extra_ids: set[str] = set()
        self._hung_up = False
        router.register(self.mailbox, channel_id)

    # ---- events -----------------------------------------------------------------------------

    def _note(self, event: AriEvent) -> None:
        kind = event.type
        if event.channel_id == self.id:
            if kind == "StasisStart":
                # Originated with `app=`, a leg enters the application when answered (its
                # ChannelStateChange to Up comes first: until StasisStart, it cannot be played to).
                self.in_stasis = True
            elif kind in _GONE:
                self.gone = True
                if kind == "StasisEnd":
                    self.in_stasis = False
                elif kind == "ChannelDestroyed":
                    self.destroyed = True
                if event.cause is not None and (self.cause is None or kind == "ChannelDestroyed"):
                    self.cause = event.cause
            elif kind == "Dial" and event.dialstatus:
                self.dialstatus = event.dialstatus
            elif kind == "ChannelTalkingStarted":
                self._talking_since = time.monotonic()
            elif kind == "ChannelTalkingFinished":
                self._talking_since = None
                duration = event.raw.get("duration")  # milliseconds of talk
                if isinstance(duration, int | float):
                    self.talked_s += duration / 1000

    async def detect_talking(self) -> bool:
        """Ask Asterisk to say when the far end starts and stops talking (TALK_DETECT, its
        default thresholds); False when it would not (detection is then simply off)."""
        try:
            with self._gone_if_404():
                await self.ari.set_variable(self.id, "TALK_DETECT(set)", "")
        except AriError as exc:
            log.warning("talk_detection_failed", channel=self.id, error=str(exc))
            return False
        return True

    def talked_so_far(self) -> float:
        """Seconds talked, counting a stretch of talk still going on."""
        ongoing = 0.0
        if self._talking_since is not None:
            ongoing = time.monotonic() - self._talking_since
        return self.talked_s + ongoing

    def wake(self) -> None:
        """The events websocket came back: events in the gap were lost, so whatever waits on
        this leg asks Asterisk about the channel instead of trusting what it last heard."""
        self.mailbox.put(_WAKE)

    async def _wait_event(self, deadline: float | None, *, raise_gone: bool) -> AriEvent | None:
        """The next event about this leg, or None once `deadline` (a `time.monotonic()` value;
        None: no limit) has passed. Every primitive waits here; what expiry means is theirs.

        With `raise_gone`, a leg that is gone raises `LegGone` instead of waiting, so a hang-up
        (or a 404) seen before ends the primitive's next wait. The reconnect marker is answered
        here: Asterisk is asked about the channel (the leg is gone when it no longer exists),
        and the marker goes on to the primitive carrying the channel as Asterisk has it now
        (no channel when Asterisk did not tell), since what the primitive waits for may have
        been lost in the gap.
        """
        while True:
            if raise_gone:
                self._raise_if_gone()
            if deadline is None:
                left = _UNBOUNDED_SLICE_S
            else:
                # An event already waiting is still taken at the deadline.
                left = max(0.0, deadline - time.monotonic())
            try:
                event = await self.mailbox.get(left)
            except TimeoutError:
                if deadline is None:
                    continue
                return None
            self._note(event)
            if event.type == RECONNECTED:
                return await self._checked_marker()
            return event

    async def _checked_marker(self) -> AriEvent:
        marker: JsonObject = {"type": RECONNECTED}
        channel = await self.check_alive()
        if channel is not None:
            marker["channel"] = {"id": channel.id, "state": channel.state}
        return AriEvent(RECONNECTED, marker)

    def _watch(self, *ids: str) -> None:
        self._extra_ids.update(ids)
        self.router.register(self.mailbox, *ids)

    def _unwatch(self, *ids: str) -> None:
        self._extra_ids.difference_update(ids)
        self.router.unregister(*ids)

    def release(self) -> None:
        """Stop routing events to this leg (after it is gone)."""
        self.router.unregister(self.id, *self._extra_ids)
        self._extra_ids.clear()

    def _raise_if_gone(self) -> None:
        if self.gone:
            raise LegGone(self.id, self.cause)

    @contextlib.contextmanager
    def _gone_if_404(self, *, raise_gone: bool = True) -> Iterator[None]:
        """A request about this channel answered 404: the channel no longer exists, so the
        leg is gone (and `LegGone` is raised, unless `raise_gone` is False)."""
        try:
            yield
        except NotFound:
            self.gone = True
            if raise_gone:
                raise LegGone(self.id, self.cause) from None

    def originate_failed(self) -> None:
        """The request that was to create this channel failed: there is nothing to wait for
        or to hang up."""
        self.gone = True

    # ---- waits ------------------------------------------------------------------------------

    async def wait_answered(self, limit: float) -> bool:
        """True once the far end answered (a leg originated with `app=` enters the application
        Up); False when it was destroyed unanswered, or `limit` seconds passed."""
        deadline = time.monotonic() + limit
        while not self.in_stasis:
            if self.destroyed:
                return False
            event = await self._wait_event(deadline, raise_gone=False)
            if event is None:
                return False  # the responder did not answer within the ring timeout
            if event.type == "ChannelDestroyed" and event.channel_id == self.id:
                return False
            if event.type == RECONNECTED:
                # The answer may have been lost in the gap: Asterisk says how the channel is.
                if event.channel_state == "Up":
                    # Up and still ours (a leg originated with `app=` entered the application).
                    self.in_stasis = True
                elif self.gone:
                    return False  # Asterisk no longer has the channel
        return True

    async def wait_digit(self, timeout: float) -> str | None:
        """The next key the far end presses, or None when `timeout` passes without one."""
        if self._digits:
            return self._digits.popleft()
        deadline = time.monotonic() + timeout
        while True:
            event = await self._wait_event(deadline, raise_gone=True)
            if event is None:
                return None  # no input: the caller (or responder) said nothing in time
            if event.type == "ChannelDtmfReceived" and event.digit and event.channel_id == self.id:
                return event.digit

    async def wait_gone(self, timeout: float | None = None) -> None:
        """Return once the leg hung up; None waits as long as the call lasts. TimeoutError
        when `timeout` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.gone:
            if await self._wait_event(deadline, raise_gone=False) is None:
                raise TimeoutError  # still there: the far end did not hang up in time

    async def wait_destroyed(self, timeout: float) -> None:
        """After a hang-up from the far end, until Asterisk destroyed the channel: the
        ChannelHangupRequest before it may carry another cause than the one of record."""
        deadline = time.monotonic() + timeout
        while not self.destroyed:
            if await self._wait_event(deadline, raise_gone=False) is None:
                return  # the event was lost: the cause heard so far stands

    async def check_alive(self) -> Channel | None:
        """Ask Asterisk about the channel (after events may have been lost): the channel as it
        is now, or None when it no longer exists (the leg is gone) or Asterisk did not tell."""
        try:
            with self._gone_if_404(raise_gone=False):
                return await self.ari.get_channel(self.id)
        except AriError as exc:
            log.warning("channel_check_failed", channel=self.id, error=str(exc))
        return None

    # ---- media ------------------------------------------------------------------------------

    async def play(self, media: Sequence[str], *, stop_on_digit: bool = True) -> str | None:
        """Play prompts in order. Returns the digit that cut them short, if any.

        Asterisk does not stop a playback on DTMF, so we stop it ourselves when a digit counts.
        """
        for uri in media:
            digit = await self._play_one(uri, stop_on_digit)
            if digit is not None:
                return digit
        return None

    async def _play_one(self, uri: str, stop_on_digit: bool) -> str | None:
        self._raise_if_gone()
        if stop_on_digit and self._digits:
            return self._digits.popleft()
        playback_id = ids.playback_id(self.id)
        self._watch(playback_id)
        try:
            with self._gone_if_404():
                await self.ari.play(self.id, uri, playback_id=playback_id)
            deadline = time.monotonic() + PLAYBACK_GUARD_S
            while True:
                event = await self._wait_event(deadline, raise_gone=True)
                if event is None:
                    # The prompt never reported its end: stop waiting and go on with the call.
                    await self._stop_playback(playback_id)
                    return None
                if event.type == "PlaybackFinished" and event.playback_id == playback_id:
                    self._raise_if_gone()
                    return None
                if event.type == "ChannelDtmfReceived" and event.digit:
                    if stop_on_digit:
                        await self._stop_playback(playback_id)
                        return event.digit
                    self._digits.append(event.digit)
                elif event.type == RECONNECTED:
                    # PlaybackFinished may have been lost in the gap: don't wait for it. (A leg
                    # found gone raises from the next primitive.)
                    await self._stop_playback(playback_id)
                    return None
        except asyncio.CancelledError:
            # The call moved on (hold music ends, a responder was taken): silence this prompt.
            if not self.gone:
                await asyncio.shield(self._stop_playback(playback_id))
            raise
        finally:
            self._unwatch(playback_id)

    async def _stop_playback(self, playback_id: str) -> None:
        try:
            await self.ari.stop_playback(playback_id)
        except AriError as exc:
            log.info("stop_playback_failed", playback_id=playback_id, error=str(exc))

    # ---- control ----------------------------------------------------------------------------

    async def answer(self) -> None:
        self._raise_if_gone()
        with self._gone_if_404():
            await self.ari.answer(self.id)

    async def start_moh(self, moh_class: str) -> None:
        with self._gone_if_404(raise_gone=False):  # gone: whoever waits on the leg hears of it
            await self.ari.start_moh(self.id, moh_class)

    async def stop_moh(self) -> None:
        try:
            await self.ari.stop_moh(self.id)
        except AriError:
            pass  # gone or not playing MOH: nothing to stop

    async def hangup(self, reason: str = "normal") -> None:
        """Hang up; a channel that is already gone counts as hung up."""
        if (self.gone and not self.in_stasis) or self._hung_up:
            return
        for attempt in range(1, HANGUP_ATTEMPTS + 1):
            try:
                await self.ari.hangup(self.id, reason)  # False (404): already gone
                # Asterisk has it now; its StasisEnd may still be on the way, but asking
                # again (the call's clean-up) would only cost a request and a 404.
                self._hung_up = True
                break
            except (BadRequest, Conflict, PreconditionFailed, UnprocessableEntity) as exc:
                log.warning("hangup_refused", channel=self.id, error=str(exc))
                break
            except NotDriving:
                break  # the channel is another controller's now: asking again changes nothing
            except AriError as exc:
                # A timeout or a 5xx from an overloaded Asterisk: a channel left up would sit
                # in the application with nobody owning it, so try again before giving up.
                log.warning("hangup_failed", channel=self.id, attempt=attempt, error=str(exc))
                if attempt < HANGUP_ATTEMPTS:
                    await asyncio.sleep(HANGUP_RETRY_S * attempt)
        self.gone = True

    async def record(
        self,
        name: str,
        *,
        max_duration_s: int,
        max_silence_s: int,
        terminate_on: str = "#",
    ) -> RecordingResult:
        """Record what the far end says after a beep; a hang-up still keeps the recording."""
        self._raise_if_gone()
        self._watch(name)
        try:
            await self._start_recording(
                name, max_duration_s, max_silence_s, beep=True, terminate_on=terminate_on
            )
            # Asterisk ends the recording itself at max duration; the margin covers its latency.
            end = await self._recording_end(name, max_duration_s + 15)
            if end.event is None:
                return RecordingResult(name, "canceled", None, end.hung_up)
            duration = end.event.raw.get("recording", {}).get("duration")
            return RecordingResult(
                name,
                end.event.recording_state or "done",
                float(duration) if duration is not None else None,
                end.hung_up or self.gone,
            )
        finally:
            self._unwatch(name)

    async def recording_outcome(self, name: str, limit: float) -> str:
        """How a recording an earlier run of the controller started on this channel ended:
        waited for while it still goes on (stopped and kept after `limit` seconds); "done"
        (stored), "failed", "canceled", or "absent" when Asterisk has no such recording."""
        self._watch(name)  # before asking: its end may come right after the answer
        try:
            try:
                live = await self.ari.get_live_recording(name)
            except NotFound:
                live = None
            if live is not None and live.going_on:
                end = await self._recording_end(name, limit)
                if end.event is not None and end.event.recording_state not in (None, "done"):
                    return str(end.event.recording_state)
            try:
                await self.ari.get_stored_recording(name)
            except NotFound:
                return "absent"
            return "done"
        finally:
            self._unwatch(name)

    async def listen(self, name: str, *, max_duration_s: int, max_silence_s: int) -> Heard:
        """Record one utterance (no beep); any key ends it and wins over the words.

        The stored recording is fetched and deleted: nothing of it stays in Asterisk.
        """
        if self._digits:
            return Heard(self._digits.popleft(), None)
        self._raise_if_gone()
        self._watch(name)
        digit: str | None = None
        finished = False
        try:
            await self._start_recording(
                name, max_duration_s, max_silence_s, beep=False, terminate_on="any"
            )
            # Asterisk ends the recording itself; the margin covers its latency.
            end = await self._recording_end(name, max_duration_s + 5)
            finished = end.event is not None and end.event.type == "RecordingFinished"
            digit = end.digit  # terminateOn ended the recording: the key wins over the words
            if digit is not None or self.gone or not finished:
                return Heard(digit, None)
            try:
                return Heard(None, await self.ari.get_stored_recording_file(name))
            except NotFound:
                # The stored file is missing (not the channel): nothing to hear this time.
                log.warning("utterance_file_missing", recording=name)
                return Heard(None, None)
        finally:
            self._unwatch(name)
            await asyncio.shield(self._discard_recording(name, finished))
            if digit is None:
                self._raise_if_gone()

    async def snoop(self, app: str, limit: float) -> Leg | None:
        """A snoop channel on this one (`spy=in`: only what the far end says), as a leg of its
        own: utterances are recorded on it while a prompt plays here (a recording on this
        channel would wait for the prompt to end). None when Asterisk did not make it or it
        did not enter the application within `limit` seconds; a leg that is gone raises.

        The snoop goes when this channel does; whoever asked for it hangs it up when done.
        """
        self._raise_if_gone()
        snoop = Leg(ids.snoop_id(self.id), self.ari, self.router)
        made = False
        try:
            with self._gone_if_404():
                await self.ari.snoop(self.id, snoop_id=snoop.id, app=app, app_args=ids.SNOOP_ARG)
            made = await snoop.wait_answered(limit)
            if not made:
                log.warning("snoop_not_in_app", channel=self.id, snoop=snoop.id)
        except AriError as exc:
            log.warning("snoop_failed", channel=self.id, error=str(exc))
        finally:
            if not made:
                await asyncio.shield(snoop.hangup())
                snoop.release()
        return snoop if made else None

    async def _start_recording(
        self,
        name: str,
        max_duration_s: int,
        max_silence_s: int,
        *,
        beep: bool,
        terminate_on: str,
    ) -> None:
        with self._gone_if_404():
            await self.ari.record(
                self.id,
                name=name,
                format="wav",
                max_duration_s=max_duration_s,
                max_silence_s=max_silence_s,
                beep=beep,
                terminate_on=terminate_on,
                if_exists="overwrite",
            )

    async def _recording_end(self, name: str, limit: float) -> _RecordingEnd:
        """Wait for the recording's RecordingFinished/Failed, noting the first key pressed and
        a hang-up (the recording survives it); past `limit` seconds, stop it ourselves."""
        deadline = time.monotonic() + limit
        digit: str | None = None
        hung_up = False
        while True:
            event = await self._wait_event(deadline, raise_gone=False)
            if event is None:
                # Asterisk did not end it (or its event was lost): stop it, keep what is there.
                await self.ari.stop_recording(name)
                return _RecordingEnd(None, digit, hung_up)
            if event.type in ("RecordingFinished", "RecordingFailed") and (
                event.recording_name == name
            ):
                return _RecordingEnd(event, digit, hung_up)
            if event.type == "ChannelDtmfReceived" and event.digit and digit is None:
                digit = event.digit
            if event.channel_id == self.id and event.type in _GONE:
                hung_up = True

    async def _discard_recording(self, name: str, finished: bool) -> None:
        try:
            if not finished:
                await self.ari.stop_recording(name)
            await self.ari.delete_stored_recording(name)
        except AriError as exc:
            log.info("discard_recording_failed", recording=name, error=str(exc))
