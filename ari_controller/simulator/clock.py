"""Simulated time: how long things take on the simulated phone network.

Every duration the simulator deals with (scripted waits, ringing, audio, timeouts) is
"call time". A time scale of 20 makes call time run 20 times faster than the wall clock,
so tests of long calls stay short while every relative timing stays as the traces show.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Call time for one simulator: `now()` in call seconds, `sleep()` in call seconds."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time scale must be positive")
        self.time_scale = time_scale
        self._wall_origin = datetime.now(UTC)
        self._mono_origin = time.monotonic()

    def now(self) -> float:
        """Call seconds since the simulator started."""
        return (time.monotonic() - self._mono_origin) * self.time_scale

    async def sleep(self, call_seconds: float) -> None:
        await asyncio.sleep(max(0.0, call_seconds) / self.time_scale)

    def wall_seconds(self, call_seconds: float) -> float:
        """How long a call-time span lasts on the wall clock."""
        return call_seconds / self.time_scale

    def datetime_at(self, call_seconds: float) -> datetime:
        return self._wall_origin + timedelta(seconds=call_seconds)

    def timestamp(self, call_seconds: float | None = None) -> str:
        """Asterisk's timestamp format, e.g. `2026-11-23T10:11:36.826+0000`."""
        moment = self.datetime_at(self.now() if call_seconds is None else call_seconds)
        return format_timestamp(moment)

    def epoch(self) -> int:
        return int(self._wall_origin.timestamp())


def format_timestamp(moment: datetime) -> str:
    millis = moment.microsecond // 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}+0000"
