"""The on-call model: users, schedules, escalation policies, and who is called when.

Pure code: every answer takes the moment (an aware datetime) and, where a choice is random,
a `random.Random`, as arguments.
"""

from ari_controller.oncall.models import EscalationPolicy, Layer, Override, Rule, Schedule, User
from ari_controller.oncall.plan import CallPlan, Directory, Responder, plan
from ari_controller.oncall.schedules import OnCallSchedule, next_handoff, who_is_on_call
from ari_controller.oncall.validate import validate_references

__all__ = [
    "CallPlan",
    "Directory",
    "EscalationPolicy",
    "Layer",
    "OnCallSchedule",
    "Override",
    "Responder",
    "Rule",
    "Schedule",
    "User",
    "next_handoff",
    "plan",
    "validate_references",
    "who_is_on_call",
]
