"""Where an earlier run of the controller left a call it did not finish. Pure.

A controller that dies mid-call leaves its calls running in Asterisk: callers stay in Stasis
with the last prompt or the hold music, responder legs ring on, conversations go on in their
bridges. What that run recorded in Postgres (the call's timeline and its legs) says how far
each call had got. `Unfinished` is that record, read back; `step` is where the call goes on;
`HuntProgress` is what is left of a hunt (who was rung, with what outcome).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ari_controller.calls.journal import LegRecord
from ari_controller.calls.outcomes import LegOutcome
from ari_controller.oncall.plan import CallPlan, Responder

Step: TypeAlias = Literal["menu", "hunting", "connected", "voicemail", "closing"]


@dataclass(frozen=True, slots=True)
class RouteChoice:
    digit: str
    label: str
    how: str


@dataclass(frozen=True, slots=True)
class PlanOnRecord:
    """The plan the earlier run made (its random picks are kept: the hunt goes on with it)."""

    plan: CallPlan
    mode: str


@dataclass(frozen=True, slots=True)
class Unfinished:
    """One call an earlier run started and did not end, as it recorded it."""

    call_id: str
    alert_id: str
    caller_channel: str
    did: str
    number_name: str
    caller_id: str
    opened_at: dt.datetime
    status: str
    acknowledged_by: str | None
    escalations: int
    route: str | None
    policy_id: str | None
    timeline: tuple[tuple[str, dict[str, Any]], ...]  # (kind, data), in order
    last_seq: int
    legs: tuple[LegRecord, ...] = ()

    def _last(self, *kinds: str) -> tuple[str, dict[str, Any]] | None:
        for kind, data in reversed(self.timeline):
            if kind in kinds:
                return kind, data
        return None

    @property
    def step(self) -> Step:
        """Where the call goes on: the furthest point its timeline reached."""
        last = self._last(
            "call_ended",
            "voicemail_stored",
            "voicemail_started",
            "bridged",
            "plan",
            "route_chosen",
            "menu_gave_up",
            "support_hours",
        )
        kind, data = last if last is not None else ("", {})
        if kind in ("call_ended", "voicemail_stored"):
            return "closing"
        if kind == "voicemail_started":
            return "voicemail"
        if kind == "bridged":
            return "connected"
        if kind in ("plan", "route_chosen"):
            return "hunting"
        if kind == "menu_gave_up":
            return "voicemail" if data.get("then") == "voicemail" else "closing"
        if kind == "support_hours" and data.get("action") in ("message", "voicemail"):
            return "voicemail" if data.get("action") == "voicemail" else "closing"
        return "menu"

    @property
    def closing_reason(self) -> str:
        """Why a call in its last words ends (what its flow had decided)."""
        ended = self._last("call_ended")
        if ended is not None:
            return str(ended[1].get("reason") or "ended")
        if self._last("voicemail_stored") is not None:
            return "voicemail"
        gave_up = self._last("menu_gave_up")
        if gave_up is not None:
            return "no_choice"
        return "outside_hours"

    @property
    def outside_hours(self) -> bool:
        hours = self._last("support_hours")
        return hours is not None and hours[1].get("in_hours") is False

    @property
    def choice(self) -> RouteChoice | None:
        chosen = self._last("route_chosen")
        if chosen is None:
            return None
        data = chosen[1]
        return RouteChoice(
            str(data.get("digit", "")), str(data.get("route", "")), str(data.get("how", ""))
        )

    @property
    def plan(self) -> PlanOnRecord | None:
        """The plan as the earlier run made it, or None when it had not made one yet."""
        found = self._last("plan")
        if found is None:
            return None
        data = found[1]
        responders = tuple(
            Responder(
                user_id=str(entry.get("user", "")),
                name=str(entry.get("name") or entry.get("user", "")),
                language=str(entry.get("language") or ""),
                contacts=tuple(str(c) for c in entry.get("contacts", ())),
                rule=int(entry.get("rule") or 0),
                schedule_id=entry.get("schedule"),
                reason=str(entry.get("reason") or ""),
            )
            for entry in data.get("responders", ())
            if isinstance(entry, dict)
        )
        plan = CallPlan(str(data.get("policy", self.policy_id or "")), self.opened_at, responders)
        return PlanOnRecord(plan, str(data.get("mode") or "sequential"))

    @property
    def bridge(self) -> str | None:
        bridged = self._last("bridged")
        return str(bridged[1].get("bridge")) if bridged is not None else None


def plan_note(plan: CallPlan, mode: str) -> dict[str, Any]:
    """The `plan` timeline entry: who will be rung, in order, and why (read back on resume)."""
    return {
        "policy": plan.policy_id,
        "mode": mode,
        "responders": [
            {
                "user": r.user_id,
                "name": r.name,
                "language": r.language,
                "contacts": list(r.contacts),
                "rule": r.rule,
                "schedule": r.schedule_id,
                "reason": r.reason,
            }
            for r in plan.responders
        ],
    }


@dataclass
class HuntProgress:
    """The legs a hunt has placed so far (by an earlier run, when the call was picked up):
    a contact already rung is not rung again, a person who declined is not asked again, and
    a leg still alive is asked again rather than rung anew."""

    legs: list[LegRecord] = field(default_factory=list)

    def earlier_leg(self, user_id: str, contact: str) -> LegRecord | None:
        for leg in reversed(self.legs):
            if leg.user_id == user_id and leg.contact == contact:
                return leg
        return None

    def declined(self, user_id: str) -> bool:
        return any(
            leg.user_id == user_id and leg.outcome is LegOutcome.DECLINED for leg in self.legs
        )

    def next_order(self) -> int:
        return max((leg.order for leg in self.legs), default=0) + 1
