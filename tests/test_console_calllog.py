"""The console's call log: filters, pages, times in the number's zone, the CSV export."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ari_controller.console import calllog
from tests.console_client import Console

DASH = "\u2013"  # between the ends of "Calls 1-50"

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
NUMBER_NAMES = {"100": "Acme Operations", "200": "Acme After Hours", "300": "Acme Night Desk"}


async def insert_logged_call(
    conn: Any,
    *,
    at: datetime = T0,
    did: str = "100",
    caller: str | None = "+4917000001",
    outcome: str | None = "connected",
    route: str | None = "the database team",
    legs: tuple[tuple[str, str], ...] = (("bea-busy", "busy"), ("ana-accepts", "accepted")),
    seconds: int = 95,
) -> uuid.UUID:
    """A call with its alert, as the store leaves them; returns the alert's id."""
    alert_id, call_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO alerts (id, number_did, number_name, route, caller_id, status, created_at)"
        " VALUES ($1, $2, $3, $4, $5, 'open', $6)",
        alert_id,
        did,
        NUMBER_NAMES.get(did, "Gone number"),
        route,
        caller,
        at,
    )
    await conn.execute(
        "INSERT INTO calls (id, alert_id, caller_channel_id, did, caller_id, started_at,"
        " ended_at, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        call_id,
        alert_id,
        f"chan-{call_id.hex[:8]}",
        did,
        caller,
        at,
        at + timedelta(seconds=seconds) if outcome is not None else None,
        outcome,
    )
    for attempt, (user, leg_outcome) in enumerate(legs, start=1):
        placed = at + timedelta(seconds=5 * attempt)
        await conn.execute(
            "INSERT INTO call_legs (id, call_id, user_id, contact, mode, attempt, placed_at,"
            " answered_at, ended_at, outcome) VALUES ($1, $2, $3, $4, 'sequential', $5, $6,"
            " $7, $6, $8)",
            f"leg-{call_id.hex[:8]}-{attempt}",
            call_id,
            user,
            f"Local/{user}@responders",
            attempt,
            placed,
            placed if leg_outcome == "accepted" else None,
            leg_outcome,
        )
    return alert_id


def rows_of(text: str) -> list[str]:
    """The table's body rows, as HTML."""
    body = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in text else ""
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


async def test_the_log_shows_calls_newest_first_in_their_numbers_zone(console: Console) -> None:
    async with console.pool.acquire() as conn:
        berlin = await insert_logged_call(conn, did="200", at=T0, route="operations")
        await insert_logged_call(conn, did="100", at=T0 - timedelta(hours=1), outcome="voicemail")
        await insert_logged_call(conn, did="999", at=T0 - timedelta(hours=2), legs=())
    browser = await console.browser("ana", role="viewer")
    page = await browser.get("/console/calls")
    assert page.status == 200
    rows = rows_of(page.text)
    assert len(rows) == 3
    # Number 200 shows in Berlin time, its zone named; 100 has no zone, so UTC.
    assert "2026-03-02 10:00:00 CET" in rows[0] and "Europe/Berlin" in rows[0]
    assert f'href="/console/alerts/{berlin}"' in rows[0]
    assert "Acme After Hours" in rows[0] and "operations" in rows[0]
    assert "Ana Accepts" in rows[0] and 'data-label="Legs">2<' in rows[0]
    assert "1 min 35 s" in rows[0]
    assert "2026-03-02 08:00:00 UTC" in rows[1] and "voicemail" in rows[1]
    # A number no longer configured: UTC, nobody answered.
    assert "2026-03-02 07:00:00 UTC" in rows[2] and "nobody" in rows[2]
    assert f"Calls 1{DASH}3, newest first" in page.text


async def test_filters_by_number_caller_outcome_and_days(console: Console) -> None:
    async with console.pool.acquire() as conn:
        await insert_logged_call(conn, did="100", caller="+4917011111", at=T0)
        await insert_logged_call(conn, did="100", caller="+4917022222", outcome="voicemail")
        await insert_logged_call(conn, did="200", caller="+4917011111", at=T0 + timedelta(hours=1))
        # 00:30 on 2 March in Berlin, still 1 March in UTC.
        await insert_logged_call(
            conn, did="200", caller="+4917033333", at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
        )
        await insert_logged_call(conn, did="300", caller="anonymous_x%", outcome=None)
    browser = await console.browser("ana", role="viewer")

    page = await browser.get("/console/calls", number="200")
    assert len(rows_of(page.text)) == 2
    assert 'value="200" selected' in page.text

    page = await browser.get("/console/calls", caller="11111")
    rows = rows_of(page.text)
    assert len(rows) == 2 and all("+4917011111" in row for row in rows)

    # % in the filter is a character, not a wildcard.
    assert len(rows_of((await browser.get("/console/calls", caller="x%")).text)) == 1
    assert len(rows_of((await browser.get("/console/calls", caller="7%3")).text)) == 0

    page = await browser.get("/console/calls", outcome="voicemail")
    rows = rows_of(page.text)
    assert len(rows) == 1 and "+4917022222" in rows[0]
    page = await browser.get("/console/calls", outcome=calllog.IN_PROGRESS)
    rows = rows_of(page.text)
    assert len(rows) == 1 and "still running" in rows[0] and "in progress" in rows[0]

    # Days of the selected number are Berlin days: its 00:30 call is on 2 March...
    page = await browser.get("/console/calls", number="200", since="2026-03-02", until="2026-03-02")
    assert len(rows_of(page.text)) == 2
    assert "Days are in Europe/Berlin, the selected number's time zone" in page.text
    # ...while without a number the days are UTC days, and that call is on 1 March.
    page = await browser.get("/console/calls", since="2026-03-02")
    assert len(rows_of(page.text)) == 4
    assert "Days are in UTC" in page.text
    page = await browser.get("/console/calls", until="2026-03-01")
    rows = rows_of(page.text)
    assert len(rows) == 1 and "+4917033333" in rows[0]

    page = await browser.get("/console/calls", since="2 March")
    assert page.status == 400 and "is not a date like 2026-03-02" in page.text


async def test_pages_of_fifty_keep_the_filters(console: Console) -> None:
    async with console.pool.acquire() as conn:
        for n in range(55):
            await insert_logged_call(
                conn, did="100", caller=f"+49170{n:05d}", at=T0 + timedelta(minutes=n)
            )
        await insert_logged_call(conn, did="200", at=T0 + timedelta(days=1))
    browser = await console.browser("ana", role="viewer")

    first = await browser.get("/console/calls", number="100")
    rows = rows_of(first.text)
    assert len(rows) == 50 and f"Calls 1{DASH}50" in first.text
    assert "+4917000054" in rows[0] and "+4917000005" in rows[-1]  # newest first
    assert "Previous 50" not in first.text
    next_href = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_href is not None
    assert next_href.group(1) == "/console/calls?number=100&amp;offset=50"

    second = await browser.get("/console/calls", number="100", offset="50")
    rows = rows_of(second.text)
    assert len(rows) == 5 and f"Calls 51{DASH}55" in second.text
    assert "+4917000004" in rows[0] and "+4917000000" in rows[-1]
    assert 'href="/console/calls?number=100" rel="prev"' in second.text
    assert 'rel="next"' not in second.text

    beyond = await browser.get("/console/calls", number="100", offset="100")
    assert "past the last page" in beyond.text and rows_of(beyond.text) == []


async def test_csv_export_has_the_columns_zone_and_filters(console: Console) -> None:
    async with console.pool.acquire() as conn:
        alert = await insert_logged_call(conn, did="200", at=T0, route="operations")
        await insert_logged_call(conn, did="100", at=T0 + timedelta(hours=1))
    browser = await console.browser("ana", role="viewer")
    page = await browser.get("/console/calls", number="200", caller="+49")
    assert 'href="/console/calls.csv?number=200&amp;caller=%2B49">Export CSV' in page.text

    status, body, headers = await browser.get_bytes("/console/calls.csv?number=200&caller=%2B49")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="calls-\d{4}-\d\d-\d\d\.csv"', headers["Content-Disposition"]
    )
    assert body.splitlines()[0].decode() == ",".join(calllog.CSV_COLUMNS)
    rows = csv_rows(body)
    assert rows == [
        {
            "started": "2026-03-02T10:00:00+01:00",
            "time_zone": "Europe/Berlin",
            "number": "200",
            "number_name": "Acme After Hours",
            "caller": "'+4917000001",
            "route": "operations",
            "outcome": "connected",
            "answered_by": "Ana Accepts",
            "legs": "2",
            "duration_s": "95",
            "alert_id": str(alert),
        }
    ]


@pytest.mark.parametrize(
    ("caller", "written"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("+4917000001", "'+4917000001"),
        ("4917000001", "4917000001"),
        ("Anonymous", "Anonymous"),
    ],
)
async def test_csv_cells_cannot_start_a_formula(
    console: Console, caller: str, written: str
) -> None:
    async with console.pool.acquire() as conn:
        await insert_logged_call(conn, caller=caller)
    browser = await console.browser("ana", role="viewer")
    status, body, _ = await browser.get_bytes("/console/calls.csv")
    assert status == 200
    assert [row["caller"] for row in csv_rows(body)] == [written]


async def test_csv_walks_every_matching_call_in_batches_up_to_the_cap(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calllog, "EXPORT_BATCH", 2)
    async with console.pool.acquire() as conn:
        # Two calls at the same moment: a batch ending between them must not lose one.
        for n, at in enumerate([T0, T0, T0 - timedelta(minutes=1), T0 - timedelta(minutes=2)]):
            await insert_logged_call(conn, caller=f"caller {n}", at=at)
        await insert_logged_call(conn, did="200", caller="other number")
    browser = await console.browser("ana", role="viewer")
    _, body, _ = await browser.get_bytes("/console/calls.csv?number=100")
    callers = [row["caller"] for row in csv_rows(body)]
    assert sorted(callers[:2]) == ["caller 0", "caller 1"]
    assert callers[2:] == ["caller 2", "caller 3"]

    monkeypatch.setattr(calllog, "EXPORT_CAP", 3)
    _, body, _ = await browser.get_bytes("/console/calls.csv?number=100")
    assert len(csv_rows(body)) == 3


async def test_the_log_and_its_export_need_a_signed_in_account(console: Console) -> None:
    async with console.pool.acquire() as conn:
        await insert_logged_call(conn)
    browser = await console.browser()
    page = await browser.get("/console/calls")
    assert "/console/login" in page.url and "<h1>Sign in</h1>" in page.text
    _, body, headers = await browser.get_bytes("/console/calls.csv")
    assert headers["Content-Type"].startswith("text/html")
    assert b"<h1>Sign in</h1>" in body and b"+4917000001" not in body
