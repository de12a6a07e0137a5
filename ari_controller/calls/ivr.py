"""Asking the caller which team they need: greeting, menu, digits, repeats, the default."""

from __future__ import annotations

from ari_controller.calls.context import CallContext
from ari_controller.calls.menu import Chosen, GiveUp, Menu, Repeat
from ari_controller.numbers import Route

# `*` replays the menu; a caller holding `*` down must still reach an end.
EXTRA_REPLAYS = 5


async def ask_for_route(ctx: CallContext, routes: list[tuple[str, Route]]) -> Chosen | GiveUp:
    number = ctx.number
    menu = Menu(tuple(routes), number.menu)
    greeting = ctx.prompts.greeting(number)
    options = ctx.prompts.menu(number, routes)
    caller = ctx.caller

    if not menu.needs_asking():
        await caller.play(greeting + options, stop_on_digit=False)
        return menu.only_route()

    # A digit during any prompt stops it and counts.
    digit = await caller.play(greeting + options)
    failures = 0
    replays = 0
    while True:
        if digit is None:
            # no input: the caller said nothing within the input timeout
            digit = await caller.wait_digit(number.menu.input_timeout_s)
        step = menu.step(failures, digit)
        ctx.journal.note("menu_input", digit=digit, attempt=failures + 1, step=type(step).__name__)
        if isinstance(step, Chosen | GiveUp):
            return step
        assert isinstance(step, Repeat)
        if step.reason is None:
            replays += 1
            if replays > number.menu.max_attempts + EXTRA_REPLAYS:
                return menu.fallback()
            digit = await caller.play(options)
            continue
        failures += 1
        why = ctx.say("invalid_choice" if step.reason == "invalid" else "no_choice")
        digit = await caller.play(why + options)
