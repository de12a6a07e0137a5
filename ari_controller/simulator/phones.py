"""Scripted phones: what the far end of a simulated call does, as data.

A script is a list of steps, each a one-key mapping (or a bare word for steps without
argument), e.g. ``[ring, {wait: 2}, answer, {wait: 2}, {dtmf: "1"}, {wait: 300}, hangup]``.
Each step stands for the dialplan application the real acceptance set-up runs
(extensions.conf), so the events it produces are the ones Asterisk sends.

Steps: ``ring``, ``answer``, ``wait: SECONDS``, ``dtmf: DIGITS``, ``speak: SOUND``
(a sound name, ``sound:NAME`` or a WAV path: the phone plays it into the call),
``hangup`` (or ``hangup: {cause: 21}``), ``busy``, ``congestion``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

BUILTIN_SCRIPTS = Path(__file__).parent / "scripts.yaml"

STEP_KINDS = ("ring", "answer", "wait", "dtmf", "speak", "hangup", "busy", "congestion")

# SendDTMF: the digit reaches the other side 0.2 s into the step, the next step starts
# 0.45 s after the step began (both as in the traces).
DTMF_ARRIVAL = 0.2
DTMF_STEP = 0.45
BUSY_SECONDS = 5.0


class ScriptError(ValueError):
    """A phone script that cannot be understood."""


@dataclass(frozen=True)
class Step:
    kind: str
    seconds: float = 0.0
    digits: str = ""
    sound: str = ""
    cause: int = 16

    def dialplan(self) -> tuple[str, str]:
        """The dialplan application and data this step stands for."""
        match self.kind:
            case "ring":
                return "Ringing", ""
            case "answer":
                return "Answer", ""
            case "wait":
                return "Wait", _number_text(self.seconds)
            case "dtmf":
                return "SendDTMF", self.digits
            case "speak":
                return "Playback", self.sound
            case "busy":
                return "Busy", _number_text(BUSY_SECONDS)
            case "congestion":
                return "Congestion", _number_text(BUSY_SECONDS)
            case _:
                return "Hangup", "" if self.cause == 16 else str(self.cause)


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def parse_step(raw: Any) -> Step:
    if isinstance(raw, str):
        kind, argument = raw, None
    elif isinstance(raw, Mapping) and len(raw) == 1:
        kind, argument = next(iter(raw.items()))
    else:
        raise ScriptError(f"a step is a word or a one-key mapping, not {raw!r}")
    if kind not in STEP_KINDS:
        raise ScriptError(f"unknown step {kind!r} (known: {', '.join(STEP_KINDS)})")
    if kind == "wait":
        if not isinstance(argument, int | float) or argument < 0:
            raise ScriptError(f"wait needs a number of seconds, not {argument!r}")
        return Step("wait", seconds=float(argument))
    if kind == "dtmf":
        digits = str(argument) if argument is not None else ""
        if not digits or any(d not in "0123456789*#ABCD" for d in digits):
            raise ScriptError(f"dtmf needs digits (0-9 * # A-D), not {argument!r}")
        return Step("dtmf", digits=digits)
    if kind == "speak":
        if not isinstance(argument, str) or not argument:
            raise ScriptError("speak needs a sound name or a WAV file")
        return Step("speak", sound=argument)
    if kind == "hangup" and isinstance(argument, Mapping):
        cause = argument.get("cause", 16)
        if not isinstance(cause, int):
            raise ScriptError(f"hangup cause must be a number, not {cause!r}")
        return Step("hangup", cause=cause)
    if argument not in (None, {}):
        raise ScriptError(f"{kind} takes no argument, got {argument!r}")
    return Step(kind)


def parse_script(name: str, raw: Any) -> tuple[Step, ...]:
    if not isinstance(raw, list) or not raw:
        raise ScriptError(f"script {name!r} must be a non-empty list of steps")
    try:
        return tuple(parse_step(item) for item in raw)
    except ScriptError as exc:
        raise ScriptError(f"script {name!r}: {exc}") from None


class ScriptBook:
    """The phone scripts a simulator knows, by extension name."""

    def __init__(self) -> None:
        self._scripts: dict[str, tuple[Step, ...]] = {}

    @classmethod
    def with_builtins(cls, extra_files: Iterable[Path] = ()) -> ScriptBook:
        book = cls()
        book.load_file(BUILTIN_SCRIPTS)
        for path in extra_files:
            book.load_file(path)
        return book

    def load_file(self, path: Path) -> None:
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, Mapping):
            raise ScriptError(f"{path}: expected a mapping of script name to steps")
        for name, raw in data.items():
            self.register(str(name), raw)

    def register(self, name: str, steps: Any) -> None:
        """Add or replace a script; `steps` as in the YAML file (or a list of Step)."""
        if isinstance(steps, list | tuple) and steps and all(isinstance(s, Step) for s in steps):
            self._scripts[name] = tuple(steps)
        else:
            self._scripts[name] = parse_script(name, steps)

    def get(self, name: str) -> tuple[Step, ...] | None:
        return self._scripts.get(name)

    def names(self) -> list[str]:
        return sorted(self._scripts)


class PhoneLine(Protocol):
    """The phone's side of a call (the `;2` half of a Local channel)."""

    async def step_started(self, priority: int, step: Step) -> None: ...
    async def ring(self) -> None: ...
    async def answer(self) -> None: ...
    async def send_dtmf(self, digit: str) -> None: ...
    async def speak(self, sound: str) -> None: ...
    async def busy(self, cause: int) -> None: ...
    async def hangup(self, cause: int) -> None: ...
    async def sleep(self, seconds: float) -> None: ...


async def run_script(steps: tuple[Step, ...], line: PhoneLine) -> None:
    """Play a script on a line; falling off the end hangs up, as the dialplan does."""
    for priority, step in enumerate(steps, start=1):
        await line.step_started(priority, step)
        match step.kind:
            case "ring":
                await line.ring()
            case "answer":
                await line.answer()
            case "wait":
                await line.sleep(step.seconds)
            case "dtmf":
                for digit in step.digits:
                    await line.sleep(DTMF_ARRIVAL)
                    await line.send_dtmf(digit)
                    await line.sleep(DTMF_STEP - DTMF_ARRIVAL)
            case "speak":
                await line.speak(step.sound)
            case "busy":
                await line.busy(17)
                return
            case "congestion":
                await line.busy(34)
                return
            case "hangup":
                await line.hangup(step.cause)
                return
    await line.hangup(16)
