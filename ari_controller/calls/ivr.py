"""Asking the caller which team they need: greeting, menu, digits, repeats, the default."""

from __future__ import annotations

from ari_controller.calls.confirmation import confirm_route
from ari_controller.calls.context import CallContext
from ari_controller.calls.listening import Answer, key_or_word, note_utterances, play_and_listen
from ari_controller.calls.menu import Chosen, GiveUp, Menu, Repeat
from ari_controller.numbers import Route
from ari_controller.speech.availability import recognizer_for
from ari_controller.speech.vocabulary import route_vocabulary

# What the menu is given for words that were heard but did not count: an invalid choice.
UNRECOGNISED = "?"

# `*` replays the menu; a caller holding `*` down must still reach an end.
EXTRA_REPLAYS = 5


async def ask_for_route(
    ctx: CallContext, routes: list[tuple[str, Route]], *, greet: bool = True
) -> Chosen | GiveUp:
    """The greeting (unless the caller heard it before a restart) and the menu, until a
    route is chosen or the menu gives up."""
    number = ctx.number
    menu = Menu(tuple(routes), number.menu)
    greeting = ctx.prompts.greeting(number) if greet else []
    options = ctx.prompts.menu(number, routes)
    caller = ctx.caller

    if not menu.needs_asking():
        await caller.play(greeting + options, stop_on_digit=False)
        return menu.only_route()

    recognizer = recognizer_for(number)
    vocabulary = route_vocabulary(routes, number.language)

    heard_during: Answer | None = None

    async def offer(media: list[str]) -> str | None:
        """Play the menu: a digit during it stops it and counts; with speech on, a route said
        during it does too (barge-in), and listening goes on until the input timeout."""
        nonlocal heard_during
        if recognizer is None or not vocabulary:
            return await caller.play(media)
        heard_during = await play_and_listen(
            caller,
            media,
            vocabulary,
            number.speech,
            recognizer,
            number.menu.input_timeout_s,
            app=ctx.app,
        )
        return heard_during.digit

    digit = await offer(greeting + options)
    failures = 0
    replays = 0
    while True:
        listened = False
        answer, heard_during = heard_during, None
        if answer is None and digit is None and recognizer is not None and vocabulary:
            # Voice next to digits: a key still wins, words count only when recognized.
            answer = await key_or_word(
                caller, number.menu.input_timeout_s, vocabulary, number.speech, recognizer
            )
        if answer is not None:
            assert recognizer is not None  # only a menu that listens has an answer
            listened = True  # the listening window is the input timeout
            note_utterances(ctx.journal, answer, party="caller")
            digit = answer.digit
            if answer.decision is not None and answer.decision.meaning is not None:
                said = answer.decision.meaning
                ctx.journal.note(
                    "menu_speech",
                    phrase=answer.decision.phrase,
                    confidence=answer.decision.confidence,
                    attempt=failures + 1,
                )
                heard = menu.route_for_digit(said)
                if heard is not None and not number.speech.confirm_routes:
                    return Chosen(said, heard, "voice")
                if heard is not None:
                    confirmation = await confirm_route(ctx, said, heard, recognizer, failures + 1)
                    if confirmation.answer == "yes":
                        return Chosen(said, heard, "voice")
                    if confirmation.answer == "no":
                        # Heard wrong: the options again, as when the caller asks with `*`.
                        replays += 1
                        if replays > number.menu.max_attempts + EXTRA_REPLAYS:
                            return menu.fallback()
                        digit = await offer(options)
                        continue
                    digit = confirmation.digit
                    if confirmation.answer == "not_understood":
                        digit = UNRECOGNISED
            elif digit is None and answer.said_something:
                digit = UNRECOGNISED
        if digit is None and not listened:
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
            digit = await offer(options)
            continue
        failures += 1
        why = ctx.say("invalid_choice" if step.reason == "invalid" else "no_choice")
        digit = await offer(why + options)
