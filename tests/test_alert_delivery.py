"""Delivering alert messages: a real Postgres, real HTTP receivers on 127.0.0.1, an injected
clock (so backoffs, leases and rate windows pass in no time) and the Standard Webhooks
library checking every signature a receiver gets.

Faults: a receiver that times out, answers 500 then 200, 429/503 with Retry-After, 410; a
worker that dies after its claim, or during its send. Checked: one successful delivery per
row, the same webhook-id on every attempt, dead letters and their retry, the rate limit.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from ari_controller.alerts.delivery import (
    DeliveryWorker,
    RateLimiter,
    backoff_delay,
    disabled_destinations,
    enable_destination,
    list_deliveries,
    parse_retry_after,
    retry_delivery,
)
from ari_controller.alerts.messages import TEAMS_CARD_CONTENT_TYPE
from ari_controller.config import AlertEngineSettings, AlertsSettings, Destination
from tests.alert_rows import ManualClock

WHSEC = "whsec_" + base64.b64encode(b"delivery-test-secret-32-bytes!!!").decode()
ENGINE = AlertEngineSettings(
    poll_interval_s=0.05, lease_s=5, max_attempts=3, backoff_initial_s=2, backoff_max_s=8
)


# --- pure parts ----------------------------------------------------------------------------


def test_backoff_is_full_jitter_doubling_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 8.0), (30, 8.0), (500, 8.0)]:
        delays = [backoff_delay(attempts, ENGINE, rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.9 and min(delays) < ceiling * 0.1


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(" 0 ", now) == 0.0
    later = email.utils.format_datetime(now + dt.timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now) == 90.0
    earlier = email.utils.format_datetime(now - dt.timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now) == 0.0
    assert parse_retry_after("99999999", now) == 86400.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


def test_the_rate_limiter_allows_the_limit_in_any_minute() -> None:
    limiter = RateLimiter()
    t0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    assert [limiter.take("a", 2, t0) for _ in range(3)] == [True, True, False]
    assert limiter.take("b", 2, t0)  # per destination
    assert limiter.full("a", 2, t0 + dt.timedelta(seconds=59))
    assert limiter.take("a", 2, t0 + dt.timedelta(seconds=60))


# --- receivers, clock, rows ----------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    def verified(self, secret: str = WHSEC) -> Any:
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    """A local HTTP endpoint answering from a script of replies, then `default`."""

    def __init__(self, *script: Reply, default: Reply | None = None) -> None:
        self.script = list(script)
        self.default = default or Reply()
        self.requests: list[Received] = []
        self.gate: asyncio.Event | None = None  # when set: hold every answer until it opens
        self.got_request = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        self.got_request.set()
        reply = self.script.pop(0) if self.script else self.default
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 10)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(status=reply.status, headers=reply.headers, text="receiver says no")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)  # a free port
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    started: list[Receiver] = []

    async def start(*script: Reply, default: Reply | None = None) -> Receiver:
        receiver = await Receiver(*script, default=default).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def alert_id(pool: asyncpg.Pool, clock: ManualClock) -> uuid.UUID:
    alert = uuid.uuid4()
    await pool.execute(
        "INSERT INTO alerts (id, number_did, number_name, route, caller_id, created_at)"
        " VALUES ($1, '+4930123456', 'Acme Operations', 'Database', '+4917099999', $2)",
        alert,
        clock(),
    )
    return alert


def _payload(alert_id: uuid.UUID, event: str = "alert.escalated") -> dict[str, Any]:
    return {
        "type": event,
        "timestamp": "2026-03-02T10:01:00+00:00",
        "data": {
            "alert": {
                "id": str(alert_id),
                "number": "+4930123456",
                "number_name": "Acme Operations",
                "caller_id": "+4917099999",
                "route": "Database",
                "status": "open",
                "ended_reason": "nobody_available",
                "tried": [{"user": "alice", "outcome": "no_answer"}],
                "url": None,
            },
            "reason": "nobody_available",
        },
    }


async def _delivery(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    destination: str,
    due_at: dt.datetime,
    *,
    state: str = "pending",
    event: str = "alert.escalated",
    user_id: str | None = None,
) -> uuid.UUID:
    delivery = uuid.uuid4()
    await pool.execute(
        "INSERT INTO deliveries (id, alert_id, event, destination, user_id, payload, state,"
        " due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $8)",
        delivery,
        alert_id,
        event,
        destination,
        user_id,
        json.dumps(_payload(alert_id, event)),
        state,
        due_at,
    )
    return delivery


async def _row(pool: asyncpg.Pool, delivery: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM deliveries WHERE id = $1", delivery)
    assert row is not None
    return row


async def _log(pool: asyncpg.Pool, alert_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    rows = await pool.fetch(
        "SELECT kind, data FROM alert_log WHERE alert_id = $1 ORDER BY id", alert_id
    )
    return [(r["kind"], json.loads(r["data"])) for r in rows]


def _hook(url: str, id: str = "hook", **extra: Any) -> Destination:
    return Destination(id=id, type="webhook", url=url, secret_env="HOOK_SECRET", **extra)


def _settings(*destinations: Destination, **engine: Any) -> AlertsSettings:
    return AlertsSettings(destinations=list(destinations), engine=ENGINE.model_copy(update=engine))


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", WHSEC)


@pytest.fixture
async def worker_for(
    pool: asyncpg.Pool, clock: ManualClock
) -> AsyncIterator[Callable[[AlertsSettings], DeliveryWorker]]:
    workers: list[DeliveryWorker] = []

    def make(settings: AlertsSettings) -> DeliveryWorker:
        worker = DeliveryWorker(pool, settings, clock, random.Random(1))
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        await worker.close()


Start = Callable[..., Awaitable[Receiver]]
MakeWorker = Callable[[AlertsSettings], DeliveryWorker]


# --- delivering ----------------------------------------------------------------------------


async def test_a_webhook_is_sent_once_signed_with_the_payload_and_logged(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers()
    worker = worker_for(_settings(_hook(receiver.url)))
    delivery = await _delivery(pool, alert_id, "hook", clock(), user_id="alice")

    assert await worker.deliver_due(clock()) == 1
    assert await worker.deliver_due(clock.advance(60)) == 0  # sent once, never again

    [request] = receiver.requests
    assert request.webhook_id == str(delivery)
    assert request.verified() == _payload(alert_id)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "ari-controller"
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    assert row["sent_at"] is not None and row["claimed_until"] is None
    assert await _log(pool, alert_id) == [
        (
            "delivery_sent",
            {
                "delivery_id": str(delivery),
                "event": "alert.escalated",
                "destination": "hook",
                "user_id": "alice",
                "attempt": 1,
                "status": 200,
            },
        )
    ]


async def test_a_plain_string_secret_signs_with_its_bytes(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "not-a-whsec-secret")
    receiver = await receivers()
    worker = worker_for(_settings(_hook(receiver.url)))
    await _delivery(pool, alert_id, "hook", clock())
    await worker.deliver_due(clock())
    [request] = receiver.requests
    assert Webhook(b"not-a-whsec-secret").verify(request.body, request.headers)


async def test_chat_destinations_get_their_own_format_unsigned(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    slack, teams, mattermost = await receivers(), await receivers(), await receivers()
    worker = worker_for(
        _settings(
            Destination(id="slack", type="slack", url=slack.url),
            Destination(id="teams", type="teams", url=teams.url),
            Destination(id="mm", type="mattermost", url=mattermost.url),
        )
    )
    for destination in ("slack", "teams", "mm"):
        await _delivery(pool, alert_id, destination, clock())
    assert await worker.deliver_due(clock()) == 3

    [to_slack], [to_teams], [to_mm] = slack.requests, teams.requests, mattermost.requests
    assert "webhook-signature" not in to_slack.headers
    slack_body = json.loads(to_slack.body)
    assert slack_body["text"].startswith("A missed call for Database")
    assert slack_body["blocks"]
    teams_body = json.loads(to_teams.body)
    assert teams_body["attachments"][0]["contentType"] == TEAMS_CARD_CONTENT_TYPE
    assert "+4917099999" in json.loads(to_mm.body)["text"]


async def test_500_then_200_is_retried_after_backoff_with_the_same_webhook_id(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers(Reply(500))
    worker = worker_for(_settings(_hook(receiver.url)))
    delivery = await _delivery(pool, alert_id, "hook", clock())

    failed_at = clock()
    await worker.deliver_due(failed_at)
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert row["last_error"] == "HTTP 500: receiver says no"
    assert failed_at <= row["due_at"] <= failed_at + dt.timedelta(seconds=2.1)  # initial 2 s
    assert row["claimed_until"] is None

    await worker.deliver_due(clock.advance(2.2))
    assert [r.webhook_id for r in receiver.requests] == [str(delivery)] * 2
    assert all(r.verified() for r in receiver.requests)
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 2, None)
    kinds = [(kind, data["attempt"], data["status"]) for kind, data in await _log(pool, alert_id)]
    assert kinds == [("delivery_failed", 1, 500), ("delivery_sent", 2, 200)]


async def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers(Reply(delay_s=2.0))
    worker = worker_for(_settings(_hook(receiver.url, timeout_s=0.3)))
    delivery = await _delivery(pool, alert_id, "hook", clock())

    started = asyncio.get_running_loop().time()
    await worker.deliver_due(clock())
    assert asyncio.get_running_loop().time() - started < 1.5  # bounded by timeout_s
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert row["last_error"] == "no answer within 0.3 s"
    [(kind, data)] = await _log(pool, alert_id)
    assert (kind, data["status"], data["error"]) == (
        "delivery_failed",
        None,
        "no answer within 0.3 s",
    )

    await worker.deliver_due(clock.advance(10))
    assert (await _row(pool, delivery))["state"] == "sent"
    assert {r.webhook_id for r in receiver.requests} == {str(delivery)}


async def test_a_receiver_that_refuses_connections_is_a_failed_attempt(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers()
    url = receiver.url
    await receiver.stop()
    worker = worker_for(_settings(_hook(url)))
    delivery = await _delivery(pool, alert_id, "hook", clock())
    await worker.deliver_due(clock())
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert "Connect" in row["last_error"]


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds_is_honoured(
    status: int,
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers(Reply(status, {"Retry-After": "30"}))
    worker = worker_for(_settings(_hook(receiver.url)))
    delivery = await _delivery(pool, alert_id, "hook", clock())
    failed_at = clock()
    await worker.deliver_due(failed_at)
    due = (await _row(pool, delivery))["due_at"]
    assert dt.timedelta(seconds=30) <= due - failed_at < dt.timedelta(seconds=31)

    assert await worker.deliver_due(clock.advance(29)) == 0  # not before it said
    assert len(receiver.requests) == 1
    assert await worker.deliver_due(clock.advance(1.5)) == 1
    assert (await _row(pool, delivery))["state"] == "sent"
    assert [r.webhook_id for r in receiver.requests] == [str(delivery)] * 2


async def test_retry_after_as_an_http_date_is_honoured(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    when = email.utils.format_datetime(clock() + dt.timedelta(seconds=120), usegmt=True)
    receiver = await receivers(Reply(429, {"Retry-After": when}))
    worker = worker_for(_settings(_hook(receiver.url)))
    delivery = await _delivery(pool, alert_id, "hook", clock())
    await worker.deliver_due(clock())
    due = (await _row(pool, delivery))["due_at"]
    assert abs((due - clock()).total_seconds() - 120) < 1


async def test_410_disables_the_destination_until_it_is_enabled(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    gone = await receivers(Reply(410))
    other = await receivers()
    worker = worker_for(_settings(_hook(gone.url), _hook(other.url, id="other")))
    first = await _delivery(pool, alert_id, "hook", clock())
    await worker.deliver_due(clock())
    row = await _row(pool, first)
    assert (row["state"], row["attempts"]) == ("dead", 1)
    assert row["last_error"] == "410 Gone: destination 'hook' disabled"
    async with pool.acquire() as conn:
        [(destination, _, reason)] = await disabled_destinations(conn)
    assert destination == "hook" and str(first) in reason

    waiting = await _delivery(pool, alert_id, "hook", clock())
    elsewhere = await _delivery(pool, alert_id, "other", clock())
    assert await worker.deliver_due(clock.advance(1)) == 1  # only the other destination
    assert len(gone.requests) == 1 and len(other.requests) == 1
    assert (await _row(pool, waiting))["state"] == "pending"
    assert (await _row(pool, elsewhere))["state"] == "sent"
    assert await worker.deliver_due(clock.advance(3600)) == 0  # waits while disabled

    async with pool.acquire() as conn:
        assert await enable_destination(conn, "hook")
        assert not await enable_destination(conn, "hook")
        assert await disabled_destinations(conn) == []
    await worker.deliver_due(clock.advance(1))
    assert (await _row(pool, waiting))["state"] == "sent"
    assert [r.webhook_id for r in gone.requests] == [str(first), str(waiting)]
    assert [k for k, _ in await _log(pool, alert_id)] == [
        "delivery_dead",
        "delivery_sent",
        "delivery_sent",
    ]


async def test_dead_after_max_attempts_and_retry_sends_it_again(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers(Reply(500), Reply(502), Reply(500))
    worker = worker_for(_settings(_hook(receiver.url)))  # max_attempts 3
    delivery = await _delivery(pool, alert_id, "hook", clock())
    for _ in range(5):
        await worker.deliver_due(clock.advance(10))  # beyond the 8 s cap each time
    assert len(receiver.requests) == 3
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "dead",
        3,
        "HTTP 500: receiver says no",
    )
    log = await _log(pool, alert_id)
    assert [(k, d["attempt"], d["status"]) for k, d in log] == [
        ("delivery_failed", 1, 500),
        ("delivery_failed", 2, 502),
        ("delivery_dead", 3, 500),
    ]

    async with pool.acquire() as conn:
        [dead] = await list_deliveries(conn, state="dead")
        assert (dead.id, dead.attempts, dead.destination) == (delivery, 3, "hook")
        assert await list_deliveries(conn, state="pending") == []
        assert await retry_delivery(conn, delivery, clock())
        assert not await retry_delivery(conn, delivery, clock())  # no longer dead
        assert not await retry_delivery(conn, uuid.uuid4(), clock())
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"], row["due_at"]) == ("pending", 3, clock())

    await worker.deliver_due(clock())
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"]) == ("sent", 4)
    assert {r.webhook_id for r in receiver.requests} == {str(delivery)}
    assert [k for k, _ in await _log(pool, alert_id)][-2:] == ["delivery_retried", "delivery_sent"]


async def test_a_claim_whose_worker_died_is_sent_once_after_the_lease(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers()
    settings = _settings(_hook(receiver.url))  # lease 5 s
    dying, survivor = worker_for(settings), worker_for(settings)
    delivery = await _delivery(pool, alert_id, "hook", clock())

    [claim] = await dying.claim_due(clock())  # committed; then the daemon is killed
    assert claim.id == delivery
    assert (await _row(pool, delivery))["claimed_until"] == clock() + dt.timedelta(seconds=5)
    assert await survivor.deliver_due(clock.advance(4)) == 0  # still leased
    assert receiver.requests == []
    assert await survivor.deliver_due(clock.advance(1.5)) == 1
    assert await survivor.deliver_due(clock.advance(60)) == 0
    [request] = receiver.requests
    assert request.webhook_id == str(delivery) and request.verified()
    assert (await _row(pool, delivery))["attempts"] == 1


async def test_a_worker_killed_during_its_send_is_retried_with_the_same_webhook_id(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers()
    gate = receiver.gate = asyncio.Event()  # the first request hangs until the worker is killed
    settings = _settings(_hook(receiver.url))
    dying, survivor = worker_for(settings), worker_for(settings)
    delivery = await _delivery(pool, alert_id, "hook", clock())

    task = asyncio.create_task(dying.deliver_due(clock()))
    await asyncio.wait_for(receiver.got_request.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    receiver.gate = None
    gate.set()

    assert (await _row(pool, delivery))["state"] == "pending"
    await survivor.deliver_due(clock.advance(6))
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"]) == ("sent", 1)
    # At least once: the receiver may see it twice, always as one webhook-id to drop.
    assert [r.webhook_id for r in receiver.requests] == [str(delivery)] * 2
    assert all(r.verified() for r in receiver.requests)


async def test_two_workers_at_once_send_every_delivery_exactly_once(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers(default=Reply(delay_s=0.05))
    settings = _settings(_hook(receiver.url, rate_per_minute=1000))
    a, b = worker_for(settings), worker_for(settings)
    deliveries = {await _delivery(pool, alert_id, "hook", clock()) for _ in range(20)}
    counts = await asyncio.gather(a.deliver_due(clock()), b.deliver_due(clock()))
    assert sum(counts) == 20
    assert sorted(r.webhook_id or "" for r in receiver.requests) == sorted(map(str, deliveries))
    states = await pool.fetch("SELECT DISTINCT state, attempts FROM deliveries")
    assert [(r["state"], r["attempts"]) for r in states] == [("sent", 1)]


async def test_the_rate_limit_holds_back_the_excess_for_a_later_round(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    limited, free = await receivers(), await receivers()
    worker = worker_for(
        _settings(_hook(limited.url, rate_per_minute=2), _hook(free.url, id="free"))
    )
    for _ in range(5):
        await _delivery(pool, alert_id, "hook", clock())
    await _delivery(pool, alert_id, "free", clock())

    assert await worker.deliver_due(clock()) == 3
    assert (len(limited.requests), len(free.requests)) == (2, 1)
    waiting = await pool.fetch("SELECT attempts FROM deliveries WHERE state = 'pending'")
    assert [r["attempts"] for r in waiting] == [0, 0, 0]  # held back, not failed
    assert await worker.deliver_due(clock.advance(30)) == 0
    assert await worker.deliver_due(clock.advance(31)) == 2
    assert await worker.deliver_due(clock.advance(61)) == 1
    assert len(limited.requests) == 5
    assert len({r.webhook_id for r in limited.requests}) == 5


async def test_cancelled_deliveries_are_never_sent(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers()
    worker = worker_for(_settings(_hook(receiver.url)))
    await _delivery(pool, alert_id, "hook", clock(), state="cancelled")
    assert await worker.deliver_due(clock()) == 0

    # Cancelled between the claim and the send (the alert was acknowledged meanwhile).
    late = await _delivery(pool, alert_id, "hook", clock())
    claims = await worker.claim_due(clock())
    await pool.execute("UPDATE deliveries SET state = 'cancelled' WHERE id = $1", late)
    await worker.send_claimed(claims, clock())
    assert receiver.requests == []
    assert (await _row(pool, late))["state"] == "cancelled"
    assert await _log(pool, alert_id) == []


async def test_deliveries_not_yet_due_wait(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    receivers: Start,
    worker_for: MakeWorker,
) -> None:
    receiver = await receivers()
    worker = worker_for(_settings(_hook(receiver.url)))
    later = await _delivery(pool, alert_id, "hook", clock() + dt.timedelta(minutes=2))
    assert await worker.deliver_due(clock.advance(119)) == 0
    assert await worker.deliver_due(clock.advance(1)) == 1
    assert (await _row(pool, later))["state"] == "sent"


@pytest.mark.parametrize(
    ("destinations", "error"),
    [
        ([], "destination 'hook' is not in the configuration"),
        (
            [Destination(id="hook", type="slack", url_env="MISSING_URL_ENV")],
            "destination 'hook': environment variable MISSING_URL_ENV (its URL) is not set",
        ),
        (
            [
                Destination(
                    id="hook", type="webhook", url="http://127.0.0.1:9/", secret_env="NO_SECRET"
                )
            ],
            "destination 'hook': environment variable NO_SECRET (its secret) is not set",
        ),
        (
            [
                Destination(
                    id="hook", type="webhook", url="http://127.0.0.1:9/", secret_env="BAD_SECRET"
                )
            ],
            "destination 'hook': a whsec_ secret must be base64 after the prefix",
        ),
    ],
)
async def test_an_unusable_destination_makes_the_delivery_dead_with_a_clear_error(
    destinations: list[Destination],
    error: str,
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    clock: ManualClock,
    worker_for: MakeWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MISSING_URL_ENV", raising=False)
    monkeypatch.delenv("NO_SECRET", raising=False)
    monkeypatch.setenv("BAD_SECRET", "whsec_***")
    worker = worker_for(_settings(*destinations))
    delivery = await _delivery(pool, alert_id, "hook", clock())
    assert await worker.deliver_due(clock()) == 1
    row = await _row(pool, delivery)
    assert (row["state"], row["attempts"], row["last_error"]) == ("dead", 0, error)
    [(kind, data)] = await _log(pool, alert_id)
    assert (kind, data["error"]) == ("delivery_dead", error)


async def test_list_deliveries_filters_and_rejects_unknown_states(
    pool: asyncpg.Pool, alert_id: uuid.UUID, clock: ManualClock
) -> None:
    for state in ("pending", "cancelled", "pending"):
        await _delivery(pool, alert_id, "hook", clock(), state=state)
    await _delivery(pool, alert_id, "chat", clock())
    async with pool.acquire() as conn:
        assert len(await list_deliveries(conn)) == 4
        assert len(await list_deliveries(conn, limit=2)) == 2
        assert len(await list_deliveries(conn, "pending")) == 3
        assert len(await list_deliveries(conn, "pending", destination="hook")) == 2
        [cancelled] = await list_deliveries(conn, "cancelled")
        assert (cancelled.state, cancelled.alert_id, cancelled.sent_at) == (
            "cancelled",
            alert_id,
            None,
        )
        with pytest.raises(ValueError, match="unknown delivery state 'lost'"):
            await list_deliveries(conn, "lost")


async def test_run_delivers_on_its_own_every_poll_interval(
    database: str, pool: asyncpg.Pool, alert_id: uuid.UUID, receivers: Start
) -> None:
    receiver = await receivers()
    # The daemon's way: a DSN (the worker's own pool) and the real clock.
    worker = DeliveryWorker(database, _settings(_hook(receiver.url)))
    task = asyncio.create_task(worker.run())
    try:
        delivery = await _delivery(pool, alert_id, "hook", dt.datetime.now(dt.UTC))
        await asyncio.wait_for(receiver.got_request.wait(), 5)
        for _ in range(50):
            if (await _row(pool, delivery))["state"] == "sent":
                break
            await asyncio.sleep(0.05)
        assert (await _row(pool, delivery))["state"] == "sent"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await worker.close()
    assert receiver.requests[0].verified()


async def test_a_settings_callable_is_read_every_round(
    pool: asyncpg.Pool, alert_id: uuid.UUID, clock: ManualClock, receivers: Start
) -> None:
    old, new = await receivers(), await receivers()
    current = {"settings": _settings(_hook(old.url))}
    worker = DeliveryWorker(pool, lambda: current["settings"], clock, random.Random(2))
    try:
        await _delivery(pool, alert_id, "hook", clock())
        await worker.deliver_due(clock())
        current["settings"] = _settings(_hook(new.url))  # the configuration was reloaded
        await _delivery(pool, alert_id, "hook", clock())
        await worker.deliver_due(clock.advance(1))
    finally:
        await worker.close()
    assert (len(old.requests), len(new.requests)) == (1, 1)
