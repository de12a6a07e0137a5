"""Alert e-mails: the message (subject, body, links or commands, the WAV attachment), and
sending through real SMTP servers on 127.0.0.1 (aiosmtpd): one that takes the mail, one that
refuses it (5xx) and one that drops the connection; the delivery worker retries those, then
gives up (a dead letter)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import random
import socket
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from ari_controller.alerts.delivery import Attempt, Claim, DeliveryWorker, Sender
from ari_controller.alerts.email import (
    ActionLinks,
    EmailSender,
    build_message,
    email_lease_s,
    send_test_email,
    subject_line,
)
from ari_controller.alerts.links import check_link
from ari_controller.cli import EXIT_FAILED, EXIT_OK, main
from ari_controller.config import AlertEngineSettings, Config, EmailSettings
from tests.alert_rows import ManualClock, insert_alert, insert_call

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64))
LINK_SECRET = "a-link-secret"
ENGINE = AlertEngineSettings(
    poll_interval_s=0.05, lease_s=5, max_attempts=3, backoff_initial_s=2, backoff_max_s=8
)


def _payload(
    alert_id: str = "6f1c0000-0000-0000-0000-000000000001", **alert: Any
) -> dict[str, Any]:
    return {
        "type": "alert.escalated",
        "timestamp": "2026-03-02T10:01:00+00:00",
        "data": {
            "alert": {
                "id": alert_id,
                "number": "+4930123456",
                "number_name": "Acme Night Desk",
                "caller_id": "+4917099999",
                "route": "the night shift",
                "status": "open",
                "ended_reason": "nobody_available",
                "tried": [{"user": "alice", "outcome": "no_answer"}],
                "voicemail": None,
                "url": None,
                **alert,
            },
            "reason": "nobody_available",
            "rule": 0,
            "user": {"id": "alice", "name": "Alice", "mention": None},
        },
    }


SETTINGS = EmailSettings(host="127.0.0.1", from_address="oncall@example.com", security="none")


def _text(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


# --- the message ---------------------------------------------------------------------------


def test_the_subject_says_what_happened_on_which_number() -> None:
    assert subject_line(_payload()) == (
        "[Acme Night Desk] Missed call for the night shift: nobody was available"
    )


def test_without_links_the_mail_names_the_commands() -> None:
    message = build_message(_payload(), "alice@example.com", SETTINGS, None, None)
    assert (message["To"], message["From"]) == ("alice@example.com", "oncall@example.com")
    text = _text(message)
    assert "A missed call for the night shift: nobody was available" in text
    assert "Alice, this alert is yours." in text
    assert "Caller:" in text and "+4917099999" in text
    assert "alice (no answer)" in text
    assert "ari-controller alerts ack 6f1c0000-0000-0000-0000-000000000001" in text
    assert "ari-controller alerts resolve 6f1c0000-0000-0000-0000-000000000001" in text
    assert "ari-controller alerts ack" in _text(message, "html")
    assert not list(message.iter_attachments())


def test_links_timeline_and_the_voicemail_attached() -> None:
    expires = dt.datetime(2026, 3, 3, 10, 0, tzinfo=dt.UTC)
    links = ActionLinks("https://x/alerts/1/acknowledge?s", "https://x/alerts/1/resolve?s", expires)
    payload = _payload(voicemail={"id": "v", "duration_s": 4.5})
    timeline = [(dt.datetime(2026, 3, 2, 10, 1, tzinfo=dt.UTC), "alert escalated")]
    message = build_message(payload, "alice@example.com", SETTINGS, links, WAV, timeline=timeline)
    text = _text(message)
    assert "Acknowledge: https://x/alerts/1/acknowledge?s" in text
    assert "Resolve:     https://x/alerts/1/resolve?s" in text
    assert "2026-03-03 10:00 UTC" in text
    assert "2026-03-02 10:01:00 UTC  alert escalated" in text
    assert "4 s (attached)" in text and "ari-controller alerts ack" not in text
    assert "href='https://x/alerts/1/resolve?s'" in _text(message, "html")
    [attachment] = message.iter_attachments()
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_content() == WAV
    # attach_voicemail off: no attachment, the fact stays.
    off = SETTINGS.model_copy(update={"attach_voicemail": False})
    plain = build_message(payload, "alice@example.com", off, links, WAV)
    assert not list(plain.iter_attachments()) and "(attached)" not in _text(plain)


# --- real SMTP servers ---------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler: keeps what it takes, or refuses every message with `refuse`."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.tries = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.tries += 1
        if self.refuse:
            return self.refuse
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


async def _smtp_server(inbox: Inbox) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="test-smtp"), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


class Dropper:
    """A server that takes each connection and closes it at once."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


def _config(
    port: int, *, links: bool = True, email_address: str | None = "alice@example.com"
) -> Config:
    alerts: dict[str, Any] = {
        "email": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from_address": "oncall@example.com",
            "timeout_s": 5,
        },
        "engine": ENGINE.model_dump(),
    }
    if links:
        alerts |= {"public_base_url": "https://oncall.example.com", "link_secret_env": "LINK_KEY"}
    return Config.model_validate(
        {
            "users": [
                {
                    "id": "alice",
                    "name": "Alice",
                    "email": email_address,
                    "contacts": ["PJSIP/alice"],
                    "notify": [{"method": "email"}],
                }
            ],
            "escalation_policies": [{"id": "db-policy", "rules": [{"users": ["alice"]}]}],
            "numbers": [
                {
                    "did": "+4930123456",
                    "name": "Ops",
                    "routes": [{"label": "x", "policy": "db-policy"}],
                }
            ],
            "alerts": alerts,
        }
    )


async def _email_delivery(pool: asyncpg.Pool, alert_id: uuid.UUID, due: dt.datetime) -> uuid.UUID:
    delivery = uuid.uuid4()
    await pool.execute(
        "INSERT INTO deliveries (id, alert_id, event, destination, user_id, payload, state,"
        " due_at, created_at) VALUES ($1, $2, 'alert.escalated', 'email', 'alice', $3::jsonb,"
        " 'pending', $4, $4)",
        delivery,
        alert_id,
        json.dumps(_payload(str(alert_id), voicemail={"id": "v", "duration_s": 4.5})),
        due,
    )
    return delivery


def _worker(pool: asyncpg.Pool, config: Config, clock: ManualClock) -> DeliveryWorker:
    sender = EmailSender(pool, lambda: config, clock)
    assert config.alerts.email is not None
    return DeliveryWorker(
        pool,
        config.alerts,
        clock,
        random.Random(1),
        senders={"email": Sender(sender.send, lease_s=email_lease_s(config.alerts.email))},
    )


@pytest.fixture(autouse=True)
def _link_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINK_KEY", LINK_SECRET)


async def test_a_real_smtp_server_receives_the_mail_with_its_wav_and_signed_links(
    pool: asyncpg.Pool,
) -> None:
    clock = ManualClock()
    inbox = Inbox()
    server, port = await _smtp_server(inbox)
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn, created_at=clock())
        await insert_call(conn, alert_id, at=clock(), audio=WAV)
        await conn.execute(
            "INSERT INTO alert_log (alert_id, at, kind, data) VALUES ($1, $2, 'alert_escalated',"
            ' \'{"reason": "nobody_available"}\')',
            alert_id,
            clock(),
        )
    delivery = await _email_delivery(pool, alert_id, clock())
    try:
        async with _worker(pool, _config(port), clock) as worker:
            assert await worker.deliver_due(clock()) == 1
    finally:
        server.close()
        await server.wait_closed()

    row = await pool.fetchrow("SELECT state, attempts FROM deliveries WHERE id = $1", delivery)
    assert (row["state"], row["attempts"]) == ("sent", 1)
    [(recipients, message)] = inbox.messages
    assert recipients == ["alice@example.com"]
    # A long subject is folded after "Subject:"; unfolded, it reads as sent.
    assert message["Subject"].strip() == (
        "[Acme Night Desk] Missed call for the night shift: nobody was available"
    )
    assert message["Message-ID"] == f"<{delivery}@ari-controller>"
    text = _text(message)
    assert "alert escalated (reason nobody_available)" in text
    [attachment] = message.iter_attachments()
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_content() == WAV

    links = [line.split()[-1] for line in text.splitlines() if line.startswith(("Ack", "Res"))]
    assert len(links) == 2
    for link, action in zip(links, ("acknowledge", "resolve"), strict=True):
        parts = urlsplit(link)
        assert parts.path == f"/alerts/{alert_id}/{action}"
        assert link.startswith("https://oncall.example.com/")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert query["user"] == "alice"
        expires = int(query["expires"])
        assert expires == int((clock() + dt.timedelta(hours=24)).timestamp())
        assert (
            check_link(str(alert_id), action, "alice", expires, query["sig"], LINK_SECRET, clock())
            is None
        )
    kinds = [
        r["kind"]
        for r in await pool.fetch(
            "SELECT kind FROM alert_log WHERE alert_id = $1 ORDER BY id", alert_id
        )
    ]
    assert kinds[-1] == "delivery_sent"


async def test_without_a_public_base_url_the_mail_names_the_commands(pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    inbox = Inbox()
    server, port = await _smtp_server(inbox)
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn, created_at=clock())
    await _email_delivery(pool, alert_id, clock())
    try:
        async with _worker(pool, _config(port, links=False), clock) as worker:
            await worker.deliver_due(clock())
    finally:
        server.close()
        await server.wait_closed()
    [(_, message)] = inbox.messages
    text = _text(message)
    assert f"ari-controller alerts ack {alert_id}" in text and "https://" not in text
    assert not list(message.iter_attachments())  # no voicemail on this alert


@pytest.mark.parametrize("kind", ["refusing", "dropping"])
async def test_a_refusing_or_dropping_server_is_retried_then_dead(
    pool: asyncpg.Pool, kind: str
) -> None:
    clock = ManualClock()
    inbox = Inbox(refuse="554 5.7.1 no thanks")
    dropper = Dropper()
    if kind == "refusing":
        server, port = await _smtp_server(inbox)
    else:
        server = await asyncio.start_server(dropper.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn, created_at=clock())
    delivery = await _email_delivery(pool, alert_id, clock())
    try:
        async with _worker(pool, _config(port), clock) as worker:
            for _ in range(5):
                await worker.deliver_due(clock.advance(10))  # beyond the 8 s backoff cap
    finally:
        server.close()
        await server.wait_closed()

    row = await pool.fetchrow(
        "SELECT state, attempts, last_error FROM deliveries WHERE id = $1", delivery
    )
    assert (row["state"], row["attempts"]) == ("dead", 3)
    if kind == "refusing":
        assert inbox.tries == 3 and not inbox.messages
        assert row["last_error"] == "SMTP 554: 5.7.1 no thanks"
    else:
        assert dropper.connections == 3
        assert row["last_error"].startswith("SMTP")
    log = await pool.fetch(
        "SELECT kind, data FROM alert_log WHERE alert_id = $1 ORDER BY id", alert_id
    )
    assert [r["kind"] for r in log] == ["delivery_failed", "delivery_failed", "delivery_dead"]


async def test_a_person_without_an_address_or_no_smtp_server_is_a_clear_error(
    pool: asyncpg.Pool,
) -> None:
    clock = ManualClock()
    async with pool.acquire() as conn:
        alert_id = await insert_alert(conn, created_at=clock())
    delivery = await _email_delivery(pool, alert_id, clock())
    async with _worker(pool, _config(9, email_address=None), clock) as worker:
        await worker.deliver_due(clock())
    row = await pool.fetchrow("SELECT last_error FROM deliveries WHERE id = $1", delivery)
    assert row["last_error"] == "user 'alice' has no email address"

    no_smtp = _config(9).model_copy(
        update={"alerts": _config(9).alerts.model_copy(update={"email": None})}
    )
    claim = Claim(delivery, alert_id, "alert.escalated", "email", "alice", _payload(), 0, clock())
    attempt = await EmailSender(pool, lambda: no_smtp, clock).send(claim)
    assert attempt == Attempt(None, "alerts.email (the SMTP server) is not configured")
    attempt = await send_test_email(no_smtp, "alice", _payload())
    assert attempt.error == "alerts.email (the SMTP server) is not configured"


async def test_send_test_email_reaches_the_server() -> None:
    inbox = Inbox()
    server, port = await _smtp_server(inbox)
    try:
        attempt = await send_test_email(_config(port), "alice", _payload())
    finally:
        server.close()
        await server.wait_closed()
    assert attempt.ok and attempt.status == 250
    assert inbox.messages[0][0] == ["alice@example.com"]


def test_notify_test_sends_a_test_mail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        data = _config(port).model_dump(mode="json", exclude_none=True)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        argv = ["--log-format", "console", "notify-test", "--config", str(path)]
        assert main([*argv, "--user", "alice", "--method", "email"]) == EXIT_OK
        assert "email to alice@example.com: SMTP 250" in capsys.readouterr().out
        [(recipients, message)] = inbox.messages
        assert recipients == ["alice@example.com"]
        assert "Alice, this alert is yours." in _text(message)
    finally:
        controller.stop()
    # The server gone: a failure, said so.
    assert main([*argv, "--user", "alice", "--method", "email"]) == EXIT_FAILED
    assert "email to alice@example.com: " in capsys.readouterr().out
