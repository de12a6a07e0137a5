"""Everything one call needs, handed to each step of its flow."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ari_controller.ari.client import AriClient
from ari_controller.ari.events import EventRouter
from ari_controller.calls.journal import CallJournal, Clock
from ari_controller.calls.leg import Leg
from ari_controller.numbers import Number, Route
from ari_controller.oncall.plan import CallPlan
from ari_controller.screening.history import CallerHistory
from ari_controller.screening.settings import GlobalScreening


class Prompts(Protocol):
    """What callers and responders hear, as media URIs Asterisk can play (all prepared ahead)."""

    def greeting(self, number: Number) -> list[str]: ...
    def menu(self, number: Number, routes: list[tuple[str, Route]]) -> list[str]: ...
    def say(self, key: str, language: str, **params: str) -> list[str]: ...
    def text(self, text: str, language: str) -> list[str]: ...
    def hold_file(self, number: Number) -> str | None: ...
    def responder_prompt(
        self, number: Number, label: str | None = None, repeat: bool = False
    ) -> list[str]: ...
    def route_confirmation(self, number: Number, digit: str, route: Route) -> list[str]: ...


Planner = Callable[[str, dt.datetime, random.Random], CallPlan]
Durable = Callable[[], Awaitable[object]]
"""Until the call's records so far would outlive the controller (bounded: see the store)."""


async def not_kept() -> None:
    """No store behind the call (tests, previews): nothing to wait for."""


@dataclass
class CallContext:
    """Everything one call owns while it runs: its caller and responder legs, its bridge, its
    journal, and the configuration it started with. Only the call's own steps change it; the
    controller reaches it through RunningCall (wake, stop), never by editing it."""

    call_id: str
    app: str
    fallback_context: str
    ari: AriClient
    router: EventRouter
    number: Number
    caller: Leg
    caller_id: str  # "Name <number>" of the caller, as Asterisk gave it
    prompts: Prompts
    journal: CallJournal
    planner: Planner
    clock: Clock
    rng: random.Random
    # Awaited before acting on a decision a restarted controller must find again (a route
    # chosen, a leg about to ring, a voicemail about to be recorded).
    durable: Durable = not_kept
    responder_legs: dict[str, Leg] = field(default_factory=dict)
    bridge_id: str | None = None
    caller_gone: bool = False
    # How the call's clean-up leaves the caller: hung up, back in the dialplan, still talking,
    # or untouched (let go: another controller drives it now).
    ending: Literal["hang_up", "hand_back", "leave_connected", "let_go"] = "hang_up"
    background: set[asyncio.Task[None]] = field(default_factory=set)
    # Set once the accepting responder is in the bridge with the caller (or the call is over):
    # the other responders are let go after it, so they never delay the connection.
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    # Screening: the callers' past through Postgres (None: no database, counted per call),
    # the shared lists, and what it found out for the responder's whisper: the caller's PIN
    # label (the customer), and whether this is a repeat call on an open alert.
    history: CallerHistory | None = None
    screening_config: GlobalScreening = field(default_factory=GlobalScreening)
    caller_label: str | None = None
    repeat_call: bool = False

    @property
    def language(self) -> str:
        return self.number.language

    def say(self, key: str, **params: str) -> list[str]:
        return self.prompts.say(key, self.language, **params)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A side task of this call (e.g. telling a late responder the call was taken)."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


async def settle(*tasks: asyncio.Future[Any]) -> None:
    """Until the tasks are over, however they end (their errors are theirs to log)."""
    await asyncio.gather(*tasks, return_exceptions=True)
