"""How bench/run.py talks to the processes it starts: commands on stdin, JSON lines on stdout.

Each child reads one command a line ("begin", "end", "quit") and answers each with one JSON
object on one line; its logs go to stderr, never stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def read_command() -> str:
    """The next command; "quit" when the parent has gone (stdin closed)."""
    line = await asyncio.to_thread(sys.stdin.readline)
    return line.strip() or "quit"


def say(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
