"""Who is on call in a schedule at a given moment, and when that changes next.

Precedence at a moment: an override covering it (the last one listed wins), else the last
layer in effect (started, not ended, inside its restrictions, with members), else the shifts of
the schedule's calendar, else nobody.

Pure: the moment is an argument. A schedule is compiled once (`OnCallSchedule.from_config`)
so that each lookup is a few integer operations and one time-zone conversion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ari_controller.oncall.ical import CalendarTimeline, Shift
from ari_controller.oncall.models import (
    WEEKDAYS,
    Layer,
    Schedule,
    User,
    WeeklyWindow,
    clock_minutes,
)

_UTC = dt.UTC
# next_handoff looks this far ahead and no further: a schedule whose on-call people do not
# change within it is reported as never changing (None) rather than searched forever.
HANDOFF_HORIZON = dt.timedelta(days=400)


def _localize(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A configured date-time as an instant: naive means local time in the schedule's zone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(_UTC)


@dataclass(frozen=True, slots=True)
class WeeklyTimes:
    """A weekly window compiled for quick membership tests (schedules and support hours)."""

    days: frozenset[int]  # weekday numbers (Monday 0) on which the window opens
    start: int  # minutes after midnight
    end: int  # minutes after midnight, 1440 = midnight; <= start: runs into the next day

    @classmethod
    def of(cls, window: WeeklyWindow) -> WeeklyTimes:
        days = frozenset(WEEKDAYS.index(d) for d in window.days)
        return cls(days, clock_minutes(window.start), clock_minutes(window.end))

    def contains(self, local: dt.datetime) -> bool:
        minute = local.hour * 60 + local.minute
        weekday = local.weekday()
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Past midnight: the evening belongs to today, the early hours to yesterday's window.
        return (weekday in self.days and minute >= self.start) or (
            (weekday - 1) % 7 in self.days and minute < self.end
        )

    def edges_after(self, local_day: dt.date, zone: ZoneInfo) -> Iterable[dt.datetime]:
        """Opening and closing instants of the windows that open on `local_day`."""
        if local_day.weekday() not in self.days:
            return
        midnight = dt.datetime.combine(local_day, dt.time())
        yield (midnight + dt.timedelta(minutes=self.start)).replace(tzinfo=zone).astimezone(_UTC)
        end_day = midnight if self.start < self.end else midnight + dt.timedelta(days=1)
        yield (end_day + dt.timedelta(minutes=self.end)).replace(tzinfo=zone).astimezone(_UTC)


class _Rotation:
    """One layer, ready for lookups."""

    __slots__ = (
        "anchor",
        "anchor_at",
        "end_at",
        "hours",
        "members",
        "step_days",
        "windows",
        "zone",
    )

    def __init__(self, layer: Layer, zone: ZoneInfo) -> None:
        self.zone = zone
        self.members = tuple(layer.members)
        start = layer.start
        self.anchor = start.astimezone(zone).replace(tzinfo=None) if start.tzinfo else start
        self.anchor_at = _localize(layer.start, zone)
        self.end_at = _localize(layer.end, zone) if layer.end is not None else None
        if layer.shift_length == "daily":
            self.step_days, self.hours = 1, 0
        elif layer.shift_length == "weekly":
            self.step_days, self.hours = 7, 0
        else:
            self.step_days, self.hours = 0, layer.shift_length
        self.windows = tuple(WeeklyTimes.of(w) for w in layer.restrictions)

    def handoff(self, shift: int) -> dt.datetime:
        """The instant shift number `shift` begins (0 is the anchor)."""
        if self.hours:
            return self.anchor_at + dt.timedelta(hours=self.hours * shift)
        # Calendar days at the anchor's local time: 09:00 stays 09:00 across DST changes.
        wall = self.anchor + dt.timedelta(days=self.step_days * shift)
        return wall.replace(tzinfo=self.zone).astimezone(_UTC)

    def shift_at(self, at: dt.datetime, local: dt.datetime) -> int:
        """The number of the shift running at `at` (counted from the anchor)."""
        if self.hours:
            return int((at - self.anchor_at) // dt.timedelta(hours=self.hours))
        shift = (local.date() - self.anchor.date()).days // self.step_days
        # The local date gives the right shift up to the hand-off time of day; settle exactly.
        while at < self.handoff(shift):
            shift -= 1
        while at >= self.handoff(shift + 1):
            shift += 1
        return shift

    def in_effect(self, at: dt.datetime, local: dt.datetime) -> bool:
        if not self.members or at < self.anchor_at:
            return False
        if self.end_at is not None and at >= self.end_at:
            return False
        return not self.windows or any(w.contains(local) for w in self.windows)

    def member_at(self, at: dt.datetime, local: dt.datetime) -> str | None:
        if not self.in_effect(at, local):
            return None
        return self.members[self.shift_at(at, local) % len(self.members)]

    def next_change_after(self, at: dt.datetime, local: dt.datetime) -> dt.datetime | None:
        candidates: list[dt.datetime] = []
        if at < self.anchor_at:
            candidates.append(self.anchor_at)
        elif len(self.members) > 1:
            candidates.append(self.handoff(self.shift_at(at, local) + 1))
        if self.end_at is not None and self.end_at > at:
            candidates.append(self.end_at)
        for window in self.windows:
            for offset in range(-1, 9):
                day = local.date() + dt.timedelta(days=offset)
                candidates.extend(edge for edge in window.edges_after(day, self.zone) if edge > at)
        return min(candidates, default=None)


class OnCallSchedule:
    """A schedule compiled for lookups. Build with `from_config`."""

    def __init__(
        self,
        schedule: Schedule,
        rotations: Sequence[_Rotation],
        overrides: Sequence[tuple[dt.datetime, dt.datetime, str]],
        calendar: CalendarTimeline | None,
    ) -> None:
        self.id = schedule.id
        self.name = schedule.display_name
        self.zone = schedule.zone
        self.config = schedule
        self._rotations = tuple(reversed(rotations))  # the last layer is looked at first
        self._overrides = tuple(reversed(overrides))  # the last override listed wins
        self.calendar = calendar

    @classmethod
    def from_config(
        cls,
        schedule: Schedule,
        users: Iterable[User] = (),
        shifts: Sequence[Shift] | None = None,
    ) -> OnCallSchedule:
        """Compile a schedule. For an `ical` schedule pass its parsed `shifts`
        (`ical.read_calendar`) and the `users` they are matched against."""
        zone = schedule.zone
        if schedule.ical is not None and shifts is None:
            raise ValueError(
                f"schedule '{schedule.id}' reads an iCalendar file: pass its shifts "
                "(ari_controller.oncall.ical.read_calendar)"
            )
        calendar = CalendarTimeline(shifts, users) if shifts is not None else None
        overrides = [
            (_localize(o.start, zone), _localize(o.end, zone), o.user) for o in schedule.overrides
        ]
        rotations = [_Rotation(layer, zone) for layer in schedule.layers]
        return cls(schedule, rotations, overrides, calendar)

    def on_call(self, at: dt.datetime) -> list[str]:
        if at.tzinfo is None:
            raise ValueError("the moment must carry a time zone")
        instant = at.astimezone(_UTC)
        for start, end, user in self._overrides:
            if start <= instant < end:
                return [user]
        if self._rotations:
            local = instant.astimezone(self.zone)
            for rotation in self._rotations:
                member = rotation.member_at(instant, local)
                if member is not None:
                    return [member]
        if self.calendar is not None:
            return self.calendar.on_call(instant)
        return []

    def _next_boundary_after(self, instant: dt.datetime) -> dt.datetime | None:
        local = instant.astimezone(self.zone)
        candidates = [b for s, e, _ in self._overrides for b in (s, e) if b > instant]
        for rotation in self._rotations:
            change = rotation.next_change_after(instant, local)
            if change is not None:
                candidates.append(change)
        if self.calendar is not None:
            change = self.calendar.next_change_after(instant)
            if change is not None:
                candidates.append(change)
        return min(candidates, default=None)

    def next_handoff(self, after: dt.datetime) -> dt.datetime | None:
        """The first moment after `after` at which someone else is on call; None when that
        does not happen within HANDOFF_HORIZON."""
        if after.tzinfo is None:
            raise ValueError("the moment must carry a time zone")
        instant = after.astimezone(_UTC)
        horizon = instant + HANDOFF_HORIZON
        current = self.on_call(instant)
        while True:
            boundary = self._next_boundary_after(instant)
            if boundary is None or boundary > horizon:
                return None
            if self.on_call(boundary) != current:
                return boundary.astimezone(self.zone)
            instant = boundary


def _compiled(schedule: OnCallSchedule | Schedule) -> OnCallSchedule:
    return (
        schedule if isinstance(schedule, OnCallSchedule) else OnCallSchedule.from_config(schedule)
    )


def who_is_on_call(schedule: OnCallSchedule | Schedule, at: dt.datetime) -> list[str]:
    """User ids on call in `schedule` at `at` (aware). Usually one; several only when calendar
    shifts overlap; none when nobody is scheduled. Compile once (OnCallSchedule.from_config)
    when asking repeatedly."""
    return _compiled(schedule).on_call(at)


def next_handoff(schedule: OnCallSchedule | Schedule, after: dt.datetime) -> dt.datetime | None:
    """When the on-call person(s) of `schedule` next change after `after`, in the schedule's
    zone; None if they do not within HANDOFF_HORIZON (400 days)."""
    return _compiled(schedule).next_handoff(after)
