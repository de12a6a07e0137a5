"""The store writer against a real Postgres: order, idempotency, outages, the spool."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ari_controller.calls.outcomes import LegOutcome
from ari_controller.calls.records import (
    AlertEscalated,
    AlertOpened,
    AlertRouted,
    AlertStatusChanged,
    CallEnded,
    CallScreened,
    CallStarted,
    LegAnswered,
    LegEnded,
    LegPlaced,
    NotificationQueued,
    Record,
    TimelineEvent,
    VoicemailStored,
)
from ari_controller.store.migrate import migrate
from ari_controller.store.queries import get_alert, list_alerts, pending_notifications
from ari_controller.store.spool import SpoolInUseError
from ari_controller.store.statements import apply_record, group_statements, statements
from ari_controller.store.writer import StoreWriter
from ari_controller.testing.postgres import PostgresNotFoundError, ThrowawayPostgres, free_port
from tests.fixtures_postgres import run_async

T0 = datetime(2025, 3, 4, 2, 17, 5, tzinfo=UTC)
FAST_RETRY = {"retry_initial": 0.02, "retry_max": 0.1, "connect_timeout": 2.0}


def call_records(
    alert_id: uuid.UUID | None = None, *, start: datetime = T0, voicemail: bool = False
) -> list[Record]:
    """What the call flow writes for one call: a busy responder, then one who accepts
    (or, with voicemail, nobody and a message)."""
    alert_id = alert_id or uuid.uuid4()
    call_id = uuid.uuid4()
    at = [start + timedelta(seconds=s) for s in range(30)]
    seq = iter(range(1, 100))

    def event(i: int, kind: str, **data: object) -> TimelineEvent:
        return TimelineEvent(call_id, next(seq), at[i], kind, data)

    leg1, leg2 = f"leg-{call_id.hex[:8]}-1", f"leg-{call_id.hex[:8]}-2"
    records: list[Record] = [
        AlertOpened(
            alert_id, "+4930123456", "Ops hotline", None, "+4917000001", at[0], "+4917000001"
        ),
        CallStarted(
            call_id, alert_id, f"chan-{call_id.hex[:8]}", "+4930123456", "+491", at[0], at[1]
        ),
        event(0, "call_started", did="+4930123456"),
        event(3, "route_chosen", digit="1", route="database"),
        AlertRouted(alert_id, "database"),
        LegPlaced(leg1, call_id, "alice", "PJSIP/alice", "sequential", 1, at[4]),
        event(4, "leg_placed", leg=leg1, user="alice"),
        LegEnded(leg1, at[6], LegOutcome.BUSY, 17),
        event(6, "leg_ended", leg=leg1, outcome="busy", cause=17),
        LegPlaced(leg2, call_id, "bob", "PJSIP/bob", "sequential", 2, at[6]),
        event(6, "leg_placed", leg=leg2, user="bob"),
    ]
    if voicemail:
        vm_id = uuid.uuid4()
        records += [
            LegEnded(leg2, at[26], LegOutcome.NO_ANSWER, 19),
            event(26, "leg_ended", leg=leg2, outcome="no_answer", cause=19),
            VoicemailStored(vm_id, call_id, alert_id, "vm-1", 7.5, "wav", b"RIFF\x00\xff", at[27]),
            event(27, "voicemail_stored", recording="vm-1"),
            AlertEscalated(alert_id, 1, at[27]),
            CallEnded(call_id, alert_id, at[28], "voicemail"),
            event(28, "call_ended", reason="voicemail"),
            # The same caller again, past the rate limit: counted on the alert, no new one.
            CallScreened(
                uuid.uuid4(),
                f"chan-{call_id.hex[:8]}-again",
                "+4930123456",
                "Ops hotline",
                "+4917000001",
                "+4917000001",
                "rate_limited",
                "more than 3 calls in 10 minutes",
                at[29],
                alert_id,
                {"steps": [{"check": "rate_limit", "outcome": "exceeded"}]},
            ),
        ]
    else:
        records += [
            LegAnswered(leg2, at[9]),
            LegEnded(leg2, at[20], LegOutcome.ACCEPTED, None, answered_at=at[9]),
            AlertStatusChanged(alert_id, "acknowledged", at[10], "bob"),
            event(10, "bridged", leg=leg2),
            CallEnded(call_id, alert_id, at[25], "connected"),
            AlertStatusChanged(alert_id, "resolved", at[25], None),
            event(25, "call_ended", reason="connected"),
        ]
    records.append(
        NotificationQueued(uuid.uuid4(), alert_id, "webhook", {"event": "alert_opened"}, at[0])
    )
    return records


def alert_id_of(records: list[Record]) -> uuid.UUID:
    first = records[0]
    assert isinstance(first, AlertOpened)
    return first.alert_id


async def test_writer_applies_a_call_and_get_alert_reads_it_back(
    database: str, tmp_path: Path
) -> None:
    records = call_records()
    writer = StoreWriter(database, tmp_path / "spool", **FAST_RETRY)  # type: ignore[arg-type]
    await writer.start()
    for record in records:
        writer.submit(record)
    assert await writer.flush(10)
    assert (writer.written, writer.pending, writer.rejected) == (len(records), 0, 0)
    await writer.close()

    conn = await asyncpg.connect(database)
    try:
        alert = await get_alert(conn, alert_id_of(records))
        outbox = await pending_notifications(conn)
        listed = await list_alerts(conn)
    finally:
        await conn.close()
    assert alert is not None
    assert alert["status"] == "resolved"
    assert alert["acknowledged_by"] == "bob"
    assert alert["route"] == "database"
    assert alert["ended_reason"] == "connected"
    assert alert["acknowledged_at"] == T0 + timedelta(seconds=10)
    (call,) = alert["calls"]
    assert call["outcome"] == "connected"
    assert call["answered_at"] == T0 + timedelta(seconds=1)
    assert [(leg["user_id"], leg["outcome"], leg["hangup_cause"]) for leg in call["legs"]] == [
        ("alice", "busy", 17),
        ("bob", "accepted", None),
    ]
    assert call["legs"][1]["answered_at"] == T0 + timedelta(seconds=9)
    assert [e["seq"] for e in call["timeline"]] == list(range(1, len(call["timeline"]) + 1))
    assert [e["kind"] for e in call["timeline"]] == [
        "call_started",
        "route_chosen",
        "leg_placed",
        "leg_ended",
        "leg_placed",
        "bridged",
        "call_ended",
    ]
    assert call["timeline"][3]["data"] == {
        "leg": call["legs"][0]["id"],
        "outcome": "busy",
        "cause": 17,
    }
    assert alert["voicemail"] is None
    assert [n["kind"] for n in outbox] == ["webhook"]
    assert outbox[0]["payload"] == {"event": "alert_opened"}
    assert [a["id"] for a in listed] == [alert["id"]]
    assert not (tmp_path / "spool" / "pending.jsonl").exists()


async def test_voicemail_is_attached_to_the_alert(database: str, tmp_path: Path) -> None:
    records = call_records(voicemail=True)
    writer = StoreWriter(database, tmp_path, **FAST_RETRY)  # type: ignore[arg-type]
    await writer.start()
    for record in records:
        writer.submit(record)
    assert await writer.close(10)

    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    try:
        alert = await get_alert(pool, alert_id_of(records), include_audio=True)
    finally:
        await pool.close()
    assert alert is not None
    assert alert["status"] == "open"
    assert alert["escalation_count"] == 1
    assert alert["ended_reason"] == "voicemail"
    voicemail = alert["voicemail"]
    assert voicemail is not None
    assert alert["voicemail_id"] == voicemail["id"]
    assert (voicemail["recording_name"], voicemail["duration_s"]) == ("vm-1", 7.5)
    assert (voicemail["audio"], voicemail["audio_bytes"]) == (b"RIFF\x00\xff", 6)


async def test_applying_records_twice_or_late_changes_nothing(database: str) -> None:
    """Retries after an ambiguous failure and spool replays re-apply records: no duplicates,
    and an old record never undoes a newer one."""
    records = call_records()
    conn = await asyncpg.connect(database)
    try:
        assert all([await apply_record(conn, r) for r in records])
        before = await get_alert(conn, alert_id_of(records))
        assert not any([await apply_record(conn, r) for r in records])
        assert not any([await apply_record(conn, r) for r in reversed(records)])
        after = await get_alert(conn, alert_id_of(records))
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("alerts", "calls", "call_legs", "call_events", "notification_outbox")
        }
        # Escalations are a count, not an increment.
        await apply_record(conn, AlertEscalated(alert_id_of(records), 2, T0))
        await apply_record(conn, AlertEscalated(alert_id_of(records), 1, T0))
        escalations = await conn.fetchval(
            "SELECT escalation_count FROM alerts WHERE id = $1", alert_id_of(records)
        )
    finally:
        await conn.close()
    assert before is not None and after == before
    assert before["status"] == "resolved"
    assert counts == {
        "alerts": 1,
        "calls": 1,
        "call_legs": 2,
        "call_events": 7,
        "notification_outbox": 1,
    }
    assert escalations == 2


async def test_a_refused_record_is_kept_aside_and_does_not_block_the_rest(
    database: str, tmp_path: Path
) -> None:
    records = call_records()
    orphan = CallStarted(uuid.uuid4(), uuid.uuid4(), "chan-x", "+1", None, T0)  # no such alert
    writer = StoreWriter(database, tmp_path, **FAST_RETRY)  # type: ignore[arg-type]
    await writer.start()
    writer.submit(orphan)
    for record in records:
        writer.submit(record)
    assert await writer.close(10)
    assert (writer.rejected, writer.written) == (1, len(records))
    (line,) = writer.rejected_path.read_text().splitlines()
    kept = json.loads(line)
    assert kept["sqlstate"] == "23503"  # foreign key violation
    assert kept["record"]["call_id"] == str(orphan.call_id)


def interleaved(*calls: list[Record]) -> list[Record]:
    """Several calls going on at once: the i-th record of each, then the (i+1)-th, ..."""
    out: list[Record] = []
    for step in range(max(len(c) for c in calls)):
        out += [c[step] for c in calls if step < len(c)]
    return out


def test_only_consecutive_runs_of_the_same_statement_are_grouped() -> None:
    records = interleaved(*(call_records() for _ in range(3)))
    runs = group_statements(records)
    flat = [stmt for record in records for stmt in statements(record)]
    # Nothing lost, nothing moved: the runs are the statements in submission order.
    assert [(sql, args) for sql, rows in runs for args in rows] == flat
    assert all(a[0] != b[0] for a, b in itertools.pairwise(runs))
    # Three calls at the same step share a statement: about a third of the round trips.
    assert len(runs) <= len(flat) // 2
    # A record of several statements keeps them together and in order.
    ended = next(r for r in records if isinstance(r, CallEnded))
    (calls_update, alerts_update) = statements(ended)
    assert calls_update[0].startswith("UPDATE calls") and calls_update[1][0] == ended.call_id
    assert alerts_update[0].startswith("UPDATE alerts") and alerts_update[1][0] == ended.alert_id


class RoundTrips:
    """Counts the statements the writer sends with arguments (one round trip each)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.execute = 0
        self.executemany = 0
        self.rows = 0
        execute, executemany = asyncpg.Connection.execute, asyncpg.Connection.executemany

        async def counted_execute(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if args:  # not BEGIN/COMMIT/ROLLBACK
                self.execute += 1
                self.rows += 1
            return await execute(conn, query, *args, **kwargs)

        async def counted_executemany(conn: Any, query: str, args: Any, **kwargs: Any) -> Any:
            self.executemany += 1
            self.rows += len(args)
            return await executemany(conn, query, args, **kwargs)

        monkeypatch.setattr(asyncpg.Connection, "execute", counted_execute)
        monkeypatch.setattr(asyncpg.Connection, "executemany", counted_executemany)

    @property
    def total(self) -> int:
        return self.execute + self.executemany


async def test_a_burst_of_mixed_records_goes_in_fewer_round_trips(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [call_records(), call_records(voicemail=True), call_records(), call_records()]
    records = interleaved(*calls)
    n_statements = sum(len(statements(r)) for r in records)
    trips = RoundTrips(monkeypatch)
    writes: list[bool] = []
    writer = StoreWriter(
        database,
        tmp_path,
        batch_max=500,
        on_write=lambda latency, ok: writes.append(ok),
        **FAST_RETRY,  # type: ignore[arg-type]
    )
    for record in records:
        writer.submit(record)
    await writer.start()
    assert await writer.close(10)
    assert (writer.written, writer.rejected, writer.pending) == (len(records), 0, 0)
    assert writes == [True], "one transaction for the burst"
    assert trips.rows == n_statements, "every statement sent once"
    assert trips.executemany > 0
    assert trips.total == len(group_statements(records)) <= len(records) // 2

    # The same rows as when each record is applied on its own.
    conn = await asyncpg.connect(database)
    try:
        alerts = [await get_alert(conn, alert_id_of(c), include_audio=True) for c in calls]
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("alerts", "calls", "call_legs", "call_events", "voicemails")
        }
    finally:
        await conn.close()
    assert counts == {
        "alerts": 4,
        "calls": 4,
        "call_legs": 8,
        "call_events": 7 * 3 + 8,
        "voicemails": 1,
    }
    assert [a["status"] if a else None for a in alerts] == ["resolved", "open"] + ["resolved"] * 2
    assert [a["ended_reason"] if a else None for a in alerts] == [
        "connected",
        "voicemail",
        "connected",
        "connected",
    ]
    for alert, call in zip(alerts, calls, strict=True):
        assert alert is not None
        (row,) = alert["calls"]
        expected_events = [r.seq for r in call if isinstance(r, TimelineEvent)]
        assert [e["seq"] for e in row["timeline"]] == expected_events
        assert [leg["outcome"] for leg in row["legs"]] == [
            r.outcome for r in call if isinstance(r, LegEnded)
        ]
    assert alerts[1] is not None and alerts[1]["voicemail"]["audio"] == b"RIFF\x00\xff"
    assert alerts[1]["voicemail_id"] == alerts[1]["voicemail"]["id"]
    for call in calls:
        order = await _application_order(database, alert_id_of(call))
        assert order == [r.seq for r in call if isinstance(r, TimelineEvent)]


async def test_a_refused_record_inside_a_grouped_run_is_isolated(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [call_records(), call_records(), call_records()]
    records = interleaved(*calls)
    # Two bad timeline events in the middle of a run of good ones: one the server refuses
    # (no such call: foreign key), one the driver cannot encode (seq beyond integer).
    orphan = TimelineEvent(uuid.uuid4(), 1, T0, "note")
    assert isinstance(calls[0][1], CallStarted)
    too_big = TimelineEvent(calls[0][1].call_id, 2**40, T0, "note")
    at = next(i for i, r in enumerate(records) if isinstance(r, TimelineEvent)) + 1
    records[at:at] = [orphan, too_big]
    (bad_run,) = [
        rows
        for _, rows in group_statements(records)
        if (orphan.call_id, 1) in {args[:2] for args in rows}
    ]
    # Each call's first two events (call_started, route_chosen) are neighbours in the burst.
    assert len(bad_run) == 2 + 2 * len(calls), "the bad ones share a run with good events"

    trips = RoundTrips(monkeypatch)
    writes: list[bool] = []
    writer = StoreWriter(
        database,
        tmp_path,
        batch_max=500,
        on_write=lambda latency, ok: writes.append(ok),
        **FAST_RETRY,  # type: ignore[arg-type]
    )
    for record in records:
        writer.submit(record)
    await writer.start()
    assert await writer.close(10)
    assert (writer.written, writer.rejected, writer.pending) == (len(records) - 2, 2, 0)
    assert writer.failures == 0, "a refused batch is not an outage"
    assert trips.executemany >= 1
    assert writes and all(writes)
    kept = [json.loads(line) for line in writer.rejected_path.read_text().splitlines()]
    assert [k["record"]["seq"] for k in kept] == [1, 2**40]
    assert kept[0]["sqlstate"] == "23503"
    assert "DataError" in kept[1]["error"]
    for call in calls:
        order = await _application_order(database, alert_id_of(call))
        assert order == [r.seq for r in call if isinstance(r, TimelineEvent)]
    alert = await get_alert_from(database, alert_id_of(calls[2]))
    assert alert["status"] == "resolved"


async def test_spooled_records_are_written_after_a_restart(database: str, tmp_path: Path) -> None:
    records = call_records()
    spool = tmp_path / "spool"
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    first = StoreWriter(nowhere, spool, **FAST_RETRY)  # type: ignore[arg-type]
    await first.start()  # the database is unreachable: start must not fail
    for record in records[:5]:
        first.submit(record)
    await asyncio.sleep(0.05)
    for record in records[5:]:
        first.submit(record)
    assert not await first.close(timeout=0.2)
    assert first.failures >= 1 and first.written == 0
    assert len((spool / "pending.jsonl").read_text().splitlines()) == len(records)

    # The same writer started again (still no database) keeps each record once.
    await first.start()
    assert first.pending == len(records)
    await first.close(0.05)
    assert len((spool / "pending.jsonl").read_text().splitlines()) == len(records)

    second = StoreWriter(database, spool, **FAST_RETRY)  # type: ignore[arg-type]
    assert isinstance(records[1], CallStarted)
    late = TimelineEvent(records[1].call_id, 50, T0, "note", {"after": "restart"})
    second.submit(late)  # submitted before start: still written after the spooled records
    await second.start()
    assert await second.flush(10)
    await second.close()
    assert second.written == len(records) + 1
    assert not (spool / "pending.jsonl").exists()
    conn = await asyncpg.connect(database)
    try:
        alert = await get_alert(conn, alert_id_of(records))
    finally:
        await conn.close()
    assert alert is not None and alert["status"] == "resolved"
    timeline = alert["calls"][0]["timeline"]
    assert [e["seq"] for e in timeline] == [*range(1, 8), 50]


async def test_one_spool_directory_serves_one_writer(tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    first = StoreWriter(nowhere, tmp_path, **FAST_RETRY)  # type: ignore[arg-type]
    await first.start()
    try:
        with pytest.raises(SpoolInUseError):
            await StoreWriter(nowhere, tmp_path).start()
    finally:
        await first.close(0.1)
    second = StoreWriter(nowhere, tmp_path)
    await second.start()  # the lock is released on close
    await second.close(0.1)


# --- the database goes away while calls go on ---------------------------------------------


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[ThrowawayPostgres]:
    """A server of our own, since these tests stop and start it."""
    try:
        server = ThrowawayPostgres().start()
    except PostgresNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        run_async(lambda: migrate(server.dsn))
        yield server
    finally:
        server.stop()


@pytest.fixture
async def running_postgres(own_postgres: ThrowawayPostgres) -> AsyncIterator[ThrowawayPostgres]:
    await asyncio.to_thread(own_postgres.start_server)
    yield own_postgres
    await asyncio.to_thread(own_postgres.start_server)


async def _application_order(dsn: str, alert_id: uuid.UUID) -> list[int]:
    # The transaction (xmin), then the place in the table (ctid: this table only grows) show
    # the order rows were written in.
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT e.seq FROM call_events e JOIN calls c ON c.id = e.call_id"
            " WHERE c.alert_id = $1 ORDER BY e.xmin::text::bigint, e.ctid",
            alert_id,
        )
    finally:
        await conn.close()
    return [row["seq"] for row in rows]


async def test_calls_go_on_while_the_database_is_down(
    running_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    records = call_records()
    outcomes: list[bool] = []
    writer = StoreWriter(
        running_postgres.dsn,
        tmp_path,
        on_write=lambda latency, ok: outcomes.append(ok),
        **FAST_RETRY,  # type: ignore[arg-type]
    )
    await writer.start()
    for record in records[:4]:
        writer.submit(record)
    assert await writer.flush(10)

    await asyncio.to_thread(running_postgres.stop_server)
    submit_times = []
    for record in records[4:]:
        started = time.perf_counter()
        writer.submit(record)
        submit_times.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)  # the call goes on
    assert max(submit_times) < 0.005, "submit must not wait for the database"
    assert not await writer.flush(0.3)
    assert writer.pending == len(records) - 4
    assert writer.failures >= 1 and False in outcomes
    # What could not be written is on disk, in order, in case the controller dies now.
    spooled = writer.pending_path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in spooled] == [type(r).__name__ for r in records[4:]]

    await asyncio.to_thread(running_postgres.start_server)
    assert await writer.flush(15)
    await writer.close()
    assert writer.pending == 0 and writer.rejected == 0
    assert outcomes[-1] is True
    assert not writer.pending_path.exists()

    alert = await get_alert_from(running_postgres.dsn, alert_id_of(records))
    assert alert["status"] == "resolved"
    assert [leg["outcome"] for leg in alert["calls"][0]["legs"]] == ["busy", "accepted"]
    order = await _application_order(running_postgres.dsn, alert_id_of(records))
    assert order == list(range(1, 8)), "each event once, in the order submitted"


async def test_writer_starts_while_the_database_is_down(
    running_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    records = call_records()
    await asyncio.to_thread(running_postgres.stop_server)
    writer = StoreWriter(running_postgres.dsn, tmp_path, **FAST_RETRY)  # type: ignore[arg-type]
    started = time.perf_counter()
    await writer.start()
    assert time.perf_counter() - started < 0.5
    for record in records:
        writer.submit(record)
    assert not await writer.flush(0.3)

    await asyncio.to_thread(running_postgres.start_server)
    assert await writer.flush(15)
    await writer.close()
    alert = await get_alert_from(running_postgres.dsn, alert_id_of(records))
    assert alert["ended_reason"] == "connected"
    assert await _application_order(running_postgres.dsn, alert_id_of(records)) == list(range(1, 8))


async def get_alert_from(dsn: str, alert_id: uuid.UUID) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        alert = await get_alert(conn, alert_id)
    finally:
        await conn.close()
    assert alert is not None
    return alert
