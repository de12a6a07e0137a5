"""The flood state: on above the threshold, off after `calm_minutes` at or below it."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from ari_controller.screening.flood import NO_FLOOD, FloodState, next_flood_state
from ari_controller.screening.settings import FloodSettings

T0 = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.UTC)
FLOOD = FloodSettings(new_calls_per_minute=10, calm_minutes=5)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_above_the_threshold_starts_a_flood_at_it_does_not() -> None:
    assert next_flood_state(NO_FLOOD, 10, T0, FLOOD) == NO_FLOOD
    assert next_flood_state(NO_FLOOD, 11, T0, FLOOD) == FloodState(True, T0, None)


def test_a_flood_ends_only_after_calm_minutes_at_or_below_the_threshold() -> None:
    state = next_flood_state(NO_FLOOD, 50, at(0), FLOOD)
    state = next_flood_state(state, 30, at(1), FLOOD)
    assert state == FloodState(True, at(0), None)  # still flooding: since stays
    state = next_flood_state(state, 10, at(2), FLOOD)
    assert state == FloodState(True, at(0), at(2))  # calm from now on
    state = next_flood_state(state, 3, at(6.9), FLOOD)
    assert state == FloodState(True, at(0), at(2))
    assert next_flood_state(state, 0, at(7), FLOOD) == NO_FLOOD


def test_a_new_burst_while_calming_starts_the_calm_again() -> None:
    state = FloodState(True, at(0), at(2))
    state = next_flood_state(state, 11, at(4), FLOOD)
    assert state == FloodState(True, at(0), None)
    state = next_flood_state(state, 1, at(5), FLOOD)
    assert next_flood_state(state, 1, at(9.99), FLOOD).active
    assert not next_flood_state(state, 1, at(10), FLOOD).active


def test_no_flood_settings_means_never_a_flood() -> None:
    assert next_flood_state(FloodState(True, T0, None), 1000, T0, None) == NO_FLOOD


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 120)), max_size=40))
def test_active_exactly_when_the_rule_says(counts: list[tuple[int, int]]) -> None:
    """Against a direct reading of the rule: flooded iff some count above the threshold came
    and since the last one the counts have not stayed calm for calm_minutes."""
    state = NO_FLOOD
    now = T0
    last_burst: dt.datetime | None = None
    first_calm: dt.datetime | None = None
    for count, seconds in counts:
        now += dt.timedelta(seconds=seconds)
        state = next_flood_state(state, count, now, FLOOD)
        if count > FLOOD.new_calls_per_minute:
            if last_burst is None:
                first_calm = None
            last_burst, first_calm = now, None
        elif last_burst is not None:
            first_calm = first_calm or now
            if now - first_calm >= dt.timedelta(minutes=FLOOD.calm_minutes):
                last_burst = first_calm = None
        assert state.active == (last_burst is not None)
        assert state.calm_since == first_calm
