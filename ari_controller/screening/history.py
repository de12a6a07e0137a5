"""What screening needs to know about the past: how often a caller and a number have been
called, the number's flood state, the caller's open alert. The call flow asks through this
port; the store answers (from Postgres, or from memory when Postgres does not answer)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ari_controller.screening.flood import FloodState

FloodStep = Callable[[FloodState], FloodState]
"""The flood state machine (`next_flood_state` with this call's count): before -> now."""


@dataclass(frozen=True, slots=True)
class ArrivalCounts:
    """`caller_calls`: calls from this caller on this number within the rate window, this one
    included; `number_calls`: new calls on the number within the last minute, this one
    included; `shared`: counted in Postgres (False: in this daemon's memory)."""

    caller_calls: int
    number_calls: int
    shared: bool


class CallerHistory(Protocol):
    async def arrived(
        self,
        arrival_id: uuid.UUID,
        did: str,
        caller_key: str,
        at: dt.datetime,
        window: dt.timedelta,
    ) -> ArrivalCounts:
        """Count this call, then how many calls the caller and the number have made."""
        ...

    async def flood(self, did: str, step: FloodStep) -> FloodState:
        """The number's flood state after this call (moved on by `step`)."""
        ...

    async def open_alert(
        self, dids: tuple[str, ...], caller_key: str, since: dt.datetime
    ) -> uuid.UUID | None:
        """The caller's newest unresolved alert on the number opened since `since`."""
        ...
