"""How the console writes times, durations and names (template filters). Pure."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str | None) -> dt.tzinfo:
    if not name:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def moment(at: dt.datetime | str | None, tz: str | None = None, seconds: bool = True) -> str:
    """'2026-11-30 06:12:03 CET': in the zone named `tz` (UTC without one), the zone named."""
    if at is None:
        return ""
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    local = at.astimezone(zone(tz))
    pattern = "%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"
    return local.strftime(pattern)


def clock_time(at: dt.datetime | str | None, tz: str | None = None) -> str:
    """'06:12:03' in the zone (for entries of one timeline, whose day is shown once)."""
    if at is None:
        return ""
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(zone(tz)).strftime("%H:%M:%S")


def duration(seconds: float | int | dt.timedelta | None) -> str:
    """'4 s', '2 min 05 s', '1 h 03 min'."""
    if seconds is None:
        return ""
    if isinstance(seconds, dt.timedelta):
        seconds = seconds.total_seconds()
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def day_bounds(
    since: str, until: str, tz: dt.tzinfo
) -> tuple[dt.datetime | None, dt.datetime | None, str | None]:
    """The instants (UTC) of 'from this day' and 'to this day, inclusive' in the zone; an
    error sentence instead where a date cannot be read or the days are the wrong way round."""
    start = end = None
    for text in (since, until):
        if text:
            try:
                dt.date.fromisoformat(text)
            except ValueError:
                return (
                    None,
                    None,
                    f"'{text}' is not a date like 2026-03-02; the days are not applied.",
                )
    try:
        if since:
            start = dt.datetime.combine(dt.date.fromisoformat(since), dt.time(), tz)
        if until:
            day_after = dt.date.fromisoformat(until) + dt.timedelta(days=1)
            end = dt.datetime.combine(day_after, dt.time(), tz)
    except OverflowError:
        return None, None, "A day is out of range; the days are not applied."
    if start is not None and end is not None and start >= end:
        return None, None, "The first day is after the last day; the days are not applied."
    return (
        start.astimezone(dt.UTC) if start is not None else None,
        end.astimezone(dt.UTC) if end is not None else None,
        None,
    )


_NAME_AND_NUMBER = re.compile(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*')


def caller(text: str | None) -> str:
    """'"Ana" <+4930123>' as 'Ana (+4930123)'; a bare number as it is; None as 'unknown'."""
    if not text:
        return "unknown"
    found = _NAME_AND_NUMBER.fullmatch(text)
    if found is None:
        return text
    name, number = found.group(1).strip(), found.group(2).strip()
    if not number:
        return name or "unknown"
    return f"{name} ({number})" if name and name != number else number


def iso(at: dt.datetime | None) -> str:
    return at.isoformat() if at is not None else ""


FILTERS: dict[str, Callable[..., Any]] = {
    "moment": moment,
    "clock_time": clock_time,
    "duration": duration,
    "iso": iso,
    "caller": caller,
}
