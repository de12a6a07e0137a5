"""The IVR menu's decisions, pure."""

from __future__ import annotations

from ari_controller.calls.menu import Chosen, GiveUp, Menu, Repeat
from ari_controller.numbers import MenuSettings, Route, numbered_routes


def menu(default: dict[str, str] | None = None, attempts: int = 3) -> Menu:
    routes = [Route(label="db", policy="dba"), Route(label="net", policy="net", digit="5")]
    settings = MenuSettings.model_validate(
        {"max_attempts": attempts, "default": default or {"action": "goodbye"}}
    )
    return Menu(tuple(numbered_routes(routes)), settings)


def test_digits_are_numbered_around_explicit_ones() -> None:
    assert [d for d, _ in menu().routes] == ["1", "5"]


def test_a_valid_digit_chooses_its_route() -> None:
    step = menu().step(0, "5")
    assert isinstance(step, Chosen) and step.route.label == "net" and step.how == "digit"


def test_invalid_and_missing_input_repeat_then_fall_back() -> None:
    m = menu(attempts=3)
    assert m.step(0, "9") == Repeat("invalid")
    assert m.step(1, None) == Repeat("no_input")
    assert m.step(2, "9") == GiveUp("goodbye")


def test_star_repeats_without_counting_as_a_failure() -> None:
    assert menu(attempts=1).step(0, "*") == Repeat(None)


def test_default_route_or_voicemail() -> None:
    chosen = menu({"action": "route", "route": "5"}, attempts=1).step(0, None)
    assert isinstance(chosen, Chosen) and chosen.how == "default" and chosen.digit == "5"
    assert menu({"action": "voicemail"}, attempts=1).step(0, "#") == GiveUp("voicemail")
