"""A notification call on a real Asterisk: a voicemail left outside the support hours
escalates, the daemon calls the person of the policy (`method: phone`) with `formats`, the
person answers and presses 4, and the alert is acknowledged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.asterisk.conftest import Durations, StackFactory
from tests.asterisk.phones import CALLERS, RESPONDERS, dialplan, responder
from tests.asterisk.stack import RealStack, wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(300)]

SECTIONS: dict[str, Any] = {
    "users": [
        {
            "id": "pager",
            "name": "Pager",
            "contacts": [responder("press4")],
            "notify": [{"method": "phone"}],
        }
    ],
    "escalation_policies": [{"id": "pager", "name": "Pager", "rules": [{"users": ["pager"]}]}],
    "numbers": [
        {
            "did": "2201",
            "name": "Night Line",
            "routes": [{"label": "night line", "policy": "pager"}],
            "support_hours": {"time_zone": "UTC", "windows": []},
            "outside_hours": {"action": "voicemail"},
            "voicemail": {"enabled": True, "max_duration_s": 20, "max_silence_s": 3},
        }
    ],
    "alerts": {
        "phone": {"ring_timeout_s": 10, "key_window_s": 5, "repeats": 2},
        "engine": {"poll_interval_s": 0.2},
    },
}


def phones(d: Durations) -> str:
    before_beep = d.say("outside_hours") + d.say("voicemail_prompt") + 1.5
    return dialplan(
        {
            CALLERS: {
                "message": (
                    f"Answer > Wait({before_beep:.2f}) > Playback(vm-intro) > SendDTMF(#)"
                    " > Wait(30) > Hangup"
                ),
            },
            RESPONDERS: {
                # Answers the notification call and presses 4 while the alert is said.
                "press4": "Ringing > Wait(1) > Answer > Wait(2) > SendDTMF(4) > Wait(60) > Hangup",
            },
        }
    )


@pytest.fixture(scope="module")
def stack(start_stack: StackFactory) -> Iterator[RealStack]:
    with start_stack("phone", SECTIONS, phones) as stack:
        yield stack


def test_a_notification_call_is_answered_and_acknowledged_by_key(stack: RealStack) -> None:
    stack.place_call("message", "2201", "notified")

    def settled() -> bool:
        rows = stack.sql("SELECT state FROM deliveries WHERE destination = 'phone'")
        return bool(rows) and rows[0]["state"] in ("sent", "dead")

    wait_until(settled, 120, "the phone delivery sent or dead")
    (delivery,) = stack.sql(
        "SELECT state, attempts, user_id, last_error FROM deliveries WHERE destination = 'phone'"
    )
    assert delivery["state"] == "sent", delivery
    assert delivery["attempts"] == 1 and delivery["user_id"] == "pager"
    (alert,) = stack.sql("SELECT status, acknowledged_by FROM alerts")
    assert alert == {"status": "acknowledged", "acknowledged_by": "pager"}
    kinds = [r["kind"] for r in stack.sql("SELECT kind FROM alert_log ORDER BY id")]
    assert kinds.index("phone_call_answered") < kinds.index("phone_key")
    assert kinds.index("phone_key") < kinds.index("alert_acknowledged")
    assert "delivery_sent" in kinds
    assert stack.wait_nothing_left(30) == {"channels": [], "bridges": [], "recordings": []}
