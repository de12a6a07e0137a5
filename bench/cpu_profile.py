"""Where the controller's CPU time goes: py-spy samples of its process, summed by function.

py-spy samples from outside (no code in the process slows down) and, without --idle, only
while the thread is on the CPU: an event loop waiting in epoll is not counted, so the shares
below are shares of the controller's CPU time. `summarise` reads py-spy's raw (collapsed
stack) output: one line per distinct stack, frames joined by ";", then a sample count.
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import signal
import sys
from pathlib import Path

TOP = 25
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def spy_binary() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


async def start_spy(pid: int, raw_out: Path, rate: int = 250) -> asyncio.subprocess.Process:
    binary = spy_binary()
    if binary is None:
        raise RuntimeError("py-spy is not installed (pip install -e '.[dev]')")
    return await asyncio.create_subprocess_exec(
        binary, "record", "--pid", str(pid), "--format", "raw", "--output", str(raw_out),
        "--rate", str(rate), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def stop_spy(spy: asyncio.subprocess.Process) -> None:
    if spy.returncode is None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            async with asyncio.timeout(20):
                await spy.wait()
        except TimeoutError:
            spy.kill()
            await spy.wait()


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "ari_controller/", "lib/python3"):
        if marker in path:
            path = (
                path.split(marker, 1)[1]
                if marker != "ari_controller/"
                else ("ari_controller/" + path.split(marker, 1)[1])
            )
            break
    return f"{match['function']} ({path})"


def summarise(raw: str, top: int = TOP) -> str:
    """Self and inclusive sample shares per function, biggest first."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return "no samples\n"

    def block(title: str, counter: collections.Counter[str]) -> list[str]:
        rows = [title]
        for name, count in counter.most_common(top):
            rows.append(f"{100.0 * count / total:6.1f}%  {name}")
        return rows

    lines = [f"{total} samples of CPU time", ""]
    lines += block("own time (the function itself):", own)
    lines += ["", *block("inclusive time (with what it calls):", inclusive)]
    return "\n".join(lines) + "\n"
