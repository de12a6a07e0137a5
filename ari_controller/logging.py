"""Logging: JSON lines for services, readable lines on a terminal.

Each call runs in its own asyncio task, and tasks copy context variables when they are created,
so `bind_call(...)` inside a call's task puts the call id and channel id on every line about
that call and on no other.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]


class _CurrentStderr:
    """Writes to whatever sys.stderr is now (tests and daemons may replace it).

    A log line that cannot be written is dropped: when the reader of stderr is gone (a closed
    pipe, a full disk behind a redirect), the daemon must go on routing calls and obey its stop
    signals, whose handlers log too. An exception here once made a daemon ignore SIGTERM."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (OSError, ValueError):  # ValueError: stderr was closed
            return 0

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def bind_call(call_id: str, channel_id: str, **extra: str) -> None:
    """Bind the call's identity to every log line written from the current task on."""
    structlog.contextvars.bind_contextvars(call_id=call_id, channel_id=channel_id, **extra)
