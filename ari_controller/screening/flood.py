"""A flood on a number: many new calls a minute, from any callers.

The number is flooded from the moment it takes more than `new_calls_per_minute` new calls in
the last minute, and stays flooded until the count has been at or below that for
`calm_minutes`. The count and the moment are given (the store counts, the caller reads the
clock); the state is a value, so any daemon can carry it on. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ari_controller.screening.settings import FloodSettings


@dataclass(frozen=True, slots=True)
class FloodState:
    """Whether the number is flooded, since when, and since when it has been calm again
    (None while the calls still come too fast)."""

    active: bool = False
    since: dt.datetime | None = None
    calm_since: dt.datetime | None = None


NO_FLOOD = FloodState()


def next_flood_state(
    state: FloodState,
    new_calls_last_minute: int,
    now: dt.datetime,
    settings: FloodSettings | None,
) -> FloodState:
    """The state after a count of `new_calls_last_minute` at `now` (no settings: never a flood)."""
    if settings is None:
        return NO_FLOOD
    if new_calls_last_minute > settings.new_calls_per_minute:
        since = state.since if state.active and state.since is not None else now
        return FloodState(active=True, since=since, calm_since=None)
    if not state.active:
        return NO_FLOOD
    calm_since = state.calm_since or now
    if now - calm_since >= dt.timedelta(minutes=settings.calm_minutes):
        return NO_FLOOD
    return FloodState(active=True, since=state.since, calm_since=calm_since)
