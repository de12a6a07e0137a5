"""Which call does a new channel start, and what happens to calls when the connection or the
configuration changes: one task per inbound call, reconciliation after a reconnect, draining.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from ari_controller.ari.client import AriClient
from ari_controller.ari.errors import AriError
from ari_controller.ari.events import EventRouter
from ari_controller.ari.models import AriEvent, Channel
from ari_controller.calls.context import CallContext, Planner, Prompts
from ari_controller.calls.flow import handle_call
from ari_controller.calls.journal import AlertSummary, CallJournal, Clock, Emit, utc_now
from ari_controller.calls.leg import RECONNECTED, Leg
from ari_controller.config import Config
from ari_controller.logging import bind_call

log = structlog.get_logger(__name__)

RESPONDER_ARG = "responder"
# Saying "this number is not in service" to a caller must not hang on a stalled Asterisk.
UNKNOWN_NUMBER_LIMIT_S = 30.0


@dataclass
class Live:
    """A call in progress: its task and the context it runs with."""

    task: asyncio.Task[None]
    ctx: CallContext | None = None


@dataclass
class CallSetup:
    """What a new call is built from; swapped as a whole on reload (calls keep theirs)."""

    config: Config
    prompts: Prompts
    planner: Planner


def caller_id_of(event: AriEvent) -> str:
    caller = event.raw.get("channel", {}).get("caller", {})
    name, number = caller.get("name", ""), caller.get("number", "")
    return f'"{name}" <{number}>' if name else number


@dataclass
class Controller:
    ari: AriClient
    router: EventRouter
    setup: CallSetup
    emit: Emit
    clock: Clock = utc_now
    rng: random.Random = field(default_factory=random.Random)
    on_call_started: Callable[[CallContext], None] | None = None
    on_call_finished: Callable[[CallContext], None] | None = None
    on_unknown_number: Callable[[str], None] | None = None
    calls: dict[str, Live] = field(default_factory=dict)
    accepting: bool = True
    _side_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _hurry: asyncio.Event = field(default_factory=asyncio.Event)
    _unowned_before: set[str] = field(default_factory=set)  # seen by the last sweep

    @property
    def app(self) -> str:
        return self.setup.config.asterisk.app

    def attach(self) -> None:
        self.router.on_new_channel = self.on_new_channel

    # ---- new channels ---------------------------------------------------------------------------

    def on_new_channel(self, event: AriEvent) -> None:
        """A StasisStart nobody registered: an inbound call, or a leg left by an earlier run.

        Runs inside the event reader: register the caller's mailbox now, synchronously, so the
        events right behind this StasisStart (a digit, a hang-up) reach the call.
        """
        channel_id = event.channel_id
        args = event.args
        if args and args[0] == RESPONDER_ARG:
            # A responder leg whose call is not ours (a previous run, or already over).
            self._side(self._hang_up_orphan(channel_id))
            return
        if not self.accepting:
            self._side(self._hand_back(channel_id))
            return
        did = args[0] if args else event.raw.get("channel", {}).get("dialplan", {}).get("exten", "")
        caller = Leg(channel_id, self.ari, self.router)
        caller.in_stasis = True
        call_id = str(uuid.uuid4())
        setup = self.setup  # calls in progress keep the configuration they started with
        task = asyncio.get_running_loop().create_task(
            self._run_call(call_id, did, caller, caller_id_of(event), setup),
            name=f"call-{call_id}",
        )
        self.calls[call_id] = Live(task)
        task.add_done_callback(lambda _t: self.calls.pop(call_id, None))

    async def _run_call(
        self, call_id: str, did: str, caller: Leg, caller_id: str, setup: CallSetup
    ) -> None:
        bind_call(call_id, caller.id, did=did)
        number = setup.config.number(did)
        if number is None:
            await self._unknown_number(caller, did, setup)
            return
        log.info("call_started", caller_id=caller_id, number=number.name)
        alert = AlertSummary(
            alert_id=str(uuid.uuid4()),
            call_id=call_id,
            did=did,
            number_name=number.name,
            caller_id=caller_id,
            caller_channel=caller.id,
            opened_at=self.clock(),
        )
        ctx = CallContext(
            call_id=call_id,
            app=self.app,
            fallback_context=setup.config.asterisk.fallback_context,
            ari=self.ari,
            router=self.router,
            number=number,
            caller=caller,
            caller_id=caller_id,
            prompts=setup.prompts,
            journal=CallJournal(alert, self.emit, self.clock),
            planner=setup.planner,
            clock=self.clock,
            rng=self.rng,
        )
        live = self.calls.get(call_id)
        if live is not None:
            live.ctx = ctx
        if self.on_call_started:
            self.on_call_started(ctx)
        try:
            await handle_call(ctx)
        finally:
            log.info("call_finished", reason=ctx.journal.alert.ended_reason)
            if self.on_call_finished:
                self.on_call_finished(ctx)

    async def _unknown_number(self, caller: Leg, did: str, setup: CallSetup) -> None:
        log.warning("unknown_number", did=did)
        if self.on_unknown_number:
            self.on_unknown_number(did)
        try:
            async with asyncio.timeout(UNKNOWN_NUMBER_LIMIT_S):
                await caller.answer()
                language = setup.config.numbers[0].language if setup.config.numbers else "en"
                await caller.play(
                    setup.prompts.say("unknown_number", language), stop_on_digit=False
                )
        except Exception as exc:  # any failure still ends in a hang-up below
            log.info("unknown_number_prompt_failed", error=str(exc))
        finally:
            await caller.hangup()
            caller.release()

    async def _hang_up_orphan(self, channel_id: str) -> None:
        log.info("orphan_leg_hung_up", channel=channel_id)
        try:
            await self.ari.hangup(channel_id)
        except AriError as exc:
            log.warning("orphan_hangup_failed", channel=channel_id, error=str(exc))

    async def _hand_back(self, channel_id: str) -> None:
        """While shutting down, give a new call back to the dialplan's fallback."""
        log.info("call_handed_back", channel=channel_id)
        try:
            await self.ari.continue_in_dialplan(
                channel_id,
                context=self.setup.config.asterisk.fallback_context,
                extension="s",
                priority=1,
            )
        except AriError as exc:
            log.warning("hand_back_failed", channel=channel_id, error=str(exc))

    def _side(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # ---- channels no call owns (after a reconnect, and now and then) -----------------------

    async def reconcile(self, is_reconnect: bool) -> None:
        """Events in the gap are lost: wake every wait so it re-checks the far end, and take
        over channels in the application that no call owns."""
        if is_reconnect:
            marker = AriEvent(RECONNECTED, {"type": RECONNECTED})
            for live in list(self.calls.values()):
                if live.ctx is None:
                    continue
                live.ctx.caller.mailbox.put(marker)
                for leg in live.ctx.responder_legs.values():
                    leg.mailbox.put(marker)
        for channel in await self._unowned_channels():
            self._adopt(channel)

    async def sweep(self) -> int:
        """Adopt channels in the application that no call has owned for a whole sweep (a
        StasisStart lost or mishandled would otherwise leave a caller in silence). Seen once
        is not enough: a channel whose StasisStart is on its way is unowned for an instant.
        Returns how many were adopted."""
        unowned = await self._unowned_channels()
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

    async def _unowned_channels(self) -> list[Channel]:
        """Channels in Stasis in the application that no call owns, but for conversations in a
        bridge."""
        try:
            application = await self.ari.get_application(self.app)
            channels = await self.ari.list_channels()
            bridges = await self.ari.list_bridges()
        except AriError as exc:
            # Without the bridges a conversation would look like a caller to greet: next time.
            log.warning("reconcile_failed", error=str(exc))
            return []
        in_app = set(application.channel_ids)
        bridge_of = {c: bridge for bridge in bridges for c in bridge.channels}
        unowned = []
        for channel in channels:
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
                ours = bridge.id in application.bridge_ids
                self._side(self._end_conversation(channel.id, bridge.id if ours else None))
        return unowned

    async def _end_conversation(self, channel_id: str, bridge_id: str | None) -> None:
        log.info("left_conversation_ended", channel=channel_id, bridge=bridge_id)
        try:
            await self.ari.hangup(channel_id)
            if bridge_id is not None:
                await self.ari.destroy_bridge(bridge_id)
        except AriError as exc:
            log.warning("left_conversation_end_failed", channel=channel_id, error=str(exc))

    def _adopt(self, channel: Channel) -> None:
        """Pick the call up again as if it had just arrived; a responder leg is hung up."""
        args = channel.dialplan_app_data.split(",")[1:]  # Stasis(<app>,<args>...)
        event = AriEvent(
            "StasisStart",
            {
                "type": "StasisStart",
                "args": args,
                "channel": {
                    "id": channel.id,
                    "caller": {"name": channel.caller_name, "number": channel.caller_number},
                    "dialplan": {"exten": channel.dialplan_exten},
                },
            },
        )
        log.info("channel_adopted", channel=channel.id, args=args)
        self.on_new_channel(event)

    # ---- shutting down ----------------------------------------------------------------------

    def hurry(self) -> None:
        """Stop waiting for calls to finish (an operator asked twice): hand them back now."""
        self._hurry.set()

    async def drain(self, timeout: float) -> int:
        """Stop taking calls; let calls in progress finish for up to `timeout` seconds, then hand
        the rest back to the dialplan. Returns how many had to be handed back."""
        self.accepting = False
        tasks = [live.task for live in self.calls.values()]
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
        for live in list(self.calls.values()):
            if live.task.done() or live.ctx is None:
                continue
            ctx = live.ctx
            if ctx.bridge_id is not None:
                # Connected: Asterisk keeps the bridge without us; the conversation goes on.
                ctx.ending = "leave_connected"
                ctx.journal.note("left_connected_at_shutdown")
            else:
                ctx.ending = "hand_back"
                ctx.journal.note("handed_back_to_dialplan")
                handed_back += 1
            live.task.cancel()
            await asyncio.gather(live.task, return_exceptions=True)
        if self._side_tasks:
            await asyncio.wait(list(self._side_tasks), timeout=5)
        return handed_back
