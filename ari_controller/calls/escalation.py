"""Whether a call's ending escalates its alert, and to which escalation policy: the number's
alert settings decide; the alert engine notifies the policy's people after the call."""

from __future__ import annotations

from ari_controller.calls.context import CallContext
from ari_controller.numbers import EscalatingEnding
from ari_controller.support_hours import next_opening


def escalate_if_configured(
    ctx: CallContext, ending: EscalatingEnding, *, outside_hours: bool = False
) -> None:
    """Escalate to the chosen route's policy (or, with no route chosen, the number's first
    route's); a voicemail left outside support hours waits for the hours when the number
    says so."""
    settings = ctx.number.alerts
    if ending not in settings.escalate_on:
        return
    if ctx.journal.alert.repeat:
        # The alert escalates by its own rules from its first call: a repeat call adds its
        # timeline, not another round of pages.
        ctx.journal.note("escalation_not_repeated", ending=ending)
        return
    policy = ctx.journal.alert.policy_id
    if policy is None:
        routes = ctx.number.outside_hours.routes if outside_hours else []
        policy = (routes or ctx.number.routes)[0].policy
    hold_until = None
    if ending == "voicemail" and outside_hours and settings.hold_voicemail_outside_hours:
        now = ctx.clock()
        opening = next_opening(ctx.number.support_hours, now)
        hold_until = opening if opening > now else None
    ctx.journal.escalate(ending, policy, hold_until)
