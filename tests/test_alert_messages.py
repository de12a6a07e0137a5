"""What each destination type receives for a delivery (Slack, Mattermost, Teams, a generic
webhook), and the Standard Webhooks signature of the bytes sent, checked with the standard's
own library."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ari_controller.alerts.messages import (
    TEAMS_CARD_CONTENT_TYPE,
    encode_body,
    mattermost_message,
    message_body,
    slack_message,
    summarize,
    teams_message,
    webhook_body,
)
from ari_controller.alerts.signing import (
    InvalidSecretError,
    secret_key,
    sign,
    webhook_headers,
)

URL = "https://oncall.example.com/alerts/6f1c"


def _payload(event: str = "alert.escalated", **data: Any) -> dict[str, Any]:
    alert = {
        "id": "6f1c",
        "number": "+4930123456",
        "number_name": "Acme Operations",
        "caller_id": "+4917099999",
        "route": "Database",
        "policy_id": "dba",
        "status": "open",
        "ended_reason": "nobody_available",
        "acknowledged_by": None,
        "created_at": "2026-03-02T10:00:00+00:00",
        "escalation_count": 1,
        "voicemail": None,
        "tried": [
            {"user": "alice", "outcome": "no_answer"},
            {"user": "bob", "outcome": "busy"},
        ],
        "url": URL,
    }
    alert.update(data.pop("alert", {}))
    return {
        "type": event,
        "timestamp": "2026-03-02T10:01:00+00:00",
        "data": {"alert": alert, **data},
    }


def _slack_text(message: dict[str, Any]) -> str:
    parts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block and isinstance(block["text"], dict):
            parts.append(block["text"]["text"])
        parts.extend(f["text"] for f in block.get("fields", []))
    return "\n".join(parts)


def _card(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == TEAMS_CARD_CONTENT_TYPE
    card: dict[str, Any] = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    return card


def _card_text(card: dict[str, Any]) -> str:
    parts = []
    for element in card["body"]:
        if element["type"] == "TextBlock":
            parts.append(element["text"])
        if element["type"] == "FactSet":
            parts.extend(f"{f['title']}: {f['value']}" for f in element["facts"])
    return "\n".join(parts)


# --- what happened -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "title"),
    [
        (_payload(reason="nobody_available"), "A missed call for Database: nobody was available"),
        (
            _payload(
                reason="voicemail",
                alert={"voicemail": {"id": "v1", "duration_s": 41.6}, "ended_reason": "voicemail"},
            ),
            "A voicemail (42 s) for Database: nobody took the call",
        ),
        (
            _payload(reason="caller_abandoned", alert={"ended_reason": "abandoned"}),
            "A caller for Database hung up before anyone answered",
        ),
        (
            _payload(reason="controller_error"),
            "A call for Database failed in the call controller",
        ),
        (
            _payload("alert.acknowledged", alert={"acknowledged_by": "alice"}),
            "Acknowledged by alice",
        ),
        (_payload("alert.resolved", alert={"resolved_by": "bob"}), "Resolved by bob"),
        (_payload("alert.resolved"), "Resolved"),
        (
            _payload("voicemail.created", alert={"voicemail": {"id": "v1", "duration_s": 12}}),
            "A voicemail (12 s) for Database",
        ),
        (_payload("alert.created", alert={"route": None}), "A call to Acme Operations"),
        (_payload("alert.created"), "A call for Database"),
        # No reason given: the alert's ending says what happened.
        (_payload(), "A missed call for Database: nobody was available"),
        (_payload(reason="odd_reason"), "An alert for Database was escalated (odd reason)"),
    ],
)
def test_the_headline_says_what_happened(payload: dict[str, Any], title: str) -> None:
    assert summarize(payload).title == title


def test_the_facts_name_number_caller_route_and_who_was_tried() -> None:
    summary = summarize(_payload())
    assert dict(summary.facts) == {
        "Number": "Acme Operations (+4930123456)",
        "Caller": "+4917099999",
        "Route": "Database",
        "Tried": "alice (no answer), bob (busy)",
        "Status": "open",
    }
    assert summary.url == URL
    assert summary.mention is None


def test_nobody_tried_and_no_caller_id_are_said_plainly() -> None:
    facts = dict(summarize(_payload(alert={"tried": [], "caller_id": None})).facts)
    assert facts["Tried"] == "nobody"
    assert facts["Caller"] == "unknown"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"type": "alert.escalated"},
        {"type": 7, "data": "nonsense"},
        {"type": "alert.escalated", "data": {"alert": None, "user": "x"}},
        {
            "type": "alert.escalated",
            "data": {"alert": {"tried": [None, {"user": 3}], "voicemail": "v", "route": ["x"]}},
        },
    ],
)
def test_missing_or_odd_keys_still_give_every_message(payload: dict[str, Any]) -> None:
    for kind in ("slack", "mattermost", "teams", "webhook"):
        body = message_body(kind, payload)  # type: ignore[arg-type]
        json.dumps(body)  # serialisable
    assert summarize(payload).title
    assert dict(summarize(payload).facts)["Caller"] == "unknown"


# --- Slack ---------------------------------------------------------------------------------


def test_slack_gets_text_and_blocks_with_the_facts_and_a_link() -> None:
    message = slack_message(_payload())
    assert set(message) == {"text", "blocks"}
    assert message["text"].startswith("A missed call for Database")
    assert f"<{URL}|Open alert>" in message["text"]
    types = [block["type"] for block in message["blocks"]]
    assert types == ["section", "section", "actions"]
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert "*Caller*\n+4917099999" in fields
    assert "*Tried*\nalice (no answer), bob (busy)" in fields
    assert all(f["type"] == "mrkdwn" for f in message["blocks"][1]["fields"])
    [button] = message["blocks"][2]["elements"]
    assert button == {
        "type": "button",
        "text": {"type": "plain_text", "text": "Open alert"},
        "url": URL,
    }


def test_slack_mentions_the_notified_person_and_escapes_control_characters() -> None:
    payload = _payload(
        rule=0,
        user={"id": "alice", "name": "Alice", "mention": "<@U024BE7LH>"},
        alert={"caller_id": "<script> & co", "url": None},
    )
    message = slack_message(payload)
    assert message["text"].startswith("<@U024BE7LH>: A missed call")
    text = _slack_text(message)
    assert "<@U024BE7LH>, this alert is yours" in text
    assert "&lt;script&gt; &amp; co" in text
    assert "<script>" not in text
    assert all(block["type"] != "actions" for block in message["blocks"])  # no url, no button


def test_slack_names_the_person_without_a_mention_handle() -> None:
    message = slack_message(_payload(user={"id": "bob", "name": "Bob", "mention": None}))
    assert message["text"].startswith("Bob: ")


# --- Mattermost ----------------------------------------------------------------------------


def test_mattermost_gets_markdown_text_with_facts_link_and_mention() -> None:
    payload = _payload(
        reason="voicemail",
        alert={"voicemail": {"id": "v", "duration_s": 30}, "caller_id": "*bold*_x_"},
        user={"id": "alice", "name": "Alice", "mention": "@alice"},
    )
    message = mattermost_message(payload)
    assert set(message) == {"text"}
    lines = message["text"].splitlines()
    assert lines[0] == "#### A voicemail (30 s) for Database: nobody took the call"
    assert lines[1] == "@alice, this alert is yours"
    assert "**Number:** Acme Operations (+4930123456)" in lines
    assert "**Caller:** \\*bold\\*\\_x\\_" in lines
    assert "**Voicemail:** 30 s" in lines
    assert "**Tried:** alice (no answer), bob (busy)" in lines
    assert lines[-1] == f"[Open alert]({URL})"


def test_mattermost_without_a_link_has_none() -> None:
    text = mattermost_message(_payload(alert={"url": None}))["text"]
    assert "Open alert" not in text


# --- Microsoft Teams -----------------------------------------------------------------------


def test_teams_gets_an_adaptive_card_with_facts_and_an_open_url_action() -> None:
    card = _card(teams_message(_payload()))
    title = card["body"][0]
    assert title == {
        "type": "TextBlock",
        "text": "A missed call for Database: nobody was available",
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
    }
    [facts] = [e for e in card["body"] if e["type"] == "FactSet"]
    assert {"title": "Caller", "value": "+4917099999"} in facts["facts"]
    assert {"title": "Route", "value": "Database"} in facts["facts"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open alert", "url": URL}]
    assert "entities" not in card["msteams"]


def test_teams_mentions_with_an_at_tag_and_a_matching_entity() -> None:
    payload = _payload(user={"id": "alice", "name": "Alice", "mention": "alice@example.com"})
    card = _card(teams_message(payload))
    assert "<at>Alice</at>, this alert is yours" in _card_text(card)
    [entity] = card["msteams"]["entities"]
    assert entity == {
        "type": "mention",
        "text": "<at>Alice</at>",
        "mentioned": {"id": "alice@example.com", "name": "Alice"},
    }


def test_teams_without_a_link_or_handle_has_no_action_and_no_entity() -> None:
    payload = _payload(alert={"url": None}, user={"id": "bob", "name": "Bob"})
    card = _card(teams_message(payload))
    assert "actions" not in card
    assert "entities" not in card["msteams"]
    assert "Bob, this alert is yours" in _card_text(card)


# --- generic webhook -----------------------------------------------------------------------


def test_a_webhook_gets_the_payload_as_it_is() -> None:
    payload = _payload(reason="nobody_available", rule=1)
    assert webhook_body(payload) == payload
    assert message_body("webhook", payload) == payload
    assert json.loads(encode_body(payload)) == payload


def test_message_body_picks_the_format_by_type() -> None:
    payload = _payload()
    assert message_body("slack", payload) == slack_message(payload)
    assert message_body("mattermost", payload) == mattermost_message(payload)
    assert message_body("teams", payload) == teams_message(payload)


def test_the_encoded_body_is_compact_utf8_and_the_same_every_time() -> None:
    payload = _payload(alert={"number_name": "Störungsannahme"})
    body = encode_body(payload)
    assert body == encode_body(json.loads(body))
    assert "Störungsannahme".encode() in body
    assert b": " not in body


# --- signing -------------------------------------------------------------------------------

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _now_ts() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


@pytest.mark.parametrize(
    ("secret", "verifier_secret"),
    [
        (WHSEC, WHSEC),  # the standard's form: base64 after whsec_
        ("plain-shared-secret", b"plain-shared-secret"),  # any other string: its UTF-8 bytes
    ],
)
def test_the_signature_verifies_with_the_standard_library(
    secret: str, verifier_secret: str | bytes
) -> None:
    body = encode_body(_payload())
    headers = webhook_headers(secret, "msg_2f3a", _now_ts(), body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_2f3a"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(verifier_secret).verify(body, headers) == _payload()


def test_a_changed_body_id_or_timestamp_does_not_verify() -> None:
    body = encode_body(_payload())
    ts = _now_ts()
    headers = webhook_headers(WHSEC, "msg_1", ts, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(body.replace(b"Database", b"Databass"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(body, headers | {"webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(body, headers | {"webhook-timestamp": str(ts - 1)})


def test_the_signature_matches_the_standard_librarys_own_signing() -> None:
    body = encode_body(_payload())
    ts = 1_767_225_600
    expected = Webhook(WHSEC).sign("msg_1", dt.datetime.fromtimestamp(ts, dt.UTC), body.decode())
    assert sign(WHSEC, "msg_1", ts, body) == expected


def test_unpadded_whsec_secrets_are_accepted_and_bad_ones_named() -> None:
    assert secret_key(WHSEC.rstrip("=")) == secret_key(WHSEC)
    with pytest.raises(InvalidSecretError, match="base64"):
        secret_key("whsec_not*base64!")
    with pytest.raises(InvalidSecretError, match="empty"):
        secret_key("")
    with pytest.raises(InvalidSecretError, match="empty"):
        secret_key("whsec_")
