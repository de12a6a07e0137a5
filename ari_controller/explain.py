"""What a caller of a number would get at a given moment: screening, greeting, menu, route and
call plan.

Worked out, not tried: no call is made. The moment, the menu choice and the random source are
arguments; the menu and the plan are the ones a real call uses (calls.menu, planning), and so is
the screening verdict (screening.decide). What only the call's history knows (how many calls
this caller made lately, whether the number is flooded, the PIN the caller enters) is given as
an assumption and shown as one.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from ari_controller.alerts.escalation import whole_escalation
from ari_controller.announcements import greeting_and_menu
from ari_controller.calls.menu import Menu
from ari_controller.config import Config
from ari_controller.numbers import Number, select_routes
from ari_controller.oncall.plan import Directory
from ari_controller.planning import PolicyPlanner, make_planner
from ari_controller.screening.callerid import caller_id as read_caller_id
from ari_controller.screening.decide import Verdict, screen
from ari_controller.screening.flood import NO_FLOOD, FloodState
from ari_controller.screening.pins import check_pin


class UnknownNumber(LookupError):
    pass


def explain(
    config: Config,
    did: str,
    at: dt.datetime,
    choice: str | None,
    rng: random.Random,
    planner: PolicyPlanner | None = None,
    *,
    caller: str | None = None,
    caller_calls: int = 1,
    flood: bool = False,
    pin: str | None = None,
) -> dict[str, Any]:
    """The report; with `caller` (a caller ID as a trunk sends it) screening comes first,
    assuming `caller_calls` calls from that caller within the rate window (this one included),
    a flood on the number or not, and `pin` as what the caller enters when asked."""
    number = config.number(did)
    if number is None:
        known = ", ".join(n.did for n in config.numbers)
        raise UnknownNumber(f"no number with did '{did}' in the configuration (known: {known})")
    screening: dict[str, Any] | None = None
    if caller is not None:
        screening = screening_report(
            config, number, caller, at, caller_calls=caller_calls, flood=flood, pin=pin
        )
        if screening["verdict"]["action"] != "menu":
            return _screened_out(number, at, screening)
    selection = select_routes(number, at)
    sentences = greeting_and_menu(number, selection.routes) if selection.routes else []
    report: dict[str, Any] = {
        "number": number.did,
        "name": number.name,
        "language": number.language,
        "at": at.isoformat(),
        "in_support_hours": selection.in_support_hours,
        "action": selection.action,
        "greeting": sentences[0] if sentences else (number.greeting or ""),
        "menu": sentences[1:] if not number.only_greeting else [],
        "routes": [{"digit": d, "label": r.label, "policy": r.policy} for d, r in selection.routes],
        "route": None,
        "mode": number.mode,
        "plan": [],
        "screening": screening,
    }
    if selection.action == "voicemail":
        report["outcome"] = "voicemail"
        return report
    if selection.action == "message":
        report["outcome"] = "message"
        report["message"] = selection.message
        return report
    if not selection.routes:
        return report
    menu = Menu(tuple(selection.routes), number.menu)
    if choice is None and not menu.needs_asking():
        choice = menu.only_route().digit
    if choice is None:
        report["outcome"] = "menu"
        return report
    route = menu.route_for_digit(choice)
    if route is None:
        report["outcome"] = "invalid_choice"
        report["choice"] = choice
        return report
    directory = Directory.build(config.users, config.schedules)
    call_plan = (planner or make_planner(config, directory))(route.policy, at, rng)
    report["escalation"] = escalation_report(config, route.policy, at, directory)
    report["route"] = {"digit": choice, "label": route.label, "policy": route.policy}
    report["mode"] = route.mode or number.mode
    report["outcome"] = "call" if call_plan.responders else "nobody_on_call"
    report["plan"] = [
        {
            "user": r.user_id,
            "name": r.name,
            "contacts": list(r.contacts),
            "reason": r.reason,
        }
        for r in call_plan.responders
    ]
    return report


def screening_report(
    config: Config,
    number: Number,
    caller: str,
    at: dt.datetime,
    *,
    caller_calls: int,
    flood: bool,
    pin: str | None,
) -> dict[str, Any]:
    """The screening verdict for `caller` on `number`, each step, and the assumptions made."""
    country = config.country_of(number)
    who = read_caller_id(caller, country)
    settings = number.screening
    state = FloodState(active=True, since=at) if flood else NO_FLOOD
    lists = config.screening.lists
    verdict = screen(who, settings, lists, caller_calls=caller_calls, flood=state)
    asked_pin = verdict.action == "ask_pin"
    if asked_pin and pin is not None:
        entry = check_pin(pin, settings.pin.pins)
        verdict = screen(
            who,
            settings,
            lists,
            caller_calls=caller_calls,
            flood=state,
            pin_given=entry is not None,
            pin_label=entry.label if entry is not None else None,
            pin_failed=entry is None,
        )
    return {
        "caller": {
            "raw": who.raw,
            "e164": who.e164,
            "withheld": who.withheld,
            "key": who.key,
            "country": country,
        },
        "assumptions": {
            "caller_calls": caller_calls,
            "flood": flood,
            "pin": "not entered" if pin is None else "entered",
        },
        "asked_pin": asked_pin,
        "verdict": _verdict_dict(verdict),
    }


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "action": verdict.action,
        "then": verdict.then,
        "message": verdict.message,
        "label": verdict.label,
        "attempts": verdict.attempts,
        "steps": verdict.timeline(),
    }


def _screened_out(number: Number, at: dt.datetime, screening: dict[str, Any]) -> dict[str, Any]:
    """The report of a caller that screening keeps from the menu: no greeting, no plan."""
    return {
        "number": number.did,
        "name": number.name,
        "language": number.language,
        "at": at.isoformat(),
        "in_support_hours": None,
        "action": "screened",
        "outcome": screening["verdict"]["action"],
        "greeting": "",
        "menu": [],
        "routes": [],
        "route": None,
        "mode": number.mode,
        "plan": [],
        "screening": screening,
    }


def escalation_report(
    config: Config, policy_id: str, at: dt.datetime, directory: Directory
) -> list[dict[str, Any]]:
    """If the call's alert escalated at `at` and nobody acknowledged: who would be notified,
    by which method and destination, and when (rule after rule, each round)."""
    policy = next(p for p in config.escalation_policies if p.id == policy_id)
    default = config.alerts.engine.default_escalation_delay_minutes
    return [
        {
            "at": step.at.isoformat(),
            "rule": step.rule + 1,
            "round": step.round + 1,
            "people": list(step.people),
            "messages": [
                {
                    "user": n.user_id,
                    "method": n.method,
                    "to": n.destination,
                    "at": n.due_at.isoformat(),
                }
                for n in step.notifications
            ],
        }
        for step in whole_escalation(policy, at, directory, default)
    ]


def render_screening(screening: dict[str, Any]) -> list[str]:
    caller = screening["caller"]
    verdict = screening["verdict"]
    assumed = screening["assumptions"]
    form = "withheld" if caller["withheld"] else caller["e164"] or "not a phone number"
    lines = [
        f"Caller ID {caller['raw']!r}: {form} (known as {caller['key']},"
        f" country {caller['country'] or 'none'})",
        f"Assumed: call {assumed['caller_calls']} from this caller in the rate window"
        f" (--caller-calls), {'a flood' if assumed['flood'] else 'no flood'} on the number"
        f" (--flood), PIN {assumed['pin']} (--pin)",
        "Screening:",
    ]
    for step in verdict["steps"]:
        rule = f"  [{step['rule']}]" if step["rule"] else ""
        lines.append(f"  {step['check']}: {step['outcome']}{rule}")
    said = f", says {verdict['message']!r}" if verdict["message"] else ""
    then = {"continue": "support hours and the menu", "hang_up": "hang up"}.get(
        verdict["then"], verdict["then"]
    )
    label = f" (PIN of {verdict['label']})" if verdict["label"] else ""
    if verdict["action"] == "ask_pin":
        lines.append(
            f"Verdict: ask_pin, up to {verdict['attempts']} attempts;"
            " give --pin DIGITS to see what follows"
        )
    else:
        lines.append(f"Verdict: {verdict['action']}{label}{said}, then {then}")
    if assumed["pin"] == "entered" and not screening["asked_pin"]:
        lines.append("(--pin is not used: this caller is not asked for a PIN)")
    return lines


def render_text(report: dict[str, Any]) -> str:
    lines = [f"Number {report['number']} ({report['name']}), language {report['language']}"]
    if report.get("screening"):
        lines.extend(render_screening(report["screening"]))
    if report.get("action") == "screened":
        return "\n".join(lines)
    lines.append(
        f"At {report['at']}: {'inside' if report['in_support_hours'] else 'outside'} support hours"
    )
    if report.get("greeting"):
        lines.append(f"Caller hears: {report['greeting']}")
    for sentence in report.get("menu", []):
        lines.append(f"              {sentence}")
    outcome = report.get("outcome")
    if outcome == "voicemail":
        lines.append("Outside hours: straight to voicemail")
    elif outcome == "message":
        lines.append(f"Outside hours: a message, then goodbye: {report.get('message') or ''}")
    elif outcome == "menu":
        lines.append("Give --choice DIGIT to see the call plan of a route.")
    elif outcome == "invalid_choice":
        lines.append(f"'{report['choice']}' is not a menu choice: the caller would hear it again")
    elif report.get("route"):
        route = report["route"]
        lines.append(
            f"Route {route['digit']}: {route['label']} -> policy {route['policy']},"
            f" {report['mode']} calling"
        )
        if not report["plan"]:
            lines.append("Nobody is on call: voicemail or 'no one is available'")
        for n, person in enumerate(report["plan"], 1):
            lines.append(
                f"  {n}. {person['name']} ({person['user']}): {', '.join(person['contacts'])}"
                f"  [{person['reason']}]"
            )
        if report.get("escalation"):
            lines.append("If its alert escalated now and nobody acknowledged:")
        for step in report.get("escalation", []):
            people = ", ".join(step["people"]) or "nobody on this rule"
            lines.append(f"  {step['at']}  rule {step['rule']} (round {step['round']}): {people}")
            for message in step["messages"]:
                lines.append(
                    f"      {message['at']}  {message['user']} by {message['method']}"
                    f" to {message['to']}"
                )
    return "\n".join(lines)
