"""Asking back a route the caller chose by voice: "Did you say billing? Say yes, or press 1."

On phone lines a near word can be heard as a route with high confidence ("netware" as
"network"), so a route chosen by voice is taken only when the caller confirms it. A key
pressed meanwhile is a menu choice like any other: digits always win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ari_controller.calls.context import CallContext
from ari_controller.calls.listening import key_or_word, note_utterances
from ari_controller.numbers import Route
from ari_controller.speech.engines import Recognizer
from ari_controller.speech.vocabulary import NO, YES, confirm_vocabulary


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the caller answered: yes, no, a key (a menu choice), words that did not count,
    or nothing within the input window."""

    answer: Literal["yes", "no", "digit", "not_understood", "nothing"]
    digit: str | None = None


async def confirm_route(
    ctx: CallContext, digit: str, route: Route, recognizer: Recognizer, attempt: int
) -> Confirmation:
    """Ask back the route heard; listen once the question has been asked. The question says
    "yes" itself, so nothing said while it plays is listened to: an echo of it on the
    caller's line must never answer it."""
    number = ctx.number
    question = ctx.prompts.route_confirmation(number, digit, route)
    pressed = await ctx.caller.play(question)
    confirmation: Confirmation
    if pressed is not None:
        confirmation = Confirmation("digit", pressed)
    else:
        # The caller has the menu's input window to answer; expiry: no answer, not a yes.
        answer = await key_or_word(
            ctx.caller,
            number.menu.input_timeout_s,
            confirm_vocabulary(number.language),
            number.speech,
            recognizer,
        )
        note_utterances(ctx.journal, answer, party="caller")
        if answer.digit is not None:
            confirmation = Confirmation("digit", answer.digit)
        elif answer.decision is not None and answer.decision.meaning == YES:
            confirmation = Confirmation("yes")
        elif answer.decision is not None and answer.decision.meaning == NO:
            confirmation = Confirmation("no")
        elif answer.said_something:
            confirmation = Confirmation("not_understood")
        else:
            confirmation = Confirmation("nothing")
    ctx.journal.note(
        "route_confirmation",
        label=route.label,
        digit=digit,
        answer=confirmation.answer,
        pressed=confirmation.digit,
        attempt=attempt,
    )
    return confirmation
