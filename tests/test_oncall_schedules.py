"""Who is on call at a moment: rotations across daylight-saving changes, layers, restrictions,
overrides, and schedules read from iCalendar files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_controller.oncall.ical import CalendarError, parse_calendar, read_calendar
from ari_controller.oncall.models import Schedule, User
from ari_controller.oncall.schedules import OnCallSchedule, next_handoff, who_is_on_call

DATA = Path(__file__).parent / "data" / "oncall"
UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone: ZoneInfo, *parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=zone)  # type: ignore[arg-type, misc]


def rotation(
    zone: str, shift_length: Any, members: list[str], start: str, **extra: Any
) -> Schedule:
    layer = {"members": members, "start": start, "shift_length": shift_length, **extra}
    return Schedule.model_validate({"id": "s", "time_zone": zone, "layers": [layer]})


def users(*ids: str, **emails: str) -> list[User]:
    return [
        User(id=i, name=i.title() + " Lee", email=emails.get(i), contacts=[f"PJSIP/{i}"])
        for i in ids
    ]


@pytest.mark.parametrize(
    ("zone", "day_before", "day_of"),
    [
        (BERLIN, (2024, 3, 30), (2024, 3, 31)),  # clocks go forward
        (BERLIN, (2024, 10, 26), (2024, 10, 27)),  # clocks go back
        (NEW_YORK, (2024, 3, 9), (2024, 3, 10)),
        (NEW_YORK, (2024, 11, 2), (2024, 11, 3)),
    ],
)
def test_a_daily_0900_hand_off_stays_at_0900_local_across_dst(
    zone: ZoneInfo, day_before: tuple[int, int, int], day_of: tuple[int, int, int]
) -> None:
    schedule = OnCallSchedule.from_config(
        rotation(
            zone.key,
            "daily",
            ["a", "b"],
            f"{day_before[0]}-{day_before[1]:02}-{day_before[2]:02}T09:00:00",
        )
    )
    assert schedule.on_call(local(zone, *day_before, 9, 0)) == ["a"]
    assert schedule.on_call(local(zone, *day_of, 8, 59)) == ["a"]
    assert schedule.on_call(local(zone, *day_of, 9, 0)) == ["b"]
    handoff = schedule.next_handoff(local(zone, *day_before, 12, 0))
    assert handoff == local(zone, *day_of, 9, 0)
    assert handoff is not None and (handoff.hour, handoff.minute) == (9, 0)
    # 23 or 25 real hours between the two hand-offs, not 24.
    elapsed = handoff.astimezone(UTC) - local(zone, *day_before, 9, 0).astimezone(UTC)
    assert elapsed != dt.timedelta(hours=24)


def test_an_n_hour_rotation_counts_real_hours_across_dst() -> None:
    # 12-hour shifts from Saturday 20:00 CET; the night is one hour shorter on the wall clock.
    schedule = OnCallSchedule.from_config(
        rotation("Europe/Berlin", "12h", ["night", "day"], "2024-03-30T20:00:00")
    )
    assert schedule.on_call(local(BERLIN, 2024, 3, 31, 8, 30)) == ["night"]
    assert schedule.on_call(local(BERLIN, 2024, 3, 31, 9, 0)) == ["day"]  # 12 h later is 09:00 CEST
    assert schedule.next_handoff(local(BERLIN, 2024, 3, 30, 21, 0)) == local(
        BERLIN, 2024, 3, 31, 9, 0
    )
    # New York in November: 12 real hours from 20:00 EDT is 07:00 EST.
    schedule = OnCallSchedule.from_config(
        rotation("America/New_York", 12, ["night", "day"], "2024-11-02T20:00:00")
    )
    assert schedule.on_call(local(NEW_YORK, 2024, 11, 3, 6, 59)) == ["night"]
    assert schedule.on_call(local(NEW_YORK, 2024, 11, 3, 7, 0)) == ["day"]


def test_a_weekly_rotation_takes_turns_and_wraps() -> None:
    schedule = rotation("Europe/Berlin", "weekly", ["a", "b", "c"], "2024-01-01T09:00:00")
    monday = dt.date(2024, 1, 1)
    for week, expected in enumerate(["a", "b", "c", "a", "b"]):
        day = monday + dt.timedelta(weeks=week)
        assert who_is_on_call(schedule, local(BERLIN, day.year, day.month, day.day, 9, 0)) == [
            expected
        ]
        assert who_is_on_call(schedule, local(BERLIN, day.year, day.month, day.day, 8, 59)) == (
            [] if week == 0 else [["a", "b", "c"][(week - 1) % 3]]
        )


def test_nobody_before_the_layer_starts_or_after_it_ends() -> None:
    schedule = rotation("UTC", "daily", ["a"], "2024-01-01T00:00:00", end="2024-01-03T00:00:00")
    assert who_is_on_call(schedule, dt.datetime(2023, 12, 31, 23, 59, tzinfo=UTC)) == []
    assert who_is_on_call(schedule, dt.datetime(2024, 1, 2, 12, tzinfo=UTC)) == ["a"]
    assert who_is_on_call(schedule, dt.datetime(2024, 1, 3, tzinfo=UTC)) == []
    assert next_handoff(schedule, dt.datetime(2024, 1, 2, 12, tzinfo=UTC)) == dt.datetime(
        2024, 1, 3, tzinfo=ZoneInfo("UTC")
    )
    assert next_handoff(schedule, dt.datetime(2024, 1, 5, tzinfo=UTC)) is None


def layered(restrictions: list[dict[str, Any]], **extra: Any) -> OnCallSchedule:
    return OnCallSchedule.from_config(
        Schedule.model_validate(
            {
                "id": "layered",
                "time_zone": "Europe/Berlin",
                "layers": [
                    {"members": ["base"], "start": "2024-01-01T00:00:00", "shift_length": "weekly"},
                    {
                        "members": ["top"],
                        "start": "2024-01-01T00:00:00",
                        "shift_length": "daily",
                        "restrictions": restrictions,
                    },
                ],
                **extra,
            }
        )
    )


def test_a_later_layer_wins_only_inside_its_restriction_windows() -> None:
    schedule = layered([{"days": "mon-fri", "start": "09:00", "end": "17:00"}])
    assert schedule.on_call(local(BERLIN, 2024, 4, 3, 9, 0)) == ["top"]  # Wednesday
    assert schedule.on_call(local(BERLIN, 2024, 4, 3, 16, 59)) == ["top"]
    assert schedule.on_call(local(BERLIN, 2024, 4, 3, 17, 0)) == ["base"]
    assert schedule.on_call(local(BERLIN, 2024, 4, 6, 12, 0)) == ["base"]  # Saturday
    assert schedule.next_handoff(local(BERLIN, 2024, 4, 3, 12, 0)) == local(
        BERLIN, 2024, 4, 3, 17, 0
    )
    # Friday evening: the next change is Monday 09:00.
    assert schedule.next_handoff(local(BERLIN, 2024, 4, 5, 18, 0)) == local(
        BERLIN, 2024, 4, 8, 9, 0
    )


def test_a_restriction_window_may_cross_midnight() -> None:
    schedule = layered([{"days": ["fri"], "start": "18:00", "end": "08:00"}])
    assert schedule.on_call(local(BERLIN, 2024, 4, 5, 17, 59)) == ["base"]  # Friday
    assert schedule.on_call(local(BERLIN, 2024, 4, 5, 23, 0)) == ["top"]
    assert schedule.on_call(local(BERLIN, 2024, 4, 6, 7, 59)) == ["top"]  # Saturday morning
    assert schedule.on_call(local(BERLIN, 2024, 4, 6, 8, 0)) == ["base"]
    assert schedule.on_call(local(BERLIN, 2024, 4, 7, 2, 0)) == ["base"]  # Sunday morning


def test_overrides_win_over_every_layer_and_the_last_listed_wins() -> None:
    schedule = layered(
        [{"days": "mon-sun"}],
        overrides=[
            {"user": "olga", "start": "2024-04-03T12:00:00", "end": "2024-04-04T12:00:00"},
            # An offset is honoured: 14:00-15:00 Berlin time.
            {"user": "pia", "start": "2024-04-03T12:00:00+00:00", "end": "2024-04-03T13:00:00Z"},
        ],
    )
    assert schedule.on_call(local(BERLIN, 2024, 4, 3, 11, 59)) == ["top"]
    assert schedule.on_call(local(BERLIN, 2024, 4, 3, 12, 0)) == ["olga"]
    assert schedule.on_call(local(BERLIN, 2024, 4, 3, 14, 30)) == ["pia"]
    assert schedule.on_call(local(BERLIN, 2024, 4, 3, 15, 0)) == ["olga"]
    assert schedule.on_call(local(BERLIN, 2024, 4, 4, 12, 0)) == ["top"]
    assert schedule.next_handoff(local(BERLIN, 2024, 4, 3, 15, 0)) == local(
        BERLIN, 2024, 4, 4, 12, 0
    )


def test_a_moment_without_a_time_zone_is_refused() -> None:
    schedule = rotation("UTC", "daily", ["a"], "2024-01-01T00:00:00")
    with pytest.raises(ValueError, match="time zone"):
        who_is_on_call(schedule, dt.datetime(2024, 1, 2))


# --- iCalendar schedules -------------------------------------------------------------------


@pytest.fixture(scope="module")
def calendar_schedule() -> OnCallSchedule:
    schedule = Schedule.model_validate(
        {"id": "cal", "time_zone": "Europe/Berlin", "ical": "shifts.ics"},
        context={"base_dir": DATA},
    )
    assert schedule.ical_path is not None
    shifts = read_calendar(schedule.ical_path, schedule.zone)
    people = users("alice", "bob", "carol", "dave", dave="dave@example.com")
    return OnCallSchedule.from_config(schedule, people, shifts)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ((2024, 3, 4, 8, 59), []),  # before the first shift
        ((2024, 3, 4, 9, 0), ["alice"]),  # X-ONCALL-USER
        ((2024, 3, 18, 9, 0), []),  # EXDATE removes that week
        ((2024, 3, 23, 12, 0), ["carol"]),  # all-day event; SUMMARY "Weekend cover: Carol Lee"
        ((2024, 3, 25, 8, 59), []),  # the all-day event ended at midnight
        ((2024, 4, 1, 8, 59), ["alice"]),  # shift from 25 March, wall clock across the DST change
        ((2024, 4, 1, 9, 0), ["bob"]),  # RECURRENCE-ID: this week was given to bob
        ((2024, 4, 8, 9, 0), ["alice"]),
        ((2024, 5, 13, 8, 59), ["alice"]),  # UNTIL includes the 6 May shift
        ((2024, 5, 13, 9, 0), []),
        ((2024, 6, 2, 7, 59), ["dave"]),  # floating time in the schedule's zone; ATTENDEE e-mail
        ((2024, 6, 4, 7, 59), ["dave"]),  # COUNT=3: 1, 2 and 3 June
        ((2024, 6, 4, 22, 0), []),
        ((2024, 7, 1, 12, 0), []),  # STATUS:CANCELLED
    ],
)
def test_who_is_on_call_from_an_ics_file(
    calendar_schedule: OnCallSchedule, moment: tuple[int, ...], expected: list[str]
) -> None:
    assert calendar_schedule.on_call(local(BERLIN, *moment)) == expected


def test_next_handoff_in_an_ics_schedule(calendar_schedule: OnCallSchedule) -> None:
    assert calendar_schedule.next_handoff(local(BERLIN, 2024, 3, 5, 0, 0)) == local(
        BERLIN, 2024, 3, 18, 9, 0
    )
    assert calendar_schedule.next_handoff(local(BERLIN, 2024, 3, 28, 0, 0)) == local(
        BERLIN, 2024, 4, 1, 9, 0
    )
    assert calendar_schedule.next_handoff(local(BERLIN, 2024, 7, 1, 0, 0)) is None


def test_a_weekly_rrule_in_new_york_hands_off_at_0800_local_across_dst() -> None:
    schedule = Schedule.model_validate(
        {"id": "net", "time_zone": "America/New_York", "ical": "network-oncall.ics"},
        context={"base_dir": DATA},
    )
    assert schedule.ical_path is not None
    people = users("bob", "carol", "dave", carol="carol@example.com")
    compiled = OnCallSchedule.from_config(
        schedule, people, read_calendar(schedule.ical_path, schedule.zone)
    )
    # Clocks went forward on Sunday 10 March; Dave's week ends Monday 08:00 EDT.
    assert compiled.on_call(local(NEW_YORK, 2024, 3, 11, 7, 59)) == ["dave"]
    assert compiled.on_call(local(NEW_YORK, 2024, 3, 11, 8, 0)) == ["carol"]
    # Tuesday: bob's extra single shift overlaps carol's; both are on call, earliest start first.
    assert compiled.on_call(local(NEW_YORK, 2024, 3, 12, 12, 0)) == ["carol", "bob"]
    # Far in the future, the rotation still alternates (2 Dec 2030 is an even number of weeks).
    weeks = (dt.date(2030, 12, 2) - dt.date(2024, 1, 1)).days // 7
    assert compiled.on_call(local(NEW_YORK, 2030, 12, 2, 8, 0)) == (
        ["carol"] if weeks % 2 == 0 else ["dave"]
    )


def test_an_ics_schedule_needs_its_shifts() -> None:
    schedule = Schedule.model_validate({"id": "net", "ical": "x.ics"})
    with pytest.raises(ValueError, match="iCalendar"):
        who_is_on_call(schedule, dt.datetime(2024, 1, 1, tzinfo=UTC))


def test_a_summary_names_the_user_by_one_of_its_parts() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        "SUMMARY:On Call - Bob Lee - Primary\r\nDTSTART:20240101T090000Z\r\n"
        "DURATION:P1D\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    shifts = parse_calendar(text, BERLIN)
    compiled = OnCallSchedule.from_config(
        Schedule(id="s", ical="inline.ics"), users("alice", "bob"), shifts
    )
    assert compiled.on_call(dt.datetime(2024, 1, 1, 12, tzinfo=UTC)) == ["bob"]


# --- properties ----------------------------------------------------------------------------

moments = st.datetimes(
    min_value=dt.datetime(2021, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from([BERLIN, NEW_YORK])


@settings(max_examples=150, deadline=None)
@given(zone=zones, day=st.dates(dt.date(2021, 1, 2), dt.date(2030, 12, 31)), n=st.integers(1, 5))
def test_daily_hand_off_happens_at_the_same_local_time_every_day(
    zone: ZoneInfo, day: dt.date, n: int
) -> None:
    members = [f"u{i}" for i in range(n)]
    schedule = OnCallSchedule.from_config(
        rotation(zone.key, "daily", members, "2021-01-01T09:00:00")
    )
    days = (day - dt.date(2021, 1, 1)).days
    at_0900 = dt.datetime.combine(day, dt.time(9), tzinfo=zone)
    assert schedule.on_call(at_0900) == [members[days % n]]
    assert schedule.on_call(at_0900 - dt.timedelta(minutes=1)) == [members[(days - 1) % n]]


@settings(max_examples=150, deadline=None)
@given(zone=zones, at=moments, hours=st.integers(1, 48), n=st.integers(1, 5))
def test_n_hour_shifts_are_counted_in_real_hours(
    zone: ZoneInfo, at: dt.datetime, hours: int, n: int
) -> None:
    members = [f"u{i}" for i in range(n)]
    schedule = OnCallSchedule.from_config(rotation(zone.key, hours, members, "2020-06-01T00:00:00"))
    anchor = dt.datetime(2020, 6, 1, tzinfo=zone).astimezone(UTC)
    shift = int((at - anchor).total_seconds() // (hours * 3600))
    assert schedule.on_call(at) == [members[shift % n]]


@settings(max_examples=80, deadline=None)
@given(zone=zones, at=moments, length=st.sampled_from(["daily", "weekly", 7, 12]))
def test_nobody_changes_before_the_next_handoff(
    zone: ZoneInfo, at: dt.datetime, length: Any
) -> None:
    schedule = layered([{"days": "mon-fri", "start": "09:00", "end": "17:30"}])
    schedule = OnCallSchedule.from_config(
        Schedule.model_validate(
            {
                "id": "p",
                "time_zone": zone.key,
                "layers": [
                    {
                        "members": ["a", "b", "c"],
                        "start": "2021-01-01T09:00:00",
                        "shift_length": length,
                    },
                    {
                        "members": ["d", "e"],
                        "start": "2021-01-01T00:00:00",
                        "shift_length": "daily",
                        "restrictions": [{"days": "sat-sun", "start": "22:00", "end": "06:00"}],
                    },
                ],
            }
        )
    )
    handoff = schedule.next_handoff(at)
    assert handoff is not None and handoff > at
    before = schedule.on_call(at)
    assert schedule.on_call(handoff) != before
    span = handoff - at
    for fraction in (0.25, 0.5, 0.75, 0.999):
        assert schedule.on_call(at + span * fraction) == before
    assert schedule.on_call(handoff - dt.timedelta(microseconds=1)) == before


def test_a_calendar_with_an_unusable_rrule_is_refused_when_read() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:bob\r\n"
        "DTSTART:20240101T090000Z\r\nDTEND:20240102T090000Z\r\nRRULE:FREQ=SOMETIMES\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(CalendarError, match="RRULE"):
        parse_calendar(text, BERLIN)
