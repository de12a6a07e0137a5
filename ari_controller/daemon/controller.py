"""Which call does a new channel start, and what happens to calls when the connection or the
configuration changes: one task per inbound call, reconciliation after a reconnect, draining.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from ari_controller.ari.client import AriClient
from ari_controller.ari.errors import AriError
from ari_controller.ari.events import EventRouter
from ari_controller.ari.models import Application, AriEvent, Bridge, Channel
from ari_controller.calls import ids
from ari_controller.calls.arrival import Arrival
from ari_controller.calls.context import CallContext, Durable, Planner, Prompts, not_kept
from ari_controller.calls.journal import AlertSummary, CallJournal, Clock, Emit, utc_now
from ari_controller.calls.leg import Leg
from ari_controller.calls.outcomes import LegOutcome
from ari_controller.calls.resume import Unfinished
from ari_controller.calls.running import RunningCall
from ari_controller.calls.unowned import (
    end_left_conversation,
    hand_back,
    hang_up_orphan_leg,
    turn_away_unknown_number,
)
from ari_controller.config import Config
from ari_controller.numbers import Number
from ari_controller.screening.history import CallerHistory

log = structlog.get_logger(__name__)

# An utterance is recorded for 30 s at most (speech.listen_s): one an earlier run was
# recording when it died is in Asterisk's store by then.
EARLIER_UTTERANCES_DONE_S = 35.0


@dataclass(frozen=True, slots=True)
class Listing:
    """The application, the channels and the bridges, as Asterisk listed them just now."""

    application: Application
    channels: list[Channel]
    bridges: list[Bridge]


@dataclass
class CallSetup:
    """What a new call is built from; swapped as a whole on reload (calls keep theirs)."""

    config: Config
    prompts: Prompts
    planner: Planner


@dataclass
class Controller:
    """Owns the set of running calls and decides what each channel arriving in the application
    becomes: a call, a number we do not serve, an orphan leg, a caller handed back. It starts,
    wakes, stops and forgets calls; it makes no media request and writes no timeline entry
    itself: those belong to the calls."""

    ari: AriClient
    router: EventRouter
    setup: CallSetup
    emit: Emit
    clock: Clock = utc_now
    # Until the records emitted so far would outlive this process (see CallContext.durable).
    durable: Durable = not_kept
    rng: random.Random = field(default_factory=random.Random)
    on_call_started: Callable[[CallContext], None] | None = None
    on_call_finished: Callable[[CallContext], None] | None = None
    on_unknown_number: Callable[[str], None] | None = None
    # Callers' past for screening (rate limits, floods, repeat calls), shared through Postgres.
    history: CallerHistory | None = None
    calls: dict[str, RunningCall] = field(default_factory=dict)
    accepting: bool = True
    _side_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _hurry: asyncio.Event = field(default_factory=asyncio.Event)
    _unowned_before: set[str] = field(default_factory=set)  # seen by the last sweep
    _janitor: asyncio.Future[None] | None = None
    _to_resume: list[Unfinished] = field(default_factory=list)  # not yet picked up

    @property
    def app(self) -> str:
        return self.setup.config.asterisk.app

    def attach(self) -> None:
        self.router.on_new_channel = self.on_new_channel

    # ---- new channels ---------------------------------------------------------------------------

    def on_new_channel(self, event: AriEvent) -> None:
        """A StasisStart nobody registered: an inbound call, or a leg left by an earlier run.

        Runs inside the event reader: the caller's mailbox is registered now, synchronously, so
        the events right behind this StasisStart (a digit, a hang-up) reach the call.
        """
        self.arrive(Arrival.from_stasis_start(event))

    def arrive(self, arrival: Arrival) -> None:
        """Start what a channel arriving in the application becomes."""
        if arrival.is_responder_leg or arrival.is_notification_leg or arrival.is_snoop:
            # A leg we placed whose call is not ours (a previous run, or already over).
            self._side(hang_up_orphan_leg(self.ari, arrival.channel_id))
            return
        setup = self.setup  # calls in progress keep the configuration they started with
        if not self.accepting:
            fallback = setup.config.asterisk.fallback_context
            self._side(self._hand_back_quietly(arrival.channel_id, fallback))
            return
        caller = Leg(arrival.channel_id, self.ari, self.router)
        caller.in_stasis = True
        number = setup.config.number(arrival.did)
        if number is None:
            if self.on_unknown_number:
                self.on_unknown_number(arrival.did)
            language = setup.config.numbers[0].language if setup.config.numbers else "en"
            prompt = setup.prompts.say("unknown_number", language)
            self._side(turn_away_unknown_number(caller, arrival.did, prompt))
            return
        call_id = str(uuid.uuid4())
        if arrival.did != number.did:
            log.info("number_dialled_in_another_form", dialled=arrival.did, did=number.did)
        alert = AlertSummary(
            alert_id=str(uuid.uuid4()),
            call_id=call_id,
            # The number as configured, whatever form the trunk sent it in (030..., +4930...):
            # alerts, the console and repeat calls find a number's calls by it.
            did=number.did,
            number_name=number.name,
            caller_id=arrival.caller_id,
            caller_channel=caller.id,
            opened_at=self.clock(),
            app=self.app,
        )
        ctx = self._context(number, caller, CallJournal(alert, self.emit, self.clock))
        call = RunningCall.start(
            ctx, on_started=self.on_call_started, on_finished=self.on_call_finished
        )
        self._track(call)

    def _context(self, number: Number, caller: Leg, journal: CallJournal) -> CallContext:
        """What a call runs with: the configuration of now (kept by the call until it ends)."""
        setup = self.setup
        return CallContext(
            call_id=journal.alert.call_id,
            app=self.app,
            fallback_context=setup.config.asterisk.fallback_context,
            ari=self.ari,
            router=self.router,
            number=number,
            caller=caller,
            caller_id=journal.alert.caller_id,
            prompts=setup.prompts,
            journal=journal,
            planner=setup.planner,
            clock=self.clock,
            rng=self.rng,
            durable=self.durable,
            history=self.history,
            screening_config=setup.config.screening,
        )

    def _track(self, call: RunningCall) -> None:
        call_id = call.call_id
        self.calls[call_id] = call
        call.task.add_done_callback(lambda _t: self.calls.pop(call_id, None))

    async def _hand_back_quietly(self, channel_id: str, fallback_context: str) -> None:
        await hand_back(self.ari, channel_id, fallback_context)

    def _side(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # ---- channels no call owns (after a reconnect, and now and then) -----------------------

    async def reconcile(self, is_reconnect: bool, unfinished: Sequence[Unfinished] = ()) -> None:
        """Events in the gap are lost: wake every wait so it re-checks the far end; pick up
        the calls an earlier run left unfinished (`unfinished`, read from the store at
        start-up); then take over channels in the application that no call owns."""
        if is_reconnect:
            for call in list(self.calls.values()):
                call.wake()
        self._to_resume.extend(unfinished)
        found = await self._look()
        if found is None:
            if self._to_resume:
                # Without knowing who is still there nothing is resumed: the next sweep tries.
                log.error("resume_failed", calls=len(self._to_resume))
            return
        self._resume_waiting(found)
        for channel in self._unowned_in(found):
            self._adopt(channel)

    def _resume_waiting(self, found: Listing) -> None:
        # Before anything runs: the calls picked up own their channels when the rest of the
        # same listing is looked at.
        if self._to_resume:
            unfinished, self._to_resume = self._to_resume, []
            self._resume(unfinished, found.channels)

    # ---- calls an earlier run left unfinished -------------------------------------------------

    def _resume(self, unfinished: Sequence[Unfinished], listed: list[Channel]) -> None:
        """Each call goes on where its record says it was, with what Asterisk still has of
        it: its caller (or the caller is gone: the call ends as that hang-up would have), its
        legs still ringing or answered, its bridge."""
        channels = {channel.id: channel for channel in listed}
        for earlier in unfinished:
            if earlier.call_id in self.calls:
                continue
            self._resume_one(earlier, channels)
        earlier_channels = {e.caller_channel for e in unfinished} | {
            leg.leg_id for e in unfinished for leg in e.legs
        }
        # Not a side task: shutting down does not wait for its second round.
        self._janitor = asyncio.ensure_future(self._discard_earlier_utterances(earlier_channels))
        log.info(
            "calls_resumed",
            calls=len(unfinished),
            steps=sorted(earlier.step for earlier in unfinished),
        )

    async def _discard_earlier_utterances(self, channel_ids: set[str]) -> None:
        """An earlier run deletes each utterance it recorded once heard; one it was listening
        to when it died stays in Asterisk's store: deleted now, and again once any still
        being recorded then has ended."""
        ours = f"-said-{ids.RUN}-"
        for delay in (0.0, EARLIER_UTTERANCES_DONE_S):
            await asyncio.sleep(delay)
            try:
                stored = await self.ari.list_stored_recordings()
            except AriError as exc:
                log.info("earlier_utterances_unlisted", error=str(exc))
                continue
            for recording in stored:
                channel, said, _ = recording.name.partition("-said-")
                if said and channel in channel_ids and ours not in recording.name:
                    try:
                        await self.ari.delete_stored_recording(recording.name)
                    except AriError as exc:
                        log.info("earlier_utterance_kept", name=recording.name, error=str(exc))

    def _resume_one(self, earlier: Unfinished, channels: dict[str, Channel]) -> None:
        setup = self.setup
        number = setup.config.number(earlier.did)
        caller_channel = channels.get(earlier.caller_channel)
        present = caller_channel is not None and self._in_our_stasis(caller_channel)
        live_legs = {
            channel_id: channel
            for channel_id, channel in channels.items()
            if ids.is_leg_of(earlier.call_id, channel_id)
        }
        caller = Leg(earlier.caller_channel, self.ari, self.router)
        caller.in_stasis = present
        caller.gone = not present
        alert = AlertSummary(
            alert_id=earlier.alert_id,
            call_id=earlier.call_id,
            did=earlier.did,
            number_name=earlier.number_name,
            caller_id=earlier.caller_id,
            caller_channel=earlier.caller_channel,
            opened_at=earlier.opened_at,
            route=earlier.route,
            policy_id=earlier.policy_id,
            status=earlier.status,
            acknowledged_by=earlier.acknowledged_by,
            escalations=earlier.escalations,
            app=self.app,
        )
        journal = CallJournal(
            alert, self.emit, self.clock, legs=list(earlier.legs), earlier_entries=earlier.last_seq
        )
        if number is None:
            # The number left the configuration meanwhile: nothing says how to go on.
            log.warning("resume_number_unknown", call=earlier.call_id, did=earlier.did)
            journal.end("number_removed")
            caller.release()
            for channel_id in [*live_legs, *([earlier.caller_channel] if present else [])]:
                self._side(hang_up_orphan_leg(self.ari, channel_id))
            return
        ctx = self._context(number, caller, journal)
        wanted = {leg.leg_id for leg in earlier.legs if leg.outcome in (None, LegOutcome.ACCEPTED)}
        for channel_id, channel in live_legs.items():
            if channel_id not in wanted:
                # Placed but not on record, or over as far as the record goes: nobody's leg.
                self._side(hang_up_orphan_leg(self.ari, channel_id))
                continue
            leg = Leg(channel_id, self.ari, self.router)
            leg.in_stasis = self._in_our_stasis(channel)  # answered: it entered Stasis
            ctx.responder_legs[channel_id] = leg
        if earlier.step == "connected":
            ctx.bridge_id = earlier.bridge or ids.bridge_id(earlier.call_id)
            ctx.connected.set()
        call = RunningCall.resume(
            ctx, earlier, on_started=self.on_call_started, on_finished=self.on_call_finished
        )
        self._track(call)

    async def sweep(self) -> int:
        """Adopt channels in the application that no call has owned for a whole sweep (a
        StasisStart lost or mishandled would otherwise leave a caller in silence). Seen once
        is not enough: a channel whose StasisStart is on its way is unowned for an instant.
        Returns how many were adopted."""
        found = await self._look()
        if found is not None:
            self._resume_waiting(found)
        unowned = self._unowned_in(found) if found is not None else []
        adopted = [channel for channel in unowned if channel.id in self._unowned_before]
        self._unowned_before = {channel.id for channel in unowned} - {c.id for c in adopted}
        for channel in adopted:
            self._adopt(channel)
        return len(adopted)

    def _in_our_stasis(self, channel: Channel) -> bool:
        """Whether the channel runs Stasis() for this app now. The app is also subscribed to
        channels that are not: the `;2` half of every Local channel it originates, which runs
        the dialplan; taking one for a call would hang up that half of a conversation."""
        return (
            channel.dialplan_app_name == "Stasis"
            and channel.dialplan_app_data.split(",", 1)[0] == self.app
        )

    async def _look(self) -> Listing | None:
        """What is in the application now, as Asterisk lists it (None when it would not)."""
        try:
            application = await self.ari.get_application(self.app)
            channels = await self.ari.list_channels()
            bridges = await self.ari.list_bridges()
        except AriError as exc:
            # Without the bridges a conversation would look like a caller to greet: next time.
            log.warning("reconcile_failed", error=str(exc))
            return None
        return Listing(application, channels, bridges)

    def _unowned_in(self, found: Listing) -> list[Channel]:
        """Channels in Stasis in the application that no call owns, but for conversations in a
        bridge."""
        in_app = set(found.application.channel_ids)
        bridge_of = {c: bridge for bridge in found.bridges for c in bridge.channels}
        unowned = []
        for channel in found.channels:
            if channel.id not in in_app or self.router.owner(channel.id) is not None:
                continue
            if not self._in_our_stasis(channel):
                continue
            bridge = bridge_of.get(channel.id)
            if bridge is None:
                unowned.append(channel)
            elif len(bridge.channels) > 1:
                # A conversation that outlived its controller: leave the two of them talking.
                log.info("connected_call_left_alone", channel=channel.id)
            else:
                # Such a conversation whose other side hung up: end it as its call would have.
                ours = bridge.id in found.application.bridge_ids
                self._side(end_left_conversation(self.ari, channel.id, bridge.id if ours else None))
        return unowned

    def _adopt(self, channel: Channel) -> None:
        """Pick the call up again as if it had just arrived; a responder leg is hung up."""
        arrival = Arrival.from_channel(channel)
        log.info("channel_adopted", channel=channel.id, args=list(arrival.args))
        self.arrive(arrival)

    # ---- shutting down ----------------------------------------------------------------------

    def hurry(self) -> None:
        """Stop waiting for calls to finish (an operator asked twice): hand them back now."""
        self._hurry.set()

    def _stop_taking_calls(self) -> None:
        self.accepting = False
        if self._janitor is not None:
            self._janitor.cancel()

    async def let_go(self) -> None:
        """Another daemon drives the app now (it took the lease over): stop taking calls and
        end every call's task without a request to Asterisk or a record; the calls go on
        under their new driver, which picked them up from the database."""
        self._stop_taking_calls()
        for call in list(self.calls.values()):
            await call.let_go()
        for task in self._side_tasks:
            task.cancel()
        if self._side_tasks:
            await asyncio.wait(list(self._side_tasks), timeout=1)

    async def drain(self, timeout: float) -> int:
        """Stop taking calls; let calls in progress finish for up to `timeout` seconds, then hand
        the rest back to the dialplan. Returns how many had to be handed back."""
        self._stop_taking_calls()
        tasks = [call.task for call in self.calls.values()]
        if tasks and not self._hurry.is_set():
            calls_over = asyncio.ensure_future(asyncio.wait(tasks))
            hurried = asyncio.ensure_future(self._hurry.wait())
            # Calls end on their own, or the wait is cut short by `timeout` or by `hurry()`.
            await asyncio.wait(
                {calls_over, hurried}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in (calls_over, hurried):
                waiter.cancel()
            await asyncio.gather(calls_over, hurried, return_exceptions=True)
        handed_back = 0
        for call in list(self.calls.values()):
            if await call.stop():
                handed_back += 1
        if self._side_tasks:
            await asyncio.wait(list(self._side_tasks), timeout=5)
        return handed_back
