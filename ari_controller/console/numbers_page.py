"""Numbers: what each number's callers hear and get (greeting, menu, routes, support hours,
what happens outside them), and the greeting as audio to listen to."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp_jinja2
import structlog
from aiohttp import web

from ari_controller.announcements import greeting_and_menu
from ari_controller.config import Config
from ari_controller.console.format import moment
from ari_controller.console.services import ConsoleServices
from ari_controller.numbers import Number, numbered_routes, select_routes
from ari_controller.oncall.models import WEEKDAYS, Weekday, WeeklyWindow, clock_minutes
from ari_controller.prompts.audio import AudioFileError
from ari_controller.prompts.catalogue import CatalogueError, render
from ari_controller.prompts.library import PromptError
from ari_controller.prompts.tts import EngineConfigError, SpeechError
from ari_controller.support_hours import SupportHours

log = structlog.get_logger(__name__)

# What a speech engine or an audio file raises when a greeting cannot be rendered
# (prompts/preview.py: SpeechError, AudioFileError; a hung engine times out; a missing binary
# or a full disk is an OSError).
SYNTHESIS_ERRORS = (
    SpeechError,
    AudioFileError,
    EngineConfigError,
    PromptError,
    CatalogueError,
    TimeoutError,
    OSError,
)
DASH = "\u2013"  # an en dash between the ends of a range, as people write times
_DAY_NAMES = {day: day.capitalize() for day in WEEKDAYS}


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    pages = NumberPages(services)
    app.router.add_get("/numbers", pages.overview, name="numbers")
    app.router.add_get("/numbers/{did}/greeting.wav", pages.greeting, name="greeting_wav")


class PreviewFailed(Exception):
    """The speech engine could not render a greeting."""


class GreetingPreviews:
    """Rendered greetings, one per number, kept while its text stays the same: a second
    listen (or a second person listening) does not synthesise again, and a changed greeting
    after a reload is rendered anew. One rendering at a time: synthesis takes the CPU the
    calls need, and two people pressing play at once share the result."""

    def __init__(self, render_wav: Callable[[Number], Awaitable[bytes]]) -> None:
        self._render = render_wav
        self._rendered: dict[str, tuple[tuple[str, ...], bytes]] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def _text(number: Number) -> tuple[str, ...]:
        sentences = greeting_and_menu(number, numbered_routes(number.routes))
        return (number.language, number.greeting_file or "", *sentences)

    def _cached(self, number: Number, text: tuple[str, ...]) -> bytes | None:
        found = self._rendered.get(number.did)
        return found[1] if found is not None and found[0] == text else None

    async def wav(self, number: Number) -> bytes:
        """The greeting and menu as WAV bytes; raises PreviewFailed."""
        text = self._text(number)
        cached = self._cached(number, text)
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._cached(number, text)
            if cached is not None:
                return cached
            try:
                audio = await self._render(number)
            except SYNTHESIS_ERRORS as exc:
                log.warning(
                    "console_greeting_preview_failed",
                    did=number.did,
                    error=str(exc) or type(exc).__name__,
                )
                raise PreviewFailed(str(exc) or type(exc).__name__) from exc
            self._rendered[number.did] = (text, audio)
            return audio


def _days(days: list[Weekday]) -> str:
    """'Mon-Fri' (en dash) for a run of three or more days in week order, else 'Mon, Wed'."""
    indexes = sorted({WEEKDAYS.index(d) for d in days})
    if len(indexes) >= 3 and indexes == list(range(indexes[0], indexes[-1] + 1)):
        return f"{_DAY_NAMES[WEEKDAYS[indexes[0]]]}{DASH}{_DAY_NAMES[WEEKDAYS[indexes[-1]]]}"
    return ", ".join(_DAY_NAMES[WEEKDAYS[i]] for i in indexes)


def window_text(window: WeeklyWindow) -> str:
    """'Mon-Fri 09:00-17:00'; 'Fri 18:00-08:00 (into the next day)' (en dashes)."""
    overnight = clock_minutes(window.end) <= clock_minutes(window.start)
    suffix = " (into the next day)" if overnight else ""
    return f"{_days(window.days)} {window.start}{DASH}{window.end}{suffix}"


@dataclass(frozen=True, slots=True)
class HoursView:
    time_zone: str
    windows: list[str]
    holidays: list[str]
    exceptions: list[str]


def hours_view(hours: SupportHours) -> HoursView:
    exceptions = []
    for exception in sorted(hours.exceptions, key=lambda e: e.date):
        opening = (
            f"open {exception.start}{DASH}{exception.end}"
            if exception.start is not None
            else "closed all day"
        )
        note = f" ({exception.note})" if exception.note else ""
        exceptions.append(f"{exception.date.isoformat()}: {opening}{note}")
    return HoursView(
        time_zone=hours.time_zone,
        windows=[window_text(w) for w in hours.windows],
        holidays=[d.isoformat() for d in sorted(hours.holidays)],
        exceptions=exceptions,
    )


def outside_hours_text(number: Number) -> str:
    """What a caller outside the support hours gets, as select_routes decides it."""
    outside = number.outside_hours
    if outside.action == "routes":
        labels = ", ".join(route.label for _, route in numbered_routes(outside.routes))
        return f"a menu of its own: {labels}"
    if outside.action == "voicemail" and number.voicemail.enabled:
        return "a voicemail (after hearing that it is outside support hours)"
    said = outside.message or render("outside_hours", number.language)
    fallback = " (voicemail is off)" if outside.action == "voicemail" else ""
    return f"a message, then goodbye{fallback}: “{said}”"


@dataclass(frozen=True, slots=True)
class RouteView:
    digit: str
    label: str
    policy: str
    mode: str


@dataclass(frozen=True, slots=True)
class NumberView:
    did: str
    name: str
    language: str
    time_zone: str
    mode: str
    voicemail: bool
    greeting: str
    menu: list[str]
    routes: list[RouteView]
    hours: HoursView | None
    open_now: bool
    now: str
    gets_now: str
    outside_hours: str


def number_view(number: Number, config: Config, now: dt.datetime) -> NumberView:
    policies = {p.id: p.display_name for p in config.escalation_policies}
    sentences = greeting_and_menu(number, numbered_routes(number.routes))
    selection = select_routes(number, now)
    if selection.in_support_hours:
        gets_now = "the greeting and menu"
    else:
        gets_now = outside_hours_text(number)
    return NumberView(
        did=number.did,
        name=number.name,
        language=number.language,
        time_zone=number.zone_name,
        mode=number.mode,
        voicemail=number.voicemail.enabled,
        greeting=sentences[0] if sentences else (number.greeting or ""),
        menu=sentences[1:],
        routes=[
            RouteView(
                digit=digit,
                label=route.label,
                policy=policies.get(route.policy, route.policy),
                mode=route.mode or number.mode,
            )
            for digit, route in numbered_routes(number.routes)
        ],
        hours=hours_view(number.support_hours) if number.support_hours is not None else None,
        open_now=selection.in_support_hours,
        now=moment(now, number.zone_name, seconds=False),
        gets_now=gets_now,
        outside_hours=outside_hours_text(number),
    )


class NumberPages:
    def __init__(self, services: ConsoleServices) -> None:
        self._services = services
        render_wav = services.greeting_audio
        self._previews = GreetingPreviews(render_wav) if render_wav is not None else None

    async def overview(self, request: web.Request) -> web.StreamResponse:
        config = self._services.config()
        now = self._services.clock()
        return aiohttp_jinja2.render_template(
            "numbers.html",
            request,
            {
                "numbers": [number_view(n, config, now) for n in config.numbers],
                "previews": self._previews is not None,
            },
        )

    async def greeting(self, request: web.Request) -> web.StreamResponse:
        did = request.match_info["did"]
        number = self._services.config().number(did)
        if number is None:
            raise web.HTTPNotFound(text=f"No number {did} in the configuration.")
        if self._previews is None:
            raise web.HTTPNotFound(
                text="Greeting previews are not available here: this console has no speech"
                " engine to render them."
            )
        try:
            audio = await self._previews.wav(number)
        except PreviewFailed as exc:
            raise web.HTTPServiceUnavailable(
                text=f"The speech engine could not render this greeting ({exc}). Calls are"
                " not affected; the log has the details."
            ) from None
        return web.Response(
            body=audio,
            content_type="audio/wav",
            headers={"Cache-Control": "private, max-age=300"},
        )
