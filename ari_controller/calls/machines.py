"""Is a machine calling? Measured while the menu is offered, decided by
`screening.machines`, and asked once more before a call is sent to voicemail: a person who
talked over the menu presses a key and goes on.
"""

from __future__ import annotations

import time
from typing import Literal

from ari_controller.calls.context import CallContext
from ari_controller.calls.menu import Chosen, GiveUp
from ari_controller.screening.machines import Talk, sounds_like_a_machine


async def listen_for_talk(ctx: CallContext) -> float | None:
    """Talk detection on for the menu, where the number tells machines apart: when it began
    (None: not listening)."""
    if not ctx.number.screening.machines.enabled:
        return None
    if not await ctx.caller.detect_talking():
        return None
    return time.monotonic()


async def machine_or_person(
    ctx: CallContext, since: float | None, choice: Chosen | GiveUp
) -> Literal["machine", "person", "not_asked"]:
    """After the menu: a caller who chose with a key or a word is a person; one who talked
    through the menu without a key is asked "If you are a person, press any key now." and,
    pressing nothing, is a machine."""
    if since is None or (isinstance(choice, Chosen) and choice.how in ("digit", "voice")):
        return "not_asked"
    settings = ctx.number.screening.machines
    talk = Talk(ctx.caller.talked_so_far(), time.monotonic() - since, pressed_a_key=False)
    if not sounds_like_a_machine(talk, settings):
        return "not_asked"
    key = await ctx.caller.play(ctx.say("machine_check"))
    if key is None:
        # expiry: nobody pressed a key, as a recorded announcement would not
        key = await ctx.caller.wait_digit(settings.confirm_s)
    ctx.journal.note(
        "machine_check",
        talked_s=round(talk.talked_s, 1),
        offered_s=round(talk.offered_s, 1),
        pressed=key is not None,
    )
    return "person" if key is not None else "machine"
