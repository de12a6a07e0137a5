"""A routed phone number: its greeting, menu, routes, hours and how responders are called.

Models only, plus the pure choice of which routes apply at a moment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ari_controller.screening.settings import ScreeningSettings
from ari_controller.support_hours import SupportHours, is_open

CallingMode = Literal["sequential", "simultaneous"]
DTMF_KEYS = frozenset("0123456789*#ABCD")


class Route(BaseModel):
    """One menu choice: a label the caller hears and the escalation policy it reaches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1)
    policy: str = Field(min_length=1)
    digit: str | None = None
    keywords: list[str] = Field(default_factory=list)
    mode: CallingMode | None = None

    @field_validator("digit")
    @classmethod
    def _digit(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value not in "0123456789"):
            raise ValueError(f"'{value}' is not a single digit 0-9")
        return value


class MenuDefault(BaseModel):
    """What happens once the caller gave no valid choice `max_attempts` times."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["route", "voicemail", "goodbye"] = "goodbye"
    route: str | None = Field(default=None, description="the digit of the route to take")

    @model_validator(mode="after")
    def _route_given(self) -> MenuDefault:
        if self.action == "route" and self.route is None:
            raise ValueError("action 'route' needs the digit of the route in 'route'")
        return self


class MenuSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=10)
    input_timeout_s: float = Field(default=6.0, gt=0, le=60)
    default: MenuDefault = Field(default_factory=MenuDefault)


class HoldMusic(BaseModel):
    """Either an Asterisk MOH class (musiconhold.conf) or an uploaded file played in a loop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    moh_class: str = "default"
    file: str | None = None


class ResponderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ring_timeout_s: float = Field(default=25.0, gt=0, le=300)
    accept_window_s: float = Field(default=10.0, gt=0, le=120)
    accept_prompt_repeats: int = Field(default=1, ge=0, le=5)
    accept_keys: str = Field(
        default="any", description="'any' for any key, else the keys that accept, e.g. '1'"
    )
    decline_key: str | None = None
    caller_id: Literal["caller", "number"] = "caller"

    @model_validator(mode="after")
    def _keys(self) -> ResponderSettings:
        if self.accept_keys != "any":
            bad = set(self.accept_keys) - DTMF_KEYS
            if bad or not self.accept_keys:
                raise ValueError(
                    f"accept_keys must be 'any' or DTMF keys, got '{self.accept_keys}'"
                )
        if self.decline_key is not None:
            if len(self.decline_key) != 1 or self.decline_key not in DTMF_KEYS:
                raise ValueError(f"decline_key must be one DTMF key, got '{self.decline_key}'")
            if self.accept_keys != "any" and self.decline_key in self.accept_keys:
                raise ValueError("decline_key cannot also be an accept key")
        return self

    def accepts(self, digit: str) -> bool:
        if digit == self.decline_key:
            return False
        return self.accept_keys == "any" or digit in self.accept_keys


class VoicemailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_duration_s: int = Field(default=180, ge=5, le=3600)
    max_silence_s: int = Field(default=5, ge=1, le=60)


class SpeechSettings(BaseModel):
    """Voice input next to digits: callers say a route, responders say "continue"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    engine: str = "pocketsphinx"
    model_dir: str | None = None
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    # Asterisk-side limits of one utterance's recording (whole seconds, as ARI takes them).
    listen_s: int = Field(default=4, ge=1, le=30)
    end_silence_s: int = Field(default=1, ge=1, le=10)
    recognize_timeout_s: float = Field(default=3.0, gt=0, le=30)
    # A route chosen by voice is asked back ("Did you say billing?") and taken only on "yes"
    # or its key: on phone lines near words are heard as routes with high confidence
    # ("netware" as "network" at 0.95-0.99, docs/speech.md), so no threshold makes it safe.
    confirm_routes: bool = True


class OutsideHours(BaseModel):
    """What callers get outside support hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["routes", "voicemail", "message"] = "voicemail"
    routes: list[Route] = Field(default_factory=list)
    message: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OutsideHours:
        if self.action == "routes" and not self.routes:
            raise ValueError("action 'routes' needs at least one route in 'routes'")
        return self


Resolution = Literal["accept_on_answer", "resolve_on_end", "leave_open"]

# What the alert engine tells destinations about (Standard Webhooks event types).
AlertEvent = Literal[
    "alert.created", "alert.escalated", "alert.acknowledged", "alert.resolved", "voicemail.created"
]
ALERT_EVENTS: tuple[AlertEvent, ...] = (
    "alert.created",
    "alert.escalated",
    "alert.acknowledged",
    "alert.resolved",
    "voicemail.created",
)
# Call endings that can escalate an alert to its route's escalation policy.
EscalatingEnding = Literal["nobody_available", "voicemail", "caller_abandoned", "controller_error"]
ESCALATING_ENDINGS: tuple[EscalatingEnding, ...] = (
    "nobody_available",
    "voicemail",
    "caller_abandoned",
    "controller_error",
)


class AlertAction(BaseModel):
    """Send these events of this number's alerts to one destination (chat or webhook)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    destination: str = Field(min_length=1)
    events: list[AlertEvent] = Field(default_factory=lambda: list(ALERT_EVENTS), min_length=1)


class NumberAlerts(BaseModel):
    """What this number's alerts do after the call: which endings escalate (notify the route's
    escalation policy rule by rule until acknowledged) and where its alert events are sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    escalate_on: list[EscalatingEnding] = Field(default_factory=lambda: list(ESCALATING_ENDINGS))
    # A voicemail left outside support hours escalates when the hours begin, not at night.
    hold_voicemail_outside_hours: bool = False
    actions: list[AlertAction] = Field(default_factory=list)


class Number(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    did: str = Field(min_length=1)
    name: str = Field(min_length=1)
    language: str = "en"
    greeting: str | None = None
    greeting_file: str | None = None
    only_greeting: bool = False
    mode: CallingMode = "sequential"
    routes: list[Route] = Field(min_length=1)
    menu: MenuSettings = Field(default_factory=MenuSettings)
    hold_music: HoldMusic = Field(default_factory=HoldMusic)
    responders: ResponderSettings = Field(default_factory=ResponderSettings)
    voicemail: VoicemailSettings = Field(default_factory=VoicemailSettings)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)
    support_hours: SupportHours | None = None
    # Where the number's times are shown (console, call log): this zone, else its support
    # hours' zone, else UTC.
    time_zone: str | None = None
    outside_hours: OutsideHours = Field(default_factory=OutsideHours)
    resolution: Resolution = "accept_on_answer"
    alerts: NumberAlerts = Field(default_factory=NumberAlerts)
    # Who may call, how often, with which PIN (docs/screening.md); the default lets everyone in.
    screening: ScreeningSettings = Field(default_factory=ScreeningSettings)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone '{name}'") from None
        return name

    @property
    def zone_name(self) -> str:
        """The zone the number's times are shown in."""
        if self.time_zone:
            return self.time_zone
        return self.support_hours.time_zone if self.support_hours is not None else "UTC"

    @model_validator(mode="after")
    def _digits(self) -> Number:
        for routes in (self.routes, self.outside_hours.routes):
            taken = [r.digit for r in routes if r.digit is not None]
            duplicates = {d for d in taken if taken.count(d) > 1}
            if duplicates:
                raise ValueError(f"routes share the digit(s) {sorted(duplicates)}")
            if len(routes) > 10:
                raise ValueError("a menu has at most 10 routes (digits 0-9)")
        if self.menu.default.action == "route":
            digits = {d for d, _ in numbered_routes(self.routes)}
            if self.menu.default.route not in digits:
                raise ValueError(
                    f"menu.default.route '{self.menu.default.route}' is not the digit of a route"
                )
        if self.only_greeting and not (self.greeting or self.greeting_file):
            raise ValueError("only_greeting needs a greeting or a greeting_file")
        return self


def numbered_routes(routes: list[Route]) -> list[tuple[str, Route]]:
    """Each route with the digit a caller presses: its own, else the next free one from 1."""
    taken = {r.digit for r in routes if r.digit is not None}
    free = (d for d in "1234567890" if d not in taken)
    return [(r.digit if r.digit is not None else next(free), r) for r in routes]


@dataclass(frozen=True, slots=True)
class RouteSelection:
    """What a caller gets at a given moment."""

    in_support_hours: bool
    action: Literal["menu", "voicemail", "message"]
    routes: list[tuple[str, Route]]
    message: str | None = None


def select_routes(number: Number, at: dt.datetime) -> RouteSelection:
    if is_open(number.support_hours, at):
        return RouteSelection(True, "menu", numbered_routes(number.routes))
    outside = number.outside_hours
    if outside.action == "routes":
        return RouteSelection(False, "menu", numbered_routes(outside.routes))
    if outside.action == "voicemail" and number.voicemail.enabled:
        return RouteSelection(False, "voicemail", [])
    return RouteSelection(False, "message", [], outside.message)
