"""The call log: every call, newest first, with filters, pages of 50 and a CSV export.

Times are shown in each call's number's time zone, the zone named (a log of several numbers
mixes zones: the zone is on every row). Filter dates are days in the selected number's zone,
or in UTC when no number (or one no longer configured) is selected: the page says which.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import structlog
from aiohttp import web

from ari_controller.config import Config
from ari_controller.console.format import caller, day_bounds, duration, moment, zone
from ari_controller.console.security import DATABASE_ERRORS, DB_TIMEOUT_S
from ari_controller.console.services import ConsoleServices
from ari_controller.store.call_log import (
    IN_PROGRESS,
    KNOWN_OUTCOMES,
    CallFilter,
    LoggedCall,
    logged_calls,
    recent_outcomes,
)

log = structlog.get_logger(__name__)

PAGE_SIZE = 50
# An export is for a period's report, not a backup: beyond this, narrow the filters.
EXPORT_CAP = 50_000
EXPORT_BATCH = 1000
# Offsets past this are a hand-made URL, not paging: the database would walk them all.
MAX_OFFSET = 1_000_000
CSV_COLUMNS = (
    "started",
    "time_zone",
    "number",
    "number_name",
    "caller",
    "route",
    "outcome",
    "answered_by",
    "legs",
    "duration_s",
    "alert_id",
)
# OWASP's advice against CSV (formula) injection: a cell starting with one of these gets a
# leading apostrophe, so a spreadsheet shows it as text instead of evaluating it. Caller IDs
# are whatever the caller's network sends, so they are the cells that matter. E.164 numbers
# ('+4930...') are prefixed too, on purpose: a spreadsheet would otherwise read them as a
# formula or a number and drop the '+'; with the apostrophe it shows the number as written,
# and a program reading the file can strip a leading apostrophe.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    pages = CallLogPages(services)
    app.router.add_get("/calls", pages.log, name="calls")
    app.router.add_get("/calls.csv", pages.export, name="calls_csv")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """The filters as the form sent them (shown back in the form, kept in links)."""

    number: str = ""
    caller: str = ""
    outcome: str = ""
    since: str = ""
    until: str = ""
    offset: int = 0

    @classmethod
    def of(cls, query: Mapping[str, str]) -> LogQuery:
        try:
            offset = min(max(int(query.get("offset", "0")), 0), MAX_OFFSET)
        except ValueError:
            offset = 0
        return cls(
            number=query.get("number", "").strip(),
            caller=query.get("caller", "").strip()[:64],
            outcome=query.get("outcome", "").strip(),
            since=query.get("since", "").strip(),
            until=query.get("until", "").strip(),
            offset=offset,
        )

    def href(self, path: str, **changes: Any) -> str:
        """`path` with these filters (and changes), leaving out the empty ones."""
        wanted = replace(self, **changes)
        params = {
            "number": wanted.number,
            "caller": wanted.caller,
            "outcome": wanted.outcome,
            "since": wanted.since,
            "until": wanted.until,
            "offset": str(wanted.offset) if wanted.offset else "",
        }
        query = urlencode({k: v for k, v in params.items() if v})
        return f"{path}?{query}" if query else path


def dates_zone(config: Config, did: str) -> str:
    """The zone filter dates are days in: the selected number's, else UTC."""
    number = config.number(did) if did else None
    return number.zone_name if number is not None else "UTC"


def call_filter(query: LogQuery, config: Config) -> tuple[CallFilter, list[str]]:
    """What to ask the database, and what in the form could not be understood."""
    errors: list[str] = []
    tz = zone(dates_zone(config, query.number))

    since, until, problem = day_bounds(query.since, query.until, tz)
    if problem is not None:
        errors.append(problem)
    return (
        CallFilter(
            did=query.number or None,
            caller=query.caller or None,
            outcome=query.outcome or None,
            since=since,
            until=until,
        ),
        errors,
    )


def outcome_label(outcome: str | None) -> str:
    return "in progress" if outcome is None else outcome.replace("_", " ")


def neutralised(cell: str) -> str:
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell


@dataclass(frozen=True, slots=True)
class LogRow:
    """One call as the page shows it."""

    alert_href: str
    started: str
    started_iso: str
    zone: str
    did: str
    number_name: str
    caller: str
    route: str
    outcome: str
    answered_by: str
    legs: int
    duration: str


class CallLogPages:
    def __init__(self, services: ConsoleServices) -> None:
        self._services = services

    async def log(self, request: web.Request) -> web.StreamResponse:
        config = self._services.config()
        query = LogQuery.of(request.query)
        wanted, errors = call_filter(query, config)
        calls: list[LoggedCall] = []
        async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
            seen = await recent_outcomes(conn, timeout_s=DB_TIMEOUT_S)
            if not errors:
                # One more than a page: whether there is a next one.
                calls = await logged_calls(
                    conn,
                    wanted,
                    limit=PAGE_SIZE + 1,
                    offset=query.offset,
                    timeout_s=DB_TIMEOUT_S,
                )
        has_next = len(calls) > PAGE_SIZE
        calls = calls[:PAGE_SIZE]
        names = {user.id: user.name for user in config.users}
        previous = max(query.offset - PAGE_SIZE, 0)
        context = {
            "filters": query,
            "errors": errors,
            "number_options": _number_options(config, query.number),
            "outcome_options": _outcome_options(seen, query.outcome),
            "dates_zone": dates_zone(config, query.number),
            "dates_in_number_zone": config.number(query.number) is not None,
            "calls": [_row(call, config, names) for call in calls],
            "first": query.offset + 1,
            "last": query.offset + len(calls),
            "page_size": PAGE_SIZE,
            "export_cap": f"{EXPORT_CAP:,}",
            "prev_href": query.href("/console/calls", offset=previous) if query.offset else "",
            "next_href": (
                query.href("/console/calls", offset=query.offset + PAGE_SIZE) if has_next else ""
            ),
            "csv_href": query.href("/console/calls.csv", offset=0),
        }
        return aiohttp_jinja2.render_template(
            "calls.html", request, context, status=400 if errors else 200
        )

    async def export(self, request: web.Request) -> web.StreamResponse:
        config = self._services.config()
        query = LogQuery.of(request.query)
        wanted, errors = call_filter(query, config)
        if errors:
            raise web.HTTPBadRequest(text=" ".join(errors))
        pool = self._services.pool()
        # The first batch before any byte is sent: a database that is down is still the
        # console's 503 page, not a broken download.
        async with pool.acquire(timeout=DB_TIMEOUT_S) as conn:
            batch = await logged_calls(conn, wanted, limit=EXPORT_BATCH, timeout_s=DB_TIMEOUT_S)
        day = self._services.clock().astimezone(dt.UTC).date().isoformat()
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="calls-{day}.csv"',
            }
        )
        await response.prepare(request)
        names = {user.id: user.name for user in config.users}
        written = 0
        try:
            await response.write(_csv_lines([CSV_COLUMNS]))
            while batch:
                batch = batch[: EXPORT_CAP - written]
                await response.write(_csv_lines(_csv_row(call, config, names) for call in batch))
                written += len(batch)
                if len(batch) < EXPORT_BATCH or written >= EXPORT_CAP:
                    break
                async with pool.acquire(timeout=DB_TIMEOUT_S) as conn:
                    batch = await logged_calls(
                        conn,
                        wanted,
                        limit=min(EXPORT_BATCH, EXPORT_CAP - written),
                        after=batch[-1].position,
                        timeout_s=DB_TIMEOUT_S,
                    )
        except DATABASE_ERRORS as exc:
            # The headers are gone: cut the download off so that it fails where it is saved,
            # rather than ending it as if the file were complete.
            log.warning("console_export_cut", rows=written, error=str(exc) or type(exc).__name__)
            if request.transport is not None:
                request.transport.abort()
            return response
        log.info("console_calls_exported", rows=written, capped=written >= EXPORT_CAP)
        await response.write_eof()
        return response


def _number_options(config: Config, selected: str) -> list[dict[str, str]]:
    options = [{"value": n.did, "label": f"{n.name} ({n.did})"} for n in config.numbers]
    if selected and config.number(selected) is None:
        options.append({"value": selected, "label": f"{selected} (no longer configured)"})
    return options


def _outcome_options(seen: list[str], selected: str) -> list[dict[str, str]]:
    values = list(KNOWN_OUTCOMES) + [o for o in seen if o not in KNOWN_OUTCOMES]
    if selected and selected != IN_PROGRESS and selected not in values:
        values.append(selected)
    options = [{"value": v, "label": outcome_label(v)} for v in values]
    options.append({"value": IN_PROGRESS, "label": outcome_label(None)})
    return options


def _zone_of(call: LoggedCall, config: Config) -> str:
    number = config.number(call.did)
    return number.zone_name if number is not None else "UTC"


def _row(call: LoggedCall, config: Config, names: Mapping[str, str]) -> LogRow:
    tz = _zone_of(call, config)
    return LogRow(
        alert_href=f"/console/alerts/{call.alert_id}",
        started=moment(call.started_at, tz),
        started_iso=call.started_at.isoformat(),
        zone=tz,
        did=call.did,
        number_name=call.number_name,
        caller=caller(call.caller_id),
        route=call.route or "",
        outcome=outcome_label(call.outcome),
        answered_by=names.get(call.answered_by, call.answered_by) if call.answered_by else "",
        legs=call.legs,
        duration=duration(call.duration),
    )


def _csv_row(call: LoggedCall, config: Config, names: Mapping[str, str]) -> list[str | int]:
    tz = _zone_of(call, config)
    length = call.duration
    answered = names.get(call.answered_by, call.answered_by) if call.answered_by else ""
    texts = [
        call.started_at.astimezone(zone(tz)).isoformat(),
        tz,
        call.did,
        call.number_name,
        call.caller_id or "",
        call.route or "",
        call.outcome or "",
        answered,
    ]
    return [
        *(neutralised(text) for text in texts),
        call.legs,
        round(length.total_seconds()) if length is not None else "",
        str(call.alert_id),
    ]


def _csv_lines(rows: Any) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")
