"""What each destination receives for one delivery: a Slack or Mattermost incoming-webhook
message, a Microsoft Teams Workflows webhook with an Adaptive Card, or, for a generic webhook,
the delivery's payload as it is. Pure: no I/O, no clock.

A payload is `{"type": <event>, "timestamp": <iso>, "data": {"alert": {...}, ...}}` (see the
README, "Alert deliveries"). Every key may be missing or null: a message is always produced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

DestinationType = Literal["slack", "mattermost", "teams", "webhook"]

TEAMS_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


@dataclass(frozen=True)
class Mention:
    """The person a delivery notifies: `handle` is the destination's own mention syntax
    (`<@U024BE7LH>` on Slack, `@alice` on Mattermost, an e-mail or Entra ID on Teams)."""

    name: str
    handle: str | None


@dataclass(frozen=True)
class Summary:
    """What a chat message says, whatever the chat: a headline, labelled facts, a link."""

    title: str
    facts: tuple[tuple[str, str], ...]
    url: str | None
    mention: Mention | None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    """A printable scalar, or None for anything missing, empty or structured."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float):
        return str(value)
    return None


def _seconds(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return f"{round(value)} s"


def _words(code: str) -> str:
    return code.replace("_", " ")


def _tried(value: object) -> str | None:
    if not isinstance(value, list):
        return None
    if not value:
        return "nobody"
    people = []
    for entry in value:
        item = _mapping(entry)
        user = _text(item.get("user")) or "someone"
        outcome = _text(item.get("outcome"))
        people.append(f"{user} ({_words(outcome)})" if outcome else user)
    return ", ".join(people)


def _what_happened(event: str, data: Mapping[str, Any], alert: Mapping[str, Any]) -> str:
    route = _text(alert.get("route"))
    number_name = _text(alert.get("number_name")) or _text(alert.get("number")) or "the hotline"
    target = route or number_name
    voicemail = _mapping(alert.get("voicemail"))
    duration = _seconds(voicemail.get("duration_s"))
    voicemail_text = f"A voicemail ({duration}) for {target}" if duration else None

    if event == "alert.escalated":
        reason = _text(data.get("reason")) or _text(alert.get("ended_reason"))
        if reason == "voicemail":
            return (voicemail_text or f"A voicemail for {target}") + ": nobody took the call"
        if reason in ("caller_abandoned", "abandoned"):
            return f"A caller for {target} hung up before anyone answered"
        if reason == "nobody_available":
            return f"A missed call for {target}: nobody was available"
        if reason in ("controller_error", "error"):
            return f"A call for {target} failed in the call controller"
        return f"An alert for {target} was escalated" + (f" ({_words(reason)})" if reason else "")
    if event == "voicemail.created":
        return voicemail_text or f"A voicemail for {target}"
    if event == "alert.acknowledged":
        who = _text(alert.get("acknowledged_by"))
        return f"Acknowledged by {who}" if who else "Acknowledged"
    if event == "alert.resolved":
        who = _text(alert.get("resolved_by"))
        return f"Resolved by {who}" if who else "Resolved"
    if event == "alert.created":
        return f"A call for {target}" if route else f"A call to {number_name}"
    return f"{_words(event) if event else 'An alert event'} for {target}"


def summarize(payload: Mapping[str, Any]) -> Summary:
    """The readable gist of a delivery payload, shared by every chat format."""
    event = _text(payload.get("type")) or ""
    data = _mapping(payload.get("data"))
    alert = _mapping(data.get("alert"))

    facts: list[tuple[str, str]] = []
    number, name = _text(alert.get("number")), _text(alert.get("number_name"))
    if number or name:
        facts.append(("Number", f"{name} ({number})" if name and number else name or number or ""))
    facts.append(("Caller", _text(alert.get("caller_id")) or "unknown"))
    route = _text(alert.get("route"))
    if route:
        facts.append(("Route", route))
    tried = _tried(alert.get("tried"))
    if tried:
        facts.append(("Tried", tried))
    duration = _seconds(_mapping(alert.get("voicemail")).get("duration_s"))
    if duration:
        facts.append(("Voicemail", duration))
    status = _text(alert.get("status"))
    if status:
        facts.append(("Status", status))

    user = _mapping(data.get("user"))
    user_name = _text(user.get("name")) or _text(user.get("id"))
    mention = Mention(user_name, _text(user.get("mention"))) if user_name else None
    return Summary(
        title=_what_happened(event, data, alert),
        facts=tuple(facts),
        url=_text(alert.get("url")),
        mention=mention,
    )


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (notifications, fallback) and `blocks`."""
    s = summarize(payload)
    who = ""
    if s.mention is not None:
        who = s.mention.handle or _slack_escape(s.mention.name)
    title = _slack_escape(s.title)
    text = f"{who}: {title}" if who else title
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
    ]
    if who:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{who}, this alert is yours"}}
        )
    # A section holds at most 10 fields.
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)}"}
        for label, value in s.facts[:10]
    ]
    blocks.append({"type": "section", "fields": fields})
    if s.url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open alert"},
                        "url": s.url,
                    }
                ],
            }
        )
        text += f" <{s.url}|Open alert>"
    return {"text": text, "blocks": blocks}


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_~[]<>|"})


def _markdown_escape(text: str) -> str:
    return text.translate(_MARKDOWN_SPECIAL)


def mattermost_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Mattermost incoming-webhook message: one markdown `text`."""
    s = summarize(payload)
    lines = [f"#### {_markdown_escape(s.title)}"]
    if s.mention is not None:
        who = s.mention.handle or _markdown_escape(s.mention.name)
        lines.append(f"{who}, this alert is yours")
    lines.extend(f"**{label}:** {_markdown_escape(value)}" for label, value in s.facts)
    if s.url:
        lines.append(f"[Open alert]({s.url})")
    return {"text": "\n".join(lines)}


def teams_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Microsoft Teams Workflows webhook message carrying an Adaptive Card 1.4."""
    s = summarize(payload)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": s.title, "weight": "Bolder", "size": "Medium", "wrap": True}
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    if s.mention is not None:
        if s.mention.handle:
            # A real mention: the <at> text in the card and an entity naming the person.
            tag = f"<at>{s.mention.name}</at>"
            card["msteams"]["entities"] = [
                {
                    "type": "mention",
                    "text": tag,
                    "mentioned": {"id": s.mention.handle, "name": s.mention.name},
                }
            ]
        else:
            tag = s.mention.name
        body.append({"type": "TextBlock", "text": f"{tag}, this alert is yours", "wrap": True})
    body.append(
        {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in s.facts]}
    )
    if s.url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open alert", "url": s.url}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": TEAMS_CARD_CONTENT_TYPE, "contentUrl": None, "content": card}
        ],
    }


def webhook_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A generic webhook gets the payload itself: the event, its time and the alert."""
    return dict(payload)


def message_body(kind: DestinationType, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object a destination of this type receives for this payload."""
    if kind == "slack":
        return slack_message(payload)
    if kind == "mattermost":
        return mattermost_message(payload)
    if kind == "teams":
        return teams_message(payload)
    return webhook_body(payload)


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The bytes sent (and signed): compact UTF-8 JSON, the same for the same body."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
