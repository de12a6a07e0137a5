"""Alert e-mails: what a person notified by `method: email` receives, and the sender the
delivery worker hands those deliveries to.

`build_message` is pure: the subject and body say what happened (the same headline and facts
as the chat messages, alerts/messages.py), the alert's short timeline when given, how to act
(signed acknowledge/resolve links to the daemon's confirmation page, or the command-line
commands when there are no links) and the voicemail as a WAV attachment.

`EmailSender.send` is the I/O: it looks the person's address up in the current
configuration, reads the voicemail audio and the alert's log from Postgres, and sends over
SMTP (aiosmtplib: STARTTLS, TLS or plain, per `alerts.email`), bounded by `timeout_s`. A
failure is an `Attempt` with no status and its error: the worker retries it, then gives up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import html
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import aiosmtplib
import asyncpg

from ari_controller.alerts.delivery import Attempt, Claim, Sender
from ari_controller.alerts.links import make_link
from ari_controller.alerts.messages import summarize
from ari_controller.config import AlertsSettings, Config, EmailSettings

# The SMTP status of a message the server took.
SMTP_OK = 250
# A claim of an e-mail lasts its SMTP timeout plus this (reading the voicemail, logging).
LEASE_MARGIN_S = 30.0
# The timeline in a mail: its last entries only.
TIMELINE_ENTRIES = 12
_ERROR_CHARS = 300


@dataclass(frozen=True)
class ActionLinks:
    """Signed links to the confirmation page, valid until `expires_at`."""

    acknowledge: str
    resolve: str
    expires_at: dt.datetime


def email_lease_s(settings: EmailSettings) -> float:
    """How long a claimed e-mail delivery is held: longer than one send can take."""
    return settings.timeout_s + LEASE_MARGIN_S


def action_links(
    alerts: AlertsSettings, alert_id: str, user_id: str | None, now: dt.datetime
) -> ActionLinks | None:
    """Links for this person, or None without a public base URL, a link secret in the
    environment, or a person to act as."""
    secret = os.environ.get(alerts.link_secret_env) if alerts.link_secret_env else None
    if not (alerts.public_base_url and secret and user_id and alert_id):
        return None
    expires_at = now + dt.timedelta(hours=alerts.link_ttl_hours)
    base = alerts.public_base_url
    return ActionLinks(
        acknowledge=make_link(base, alert_id, "acknowledge", user_id, expires_at, secret),
        resolve=make_link(base, alert_id, "resolve", user_id, expires_at, secret),
        expires_at=expires_at,
    )


# --- the message (pure) --------------------------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def subject_line(payload: Mapping[str, Any]) -> str:
    """`[Acme Night Desk] Missed call for the night shift: nobody was available`."""
    summary = summarize(payload)
    alert = _mapping(_mapping(payload.get("data")).get("alert"))
    title = summary.title
    for article in ("A ", "An "):
        if title.startswith(article):
            title = title[len(article) :]
            title = title[:1].upper() + title[1:]
            break
    name = alert.get("number_name") or alert.get("number")
    return f"[{name}] {title}" if isinstance(name, str) and name.strip() else title


def _timeline_lines(timeline: Sequence[tuple[dt.datetime, str]]) -> list[str]:
    return [
        f"{at.astimezone(dt.UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC  {what}"
        for at, what in timeline[-TIMELINE_ENTRIES:]
    ]


def build_message(
    payload: Mapping[str, Any],
    user_email: str,
    settings: EmailSettings,
    links: ActionLinks | None,
    voicemail_wav: bytes | None,
    *,
    timeline: Sequence[tuple[dt.datetime, str]] | None = None,
) -> EmailMessage:
    """The e-mail of one delivery to `user_email`: plain text with an HTML alternative, the
    voicemail attached when there is one and `attach_voicemail` is on."""
    summary = summarize(payload)
    alert = _mapping(_mapping(payload.get("data")).get("alert"))
    alert_id = str(alert.get("id") or "")
    attach = voicemail_wav is not None and settings.attach_voicemail

    facts = [
        (label, f"{value} (attached)" if label == "Voicemail" and attach else value)
        for label, value in summary.facts
    ]
    width = max((len(label) for label, _ in facts), default=0) + 1
    text = [summary.title, ""]
    if summary.mention is not None:
        text += [f"{summary.mention.name}, this alert is yours.", ""]
    text += [f"{label + ':':<{width}} {value}" for label, value in facts]
    lines = _timeline_lines(timeline or [])
    if lines:
        text += ["", "Timeline:", *(f"  {line}" for line in lines)]
    text.append("")
    if links is not None:
        expiry = links.expires_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        text += [
            f"Acknowledge: {links.acknowledge}",
            f"Resolve:     {links.resolve}",
            f"(Each link opens a page that asks you to confirm; they expire {expiry}.)",
        ]
    elif alert_id:
        text += [
            "To act on it from the command line:",
            f"  ari-controller alerts ack {alert_id}",
            f"  ari-controller alerts resolve {alert_id}",
        ]
    if summary.url:
        text += ["", f"Open the alert: {summary.url}"]

    message = EmailMessage()
    message["Subject"] = subject_line(payload)
    message["From"] = settings.from_address
    message["To"] = user_email
    message.set_content("\n".join(text) + "\n")
    message.add_alternative(
        _html(summary.title, summary.mention, facts, lines, links, alert_id, summary.url),
        subtype="html",
    )
    if attach and voicemail_wav is not None:
        message.add_attachment(
            voicemail_wav,
            maintype="audio",
            subtype="wav",
            filename=f"voicemail-{alert_id[:8] or 'alert'}.wav",
        )
    return message


def _html(
    title: str,
    mention: Any,
    facts: Sequence[tuple[str, str]],
    timeline: Sequence[str],
    links: ActionLinks | None,
    alert_id: str,
    url: str | None,
) -> str:
    e = html.escape
    parts = [f"<html><body><h2>{e(title)}</h2>"]
    if mention is not None:
        parts.append(f"<p>{e(mention.name)}, this alert is yours.</p>")
    parts.append("<table>")
    parts += [f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts]
    parts.append("</table>")
    if timeline:
        parts.append("<h3>Timeline</h3><ul>")
        parts += [f"<li>{e(line)}</li>" for line in timeline]
        parts.append("</ul>")
    if links is not None:
        parts.append(
            f"<p><a href='{e(links.acknowledge)}'>Acknowledge</a> &middot; "
            f"<a href='{e(links.resolve)}'>Resolve</a><br>"
            "<small>Each link opens a page that asks you to confirm.</small></p>"
        )
    elif alert_id:
        parts.append(
            "<p>To act on it from the command line:</p>"
            f"<pre>ari-controller alerts ack {e(alert_id)}\n"
            f"ari-controller alerts resolve {e(alert_id)}</pre>"
        )
    if url:
        parts.append(f"<p><a href='{e(url)}'>Open the alert</a></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --- sending -------------------------------------------------------------------------------


async def send_email(message: EmailMessage, settings: EmailSettings) -> Attempt:
    """Hand one message to the SMTP server: Attempt(250) when it took it, else the error."""
    password = settings.resolved_password()
    if settings.password_env and not password:
        return Attempt(
            None, f"environment variable {settings.password_env} (the SMTP password) is not set"
        )
    if settings.username and not password:
        return Attempt(None, "alerts.email.username is set but no password_env")
    try:
        async with asyncio.timeout(settings.timeout_s):
            await aiosmtplib.send(
                message,
                hostname=settings.host,
                port=settings.port,
                username=settings.username if password else None,
                password=password,
                use_tls=settings.security == "tls",
                start_tls=settings.security == "starttls",
                timeout=settings.timeout_s,
            )
    except TimeoutError:
        return Attempt(None, f"no answer from the SMTP server within {settings.timeout_s:g} s")
    except aiosmtplib.SMTPResponseException as exc:
        return Attempt(None, f"SMTP {exc.code}: {exc.message}"[:_ERROR_CHARS])
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS])
    return Attempt(SMTP_OK)


def _describe(kind: str, data: Mapping[str, Any]) -> str:
    what = kind.replace("_", " ")
    details = [
        f"{key} {data[key]}"
        for key in ("reason", "by", "via", "destination", "user_id", "error")
        if isinstance(data.get(key), str | int) and data.get(key) != ""
    ]
    return what + (f" ({', '.join(details)})" if details else "")


class EmailSender:
    """The delivery worker's sender for `email` deliveries (`Sender(EmailSender(...).send,
    lease_s=email_lease_s(...))`). `pool` is an asyncpg pool or a callable giving it;
    `config` gives the current configuration (a reload applies to the next mail)."""

    def __init__(
        self,
        pool: asyncpg.Pool | Callable[[], asyncpg.Pool],
        config: Callable[[], Config],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._pool = pool
        self._config = config
        self._clock = clock

    def _get_pool(self) -> asyncpg.Pool:
        return self._pool if isinstance(self._pool, asyncpg.Pool) else self._pool()

    async def send(self, claim: Claim) -> Attempt:
        config = self._config()
        settings = config.alerts.email
        if settings is None:
            return Attempt(None, "alerts.email (the SMTP server) is not configured")
        user = next((u for u in config.users if u.id == claim.user_id), None)
        if user is None:
            return Attempt(None, f"user '{claim.user_id}' is not in the configuration")
        if not user.email:
            return Attempt(None, f"user '{user.id}' has no email address")
        voicemail, timeline = await self._read(claim.alert_id, settings.attach_voicemail)
        links = action_links(config.alerts, str(claim.alert_id), user.id, self._clock())
        message = build_message(
            claim.payload, user.email, settings, links, voicemail, timeline=timeline
        )
        # The same Message-ID on every retry of one delivery: a receiver can drop duplicates.
        message["Message-ID"] = f"<{claim.id}@ari-controller>"
        message["Date"] = email.utils.format_datetime(self._clock())
        return await send_email(message, settings)

    async def _read(
        self, alert_id: UUID, with_audio: bool
    ) -> tuple[bytes | None, list[tuple[dt.datetime, str]]]:
        async with self._get_pool().acquire() as conn:
            audio = None
            if with_audio:
                audio = await conn.fetchval(
                    "SELECT audio FROM voicemails WHERE alert_id = $1 AND audio IS NOT NULL"
                    " ORDER BY created_at DESC LIMIT 1",
                    alert_id,
                )
            rows = await conn.fetch(
                "SELECT at, kind, data FROM alert_log WHERE alert_id = $1"
                " ORDER BY id DESC LIMIT $2",
                alert_id,
                TIMELINE_ENTRIES,
            )
        timeline = [(row["at"], _describe(row["kind"], _data(row["data"]))) for row in rows]
        return (bytes(audio) if audio is not None else None), timeline[::-1]


def email_senders(
    pool: asyncpg.Pool | Callable[[], asyncpg.Pool],
    config: Callable[[], Config],
    clock: Callable[[], dt.datetime],
) -> dict[str, Sender]:
    """The delivery worker's `email` sender when the configuration has an SMTP server
    (`alerts.email`), else none (an `email` delivery then ends dead, naming the problem)."""
    settings = config().alerts.email
    if settings is None:
        return {}
    sender = EmailSender(pool, config, clock)
    return {"email": Sender(sender.send, lease_s=email_lease_s(settings))}


def _data(value: object) -> Mapping[str, Any]:
    loaded = json.loads(value) if isinstance(value, str | bytes) else value
    return loaded if isinstance(loaded, Mapping) else {}


async def send_test_email(config: Config, user_id: str, payload: Mapping[str, Any]) -> Attempt:
    """`notify-test --method email`: one test mail to the person, no row, no retry."""
    settings = config.alerts.email
    if settings is None:
        return Attempt(None, "alerts.email (the SMTP server) is not configured")
    user = next((u for u in config.users if u.id == user_id), None)
    if user is None or not user.email:
        return Attempt(None, f"user '{user_id}' has no email address")
    message = build_message(payload, user.email, settings, None, None)
    message["Date"] = email.utils.format_datetime(dt.datetime.now(dt.UTC))
    return await send_email(message, settings)
