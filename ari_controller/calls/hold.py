"""Hold music for a waiting caller, kept going until the caller hangs up or the wait ends."""

from __future__ import annotations

import asyncio

from ari_controller.calls.context import CallContext
from ari_controller.calls.leg import LegGone


async def hold_until_hangup(ctx: CallContext) -> None:
    """Play hold music until cancelled; return when the caller hangs up.

    Asterisk stops channel MOH when anything is played and never resumes it, so this runs
    only between prompts, and a prompt played to the caller must come after cancelling it.
    """
    caller = ctx.caller
    loop_file = ctx.prompts.hold_file(ctx.number)
    try:
        if loop_file is None:
            await caller.start_moh(ctx.number.hold_music.moh_class)
            try:
                await caller.wait_gone()
            finally:
                if not caller.gone:
                    await asyncio.shield(caller.stop_moh())
        else:
            while True:
                # the file ends: start it again, for as long as the caller waits
                await caller.play([loop_file], stop_on_digit=False)
    except LegGone:
        return
