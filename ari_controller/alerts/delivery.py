"""Sending alert messages: the worker that takes due rows of `deliveries` and posts them to
their chat or webhook destination, and what the command line does with deliveries.

One round (`DeliveryWorker.deliver_due`):

1. Claim: in one short transaction, lock due pending rows with FOR UPDATE SKIP LOCKED (so
   any number of workers on one database never take the same row), set `claimed_until` to
   now + `lease_s`, commit. The claim is committed before anything is sent: a worker that dies
   after it leaves the row to be claimed again once the lease has passed, and the retry
   carries the same webhook-id, so a receiver that saw the first attempt can drop the second.
2. Send each claimed row, bounded by its destination's `timeout_s`.
3. Record: 2xx is sent; anything else is retried after an exponential backoff with full
   jitter (or after Retry-After on 429/503) until `max_attempts`, then the row is dead (a dead
   letter: `retry_delivery` sends it again). 410 Gone disables the destination: its pending
   deliveries wait until `enable_destination`. Every attempt is a row in `alert_log`.

A per-destination rate limit (`rate_per_minute`, counted by each worker in memory) leaves the
excess pending for a later round. Rows the engine cancelled (the alert was acknowledged or
resolved) are never claimed, and a claimed row cancelled before its send is not sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import structlog

from ari_controller.alerts.log import log_alert
from ari_controller.alerts.messages import encode_body, message_body
from ari_controller.alerts.signing import InvalidSecretError, webhook_headers
from ari_controller.config import AlertEngineSettings, AlertsSettings, Destination

log = structlog.get_logger(__name__)

DELIVERY_STATES = ("pending", "sent", "dead", "cancelled")
USER_AGENT = "ari-controller"
# Retry-After further away than this is not waited for longer (a day).
MAX_RETRY_AFTER_S = 86400.0
_ERROR_BODY_CHARS = 200


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- pure decisions ------------------------------------------------------------------------


def backoff_delay(attempts: int, engine: AlertEngineSettings, rng: random.Random) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: full jitter, uniformly between
    0 and backoff_initial_s * 2^(attempts-1), capped at backoff_max_s."""
    exponent = min(max(attempts - 1, 0), 60)
    ceiling = min(engine.backoff_max_s, engine.backoff_initial_s * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds a Retry-After header asks for (delay-seconds or an HTTP date), or None when
    there is none or it cannot be read."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=dt.UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


class RateLimiter:
    """At most `limit` sends per destination in any 60 seconds (a sliding window per worker)."""

    WINDOW_S = 60.0

    def __init__(self) -> None:
        self._sent: dict[str, deque[dt.datetime]] = {}

    def _window(self, destination: str, now: dt.datetime) -> deque[dt.datetime]:
        sent = self._sent.setdefault(destination, deque())
        start = now - dt.timedelta(seconds=self.WINDOW_S)
        while sent and sent[0] <= start:
            sent.popleft()
        return sent

    def full(self, destination: str, limit: int, now: dt.datetime) -> bool:
        return len(self._window(destination, now)) >= limit

    def take(self, destination: str, limit: int, now: dt.datetime) -> bool:
        """Count one send now if the destination has room for it."""
        sent = self._window(destination, now)
        if len(sent) >= limit:
            return False
        sent.append(now)
        return True


# --- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A delivery this worker holds until `claimed_until`: its send and its result."""

    id: UUID
    alert_id: UUID
    event: str
    destination: str
    user_id: str | None
    payload: dict[str, Any]
    attempts: int  # before this attempt
    claimed_until: dt.datetime


@dataclass(frozen=True)
class Sender:
    """A way to notify that is not an HTTP destination of the configuration (a phone call, an
    e-mail): deliveries whose `destination` is its name are handed to `send`."""

    send: Callable[[Claim], Awaitable[Attempt]]
    # The longest one send may take: its claim lasts this long, so no other worker (or this
    # one, next round) sends it again meanwhile.
    lease_s: float
    # A send that takes long (a phone call) runs on its own: the round does not wait for it.
    background: bool = False


@dataclass(frozen=True)
class DeliveryInfo:
    """One row of `deliveries` as the command line lists it."""

    id: UUID
    alert_id: UUID
    event: str
    destination: str
    user_id: str | None
    state: str
    attempts: int
    due_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True)
class Attempt:
    """What one send gave: an HTTP status (with its Retry-After), or an error before one."""

    status: int | None
    error: str | None = None
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _payload(value: object) -> dict[str, Any]:
    # Without a jsonb codec on the connection, asyncpg hands jsonb over as text.
    loaded = json.loads(value) if isinstance(value, str | bytes) else value
    return dict(loaded) if isinstance(loaded, Mapping) else {}


# --- the worker ----------------------------------------------------------------------------


class DeliveryWorker:
    """Claims due deliveries and sends them; the daemon runs `run()` as a task.

    `db` is an asyncpg pool (shared with the daemon, left open) or a DSN (the worker opens a
    small pool of its own and closes it in `close()`). `settings` is the configuration's
    `alerts`, or a callable giving the current one. `clock` gives aware UTC datetimes; `rng`
    jitters the backoff.
    """

    def __init__(
        self,
        db: asyncpg.Pool | str,
        settings: AlertsSettings | Callable[[], AlertsSettings],
        clock: Callable[[], dt.datetime] = utc_now,
        rng: random.Random | None = None,
        *,
        batch_size: int = 32,
        senders: Mapping[str, Sender] | None = None,
        on_attempt: Callable[[str, str], None] | None = None,
    ) -> None:
        self._db = db
        self._senders = dict(senders or {})
        # (method, result) of every attempt, for the metrics: slack/.../webhook/phone/email and
        # sent/failed/dead.
        self._on_attempt = on_attempt
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pool: asyncpg.Pool | None = None if isinstance(db, str) else db
        # A callable is read every round: a reloaded configuration applies at once.
        self._settings_source = settings
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._batch_size = batch_size
        self._limiter = RateLimiter()
        self._session: aiohttp.ClientSession | None = None
        current = self._settings
        for destination in current.destinations:
            if destination.timeout_s >= current.engine.lease_s:
                # A send may outlive its claim: another worker could send it meanwhile.
                log.warning(
                    "delivery_lease_shorter_than_timeout",
                    destination=destination.id,
                    timeout_s=destination.timeout_s,
                    lease_s=current.engine.lease_s,
                )

    @property
    def _settings(self) -> AlertsSettings:
        source = self._settings_source
        return source if isinstance(source, AlertsSettings) else source()

    async def __aenter__(self) -> DeliveryWorker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in list(self._in_flight):
            task.cancel()  # a call cut short: its claim lapses and it is sent again
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if isinstance(self._db, str) and self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            assert isinstance(self._db, str)
            self._pool = await asyncpg.create_pool(self._db, min_size=1, max_size=4)
        return self._pool

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session

    async def run(self) -> None:
        """Deliver what is due every `poll_interval_s` until cancelled. A cancelled send is
        sent again after its lease by whichever worker claims it next."""
        interval = self._settings.engine.poll_interval_s
        while True:
            handled = 0
            try:
                handled = await self.deliver_due(self._clock())
            except Exception:  # a database outage or a bug: log it, try again next round
                log.exception("delivery_round_failed")
            if handled < self._batch_size:  # a full batch: more may be due at once
                await asyncio.sleep(interval)

    async def deliver_due(self, now: dt.datetime | None = None) -> int:
        """One round: claim what is due at `now`, send it, record each result. Returns how
        many deliveries were claimed (sent, failed or found dead)."""
        now = now if now is not None else self._clock()
        claims = await self.claim_due(now)
        if claims:
            await self.send_claimed(claims, now)
        return len(claims)

    def _destination_limits(self) -> dict[str, int]:
        return {d.id: d.rate_per_minute for d in self._settings.destinations}

    async def claim_due(self, now: dt.datetime) -> list[Claim]:
        """Claim due pending rows of enabled destinations that have room under their rate
        limit, committed before returning."""
        limits = self._destination_limits()
        full = [d for d, limit in limits.items() if self._limiter.full(d, limit, now)]
        lease = dt.timedelta(seconds=self._settings.engine.lease_s)

        def lease_of(destination: str) -> dt.datetime:
            sender = self._senders.get(destination)
            return now + (dt.timedelta(seconds=sender.lease_s) if sender else lease)

        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT d.id, d.alert_id, d.event, d.destination, d.user_id, d.payload,"
                " d.attempts FROM deliveries d"
                " WHERE d.state = 'pending' AND d.due_at <= $1"
                " AND (d.claimed_until IS NULL OR d.claimed_until < $1)"
                " AND d.destination <> ALL($2::text[])"
                " AND NOT EXISTS (SELECT 1 FROM destination_state s"
                "  WHERE s.destination = d.destination AND s.disabled_at IS NOT NULL)"
                " ORDER BY d.due_at, d.created_at LIMIT $3"
                " FOR UPDATE OF d SKIP LOCKED",
                now,
                full,
                self._batch_size,
            )
            taken = []
            for row in rows:
                limit = limits.get(row["destination"])
                # An unknown destination is claimed too: it is recorded dead, nothing is sent.
                if limit is None or self._limiter.take(row["destination"], limit, now):
                    taken.append(row)
            for until in {lease_of(row["destination"]) for row in taken}:
                await conn.execute(
                    "UPDATE deliveries SET claimed_until = $2 WHERE id = ANY($1::uuid[])",
                    [row["id"] for row in taken if lease_of(row["destination"]) == until],
                    until,
                )
        return [
            Claim(
                id=row["id"],
                alert_id=row["alert_id"],
                event=row["event"],
                destination=row["destination"],
                user_id=row["user_id"],
                payload=_payload(row["payload"]),
                attempts=row["attempts"],
                claimed_until=lease_of(row["destination"]),
            )
            for row in taken
        ]

    async def send_claimed(self, given: Iterable[Claim], now: dt.datetime) -> None:
        """Send claimed deliveries concurrently and record each result. `now` is when the
        round started; times recorded after a send add the time the send took."""
        started = asyncio.get_running_loop().time()

        def later() -> dt.datetime:
            elapsed = asyncio.get_running_loop().time() - started
            return now + dt.timedelta(seconds=elapsed)

        claims = []
        await self._get_pool()  # one pool, before the sends share it
        for claim in given:
            sender = self._senders.get(claim.destination)
            if sender is not None and sender.background:
                task = asyncio.ensure_future(self._deliver_logged(claim, later))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            else:
                claims.append(claim)
        results = await asyncio.gather(
            *(self._deliver(claim, later) for claim in claims), return_exceptions=True
        )
        for claim, result in zip(claims, results, strict=True):
            if isinstance(result, BaseException):
                # Its claim lapses and the next claimant sends it again, same webhook-id.
                log.error(
                    "delivery_failed_unexpectedly", delivery_id=str(claim.id), exc_info=result
                )

    def _report(self, claim: Claim, result: str) -> None:
        if self._on_attempt is None:
            return
        destination = self._settings.destination(claim.destination)
        method = destination.type if destination is not None else claim.destination
        self._on_attempt(method, result)

    async def _deliver_logged(self, claim: Claim, at: Callable[[], dt.datetime]) -> None:
        try:
            await self._deliver(claim, at)
        except Exception:
            # Its claim lapses and the next claimant sends it again.
            log.exception("delivery_failed_unexpectedly", delivery_id=str(claim.id))

    async def _deliver(self, claim: Claim, at: Callable[[], dt.datetime]) -> None:
        pool = await self._get_pool()
        sender = self._senders.get(claim.destination)
        if sender is not None:
            if not await self._still_ours(pool, claim):
                log.info("delivery_skipped", delivery_id=str(claim.id), reason="no longer pending")
                return
            await self._record(pool, claim, await sender.send(claim), at())
            return
        destination = self._settings.destination(claim.destination)
        problem, url, secret = _target(destination, claim.destination)
        if problem is not None:
            await self._record_dead(pool, claim, problem, at())
            return
        assert url is not None and destination is not None
        if not await self._still_ours(pool, claim):
            log.info("delivery_skipped", delivery_id=str(claim.id), reason="no longer pending")
            return
        body = encode_body(message_body(destination.type, claim.payload))
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers |= webhook_headers(secret, str(claim.id), int(at().timestamp()), body)
        attempt = await self._post(url, body, headers, destination.timeout_s)
        await self._record(pool, claim, attempt, at())

    async def send_once(
        self, destination_id: str, payload: dict[str, Any], message_id: str, now: dt.datetime
    ) -> Attempt:
        """One message, now, with no row and no retry (`notify-test`): how the receiver
        answered, or why nothing could be sent."""
        destination = self._settings.destination(destination_id)
        problem, url, secret = _target(destination, destination_id)
        if problem is not None or url is None or destination is None:
            return Attempt(None, problem or "no URL")
        body = encode_body(message_body(destination.type, payload))
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers |= webhook_headers(secret, message_id, int(now.timestamp()), body)
        return await self._post(url, body, headers, destination.timeout_s)

    async def _still_ours(self, pool: asyncpg.Pool, claim: Claim) -> bool:
        """The engine may have cancelled the row since the claim (the alert was acknowledged)."""
        state = await pool.fetchval(
            "SELECT state FROM deliveries WHERE id = $1 AND claimed_until = $2",
            claim.id,
            claim.claimed_until,
        )
        return bool(state == "pending")

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> Attempt:
        session = self._get_session()
        try:
            # Expiry means the receiver is too slow or unreachable: a failed attempt, retried.
            async with session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,  # a signed message goes where it was configured to
            ) as response:
                if 200 <= response.status < 300:
                    return Attempt(response.status)
                text = (await response.text(errors="replace"))[:_ERROR_BODY_CHARS].strip()
                error = f"HTTP {response.status}" + (f": {text}" if text else "")
                return Attempt(response.status, error, response.headers.get("Retry-After"))
        except TimeoutError:
            return Attempt(None, f"no answer within {timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}")

    async def _record(
        self, pool: asyncpg.Pool, claim: Claim, attempt: Attempt, at: dt.datetime
    ) -> None:
        engine = self._settings.engine
        attempts = claim.attempts + 1
        base = {
            "delivery_id": str(claim.id),
            "event": claim.event,
            "destination": claim.destination,
            "user_id": claim.user_id,
            "attempt": attempts,
            "status": attempt.status,
        }
        async with pool.acquire() as conn, conn.transaction():
            if attempt.ok:
                updated = await conn.execute(
                    "UPDATE deliveries SET state = 'sent', sent_at = $3, attempts = $4,"
                    " claimed_until = NULL, last_error = NULL"
                    " WHERE id = $1 AND state = 'pending' AND claimed_until = $2",
                    claim.id,
                    claim.claimed_until,
                    at,
                    attempts,
                )
                await log_alert(conn, claim.alert_id, at, "delivery_sent", base)
                self._report(claim, "sent")
                log.info("delivery_sent", **_fields(base))
            elif attempt.status == 410:
                error = f"410 Gone: destination '{claim.destination}' disabled"
                await conn.execute(
                    "INSERT INTO destination_state (destination, disabled_at, disabled_reason)"
                    " VALUES ($1, $2, $3) ON CONFLICT (destination) DO UPDATE"
                    " SET disabled_at = EXCLUDED.disabled_at,"
                    " disabled_reason = EXCLUDED.disabled_reason",
                    claim.destination,
                    at,
                    f"410 Gone for delivery {claim.id}",
                )
                updated = await _set_dead(conn, claim, attempts, error)
                await log_alert(conn, claim.alert_id, at, "delivery_dead", base | {"error": error})
                self._report(claim, "dead")
                log.warning("destination_disabled", **_fields(base))
            else:
                error = attempt.error or f"HTTP {attempt.status}"
                if attempts >= engine.max_attempts:
                    updated = await _set_dead(conn, claim, attempts, error)
                    kind = "delivery_dead"
                else:
                    delay = backoff_delay(attempts, engine, self._rng)
                    if attempt.status in (429, 503):
                        asked = parse_retry_after(attempt.retry_after, at)
                        delay = asked if asked is not None else delay
                    due = at + dt.timedelta(seconds=delay)
                    updated = await conn.execute(
                        "UPDATE deliveries SET attempts = $3, last_error = $4, due_at = $5,"
                        " claimed_until = NULL"
                        " WHERE id = $1 AND state = 'pending' AND claimed_until = $2",
                        claim.id,
                        claim.claimed_until,
                        attempts,
                        error,
                        due,
                    )
                    kind = "delivery_failed"
                    base = base | {"retry_at": due.isoformat()}
                await log_alert(conn, claim.alert_id, at, kind, base | {"error": error})
                self._report(claim, kind.removeprefix("delivery_"))
                log.warning(kind, **_fields(base), error=error)
        if updated == "UPDATE 0":
            # Cancelled meanwhile, or our lease ran out and another worker holds the row:
            # the attempt is on the alert's timeline, the row is theirs.
            log.warning("delivery_result_not_recorded", delivery_id=str(claim.id))

    async def _record_dead(
        self, pool: asyncpg.Pool, claim: Claim, error: str, at: dt.datetime
    ) -> None:
        data = {
            "delivery_id": str(claim.id),
            "event": claim.event,
            "destination": claim.destination,
            "user_id": claim.user_id,
            "attempt": None,
            "status": None,
            "error": error,
        }
        async with pool.acquire() as conn, conn.transaction():
            await _set_dead(conn, claim, claim.attempts, error)
            await log_alert(conn, claim.alert_id, at, "delivery_dead", data)
            self._report(claim, "dead")
        log.error("delivery_dead", **_fields(data))


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    """Log fields of an alert_log entry (structlog's own `event` is the message)."""
    return {("alert_event" if key == "event" else key): value for key, value in data.items()}


def _target(
    destination: Destination | None, destination_id: str
) -> tuple[str | None, str | None, str | None]:
    """(problem, url, secret): why nothing can be sent there, or where and signed with what."""
    if destination is None:
        return f"destination '{destination_id}' is not in the configuration", None, None
    url = destination.resolved_url()
    if not url:
        return (
            f"destination '{destination_id}': environment variable {destination.url_env}"
            " (its URL) is not set",
            None,
            None,
        )
    secret = destination.resolved_secret()
    if destination.secret_env and not secret:
        return (
            f"destination '{destination_id}': environment variable {destination.secret_env}"
            " (its secret) is not set",
            None,
            None,
        )
    if secret is not None:
        try:
            webhook_headers(secret, "check", 0, b"")
        except InvalidSecretError as exc:
            return f"destination '{destination_id}': {exc}", None, None
    return None, url, secret


async def _set_dead(conn: asyncpg.Connection, claim: Claim, attempts: int, error: str) -> str:
    result: str = await conn.execute(
        "UPDATE deliveries SET state = 'dead', attempts = $3, last_error = $4,"
        " claimed_until = NULL WHERE id = $1 AND state = 'pending' AND claimed_until = $2",
        claim.id,
        claim.claimed_until,
        attempts,
        error,
    )
    return result


# --- for the command line ------------------------------------------------------------------


async def list_deliveries(
    conn: asyncpg.Connection,
    state: str | None = None,
    limit: int = 50,
    *,
    destination: str | None = None,
) -> list[DeliveryInfo]:
    """The newest deliveries first, optionally only those in one state or to one destination."""
    if state is not None and state not in DELIVERY_STATES:
        raise ValueError(f"unknown delivery state '{state}' (one of {', '.join(DELIVERY_STATES)})")
    rows = await conn.fetch(
        "SELECT id, alert_id, event, destination, user_id, state, attempts, due_at, last_error,"
        " created_at, sent_at FROM deliveries"
        " WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR destination = $2)"
        " ORDER BY created_at DESC, id LIMIT $3",
        state,
        destination,
        limit,
    )
    return [DeliveryInfo(**dict(row)) for row in rows]


async def retry_delivery(conn: asyncpg.Connection, delivery_id: UUID, now: dt.datetime) -> bool:
    """Send a dead delivery again: pending, due now, its attempts kept (so one more failure
    makes it dead again). False when there is no dead delivery with this id."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE deliveries SET state = 'pending', due_at = $2, claimed_until = NULL"
            " WHERE id = $1 AND state = 'dead'"
            " RETURNING alert_id, event, destination, user_id, attempts",
            delivery_id,
            now,
        )
        if row is None:
            return False
        await log_alert(
            conn,
            row["alert_id"],
            now,
            "delivery_retried",
            {
                "delivery_id": str(delivery_id),
                "event": row["event"],
                "destination": row["destination"],
                "user_id": row["user_id"],
                "attempts": row["attempts"],
            },
        )
    return True


async def enable_destination(conn: asyncpg.Connection, destination: str) -> bool:
    """Let a destination disabled by a 410 receive again (its waiting deliveries go out on
    the next round). False when it was not disabled."""
    result: str = await conn.execute(
        "DELETE FROM destination_state WHERE destination = $1", destination
    )
    return result != "DELETE 0"


async def disabled_destinations(conn: asyncpg.Connection) -> list[tuple[str, dt.datetime, str]]:
    """(destination, disabled_at, reason) of every disabled destination."""
    rows = await conn.fetch(
        "SELECT destination, disabled_at, coalesce(disabled_reason, '') AS reason"
        " FROM destination_state WHERE disabled_at IS NOT NULL ORDER BY destination"
    )
    return [(r["destination"], r["disabled_at"], r["reason"]) for r in rows]
