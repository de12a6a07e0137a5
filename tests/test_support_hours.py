"""Support hours and which routes apply: pure, checked at chosen moments."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ari_controller.numbers import Number, select_routes
from ari_controller.support_hours import SupportHours, is_open

BERLIN = ZoneInfo("Europe/Berlin")


def hours() -> SupportHours:
    return SupportHours.model_validate(
        {
            "time_zone": "Europe/Berlin",
            "windows": [
                {"days": "mon-fri", "start": "08:00", "end": "20:00"},
                {"days": ["fri"], "start": "22:00", "end": "02:00"},
            ],
            "holidays": ["2026-12-25"],
            "exceptions": [
                {"date": "2026-12-24", "start": "08:00", "end": "12:00"},
                {"date": "2026-12-28"},
            ],
        }
    )


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=BERLIN)


def test_weekly_windows_in_the_numbers_time_zone() -> None:
    h = hours()
    assert is_open(h, at(2026, 11, 24, 8, 0))  # Tuesday
    assert not is_open(h, at(2026, 11, 24, 7, 59))
    assert not is_open(h, at(2026, 11, 24, 20, 0))
    assert not is_open(h, at(2026, 11, 29, 12))  # Sunday
    # 07:30 UTC is 08:30 in Berlin in winter
    assert is_open(h, dt.datetime(2026, 11, 24, 7, 30, tzinfo=dt.UTC))


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    h = hours()
    assert is_open(h, at(2026, 11, 27, 23))  # Friday night
    assert is_open(h, at(2026, 11, 28, 1, 30))  # Saturday morning, Friday's window
    assert not is_open(h, at(2026, 11, 28, 2, 0))
    assert not is_open(h, at(2026, 11, 29, 1))  # Sunday morning: Saturday has no window


def test_holidays_and_exceptions() -> None:
    h = hours()
    assert not is_open(h, at(2026, 12, 25, 10))  # holiday on a Friday
    assert is_open(h, at(2026, 12, 24, 11))  # shortened day
    assert not is_open(h, at(2026, 12, 24, 13))
    assert not is_open(h, at(2026, 12, 28, 10))  # closed all day although a Monday


def test_dst_change_keeps_local_hours() -> None:
    h = hours()
    # 2027-03-29 is the Monday after the change to summer time: 08:00 local is 06:00 UTC.
    assert is_open(h, dt.datetime(2027, 3, 29, 6, 0, tzinfo=dt.UTC))
    assert not is_open(h, dt.datetime(2027, 3, 29, 5, 59, tzinfo=dt.UTC))


def number(outside: dict[str, object]) -> Number:
    return Number.model_validate(
        {
            "did": "100",
            "name": "Ops",
            "routes": [{"label": "db", "policy": "dba"}, {"label": "net", "policy": "net"}],
            "support_hours": hours().model_dump(mode="json"),
            "outside_hours": outside,
        }
    )


def test_routes_inside_and_outside_hours() -> None:
    n = number({"action": "routes", "routes": [{"label": "urgent", "policy": "dba"}]})
    inside = select_routes(n, at(2026, 11, 24, 10))
    assert inside.in_support_hours and [d for d, _ in inside.routes] == ["1", "2"]
    outside = select_routes(n, at(2026, 11, 24, 22))
    assert not outside.in_support_hours
    assert [(d, r.label) for d, r in outside.routes] == [("1", "urgent")]


def test_outside_hours_voicemail_or_message() -> None:
    assert select_routes(number({"action": "voicemail"}), at(2026, 11, 29, 10)).action == (
        "voicemail"
    )
    sel = select_routes(number({"action": "message", "message": "Closed"}), at(2026, 11, 29, 10))
    assert (sel.action, sel.message) == ("message", "Closed")
