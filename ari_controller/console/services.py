"""What the console reads the daemon through: given, never reached for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ari_controller.config import Config
from ari_controller.numbers import Number

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class ConsoleServices:
    """The console's view of the daemon.

    `pool` gives the daemon's asyncpg pool at request time (opened after the server), `dsn`
    is where the live view listens for changes, `health` answers the health page (ARI
    connected, database, spool backlog, version, ...), `greeting_audio` renders a number's
    greeting as WAV bytes (None where the daemon has no prompt engine, e.g. in tests)."""

    pool: Callable[[], Any]
    dsn: Callable[[], str]
    config: Callable[[], Config]
    clock: Clock
    health: Callable[[], Awaitable[dict[str, Any]]]
    greeting_audio: Callable[[Number], Awaitable[bytes]] | None = None
