"""What each number's callers and responders hear, prepared before any call needs it.

Joins the sentence catalogue (what is said) with the prompt library (the audio Asterisk plays):
`prepare_announcements` renders every sentence of every number at start-up and on reload, and
`Announcements` hands the call flow media URIs without ever synthesizing during a call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ari_controller.numbers import Number, Route, numbered_routes
from ari_controller.prompts.catalogue import (
    CATALOGUE,
    KEYS,
    REFERENCE_LANGUAGE,
    menu_sentences,
    placeholders,
    render,
    responder_hint,
    spoken_key,
)
from ari_controller.prompts.library import HOLD_MUSIC_MAX_SECONDS, PromptLibrary
from ari_controller.speech.availability import speech_active

# Sentences without parameters are the same for every number of a language.
_PLAIN_KEYS = tuple(key for key in KEYS if not placeholders(CATALOGUE[REFERENCE_LANGUAGE][key]))


def _routes_said(routes: list[tuple[str, Route]]) -> list[tuple[str, str]]:
    return [(digit, route.label) for digit, route in routes]


def greeting_and_menu(number: Number, routes: list[tuple[str, Route]]) -> list[str]:
    """Every sentence of the greeting and menu, in the order the caller hears them."""
    return menu_sentences(
        number.name,
        number.greeting,
        _routes_said(routes),
        number.language,
        only_greeting=number.only_greeting,
        voice=speech_active(number),
    )


def responder_sentences(
    number: Number, label: str | None = None, repeat: bool = False
) -> list[str]:
    """ "This is <number>. You have a caller on hold. Press any key to connect.", saying who
    the caller is (`label`, from their PIN) and whether they are calling again."""
    settings = number.responders
    accept_key = None if settings.accept_keys == "any" else settings.accept_keys[0]
    hint = responder_hint(
        number.language,
        voice=speech_active(number),
        accept_key=accept_key,
        decline_key=settings.decline_key,
    )
    key = "responder_intro" + ("_label" if label else "") + ("_repeat" if repeat else "")
    params = {"number_name": number.name, **({"label": label} if label else {})}
    return [render(key, number.language, **params), hint]


def _screening_sentences(number: Number) -> list[str]:
    """What screening may say: its configured messages, and every whisper its callers may
    bring (each PIN's label, a repeat call)."""
    settings = number.screening
    texts = [
        text
        for text in (
            settings.blocked.message,
            settings.not_allowed.message,
            settings.rate_limit.message if settings.rate_limit else None,
            settings.flood.message if settings.flood else None,
        )
        if text
    ]
    labels = [None, *dict.fromkeys(pin.label for pin in settings.pin.pins)]
    for label in labels:
        for repeat in (False, True):
            texts += responder_sentences(number, label, repeat)[:1]
    return texts


def route_confirmation(number: Number, digit: str, route: Route) -> str:
    """ "Did you say billing? Say yes, or press 1." after a route chosen by voice."""
    return render("confirm_route_voice", number.language, label=route.label, digit=digit)


def sentences_of(number: Number) -> list[str]:
    """Every sentence a call on `number` may play."""
    texts: list[str] = []
    for routes in (number.routes, number.outside_hours.routes):
        if routes:
            numbered = numbered_routes(routes)
            texts += greeting_and_menu(number, numbered)
            if speech_active(number) and number.speech.confirm_routes and len(numbered) > 1:
                texts += [route_confirmation(number, digit, route) for digit, route in numbered]
    texts += responder_sentences(number)
    texts += _screening_sentences(number)
    texts += [render(key, number.language) for key in _PLAIN_KEYS]
    if number.outside_hours.message:
        texts.append(number.outside_hours.message)
    return texts


@dataclass
class Announcements:
    """The call flow's view of the prompts: media URIs for prepared sentences and files."""

    library: PromptLibrary
    greeting_files: dict[str, str] = field(default_factory=dict)  # did -> media URI
    hold_files: dict[str, str] = field(default_factory=dict)  # did -> media URI

    def _uris(self, texts: Iterable[str], language: str) -> list[str]:
        return [self.library.media_uri(text, language) for text in texts]

    def greeting(self, number: Number) -> list[str]:
        if number.did in self.greeting_files:
            return [self.greeting_files[number.did]]
        first = greeting_and_menu(number, numbered_routes(number.routes))[0]
        return self._uris([first], number.language)

    def menu(self, number: Number, routes: list[tuple[str, Route]]) -> list[str]:
        if number.only_greeting:
            return self.greeting(number)  # the custom greeting is the whole menu
        return self._uris(greeting_and_menu(number, routes)[1:], number.language)

    def say(self, key: str, language: str, **params: str) -> list[str]:
        spoken = {
            name: spoken_key(value, language) if name.endswith("_key") else value
            for name, value in params.items()
        }
        return self._uris([render(key, language, **spoken)], language)

    def text(self, text: str, language: str) -> list[str]:
        return self._uris([text], language)

    def route_confirmation(self, number: Number, digit: str, route: Route) -> list[str]:
        return self._uris([route_confirmation(number, digit, route)], number.language)

    def responder_prompt(
        self, number: Number, label: str | None = None, repeat: bool = False
    ) -> list[str]:
        return self._uris(responder_sentences(number, label, repeat), number.language)

    def hold_file(self, number: Number) -> str | None:
        return self.hold_files.get(number.did)


async def prepare_announcements(
    library: PromptLibrary, numbers: Iterable[Number], base_dir: Path
) -> Announcements:
    """Render everything the numbers can say; convert their greeting and hold-music files.

    Raises PromptError or AudioFileError naming what could not be prepared.
    """
    numbers = list(numbers)
    items = {(text, number.language) for number in numbers for text in sentences_of(number)}
    await library.prepare(sorted(items))
    announcements = Announcements(library)
    for number in numbers:
        if number.greeting_file:
            announcements.greeting_files[number.did] = await library.prepare_file(
                base_dir / number.greeting_file
            )
        if number.hold_music.file:
            announcements.hold_files[number.did] = await library.prepare_file(
                base_dir / number.hold_music.file, max_seconds=HOLD_MUSIC_MAX_SECONDS
            )
    return announcements
