"""Who is on call according to an iCalendar (.ics) file: each event is a shift naming its user.

How an event names its user, first source that is present wins:

1. `X-ONCALL-USER:alice` (one property per person, or comma separated): a user id, name or
   e-mail. Use this when you generate the calendar yourself.
2. `ATTENDEE` properties: the address after `mailto:` or the `CN` parameter.
3. `SUMMARY`: the whole text, or one of its parts split at " - ", ":", "|" or "," (so on-call
   exports such as "On call - Alice Smith - Primary" work).

Names are matched case-insensitively against each user's id, name and e-mail. `ORGANIZER` is
ignored: it is the calendar's owner, not the person on shift.

Recurrences: RRULE, RDATE, EXDATE and modified instances (RECURRENCE-ID) are honoured;
STATUS:CANCELLED events are skipped. Times without a zone (floating) and all-day events are
read in the schedule's time zone. Durations are wall-clock in the event's zone, so a weekly
shift from Monday 09:00 ends at 09:00 the next Monday even across a daylight-saving change.

Parsing (`parse_calendar`) is pure; `read_calendar` is the only function here that touches
a file, and is called once at start-up.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from dateutil.rrule import rruleset, rrulestr  # type: ignore[import-untyped]

from ari_controller.oncall.models import User

_UTC = dt.UTC
_SUMMARY_SEPARATORS = re.compile(r"\s+-\s+|:|\||,")
# Wall-clock durations can be up to this much longer in real time (a DST change, at most 1 h
# in practice; kept generous so a lookup never misses a covering shift).
_DST_SLACK = dt.timedelta(hours=3)


class CalendarError(Exception):
    """An .ics file that cannot be read or parsed."""


@dataclass(frozen=True)
class Shift:
    """One VEVENT: a single shift, or a recurring series of shifts."""

    uid: str
    summary: str
    # The texts naming the person, from the first source present (see the module docstring).
    names: tuple[str, ...]
    source: str  # "X-ONCALL-USER", "ATTENDEE" or "SUMMARY"
    start: dt.datetime  # naive wall-clock time in `zone`
    duration: dt.timedelta  # wall-clock
    zone: ZoneInfo
    rrules: tuple[str, ...] = ()
    rdates: tuple[dt.datetime, ...] = ()  # naive, in `zone`
    exdates: frozenset[dt.datetime] = frozenset()  # naive, in `zone`

    @property
    def recurring(self) -> bool:
        return bool(self.rrules or self.rdates)

    def describe(self) -> str:
        when = self.start.strftime("%Y-%m-%d %H:%M")
        return f"event '{self.summary or self.uid}' starting {when}"

    def wall_starts(self) -> Iterator[dt.datetime]:
        """Start times of every occurrence, in order, as naive wall-clock times in `zone`."""
        if not self.recurring:
            yield self.start
            return
        occurrences = rruleset()
        for text in self.rrules:
            occurrences.rrule(rrulestr(text, dtstart=self.start))
        for rdate in (self.start, *self.rdates):
            occurrences.rdate(rdate)
        for exdate in self.exdates:
            occurrences.exdate(exdate)
        yield from occurrences


def _wall(value: dt.date | dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A DATE or DATE-TIME value as a naive wall-clock time in `zone`."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value
        return value.astimezone(zone).replace(tzinfo=None)
    return dt.datetime.combine(value, dt.time())


def _event_zone(value: dt.date | dt.datetime, default: ZoneInfo) -> ZoneInfo:
    if isinstance(value, dt.datetime) and isinstance(value.tzinfo, ZoneInfo):
        return value.tzinfo
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # pytz (older icalendar) names its zone `.zone`; a zone built from a VTIMEZONE has no
        # IANA name, so its events are expanded in UTC wall time instead.
        name = getattr(value.tzinfo, "key", None) or getattr(value.tzinfo, "zone", None)
        try:
            return ZoneInfo(str(name)) if name else ZoneInfo("UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")
    return default


def _date_values(prop: Any) -> list[dt.date | dt.datetime]:
    """The dates of an EXDATE/RDATE property, which may occur once or several times."""
    if prop is None:
        return []
    props = prop if isinstance(prop, list) else [prop]
    values: list[dt.date | dt.datetime] = []
    for item in props:
        for entry in getattr(item, "dts", []):
            value = entry.dt
            if isinstance(value, dt.date):  # periods (tuples) are not used for shifts
                values.append(value)
    return values


def _rrule_texts(prop: Any, zone: ZoneInfo, all_day: bool) -> tuple[str, ...]:
    """RRULE values made consistent with a naive DTSTART: UNTIL as naive wall time in `zone`."""
    if prop is None:
        return ()
    texts = []
    for value in prop if isinstance(prop, list) else [prop]:
        recur: Any = icalendar.vRecur(dict(value))
        untils = recur.get("UNTIL")
        if untils:
            until = untils[0]
            if isinstance(until, dt.datetime):
                until = _wall(until, zone)
            else:
                # A date UNTIL is inclusive of that whole day.
                until = dt.datetime.combine(
                    until, dt.time(23, 59, 59) if not all_day else dt.time()
                )
            recur["UNTIL"] = [until]
        texts.append(bytes(recur.to_ical()).decode())
    return tuple(texts)


def _names(event: Any) -> tuple[tuple[str, ...], str]:
    explicit = event.get("X-ONCALL-USER")
    if explicit is not None:
        items = explicit if isinstance(explicit, list) else [explicit]
        names = [part.strip() for item in items for part in str(item).split(",")]
        return tuple(n for n in names if n), "X-ONCALL-USER"
    attendees = event.get("ATTENDEE")
    if attendees is not None:
        names = []
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            address = str(attendee)
            if address.lower().startswith("mailto:"):
                address = address[len("mailto:") :]
            names.append(address.strip())
            common_name = getattr(attendee, "params", {}).get("CN")
            if common_name:
                names.append(str(common_name).strip())
        return tuple(n for n in names if n), "ATTENDEE"
    summary = str(event.get("SUMMARY", "")).strip()
    parts = [summary, *(p.strip() for p in _SUMMARY_SEPARATORS.split(summary))]
    return tuple(dict.fromkeys(p for p in parts if p)), "SUMMARY"


def parse_calendar(data: bytes | str, default_zone: ZoneInfo) -> list[Shift]:
    """Every shift in an iCalendar document. Raises CalendarError when it cannot be parsed."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # icalendar raises ValueError, but also KeyError/IndexError
        raise CalendarError(f"not a valid iCalendar file: {exc}") from exc
    masters: dict[str, Shift] = {}
    modified: list[tuple[str, dt.datetime, Shift]] = []
    singles: list[Shift] = []
    try:
        for number, event in enumerate(calendar.walk("VEVENT")):
            shift, recurrence_id = _shift(event, number, default_zone)
            if shift is None:
                if recurrence_id is not None:
                    # A cancelled instance: drop it from its series.
                    modified.append((str(event.get("UID", "")), recurrence_id, _CANCELLED))
                continue
            if recurrence_id is not None:
                modified.append((shift.uid, recurrence_id, shift))
            elif shift.recurring:
                masters[shift.uid] = shift
            else:
                singles.append(shift)
    except CalendarError:
        raise
    except Exception as exc:
        raise CalendarError(f"cannot read the events: {exc}") from exc
    for uid, recurrence_id, replacement in modified:
        master = masters.get(uid)
        if master is not None:
            exdate = _wall(recurrence_id, master.zone)
            masters[uid] = replace(master, exdates=master.exdates | {exdate})
        if replacement is not _CANCELLED:
            singles.append(replacement)
    return [*masters.values(), *singles]


# Stands for a modified instance that was cancelled: it only removes its occurrence.
_CANCELLED = Shift("", "", (), "", dt.datetime.min, dt.timedelta(), ZoneInfo("UTC"))


def _shift(
    event: Any, number: int, default_zone: ZoneInfo
) -> tuple[Shift | None, dt.datetime | None]:
    recurrence = event.get("RECURRENCE-ID")
    recurrence_id: dt.datetime | None = None
    if recurrence is not None:
        value = recurrence.dt
        recurrence_id = (
            value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
        )
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None, recurrence_id
    dtstart = event.get("DTSTART")
    if dtstart is None:
        raise CalendarError(f"event #{number + 1} ({event.get('SUMMARY', '')}) has no DTSTART")
    start_value = dtstart.dt
    all_day = not isinstance(start_value, dt.datetime)
    zone = _event_zone(start_value, default_zone)
    start = _wall(start_value, zone)
    if event.get("DTEND") is not None:
        duration = _wall(event["DTEND"].dt, zone) - start
    elif event.get("DURATION") is not None:
        duration = event["DURATION"].dt
    else:
        duration = dt.timedelta(days=1) if all_day else dt.timedelta()
    if duration <= dt.timedelta():
        return None, recurrence_id  # an empty shift puts nobody on call
    names, source = _names(event)
    rrules = _rrule_texts(event.get("RRULE"), zone, all_day)
    for text in rrules:
        try:
            rrulestr(text, dtstart=start)
        except (ValueError, TypeError) as exc:
            raise CalendarError(
                f"event #{number + 1}: RRULE '{text}' is not usable: {exc}"
            ) from exc
    return (
        Shift(
            uid=str(event.get("UID", f"event-{number + 1}")),
            summary=str(event.get("SUMMARY", "")),
            names=names,
            source=source,
            start=start,
            duration=duration,
            zone=zone,
            rrules=rrules,
            rdates=tuple(_wall(v, zone) for v in _date_values(event.get("RDATE"))),
            exdates=frozenset(_wall(v, zone) for v in _date_values(event.get("EXDATE"))),
        ),
        recurrence_id,
    )


def read_calendar(path: Path, default_zone: ZoneInfo) -> list[Shift]:
    """Read and parse an .ics file (the one place with file I/O; called at start-up)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalendarError(f"cannot read '{path}': {exc.strerror or exc}") from exc
    return parse_calendar(data, default_zone)


def user_index(users: Iterable[User]) -> dict[str, str]:
    """Lower-cased id, name and e-mail -> user id. Ids win over names and e-mails."""
    index: dict[str, str] = {}
    users = list(users)
    for user in users:
        for key in (user.email, user.name):
            if key:
                index.setdefault(key.strip().lower(), user.id)
    for user in users:
        index[user.id.lower()] = user.id
    return index


def users_of(shift: Shift, index: Mapping[str, str]) -> tuple[str, ...]:
    """The user ids a shift names (empty when it names nobody we know)."""
    found = [index[n.lower()] for n in shift.names if n.lower() in index]
    if shift.source == "SUMMARY":
        # The whole summary and its parts may all name the same person; one is enough.
        return tuple(dict.fromkeys(found[:1]))
    return tuple(dict.fromkeys(found))


@dataclass
class _Occurrences:
    """Shifts laid out on the real time line (UTC), materialised lazily for recurring series."""

    users: tuple[str, ...]
    starts: list[dt.datetime] = field(default_factory=list)
    ends: list[dt.datetime] = field(default_factory=list)
    longest: dt.timedelta = dt.timedelta()
    pending: Iterator[tuple[dt.datetime, dt.datetime]] | None = None

    def extend_to(self, moment: dt.datetime) -> None:
        """Materialise every occurrence starting at or before `moment`, and one more."""
        while self.pending is not None and (not self.starts or self.starts[-1] <= moment):
            try:
                item = next(self.pending, None)
            except (ValueError, OverflowError):
                # Past what a datetime can hold (year 9999): the series is over for us.
                item = None
            if item is None:
                self.pending = None
                break
            self.starts.append(item[0])
            self.ends.append(item[1])

    def covering(self, moment: dt.datetime) -> list[dt.datetime]:
        """Starts of the occurrences in effect at `moment`."""
        self.extend_to(moment)
        found = []
        i = bisect.bisect_right(self.starts, moment) - 1
        floor = moment - self.longest
        while i >= 0 and self.starts[i] >= floor:
            if self.ends[i] > moment:
                found.append(self.starts[i])
            i -= 1
        return found

    def next_change_after(self, moment: dt.datetime) -> dt.datetime | None:
        self.extend_to(moment)
        candidates = []
        i = bisect.bisect_right(self.starts, moment)
        if i < len(self.starts):
            candidates.append(self.starts[i])
        j = i - 1
        floor = moment - self.longest
        while j >= 0 and self.starts[j] >= floor:
            if self.ends[j] > moment:
                candidates.append(self.ends[j])
            j -= 1
        return min(candidates, default=None)


def _real_times(shift: Shift) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    for wall in shift.wall_starts():
        start = wall.replace(tzinfo=shift.zone).astimezone(_UTC)
        end = (wall + shift.duration).replace(tzinfo=shift.zone).astimezone(_UTC)
        if end > start:
            yield start, end


class CalendarTimeline:
    """Answers "who is on call at this moment" for a parsed calendar, quickly and repeatedly."""

    def __init__(self, shifts: Sequence[Shift], users: Iterable[User]) -> None:
        index = user_index(users)
        self.unmatched: list[Shift] = []
        self._series: list[_Occurrences] = []
        singles: list[tuple[dt.datetime, dt.datetime, tuple[str, ...]]] = []
        for shift in shifts:
            who = users_of(shift, index)
            if not who:
                self.unmatched.append(shift)
                continue
            longest = shift.duration + _DST_SLACK
            if shift.recurring:
                self._series.append(_Occurrences(who, longest=longest, pending=_real_times(shift)))
            else:
                for start, end in _real_times(shift):
                    singles.append((start, end, who))
        # Single shifts: one sorted list shared by all of them (exports list every shift).
        singles.sort(key=lambda s: (s[0], s[1], s[2]))
        self._single_starts = [s[0] for s in singles]
        self._single_ends = [s[1] for s in singles]
        self._single_users = [s[2] for s in singles]
        self._single_longest = max((e - s for s, e, _ in singles), default=dt.timedelta())

    def on_call(self, moment: dt.datetime) -> list[str]:
        """User ids in effect at `moment` (aware), the earliest-started shift first."""
        at = moment.astimezone(_UTC)
        found: list[tuple[dt.datetime, tuple[str, ...]]] = []
        i = bisect.bisect_right(self._single_starts, at) - 1
        floor = at - self._single_longest
        while i >= 0 and self._single_starts[i] >= floor:
            if self._single_ends[i] > at:
                found.append((self._single_starts[i], self._single_users[i]))
            i -= 1
        for series in self._series:
            found.extend((start, series.users) for start in series.covering(at))
        found.sort(key=lambda item: item[0])
        return list(dict.fromkeys(user for _, users in found for user in users))

    def next_change_after(self, moment: dt.datetime) -> dt.datetime | None:
        """The first shift start or end strictly after `moment`, if any."""
        at = moment.astimezone(_UTC)
        candidates: list[dt.datetime] = []
        i = bisect.bisect_right(self._single_starts, at)
        if i < len(self._single_starts):
            candidates.append(self._single_starts[i])
        j = i - 1
        floor = at - self._single_longest
        while j >= 0 and self._single_starts[j] >= floor:
            if self._single_ends[j] > at:
                candidates.append(self._single_ends[j])
            j -= 1
        for series in self._series:
            change = series.next_change_after(at)
            if change is not None:
                candidates.append(change)
        return min(candidates, default=None)
