"""What a caller of a number would get at a given moment: greeting, menu, route and call plan.

Worked out, not tried: no call is made. The moment, the menu choice and the random source are
arguments; the menu and the plan are the ones a real call uses (calls.menu, planning).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from ari_controller.alerts.escalation import whole_escalation
from ari_controller.announcements import greeting_and_menu
from ari_controller.calls.menu import Menu
from ari_controller.config import Config
from ari_controller.numbers import select_routes
from ari_controller.oncall.plan import Directory
from ari_controller.planning import PolicyPlanner, make_planner


class UnknownNumber(LookupError):
    pass


def explain(
    config: Config,
    did: str,
    at: dt.datetime,
    choice: str | None,
    rng: random.Random,
    planner: PolicyPlanner | None = None,
) -> dict[str, Any]:
    number = config.number(did)
    if number is None:
        known = ", ".join(n.did for n in config.numbers)
        raise UnknownNumber(f"no number with did '{did}' in the configuration (known: {known})")
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


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"Number {report['number']} ({report['name']}), language {report['language']}",
        f"At {report['at']}: {'inside' if report['in_support_hours'] else 'outside'} support hours",
    ]
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
