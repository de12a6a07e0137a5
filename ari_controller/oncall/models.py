"""What the on-call part of the configuration says: users, schedules and escalation policies.

Read from the YAML lists `users`, `schedules` and `escalation_policies`. Every model forbids
unknown keys so a typo is an error, not a silently ignored setting. Cross-references (a rule
naming an unknown schedule, ...) are checked by `ari_controller.oncall.validate`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# TECH/resource, as Asterisk's Dial() and ARI's originate take it: PJSIP/alice,
# PJSIP/+4917012345@trunk, Local/accept@responders, SIP/..., IAX2/...
_DIAL_STRING = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[^\s/&,|]+(/[^\s&,|]*)?$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
_HOURS = re.compile(r"^\s*(\d+)\s*(h|hours?)\s*$", re.IGNORECASE)


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"{what} id '{value}' must start with a letter or digit and contain only "
            "letters, digits, '.', '_', '@', '+' or '-'"
        )
    return value


def clock_minutes(value: str) -> int:
    """'09:30' -> 570 minutes after midnight; '24:00' (the end of the day) -> 1440."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match:
        raise ValueError(f"'{value}' is not a time of day as HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if (hours, minutes) != (24, 0) and not (hours < 24 and minutes < 60):
        raise ValueError(f"'{value}' is not a time of day as HH:MM")
    return hours * 60 + minutes


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone '{name}' (expected an IANA name such as Europe/Berlin)"
        ) from exc


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# How a person hears of an alert that escalates to them: a message to a chat or webhook
# destination, a phone call to their contacts (through our Asterisk), or an e-mail to `email`.
NotifyMethod = Literal["chat", "webhook", "phone", "email"]


class NotificationRule(_Model):
    """Notify by `method`, `after_minutes` after this person is notified of an alert (0: at
    once). Chat and webhook go through the destination `to` (an `alerts.destinations` id);
    a phone call goes to the person's `contacts`, an e-mail to their `email`."""

    method: NotifyMethod
    to: str | None = Field(default=None, min_length=1)
    after_minutes: Annotated[float, Field(ge=0, le=1440)] = 0
    # Chat: how the message names this person (e.g. "@vera", "<@U024BE7LH>").
    mention: str | None = None

    @model_validator(mode="after")
    def _destination(self) -> NotificationRule:
        if self.method in ("chat", "webhook") and self.to is None:
            raise ValueError(f"a {self.method} rule needs `to`: a destination id")
        if self.method in ("phone", "email") and self.to is not None:
            raise ValueError(f"a {self.method} rule has no `to`: it uses the person's own")
        return self

    @property
    def destination(self) -> str:
        """The delivery's destination: the configured one, or the method itself."""
        return self.to or self.method


class User(_Model):
    """A person who can be called. `contacts` are Asterisk dial strings, tried in order;
    `notify` says how they hear of an alert escalated to them."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    language: str = "en"
    # Used only to recognise the user in an iCalendar schedule (ATTENDEE:mailto:...).
    email: str | None = None
    contacts: list[str] = Field(min_length=1)
    notify: list[NotificationRule] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_id(value, "user")

    @field_validator("contacts")
    @classmethod
    def _dial_strings(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _DIAL_STRING.match(value):
                raise ValueError(
                    f"'{value}' is not an Asterisk dial string such as PJSIP/alice, "
                    "PJSIP/+4917012345@trunk or Local/accept@responders"
                )
        return values


def _parse_days(value: Any) -> Any:
    """'mon-fri' or 'mon,wed,fri' or 'fri-mon' -> a list of day names; a list passes through."""
    if not isinstance(value, str):
        return value
    days: list[str] = []
    for part in value.replace(" ", "").lower().split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            if first not in WEEKDAYS or last not in WEEKDAYS:
                raise ValueError(f"'{part}' is not a range of days such as mon-fri")
            i = WEEKDAYS.index(first)
            while True:
                days.append(WEEKDAYS[i])
                if WEEKDAYS[i] == last:
                    break
                i = (i + 1) % 7
        elif part:
            days.append(part)
    return days


class WeeklyWindow(_Model):
    """Inside `start`-`end` on each of `days` (local time); an end before the start runs past
    midnight into the next day, so `days: [fri], start: "18:00", end: "08:00"` covers Friday
    night until Saturday 08:00."""

    days: Annotated[list[Weekday], Field(min_length=1)]
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        return _parse_days(value)

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        clock_minutes(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WeeklyWindow:
        if clock_minutes(self.start) == 1440:
            raise ValueError("start cannot be 24:00; use 00:00")
        if clock_minutes(self.start) == clock_minutes(self.end):
            raise ValueError("start and end are equal: the window would be empty")
        return self


ShiftLength = Literal["daily", "weekly"] | Annotated[int, Field(gt=0, le=24 * 366)]


class Layer(_Model):
    """A rotation: `members` take turns, each for one shift, the first one from `start`.

    `start` is a local date-time in the schedule's time zone (an offset, if given, is converted
    to it); it is the first hand-off and the anchor of all later ones. Before `start` (and from
    `end` on) the layer is not in effect. `shift_length` is `daily` or `weekly` (hand-offs at
    the local time of `start`, which stays put across daylight-saving changes) or a number of
    hours (real elapsed hours; `12` and `"12h"` both work). With `restrictions` the layer
    applies only inside those weekly windows; the rotation keeps turning outside them.
    """

    name: str = ""
    members: list[str] = Field(default_factory=list)
    start: dt.datetime
    end: dt.datetime | None = None
    shift_length: ShiftLength
    restrictions: list[WeeklyWindow] = Field(default_factory=list)

    @field_validator("shift_length", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _HOURS.match(value)
            if match:
                return int(match.group(1))
            if value.strip().lower() in ("daily", "weekly"):
                return value.strip().lower()
            raise ValueError(
                f"'{value}' is not a shift length: "
                "use daily, weekly or a number of hours such as 12h"
            )
        return value

    @model_validator(mode="after")
    def _end_after_start(self) -> Layer:
        if (
            self.end is not None
            and (self.start.tzinfo is None) == (self.end.tzinfo is None)
            and _naive_or_utc(self.end) <= _naive_or_utc(self.start)
        ):
            raise ValueError("end must be after start")
        return self


def _naive_or_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


class Override(_Model):
    """`user` is on call from `start` to `end`, whatever the layers say. Local date-times in the
    schedule's time zone unless they carry an offset."""

    user: str = Field(min_length=1)
    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _end_after_start(self) -> Override:
        if (self.start.tzinfo is None) == (self.end.tzinfo is None) and _naive_or_utc(
            self.end
        ) <= _naive_or_utc(self.start):
            raise ValueError("end must be after start")
        return self


class Schedule(_Model):
    """Who is on call, in a time zone: `layers` (the later one wins where it applies) or an
    iCalendar file (`ical`, relative to the configuration file), plus `overrides`, which win
    over everything."""

    id: str = Field(min_length=1)
    name: str = ""
    time_zone: str = "UTC"
    layers: list[Layer] = Field(default_factory=list)
    ical: str | None = None
    overrides: list[Override] = Field(default_factory=list)

    # Where `ical` is relative to: the lead's config loader passes {"base_dir": ...} as the
    # validation context. Kept out of the fields so the config stays what the user wrote.
    _base_dir: Path = PrivateAttr(default_factory=Path)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_id(value, "schedule")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_of(value)
        return value

    @model_validator(mode="after")
    def _one_source(self, info: ValidationInfo) -> Schedule:
        if self.layers and self.ical is not None:
            raise ValueError("give either layers or ical, not both")
        if self.ical is not None and not self.ical.strip():
            raise ValueError("ical must name a file")
        base_dir = (info.context or {}).get("base_dir")
        if base_dir is not None:
            self._base_dir = Path(base_dir)
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.time_zone)

    @property
    def ical_path(self) -> Path | None:
        """The .ics file, resolved against the configuration file's directory."""
        if self.ical is None:
            return None
        return self._base_dir / Path(self.ical).expanduser()


class Rule(_Model):
    """One step of an escalation policy: these users, and whoever is on call in these schedules.

    `escalation_delay_minutes`: how long an escalated alert waits, after notifying this rule,
    before it notifies the next one (unset: `alerts.engine.default_escalation_delay_minutes`).
    The live hunt ignores it: a caller is on the line, so the next rule is called as soon as
    this one fails.
    """

    users: list[str] = Field(default_factory=list)
    schedules: list[str] = Field(default_factory=list)
    escalation_delay_minutes: Annotated[float, Field(ge=0, le=1440)] | None = None

    @model_validator(mode="after")
    def _names_someone(self) -> Rule:
        if not self.users and not self.schedules:
            raise ValueError("a rule must name at least one user or schedule")
        return self


class EscalationPolicy(_Model):
    """Ordered rules. Each rule contributes one responder picked at random among its users and
    the people on call in its schedules; with `call_everyone_on_rule: true` the others on that
    rule follow it, in random order, before the next rule."""

    id: str = Field(min_length=1)
    name: str = ""
    rules: list[Rule] = Field(min_length=1)
    call_everyone_on_rule: bool = False
    # An escalated alert nobody acknowledged runs through the rules this many more times.
    repeat: Annotated[int, Field(ge=0, le=20)] = 0

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_id(value, "escalation policy")

    @property
    def display_name(self) -> str:
        return self.name or self.id
