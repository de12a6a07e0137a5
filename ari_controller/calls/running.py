"""A call in progress as its controller sees it: started, woken, stopped.

The controller holds one RunningCall per call and asks it things; it never edits the call's
context or writes its timeline. Everything a call does stays inside its own task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from ari_controller.calls.context import CallContext, settle
from ari_controller.calls.flow import handle_call, resume_call
from ari_controller.calls.resume import Unfinished
from ari_controller.logging import bind_call

log = structlog.get_logger(__name__)

CallHook = Callable[[CallContext], None]


class RunningCall:
    """Owns one call's task and context. Must not be used to change what the call does
    except through `wake` and `stop`."""

    def __init__(self, ctx: CallContext, task: asyncio.Task[None]) -> None:
        self._ctx = ctx
        self.task = task

    @classmethod
    def start(
        cls,
        ctx: CallContext,
        *,
        on_started: CallHook | None = None,
        on_finished: CallHook | None = None,
    ) -> RunningCall:
        """Run the call's flow in a task of its own, from the greeting to the last hang-up."""
        task = asyncio.get_running_loop().create_task(
            _run(ctx, handle_call(ctx), on_started, on_finished), name=f"call-{ctx.call_id}"
        )
        return cls(ctx, task)

    @classmethod
    def resume(
        cls,
        ctx: CallContext,
        earlier: Unfinished,
        *,
        on_started: CallHook | None = None,
        on_finished: CallHook | None = None,
    ) -> RunningCall:
        """Go on with a call an earlier run of the controller left unfinished."""
        task = asyncio.get_running_loop().create_task(
            _run(ctx, resume_call(ctx, earlier), on_started, on_finished),
            name=f"call-{ctx.call_id}",
        )
        return cls(ctx, task)

    @property
    def call_id(self) -> str:
        return self._ctx.call_id

    @property
    def done(self) -> bool:
        return self.task.done()

    def wake(self) -> None:
        """Events may have been lost (the websocket came back): every wait of the call checks
        the far end again instead of trusting what it last heard."""
        self._ctx.caller.wake()
        for leg in self._ctx.responder_legs.values():
            leg.wake()

    async def let_go(self) -> None:
        """Another controller drives this call now: its task ends without touching the
        channels or writing anything."""
        if self.task.done():
            return
        self._ctx.ending = "let_go"
        self.task.cancel()
        await settle(self.task)

    async def stop(self) -> bool:
        """The controller is going away: a conversation is left talking (Asterisk keeps the
        bridge without us), any other call goes back to the dialplan's fallback. True when
        the call was handed back."""
        ctx = self._ctx
        if self.task.done():
            return False
        if ctx.bridge_id is not None:
            ctx.ending = "leave_connected"
            ctx.journal.note("left_connected_at_shutdown")
        else:
            ctx.ending = "hand_back"
            ctx.journal.note("handed_back_to_dialplan")
        self.task.cancel()
        await settle(self.task)
        return ctx.ending == "hand_back"


async def _run(
    ctx: CallContext,
    story: Coroutine[Any, Any, None],
    on_started: CallHook | None,
    on_finished: CallHook | None,
) -> None:
    bind_call(ctx.call_id, ctx.caller.id, did=ctx.number.did)
    log.info("call_started", caller_id=ctx.caller_id, number=ctx.number.name)
    if on_started:
        on_started(ctx)
    try:
        await story
    finally:
        log.info("call_finished", reason=ctx.journal.alert.ended_reason)
        if on_finished:
            on_finished(ctx)
