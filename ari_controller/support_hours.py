"""When is a number staffed? Weekly windows in a time zone, holidays and exceptions.

Pure: the moment is an argument, never read from a clock.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ari_controller.oncall.models import WeeklyWindow, clock_minutes
from ari_controller.oncall.schedules import WeeklyTimes


def _minutes(local: dt.datetime) -> int:
    return local.hour * 60 + local.minute


class DateException(BaseModel):
    """A date with its own opening hours (or closed all day when no windows are given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: dt.date
    start: str | None = None
    end: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _both_or_neither(self) -> DateException:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither (closed all day)")
        for value in (self.start, self.end):
            if value is not None:
                clock_minutes(value)
        return self

    def contains(self, local: dt.datetime) -> bool:
        if self.start is None or self.end is None:
            return False
        return clock_minutes(self.start) <= _minutes(local) < clock_minutes(self.end)


class SupportHours(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time_zone: str = "UTC"
    windows: list[WeeklyWindow] = Field(default_factory=list)
    holidays: list[dt.date] = Field(default_factory=list)
    exceptions: list[DateException] = Field(default_factory=list)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone '{value}'") from exc
        return value


def is_open(hours: SupportHours | None, at: dt.datetime) -> bool:
    """True when `at` falls inside the support hours; no support hours means always open."""
    if hours is None:
        return True
    if at.tzinfo is None:
        raise ValueError("the moment must carry a time zone")
    local = at.astimezone(ZoneInfo(hours.time_zone))
    for exception in hours.exceptions:
        if exception.date == local.date():
            return exception.contains(local)
    if local.date() in hours.holidays:
        return False
    return any(WeeklyTimes.of(window).contains(local) for window in hours.windows)


def next_opening(hours: SupportHours | None, at: dt.datetime, *, days: int = 15) -> dt.datetime:
    """The first moment at or after `at` inside the support hours (`at` itself when open).

    Candidates are the starts of windows and exceptions and each local midnight, over the next
    `days` days; when none opens within them (hours that are always closed), `at` itself:
    whatever waits for the hours is not held forever."""
    if hours is None or is_open(hours, at):
        return at
    zone = ZoneInfo(hours.time_zone)
    local = at.astimezone(zone)
    starts = {clock_minutes(w.start) for w in hours.windows}
    starts |= {clock_minutes(e.start) for e in hours.exceptions if e.start is not None}
    starts.add(0)
    for offset in range(days + 1):
        day = local.date() + dt.timedelta(days=offset)
        for minutes in sorted(starts):
            naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)
            candidate = naive.replace(tzinfo=zone)
            if candidate > local and is_open(hours, candidate):
                return candidate.astimezone(at.tzinfo)
    return at
