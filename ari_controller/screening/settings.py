"""Caller screening in the configuration: a number's `screening:` and the top-level one.

Patterns are normalised while the configuration is read: `030 123456` with the number's country
(`screening.country`, else the top-level `screening.default_country`) is kept as `+4930123456`.
The top-level default country reaches the numbers through the validation context
(`default_country`, set by config.parse_config). Defaults leave a number open to everyone.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ari_controller.screening.callerid import is_country
from ari_controller.screening.lists import LIST_NAME, normalise_pattern
from ari_controller.screening.pins import parse_pin_hash


def _country(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 2 or not is_country(value):
        raise ValueError(f"'{value}' is not an ISO 3166 alpha-2 country code (DE, US, GB, ...)")
    return value.upper()


def _pattern(value: str, info: ValidationInfo) -> str:
    """A list item, normalised with the number's country (the default country when the number
    has none: see ScreeningSettings._default_country)."""
    return normalise_pattern(value, (info.data or {}).get("country"))


Country = Annotated[str | None, AfterValidator(_country)]
Pattern = Annotated[str, AfterValidator(_pattern)]


class BlockedSettings(BaseModel):
    """What a blocked caller hears before being hung up; no message: hung up without a word."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: str | None = None


class NotAllowedSettings(BaseModel):
    """On an allow-only number, what callers not on the allow list get."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["message", "voicemail", "pin", "hang_up"] = "hang_up"
    message: str | None = None

    @model_validator(mode="after")
    def _message_given(self) -> NotAllowedSettings:
        if self.action == "message" and not self.message:
            raise ValueError("action 'message' needs the text in 'message'")
        return self


class PinConfig(BaseModel):
    """One PIN: `label` and the `hash` that `ari-controller hash-pin` prints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, max_length=100)
    hash: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_clear_pin(cls, data: Any) -> Any:
        if isinstance(data, dict) and "pin" in data:
            raise ValueError(
                "a PIN is never written in clear: replace 'pin' by 'hash', the line"
                " `ari-controller hash-pin` prints"
            )
        return data

    @field_validator("hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        parse_pin_hash(value)
        return value


class PinSettings(BaseModel):
    """PINs of a number: each with the label (a customer's name) the responder hears."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required: bool = False
    pins: list[PinConfig] = Field(default_factory=list)
    attempts: int = Field(default=3, ge=1, le=10)
    on_failure: Literal["hang_up", "voicemail"] = "hang_up"

    @model_validator(mode="after")
    def _pins_given(self) -> PinSettings:
        if self.required and not self.pins:
            raise ValueError("required: true needs at least one PIN in 'pins'")
        labels = [p.label for p in self.pins]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"PIN labels used twice: {twice}")
        return self


class RateLimit(BaseModel):
    """More than `calls` calls from one caller ID in `minutes` minutes: the message, no hunt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calls: int = Field(ge=1, le=1000)
    minutes: float = Field(gt=0, le=24 * 60)
    message: str | None = None


class FloodSettings(BaseModel):
    """More than `new_calls_per_minute` new calls a minute on the number, from any callers:
    the number takes `action` until it has stayed at or below that for `calm_minutes`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    new_calls_per_minute: int = Field(ge=1, le=10000)
    calm_minutes: float = Field(default=10.0, gt=0, le=24 * 60)
    action: Literal["voicemail_only", "message", "hang_up"] = "voicemail_only"
    message: str | None = None

    @model_validator(mode="after")
    def _message_given(self) -> FloodSettings:
        if self.action == "message" and not self.message:
            raise ValueError("action 'message' needs the text in 'message'")
        return self


class RepeatCalls(BaseModel):
    """A caller whose alert on this number is still open, opened within `window_minutes`,
    is recognised before the menu and their call attached to that alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60)


class MachineDetection(BaseModel):
    """Telling an automated caller (a recorded announcement, a monitoring system's voice call)
    from a person on an ordinary number: talk through the menu without a key. Such a call
    goes to the voicemail-only path instead of waking someone, after a last "If you are a
    person, press any key now." (`screening/machines.py`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # A machine talked at least this long, and for at least this share of the time the menu
    # was offered; a person who says a word or two and waits stays far below both.
    min_talk_s: float = Field(default=8.0, gt=0, le=600)
    min_share: float = Field(default=0.5, gt=0, le=1)
    # How long the last question waits for a key.
    confirm_s: float = Field(default=5.0, gt=0, le=30)


class ScreeningSettings(BaseModel):
    """A number's `screening:`. The order of checks is fixed (docs/screening.md): caller ID
    normalised -> block/allow lists -> rate limit and flood -> PIN -> support hours -> menu."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Declared first: the patterns below are read with it.
    country: Country = None
    block: list[Pattern] = Field(default_factory=list)
    allow: list[Pattern] = Field(default_factory=list)
    allow_only: bool = False
    not_allowed: NotAllowedSettings = Field(default_factory=NotAllowedSettings)
    blocked: BlockedSettings = Field(default_factory=BlockedSettings)
    pin: PinSettings = Field(default_factory=PinSettings)
    rate_limit: RateLimit | None = None
    flood: FloodSettings | None = None
    voicemail_only: bool = False
    # Off unless asked for: many companies call out under one switchboard number, and two
    # people calling from it about two problems must not share one alert by default.
    repeat_calls: RepeatCalls | None = None
    machines: MachineDetection = Field(default_factory=MachineDetection)

    @model_validator(mode="before")
    @classmethod
    def _default_country(cls, data: Any, info: ValidationInfo) -> Any:
        """A number without a country of its own takes the top-level default."""
        default = info.context.get("default_country") if isinstance(info.context, dict) else None
        if isinstance(data, dict) and data.get("country") is None and default:
            return {**data, "country": default}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ScreeningSettings:
        if self.not_allowed.action == "pin" and not self.pin.pins:
            raise ValueError("not_allowed.action 'pin' needs PINs in pin.pins")
        if self.voicemail_only and self.pin.required:
            raise ValueError("a voicemail_only number asks for no PIN: drop pin.required")
        return self

    def country_or(self, default: str | None) -> str | None:
        """The country national forms are read with: the number's own, else `default`."""
        return self.country or default


class GlobalScreening(BaseModel):
    """The top-level `screening:`: the default country and the shared lists (`@name`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_country: Country = None
    lists: dict[ListName, list[SharedPattern]] = Field(default_factory=dict)


def _list_name(name: str) -> str:
    if not LIST_NAME.match(name):
        raise ValueError(f"'{name}' is not a list name (letters, digits, _ . -)")
    return name


def _shared_pattern(value: str, info: ValidationInfo) -> str:
    country = (info.data or {}).get("default_country")
    pattern = normalise_pattern(value, country)
    if pattern.startswith("@"):
        raise ValueError(f"'{value}': a shared list cannot refer to another list")
    return pattern


SharedPattern = Annotated[str, AfterValidator(_shared_pattern)]
ListName = Annotated[str, AfterValidator(_list_name)]
GlobalScreening.model_rebuild()
