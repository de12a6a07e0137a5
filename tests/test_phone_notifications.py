"""Notification calls through a whole daemon on the simulator: a voicemail left outside the
support hours escalates, the delivery worker calls the person of the policy (`method: phone`),
and the person acts by key, or is not reached."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ari_controller.calls.notification import alert_sentence, speaking_language, spoken_caller
from ari_controller.config import Config, parse_config
from ari_controller.simulator import inspect
from ari_controller.simulator.inspect import NOTHING_LEFT
from ari_controller.testing.harness import Stack, running_stack

TIME_SCALE = 40.0

PHONES = {
    # The caller leaves a message, then hangs up.
    "leave_message": [
        {"answer": {}},
        {"wait": 5},
        {"speak": "tt-monkeys"},
        {"dtmf": "#"},
        {"wait": 30},
        {"hangup": {}},
    ],
    # A person who answers and presses 4 while the message plays.
    "press4": [
        {"ring": {}},
        {"wait": 1},
        {"answer": {}},
        {"wait": 2},
        {"dtmf": "4"},
        {"wait": 120},
        {"hangup": {}},
    ],
    "press6": [
        {"ring": {}},
        {"wait": 1},
        {"answer": {}},
        {"wait": 2},
        {"dtmf": "6"},
        {"wait": 120},
        {"hangup": {}},
    ],
    # A personal mailbox: picks up at once, records in silence, never presses a key.
    "mailbox": [{"answer": {}}, {"wait": 600}, {"hangup": {}}],
}


def config() -> Config:
    def outside_hours(did: str, name: str, policy: str) -> dict[str, Any]:
        return {
            "did": did,
            "name": name,
            "routes": [{"label": "operations", "policy": policy}],
            "support_hours": {"time_zone": "UTC", "windows": []},
            "outside_hours": {"action": "voicemail"},
            "voicemail": {"enabled": True, "max_duration_s": 20, "max_silence_s": 2},
        }

    phone = [{"method": "phone"}]
    return parse_config(
        {
            "users": [
                {
                    "id": "ann",
                    "name": "Ann",
                    "contacts": ["Local/press4@responders"],
                    "notify": phone,
                },
                {
                    "id": "rob",
                    "name": "Rob",
                    "contacts": ["Local/noanswer@responders", "Local/press6@responders"],
                    "notify": phone,
                },
                {
                    "id": "mo",
                    "name": "Mo",
                    "contacts": ["Local/mailbox@responders"],
                    "notify": phone,
                },
            ],
            "escalation_policies": [
                {"id": "ann-first", "rules": [{"users": ["ann"]}]},
                {"id": "rob-first", "rules": [{"users": ["rob"]}]},
                {"id": "mo-first", "rules": [{"users": ["mo"]}]},
            ],
            "numbers": [
                outside_hours("500", "Acme Night", "ann-first"),
                outside_hours("501", "Acme Weekend", "rob-first"),
                outside_hours("502", "Acme Holiday", "mo-first"),
            ],
            "alerts": {
                "phone": {"ring_timeout_s": 3, "key_window_s": 0.5, "repeats": 2},
                "engine": {
                    "poll_interval_s": 0.1,
                    "max_attempts": 2,
                    "backoff_initial_s": 0.2,
                    "backoff_max_s": 0.5,
                },
            },
        }
    )


@pytest.fixture(scope="module")
def sounds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sounds")


@pytest.fixture
async def stack(database: str, tmp_path: Path, sounds_dir: Path) -> AsyncIterator[Stack]:
    async with running_stack(
        config(), database, tmp_path, time_scale=TIME_SCALE, sounds_dir=sounds_dir
    ) as running:
        for name, steps in PHONES.items():
            running.sim.register_script(name, steps)
        yield running
        # Nothing left behind in Asterisk: no caller, no notification call.
        await running.wait_calls_done(30)
        assert running.leftovers() == NOTHING_LEFT


async def settled_delivery(stack: Stack, did: str, timeout: float = 60) -> dict[str, Any]:
    """The alert of the call to `did` once its phone delivery is sent or dead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in await stack.alerts():
            if alert["number_did"] != did:
                continue
            phone = [d for d in alert["deliveries"] if d["destination"] == "phone"]
            if phone and phone[0]["state"] in ("sent", "dead"):
                await stack.wait_calls_done(30)  # the call's own hang-up, after the result
                return alert
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no settled phone delivery for {did}")


def log_kinds(alert: dict[str, Any]) -> list[str]:
    return [entry["kind"] for entry in alert["log"] if entry["kind"].startswith("phone_")]


def notification_calls(stack: Stack) -> list[tuple[str, list[str]]]:
    """Each notification call placed: its endpoint and what it heard, in order."""
    return [
        (h["endpoint"], stack.heard(h["channel_id"]))
        for h in inspect.history(stack.sim.asterisk)
        if str(h["channel_id"]).startswith("notify-")
    ]


async def test_the_person_answers_and_acknowledges_with_4(stack: Stack) -> None:
    await stack.place_call("leave_message", "500")
    alert = await settled_delivery(stack, "500")
    assert alert["status"] == "acknowledged" and alert["acknowledged_by"] == "ann"
    (delivery,) = [d for d in alert["deliveries"] if d["destination"] == "phone"]
    assert delivery["state"] == "sent" and delivery["attempts"] == 1
    assert log_kinds(alert) == ["phone_call_answered", "phone_key"]
    key = next(e["data"] for e in alert["log"] if e["kind"] == "phone_key")
    assert (key["digit"], key["action"], key["user_id"]) == ("4", "acknowledge", "ann")
    kinds = [e["kind"] for e in alert["log"]]
    assert "alert_acknowledged" in kinds and "delivery_sent" in kinds
    # The escalation stopped: nothing more is due for this alert.
    after = kinds[kinds.index("alert_acknowledged") :]
    assert "escalation_rule_notified" not in after and "escalation_started" not in after
    ((endpoint, heard),) = notification_calls(stack)
    assert endpoint == "Local/press4@responders"
    # The alert in words (cut short by the key), then what was done.
    assert heard[0] == (
        "Alert from Acme Night: a voicemail from Caller, 4 9 3 0 9 9 9 0 0 0 for Acme Night."
    )
    assert heard[-1] == "Acknowledged. Goodbye."


async def test_a_phone_that_never_answers_then_the_next_contact_resolves_with_6(
    stack: Stack,
) -> None:
    await stack.place_call("leave_message", "501")
    alert = await settled_delivery(stack, "501")
    assert alert["status"] == "resolved" and alert["resolved_by"] == "rob"
    (delivery,) = [d for d in alert["deliveries"] if d["destination"] == "phone"]
    assert delivery["state"] == "sent" and delivery["attempts"] == 1
    assert log_kinds(alert) == ["phone_not_reached", "phone_call_answered", "phone_key"]
    missed = next(e["data"] for e in alert["log"] if e["kind"] == "phone_not_reached")
    assert (missed["contact"], missed["why"]) == ("Local/noanswer@responders", "no answer")
    calls = notification_calls(stack)
    assert [endpoint for endpoint, _ in calls] == [
        "Local/noanswer@responders",
        "Local/press6@responders",
    ]
    assert calls[0][1] == []  # never answered: heard nothing
    assert calls[1][1][-1] == "Resolved. Goodbye."


async def test_a_personal_mailbox_is_not_reached_and_the_alert_stays_open(stack: Stack) -> None:
    await stack.place_call("leave_message", "502")
    alert = await settled_delivery(stack, "502", timeout=90)
    assert alert["status"] == "open"
    (delivery,) = [d for d in alert["deliveries"] if d["destination"] == "phone"]
    # Retried once after a short backoff, then a dead letter (max_attempts 2).
    assert delivery["state"] == "dead" and delivery["attempts"] == 2
    assert delivery["last_error"].startswith("not reached: Local/mailbox@responders (no key)")
    kinds = [e["kind"] for e in alert["log"]]
    assert kinds.count("phone_call_answered") == 2 and kinds.count("phone_not_reached") == 2
    assert "phone_key" not in kinds
    assert "delivery_failed" in kinds and "delivery_dead" in kinds
    calls = notification_calls(stack)
    assert len(calls) == 2
    for _, heard in calls:
        # The whole message (with the voicemail) then, after silence, said once more.
        assert heard[0].startswith("Alert from Acme Holiday: a voicemail")
        assert (
            heard.count(
                "Press 4 to acknowledge, 6 to resolve, 5 to escalate now, 1 to hear this again."
            )
            == 2
        )


def test_the_sentence_says_what_happened() -> None:
    data = {
        "reason": "nobody_available",
        "alert": {"number_name": "Acme", "caller_id": '"Jo" <+4917>', "route": "Database"},
    }
    assert alert_sentence(data, "en") == (
        "Alert from Acme: a missed call from Jo, 4 9 1 7 for Database."
    )
    hung_up = alert_sentence({**data, "reason": "caller_abandoned"}, "de-AT")
    assert hung_up.startswith("Alarm von Acme: ein Anrufer, der aufgelegt hat")
    assert speaking_language("xx") == "en"  # no sentences in that language: English
    assert spoken_caller(None, "en") == "an unknown number"
    assert spoken_caller("anonymous", "en") == "anonymous"
