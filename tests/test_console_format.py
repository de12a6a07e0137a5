"""How the console writes callers, times, durations and reads days (pure)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ari_controller.console.format import caller, day_bounds, duration, moment


def test_a_caller_reads_as_a_name_and_a_number() -> None:
    assert caller('"Ana Alvarez" <+4930123456>') == "Ana Alvarez (+4930123456)"
    assert caller("Ana <+4930123456>") == "Ana (+4930123456)"
    assert caller('"+4930123456" <+4930123456>') == "+4930123456"
    assert caller('"" <+4930123456>') == "+4930123456"
    assert caller("+4930123456") == "+4930123456"
    assert caller(None) == caller("") == "unknown"
    assert caller("anonymous") == "anonymous"


def test_times_are_written_in_the_zone_and_name_it() -> None:
    at = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    assert moment(at, "Europe/Berlin") == "2026-07-01 14:00:00 CEST"
    assert moment(at) == "2026-07-01 12:00:00 UTC"
    assert moment(at, "Not/AZone") == "2026-07-01 12:00:00 UTC"
    assert (duration(4.4), duration(125), duration(3780)) == ("4 s", "2 min 05 s", "1 h 03 min")


def test_days_are_read_in_the_zone_and_the_last_one_is_included() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start, end, problem = day_bounds("2026-03-02", "2026-03-02", berlin)
    assert problem is None
    assert start == dt.datetime(2026, 3, 1, 23, 0, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 3, 2, 23, 0, tzinfo=dt.UTC)
    assert day_bounds("2026-03-03", "2026-03-02", berlin)[2] == (
        "The first day is after the last day; the days are not applied."
    )
    assert "is not a date like" in str(day_bounds("yesterday", "", berlin)[2])
