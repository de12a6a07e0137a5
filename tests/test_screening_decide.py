"""The screening verdict: the fixed order of checks and what each outcome gives the caller."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ari_controller.screening.callerid import caller_id
from ari_controller.screening.decide import Verdict, screen
from ari_controller.screening.flood import NO_FLOOD, FloodState
from ari_controller.screening.pins import hash_pin
from ari_controller.screening.settings import ScreeningSettings

FLOODED = FloodState(True, dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.UTC), None)
LISTS = {"customers": ["+4989*"]}
PINS = [{"label": "ACME", "hash": hash_pin("4711")}]


def settings(**screening: Any) -> ScreeningSettings:
    return ScreeningSettings.model_validate(screening, context={"default_country": "DE"})


def verdict(
    raw: str,
    config: ScreeningSettings,
    *,
    calls: int = 1,
    flood: FloodState = NO_FLOOD,
    pin: str | None = None,
    failed: bool = False,
) -> Verdict:
    return screen(
        caller_id(raw, "DE"),
        config,
        LISTS,
        caller_calls=calls,
        flood=flood,
        pin_given=pin is not None,
        pin_label=pin,
        pin_failed=failed,
    )


def checks(result: Verdict) -> list[tuple[str, str]]:
    return [(s.check, s.outcome) for s in result.steps]


def test_the_defaults_let_everyone_in_and_say_so_step_by_step() -> None:
    result = verdict("030 123456", ScreeningSettings(), calls=99, flood=FLOODED)
    assert (result.action, result.then, result.message) == ("menu", "continue", None)
    assert result.timeline() == [
        {"check": "caller_id", "outcome": "e164", "rule": "+4930123456"},
        {"check": "block", "outcome": "off", "rule": None},
        {"check": "allow", "outcome": "off", "rule": None},
        {"check": "rate_limit", "outcome": "off", "rule": None},
        {"check": "flood", "outcome": "off", "rule": None},
        {"check": "pin", "outcome": "off", "rule": None},
    ]
    assert verdict("anonymous", ScreeningSettings()).action == "menu"


def test_a_blocked_caller_is_hung_up_with_the_message_or_without_a_word() -> None:
    quiet = settings(block=["+4917*", "withheld"])
    result = verdict("0171 2345678", quiet)
    assert (result.action, result.then, result.message) == ("blocked", "hang_up", None)
    assert result.steps[-1].rule == "+4917*"
    said = settings(block=["withheld"], blocked={"message": "We do not take anonymous calls."})
    result = verdict("Restricted", said)
    assert (result.action, result.message) == ("blocked", "We do not take anonymous calls.")
    assert checks(result) == [("caller_id", "withheld"), ("block", "matched")]


def test_block_comes_before_allow_and_before_the_pin() -> None:
    # Lists come before the PIN: a caller ID on the block list stays blocked with a right PIN.
    config = settings(
        block=["+4989123*"], allow=["@customers"], pin={"required": True, "pins": PINS}
    )
    assert verdict("089 1234567", config).action == "blocked"
    assert verdict("089 1234567", config, pin="ACME").action == "blocked"
    assert verdict("089 9999999", config).action == "ask_pin"


@pytest.mark.parametrize(
    ("not_allowed", "action", "then", "message"),
    [
        (
            {"action": "message", "message": "Customers only."},
            "not_allowed",
            "hang_up",
            "Customers only.",
        ),
        ({"action": "voicemail"}, "not_allowed", "voicemail", None),
        ({"action": "hang_up"}, "not_allowed", "hang_up", None),
        ({"action": "pin"}, "ask_pin", None, None),
    ],
)
def test_an_allow_only_number_treats_everyone_else_as_configured(
    not_allowed: dict[str, str], action: str, then: str | None, message: str | None
) -> None:
    config = settings(
        allow=["@customers"], allow_only=True, not_allowed=not_allowed, pin={"pins": PINS}
    )
    result = verdict("030 123456", config)
    assert (result.action, result.then, result.message) == (action, then, message)
    allowed = verdict("089 123456", config)
    assert allowed.action == "menu"
    assert ("allow", "matched") in checks(allowed) and ("allow_only", "allowed") in checks(allowed)


def test_allow_only_with_a_pin_a_right_one_passes_a_wrong_one_fails() -> None:
    config = settings(
        allow=["@customers"],
        allow_only=True,
        not_allowed={"action": "pin"},
        pin={"pins": PINS, "attempts": 2, "on_failure": "voicemail"},
    )
    asked = verdict("030 123456", config)
    assert (asked.action, asked.attempts) == ("ask_pin", 2)
    right = verdict("030 123456", config, pin="ACME")
    assert (right.action, right.label) == ("menu", "ACME")
    assert ("allow_only", "pin_holder") in checks(right) and ("pin", "right") in checks(right)
    wrong = verdict("030 123456", config, failed=True)
    assert (wrong.action, wrong.then) == ("pin_failed", "voicemail")


def test_the_rate_limit_counts_this_call_too() -> None:
    config = settings(rate_limit={"calls": 3, "minutes": 10, "message": "Please wait."})
    assert verdict("030 123456", config, calls=3).action == "menu"
    result = verdict("030 123456", config, calls=4)
    assert (result.action, result.then, result.message) == (
        "rate_limited",
        "hang_up",
        "Please wait.",
    )
    assert result.steps[-2].rule == "at most 3 calls in 10 min; this is call 4"


def test_allow_listed_and_withheld_callers_are_not_rate_limited() -> None:
    config = settings(allow=["@customers"], rate_limit={"calls": 1, "minutes": 10})
    allowed = verdict("089 123456", config, calls=50)
    assert allowed.action == "menu" and ("rate_limit", "exempt") in checks(allowed)
    # Withheld callers are not one caller: the flood limit is what covers them.
    withheld = verdict("anonymous", config, calls=50)
    assert withheld.action == "menu" and ("rate_limit", "not_counted") in checks(withheld)


@pytest.mark.parametrize(
    ("flood", "action", "then", "message"),
    [
        ({"action": "voicemail_only"}, "flood", "voicemail", None),
        ({"action": "message", "message": "We know."}, "flood", "hang_up", "We know."),
        ({"action": "hang_up"}, "flood", "hang_up", None),
    ],
)
def test_a_flood_gives_its_action(
    flood: dict[str, str], action: str, then: str, message: str | None
) -> None:
    config = settings(flood={"new_calls_per_minute": 5, **flood}, allow=["@customers"])
    result = verdict("030 123456", config, flood=FLOODED)
    assert (result.action, result.then, result.message) == (action, then, message)
    assert verdict("030 123456", config).action == "menu"  # calm
    allowed = verdict("089 123456", config, flood=FLOODED)
    assert allowed.action == "menu" and ("flood", "exempt") in checks(allowed)


def test_a_number_with_pins_lets_a_right_pin_through_a_limit() -> None:
    config = settings(
        rate_limit={"calls": 2, "minutes": 5, "message": "Please wait."},
        flood={"new_calls_per_minute": 5, "action": "hang_up"},
        pin={"pins": PINS},
    )
    for calls, flood in ((3, NO_FLOOD), (1, FLOODED)):
        asked = verdict("030 123456", config, calls=calls, flood=flood)
        assert asked.action == "ask_pin" and asked.steps[-1].check == "pin"
        right = verdict("030 123456", config, calls=calls, flood=flood, pin="ACME")
        assert (right.action, right.label) == ("menu", "ACME")
    # A wrong PIN: the limit applies (the PIN was not required).
    assert verdict("030 123456", config, calls=3, failed=True).action == "rate_limited"
    assert verdict("030 123456", config, flood=FLOODED, failed=True).action == "flood"


def test_a_required_pin_is_asked_after_the_limits() -> None:
    config = settings(pin={"required": True, "pins": PINS, "on_failure": "hang_up"})
    asked = verdict("030 123456", config)
    assert (asked.action, asked.attempts) == ("ask_pin", 3)
    right = verdict("030 123456", config, pin="ACME")
    assert (right.action, right.then, right.label) == ("menu", "continue", "ACME")
    wrong = verdict("030 123456", config, failed=True)
    assert (wrong.action, wrong.then) == ("pin_failed", "hang_up")
    # The allow list does not stand in for a required PIN: caller IDs can be forged.
    allowed = settings(allow=["@customers"], pin={"required": True, "pins": PINS})
    assert verdict("089 123456", allowed).action == "ask_pin"


def test_voicemail_only_comes_after_the_lists_and_the_limits() -> None:
    config = settings(
        voicemail_only=True,
        block=["+4917*"],
        rate_limit={"calls": 2, "minutes": 60},
    )
    result = verdict("030 123456", config)
    assert (result.action, result.then) == ("voicemail_only", "voicemail")
    assert verdict("0171 2345678", config).action == "blocked"  # blocked callers stay blocked
    assert verdict("030 123456", config, calls=3).action == "rate_limited"


def test_the_checks_run_in_the_documented_order() -> None:
    config = settings(
        block=["+4917*"],
        allow=["@customers"],
        rate_limit={"calls": 5, "minutes": 10},
        flood={"new_calls_per_minute": 100},
        pin={"required": True, "pins": PINS},
    )
    result = verdict("030 123456", config, pin="ACME")
    assert [s.check for s in result.steps] == [
        "caller_id",
        "block",
        "allow",
        "rate_limit",
        "flood",
        "pin",
    ]
    assert result.action == "menu"
