"""Faults a test can inject: slow or failing requests, a booting Asterisk.

`Faults.decide` is a pure decision (time passed in); the server applies it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class FailingPath:
    pattern: re.Pattern[str]
    remaining: int
    status: int


@dataclass(frozen=True)
class Verdict:
    delay_seconds: float
    status: int | None  # answer with this error instead of serving the request


@dataclass
class Faults:
    delay_ms: float = 0.0
    failing: list[FailingPath] = field(default_factory=list)
    booting_until: float = 0.0  # wall monotonic time until which ARI answers 503

    def fail_next(self, pattern: str, count: int, status: int = 500) -> None:
        self.failing.append(FailingPath(re.compile(pattern), count, status))

    def clear(self) -> None:
        self.delay_ms = 0.0
        self.failing.clear()
        self.booting_until = 0.0

    def booting(self, now: float) -> bool:
        return now < self.booting_until

    def decide(self, path: str, now: float) -> Verdict:
        delay = self.delay_ms / 1000.0
        if self.booting(now):
            return Verdict(delay, 503)
        for failing in self.failing:
            if failing.remaining > 0 and failing.pattern.search(path):
                failing.remaining -= 1
                return Verdict(delay, failing.status)
        self.failing = [f for f in self.failing if f.remaining > 0]
        return Verdict(delay, None)
