"""The IVR menu as a pure state machine: given what the caller did, what happens next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ari_controller.numbers import MenuSettings, Route


@dataclass(frozen=True, slots=True)
class Chosen:
    digit: str
    route: Route
    how: Literal["digit", "voice", "default", "only_route"]


@dataclass(frozen=True, slots=True)
class Repeat:
    """Play the menu again, after saying why (None: the caller asked for it with `*`)."""

    reason: Literal["invalid", "no_input"] | None


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No valid choice after every attempt: the configured default that is not a route."""

    action: Literal["voicemail", "goodbye"]


MenuStep = Chosen | Repeat | GiveUp


@dataclass(frozen=True, slots=True)
class Menu:
    routes: tuple[tuple[str, Route], ...]
    settings: MenuSettings

    def needs_asking(self) -> bool:
        return len(self.routes) > 1

    def only_route(self) -> Chosen:
        digit, route = self.routes[0]
        return Chosen(digit, route, "only_route")

    def route_for_digit(self, digit: str) -> Route | None:
        return next((route for d, route in self.routes if d == digit), None)

    def step(self, failed_attempts: int, digit: str | None) -> MenuStep:
        """`failed_attempts`: invalid or empty answers so far, not counting this one."""
        if digit == "*":
            return Repeat(None)
        if digit is not None:
            route = self.route_for_digit(digit)
            if route is not None:
                return Chosen(digit, route, "digit")
        if failed_attempts + 1 >= self.settings.max_attempts:
            return self.fallback()
        return Repeat("no_input" if digit is None else "invalid")

    def fallback(self) -> Chosen | GiveUp:
        default = self.settings.default
        if default.action == "route" and default.route is not None:
            route = self.route_for_digit(default.route)
            if route is not None:
                return Chosen(default.route, route, "default")
        return GiveUp("voicemail" if default.action == "voicemail" else "goodbye")
