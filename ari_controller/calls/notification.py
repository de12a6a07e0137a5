"""A notification call: a person phoned about an alert, able to act on it by key.

Told top-down (`PhoneNotifier.send`, one delivery of the alert engine to destination "phone"):

1. Render what the person will hear, in their language, before anything rings:
   "Alert from <number name>: <what happened>.", the voicemail (when there is one), then
   "Press 4 to acknowledge, 6 to resolve, 5 to escalate now, 1 to hear this again."
2. Take a line: at most `alerts.phone.max_concurrent_calls` notification calls at once, so
   they never take the channels live hotline calls need.
3. Ring the person's contacts in order, each bounded by `ring_timeout_s`. On answer, say the
   message and wait `key_window_s` for a key; silence repeats it, up to `repeats` times.
   4, 6 and 5 act on the alert (alerts/actions.py, via "phone"), say what was done and hang up:
   the person was reached. Silence, a hang-up or a personal mailbox (no key within the
   windows) is "not reached": the next contact is rung.
4. Every contact not reached: the delivery failed ("not reached ..."), and the delivery worker
   retries it with backoff until it is dead.

Every wait is bounded (the whole send by the delivery's claim); every leg is hung up and
released whatever happens, so no channel is left in Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from ari_controller.alerts import actions
from ari_controller.alerts.delivery import Attempt, Claim
from ari_controller.alerts.log import log_alert
from ari_controller.ari.client import AriClient
from ari_controller.ari.errors import AriError
from ari_controller.ari.events import EventRouter
from ari_controller.calls import ids
from ari_controller.calls.hunt import RING_GUARD_S
from ari_controller.calls.journal import Clock, utc_now
from ari_controller.calls.leg import Leg, LegGone
from ari_controller.config import Config, PhoneSettings
from ari_controller.oncall.models import User
from ari_controller.prompts.catalogue import (
    REFERENCE_LANGUAGE,
    CatalogueError,
    catalogue_language,
    render,
)
from ari_controller.prompts.library import PromptError, PromptLibrary

log = structlog.get_logger(__name__)

# The keys of a notification call, and what each one does.
KEY_ACKNOWLEDGE = "4"
KEY_RESOLVE = "6"
KEY_ESCALATE = "5"
KEY_REPEAT = "1"
ACTION_KEYS: Mapping[str, actions.Action] = {
    KEY_ACKNOWLEDGE: "acknowledge",
    KEY_RESOLVE: "resolve",
    KEY_ESCALATE: "escalate",
}
# "1" (or any other key) says the message again, at most this many times beyond `repeats`.
MAX_REPLAYS = 2
# Saying what was done ("Acknowledged. Goodbye.") must not hold the line for long.
CLOSING_LIMIT_S = 20.0
# Sentences of the message, without the voicemail, take well under this.
SENTENCES_S = 30.0
# Rendering the message (text to speech, the voicemail's conversion) before the call.
PREPARE_S = 60.0
# The send ends this long before its claim does, so its result is recorded by the claimant.
LEASE_MARGIN_S = 30.0
# The voicemail played in a notification call is cut short past this.
VOICEMAIL_PLAY_LIMIT_S = 600.0
DB_TIMEOUT_S = 10.0

# What happened, by the escalation's reason (or the alert's ended_reason).
_WHAT = {
    "nobody_available": "notify_missed_call",
    "voicemail": "notify_voicemail",
    "caller_abandoned": "notify_hung_up",
    "abandoned": "notify_hung_up",
}
_DONE = {
    "acknowledge": "notify_acknowledged",
    "resolve": "notify_resolved",
    "escalate": "notify_escalated",
}
_ALREADY = {"acknowledged": "notify_already_acknowledged", "resolved": "notify_already_resolved"}

_CALLER_ID = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<number>[^>]*)>\s*$')


# --- what the person hears (pure) ------------------------------------------------------------


def speaking_language(language: str) -> str:
    """The catalogue language for a person's `language`; English when there is none."""
    try:
        return catalogue_language(language)
    except CatalogueError:
        return REFERENCE_LANGUAGE


def spoken_caller(caller_id: str | None, language: str) -> str:
    """A caller ID as it is said: the name, then the number digit by digit ("Jo, 4 9 1 7")."""
    text = (caller_id or "").strip()
    match = _CALLER_ID.match(text)
    name, number = (match["name"].strip(), match["number"]) if match else ("", text)
    digits = " ".join(ch for ch in number if ch.isdigit())
    if not digits and not name and number.strip():
        digits = number.strip()  # not a phone number: a SIP user name, say it as it is
    said = ", ".join(part for part in (name, digits) if part)
    return said or render("notify_unknown_caller", language)


def alert_sentence(data: Mapping[str, Any], language: str) -> str:
    """ "Alert from <number name>: <what happened>." for a delivery payload's `data`."""
    alert = data.get("alert") or {}
    number_name = str(alert.get("number_name") or alert.get("number") or "")
    route = str(alert.get("route") or number_name)
    reason = data.get("reason") or alert.get("ended_reason")
    what_key = _WHAT.get(str(reason), "notify_call")
    what = render(
        what_key,
        language,
        caller=spoken_caller(alert.get("caller_id"), language),
        route=route,
    )
    return render("notify_alert", language, number_name=number_name, what=what)


def closing_sentence(result: actions.ActionResult, language: str) -> str:
    """What the person hears after a key that acts: what was done, or why nothing was."""
    if result.changed:
        return render(_DONE[result.action], language)
    return render(_ALREADY.get(result.status, "notify_failed"), language)


def caller_id_for(phone: PhoneSettings, data: Mapping[str, Any]) -> str | None:
    """What the called phone shows: the configured caller ID, else the alert's number."""
    if phone.caller_id:
        return phone.caller_id
    alert = data.get("alert") or {}
    number = alert.get("number")
    if not number:
        return None
    name = str(alert.get("number_name") or "").replace('"', "")
    return f'"{name}" <{number}>' if name else str(number)


def call_budget_s(phone: PhoneSettings, contacts: int, voicemail_s: float) -> float:
    """The longest one notification call to `contacts` contacts can take: each rung for its
    timeout, then the message said as often as it can be, each time with its key window."""
    plays = phone.repeats + MAX_REPLAYS
    answered = plays * (SENTENCES_S + voicemail_s + phone.key_window_s) + CLOSING_LIMIT_S
    return PREPARE_S + contacts * (phone.ring_timeout_s + RING_GUARD_S + answered)


def lease_for(config: Config) -> float:
    """How long a phone delivery's claim lasts: a line to become free, then the longest call
    to anyone with the most contacts, with the voicemails this configuration can record."""
    contacts = max((len(user.contacts) for user in config.users), default=1)
    voicemail_s = max(
        (min(n.voicemail.max_duration_s, VOICEMAIL_PLAY_LIMIT_S) for n in config.numbers),
        default=0.0,
    )
    one_call = call_budget_s(config.alerts.phone, contacts, voicemail_s)
    return 2 * one_call + LEASE_MARGIN_S


# --- one contact ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reach:
    """How ringing one contact went."""

    contact: str
    reached: bool
    why: str  # "acknowledge", "no answer", "no key", "hung up", "failed: ..."
    error: str | None = None  # reached, but the action failed


@dataclass(frozen=True, slots=True)
class Message:
    """What one delivery's calls say, rendered, in the person's language."""

    alert_id: uuid.UUID
    user_id: str
    language: str
    first: list[str]  # sentence, voicemail, keys
    again: list[str]  # sentence and keys (the voicemail is heard again only with "1")


class PhoneNotifier:
    """Places notification calls through the daemon's ARI client; `send` is the delivery
    worker's sender for destination "phone"."""

    def __init__(
        self,
        ari: AriClient,
        router: EventRouter,
        library: PromptLibrary,
        pool: asyncpg.Pool,
        config: Callable[[], Config],
        clock: Clock = utc_now,
    ) -> None:
        self._ari = ari
        self._router = router
        self._library = library
        self._pool = pool
        self._config = config
        self._clock = clock
        # Live hotline calls come first: notification calls take at most this many channels.
        self._lines = asyncio.Semaphore(config().alerts.phone.max_concurrent_calls)
        self.active = 0  # notification calls ringing or talking now

    def lease_s(self) -> float:
        return lease_for(self._config())

    async def send(self, claim: Claim) -> Attempt:
        """Call the person of the delivery until one contact acts on the alert by key:
        Attempt(200) then; Attempt(None, "not reached: ...") otherwise."""
        config = self._config()
        user = next((u for u in config.users if u.id == claim.user_id), None)
        if user is None:
            return Attempt(None, f"not reached: no user '{claim.user_id}' in the configuration")
        # The send ends before its claim does: its result is ours to record.
        left = (claim.claimed_until - self._clock()).total_seconds() - LEASE_MARGIN_S
        try:
            async with asyncio.timeout(max(left, 1.0)):
                message = await self._prepare(claim, user)
                async with self._lines:
                    self.active += 1
                    try:
                        return await self._call_contacts(claim, user, config, message)
                    finally:
                        self.active -= 1
        except TimeoutError:
            return Attempt(None, f"not reached: the call took longer than {max(left, 1.0):.0f} s")
        except PromptError as exc:
            return Attempt(None, f"not reached: {exc}")

    async def _call_contacts(
        self, claim: Claim, user: User, config: Config, message: Message
    ) -> Attempt:
        """Each contact in order until one is reached."""
        tried: list[str] = []
        for order, contact in enumerate(user.contacts, start=1):
            taken = await self._taken(claim)
            if taken is not None:
                # Acknowledged or resolved meanwhile (by someone else): nobody to wake.
                return Attempt(None, f"not needed: {taken}")
            reach = await self._ring(claim, config, message, contact, order)
            if reach.reached:
                if reach.error is not None:
                    return Attempt(None, f"reached {contact}, but {reach.error}")
                return Attempt(200)
            tried.append(f"{contact} ({reach.why})")
            await self._log(
                message.alert_id,
                "phone_not_reached",
                {
                    "delivery_id": str(claim.id),
                    "user_id": user.id,
                    "contact": contact,
                    "why": reach.why,
                },
            )
        return Attempt(None, "not reached: " + "; ".join(tried))

    async def _ring(
        self, claim: Claim, config: Config, message: Message, contact: str, order: int
    ) -> Reach:
        """Ring one contact; on answer, say the message and wait for a key."""
        phone = config.alerts.phone
        leg_id = ids.notification_leg_id(str(claim.id), claim.attempts + 1, order)
        leg = Leg(leg_id, self._ari, self._router)  # registered before the originate
        try:
            try:
                await self._ari.originate(
                    contact,
                    channel_id=leg_id,
                    app=config.asterisk.app,
                    app_args=ids.notification_app_args(str(claim.id)),
                    caller_id=caller_id_for(phone, claim.payload.get("data") or {}),
                    timeout=phone.ring_timeout_s,
                    # No caller to copy formats from: name them, or Asterisk picks a costly one.
                    formats=config.asterisk.formats,
                )
            except AriError as exc:
                leg.originate_failed()
                return Reach(contact, False, f"failed: {exc}")
            if not await leg.wait_answered(phone.ring_timeout_s + RING_GUARD_S):
                return Reach(contact, False, "no answer")  # rang out, busy or refused
            await self._log(
                message.alert_id,
                "phone_call_answered",
                {
                    "delivery_id": str(claim.id),
                    "user_id": message.user_id,
                    "contact": contact,
                    "leg": leg_id,
                },
            )
            return await self._converse(leg, claim, phone, message, contact)
        except LegGone:
            return Reach(contact, False, "hung up")  # before pressing a key that acts
        finally:
            await asyncio.shield(_end(leg))

    async def _converse(
        self, leg: Leg, claim: Claim, phone: PhoneSettings, message: Message, contact: str
    ) -> Reach:
        """Say the message, wait for a key; silence says it again, up to `repeats` times."""
        silences = 0
        plays = 0
        media = message.first
        while silences < phone.repeats and plays < phone.repeats + MAX_REPLAYS:
            plays += 1
            digit = await leg.play(media)
            if digit is None:
                # No key yet: maybe a voicemail box picked up and records in silence.
                digit = await leg.wait_digit(phone.key_window_s)
            if digit is None:
                silences += 1
                media = message.again
                continue
            action = ACTION_KEYS.get(digit)
            await self._log(
                message.alert_id,
                "phone_key",
                {
                    "delivery_id": str(claim.id),
                    "user_id": message.user_id,
                    "contact": contact,
                    "digit": digit,
                    "action": action,
                },
            )
            if action is None:
                media = message.first  # "1" (or a key that means nothing): hear it all again
                continue
            return await self._act(leg, message, action, contact)
        return Reach(contact, False, "no key")

    async def _act(self, leg: Leg, message: Message, action: actions.Action, contact: str) -> Reach:
        """Act on the alert as the person asked, tell them, hang up."""
        do = {
            "acknowledge": actions.acknowledge,
            "resolve": actions.resolve,
            "escalate": actions.escalate_now,
        }[action]
        error: str | None = None
        try:
            async with self._pool.acquire() as conn:
                result = await do(
                    conn, message.alert_id, message.user_id, self._clock(), via="phone"
                )
            closing = closing_sentence(result, message.language)
            log.info(
                "phone_action",
                alert_id=str(message.alert_id),
                action=action,
                outcome=result.outcome.value,
            )
        except (actions.UnknownAlertError, asyncpg.PostgresError, OSError, TimeoutError) as exc:
            error = f"{action} failed: {exc}"
            closing = render("notify_failed", message.language)
            log.warning("phone_action_failed", alert_id=str(message.alert_id), error=str(exc))
        with contextlib.suppress(LegGone, TimeoutError, PromptError):
            async with asyncio.timeout(CLOSING_LIMIT_S):
                await leg.play(
                    [self._library.media_uri(closing, message.language)], stop_on_digit=False
                )
        return Reach(contact, True, action, error)

    # --- preparation and records ---------------------------------------------------------

    async def _prepare(self, claim: Claim, user: User) -> Message:
        """Render the sentences (cached after the first time) and convert the voicemail."""
        data = claim.payload.get("data") or {}
        language = speaking_language(user.language)
        sentence = alert_sentence(data, language)
        keys = render("notify_keys", language)
        closings = [render(key, language) for key in (*_DONE.values(), *_ALREADY.values())]
        await self._library.prepare(
            [
                (text, language)
                for text in (sentence, keys, *closings, render("notify_failed", language))
            ]
        )
        said = [self._library.media_uri(sentence, language)]
        keys_uri = [self._library.media_uri(keys, language)]
        voicemail = (
            await self._voicemail(claim) if (data.get("alert") or {}).get("voicemail") else None
        )
        return Message(
            alert_id=claim.alert_id,
            user_id=user.id,
            language=language,
            first=said + ([voicemail] if voicemail else []) + keys_uri,
            again=said + keys_uri,
        )

    async def _voicemail(self, claim: Claim) -> str | None:
        """The alert's voicemail as a URI Asterisk plays, or None when it cannot be had."""
        try:
            audio = await self._pool.fetchval(
                "SELECT audio FROM voicemails WHERE alert_id = $1 AND audio IS NOT NULL"
                " ORDER BY created_at DESC LIMIT 1",
                claim.alert_id,
                timeout=DB_TIMEOUT_S,
            )
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            log.warning("voicemail_unavailable", alert_id=str(claim.alert_id), error=str(exc))
            return None
        if not audio:
            return None
        path = await asyncio.to_thread(_write_temp, bytes(audio))
        try:
            return await self._library.prepare_file(path, max_seconds=VOICEMAIL_PLAY_LIMIT_S)
        except (ValueError, OSError, TimeoutError) as exc:  # AudioFileError is a ValueError
            log.warning("voicemail_unplayable", alert_id=str(claim.alert_id), error=str(exc))
            return None
        finally:
            await asyncio.to_thread(path.unlink, True)

    async def _taken(self, claim: Claim) -> str | None:
        """Why nobody needs waking any more (the delivery cancelled, the alert taken), or
        None. A call in progress is not cancelled by an acknowledgement (alerts/log.py): it
        cancels its own delivery here, before ringing the next contact."""
        try:
            async with self._pool.acquire() as conn:
                state = await conn.fetchval(
                    "SELECT state FROM deliveries WHERE id = $1", claim.id, timeout=DB_TIMEOUT_S
                )
                if state not in (None, "pending"):
                    return f"the delivery is {state}"
                status = await conn.fetchval(
                    "SELECT status FROM alerts WHERE id = $1", claim.alert_id, timeout=DB_TIMEOUT_S
                )
                if status in (None, "open"):
                    return None
                await conn.execute(
                    "UPDATE deliveries SET state = 'cancelled', last_error = 'alert ' || $2,"
                    " claimed_until = NULL WHERE id = $1 AND state = 'pending'",
                    claim.id,
                    status,
                    timeout=DB_TIMEOUT_S,
                )
                return f"the alert is {status}"
        except (asyncpg.PostgresError, OSError, TimeoutError):
            return None  # the database is away: calling is what the delivery asked for

    async def _log(self, alert_id: uuid.UUID, kind: str, data: dict[str, Any]) -> None:
        """An entry on the alert's timeline; a database away does not stop the call."""
        log.info(kind, alert_id=str(alert_id), **data)
        try:
            async with self._pool.acquire() as conn:
                await log_alert(conn, alert_id, self._clock(), kind, data, timeout_s=DB_TIMEOUT_S)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            log.warning("alert_log_failed", alert_id=str(alert_id), kind=kind, error=str(exc))


async def _end(leg: Leg) -> None:
    """Hang the leg up if it is still there (ringing or answered), then stop routing its
    events: nothing of the call is left in Asterisk or in the router."""
    try:
        if not leg.gone or leg.in_stasis:
            await leg.hangup()
    finally:
        leg.release()


def _write_temp(audio: bytes) -> Path:
    with tempfile.NamedTemporaryFile(prefix="voicemail-", suffix=".wav", delete=False) as f:
        f.write(audio)
    return Path(f.name)
