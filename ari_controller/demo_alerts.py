"""The alert half of `make demo`: a chat receiver, a webhook receiver and an SMTP server on
loopback, one alert acknowledged through the API, one by key on a notification call, and what
each receiver got.

The demo configuration sends its alert events to `DEMO_CHAT_URL` (Slack-shaped chat) and
`DEMO_WEBHOOK_URL` (signed per Standard Webhooks with `DEMO_WEBHOOK_SECRET`); this module
starts both receivers and sets those variables before the daemon starts.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email
import email.policy
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiosmtpd.controller import Controller as SmtpController

from ari_controller.alerts.signing import sign
from ari_controller.alerts.tokens import create_token

# The night desk's voicemail alert is acknowledged through the API as soon as its first rule
# is notified: its second rule (Kim, 3 s later) is never notified.
ACKNOWLEDGED_NUMBER = "400"
# The night desk's alert nobody acknowledges: it reaches its second rule.
ESCALATING_NUMBER = "300"
# The after-hours voicemail: Olga gets a mail, and a call on which her phone presses 4.
CALLED_NUMBER = "200"
ON_CALL_PHONE: list[Any] = [
    {"ring": {}},
    {"wait": 1},
    {"answer": {}},
    {"wait": 4},
    {"dtmf": "4"},
    {"wait": 60},
    {"hangup": {}},
]


class Inbox:
    """What the demo's SMTP server took (an aiosmtpd handler)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(
            envelope.original_content or b"", policy=email.policy.default
        )
        if isinstance(message, EmailMessage):
            self.messages.append(message)
        return "250 OK"


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    signature_ok: bool | None  # None: not a signed webhook


@dataclass
class Receivers:
    """Two local HTTP endpoints that keep what they are sent."""

    secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    got: list[Received] = field(default_factory=list)
    inbox: Inbox = field(default_factory=Inbox)
    smtp_port: int = 0
    _runner: web.AppRunner | None = None
    _smtp: Any = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.post("/chat", self._take), web.post("/hook", self._take)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        os.environ["DEMO_CHAT_URL"] = f"http://127.0.0.1:{port}/chat"
        os.environ["DEMO_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/hook"
        os.environ["DEMO_WEBHOOK_SECRET"] = self.secret
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.smtp_port = probe.getsockname()[1]
        self._smtp = SmtpController(self.inbox, hostname="127.0.0.1", port=self.smtp_port)
        await asyncio.to_thread(self._smtp.start)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._smtp is not None:
            await asyncio.to_thread(self._smtp.stop)
            self._smtp = None

    async def _take(self, request: web.Request) -> web.Response:
        raw = await request.read()
        checked: bool | None = None
        if request.path == "/hook":
            headers = request.headers
            expected = sign(
                self.secret,
                headers.get("webhook-id", ""),
                int(headers.get("webhook-timestamp", "0")),
                raw,
            )
            checked = expected in headers.get("webhook-signature", "").split()
        self.got.append(Received(request.path, json.loads(raw), checked))
        return web.json_response({"ok": True})

    def chat_mentions(self) -> list[tuple[str, str]]:
        """(mention, number) of each chat message that notified a person."""
        found = []
        for item in self.got:
            if item.path != "/chat":
                continue
            text = item.body.get("text", "")
            who = text.split(":", 1)[0] if text.startswith("@") else ""
            found.append((who, number_of(item.body)))
        return found


def number_of(chat: dict[str, Any]) -> str:
    """The hotline number a chat message is about (its "Number" field says "Name (did)")."""
    text = json.dumps(chat)
    return next((n for n in ("100", "200", "300", "400") if f"({n})" in text), "?")


async def acknowledge_when_notified(dsn: str, api_base: str, deadline_s: float) -> str | None:
    """Wait for the night desk's voicemail alert to notify its first rule, then acknowledge it
    through the API with a fresh write token, as a person would; the alert id, or None."""
    conn = await asyncpg.connect(dsn)
    try:
        token = await create_token(conn, "demo-console", "write", dt.datetime.now(dt.UTC))
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            alert_id = await conn.fetchval(
                "SELECT a.id FROM alerts a JOIN alert_log l ON l.alert_id = a.id"
                " WHERE a.number_did = $1 AND l.kind = 'escalation_rule_notified' LIMIT 1",
                ACKNOWLEDGED_NUMBER,
            )
            if alert_id is not None:
                async with aiohttp.ClientSession() as session:
                    async with session.post(
                        f"{api_base}/api/alerts/{alert_id}/acknowledge",
                        headers={"Authorization": f"Bearer {token.secret}"},
                        json={"by": "demo operator"},
                        timeout=aiohttp.ClientTimeout(total=5),
                    ) as response:
                        if response.status != 200:
                            return None
                return str(alert_id)
            await asyncio.sleep(0.1)
        return None
    finally:
        await conn.close()


async def wait_deliveries_done(dsn: str, receivers: Receivers, deadline_s: float) -> None:
    """Until the escalating alert reached its second rule and nothing due is left to send."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            pending = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE state = 'pending' AND due_at <= now()"
            )
            called = await conn.fetchval(
                "SELECT acknowledged_by FROM alerts WHERE number_did = $1", CALLED_NUMBER
            )
            if (
                not pending
                and ("@kim", ESCALATING_NUMBER) in receivers.chat_mentions()
                and called is not None
                and receivers.inbox.messages
            ):
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def print_received(receivers: Receivers) -> list[str]:
    """What each receiver got; the problems found (a bad signature, a missing message)."""
    print("\nWhat the chat receiver got (Slack-shaped messages):")
    for item in receivers.got:
        if item.path == "/chat":
            print(f"   [{number_of(item.body)}] {item.body.get('text', '')}")
    print("\nWhat the webhook receiver got (Standard Webhooks, signature checked):")
    for item in receivers.got:
        if item.path == "/hook":
            alert = item.body.get("data", {}).get("alert", {})
            verdict = "signature ok" if item.signature_ok else "BAD SIGNATURE"
            print(
                f"   {item.body.get('type'):<20} number {alert.get('number')}"
                f"  status {alert.get('status')}  {verdict}"
            )
    print("\nWhat the SMTP server got:")
    for message in receivers.inbox.messages:
        attached = [part.get_filename() or "?" for part in message.iter_attachments()]
        print(f"   to {message['To']}: {message['Subject']}")
        print(f"      attached: {', '.join(attached) or 'nothing'}")
    problems = [
        f"bad signature on {i.body.get('type')}" for i in receivers.got if i.signature_ok is False
    ]
    if not any(list(m.iter_attachments()) for m in receivers.inbox.messages):
        problems.append("no mail with the voicemail attached reached the SMTP server")
    mentions = receivers.chat_mentions()
    if ("@kim", ESCALATING_NUMBER) not in mentions:
        problems.append("the night desk's alert never reached its second rule (Kim)")
    if ("@kim", ACKNOWLEDGED_NUMBER) in mentions:
        problems.append("the acknowledged alert still reached its second rule")
    if not any(i.path == "/hook" for i in receivers.got):
        problems.append("the webhook receiver got nothing")
    return problems
