"""Reading the call log: calls with their alert, how many legs rang and who answered, newest
first, filtered by number, caller, outcome and time.

One order everywhere (started_at DESC, then id), the order of calls_started_at_idx and
calls_did_started_at_idx: a page is an offset into it, an export walks it in batches from the
last row seen (keyset), so a long export never holds a connection or a transaction open
while a slow client reads.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

# A call without an outcome has not ended (or its end was never written): the filter's own
# value for those, which no outcome can be (outcomes start with a letter).
IN_PROGRESS = "_in_progress"

# What calls.outcome says when a call ended (calls/flow.py ends every call with one of them).
KNOWN_OUTCOMES = (
    "connected",
    "voicemail",
    "nobody_available",
    "abandoned",
    "outside_hours",
    "no_choice",
    "handed_back",
    "controller_stopped",
    "error",
)


@dataclass(frozen=True, slots=True)
class CallFilter:
    did: str | None = None
    caller: str | None = None  # a part of the caller ID, any case
    outcome: str | None = None  # an outcome, or IN_PROGRESS
    since: dt.datetime | None = None  # started at or after
    until: dt.datetime | None = None  # started before


@dataclass(frozen=True, slots=True)
class LoggedCall:
    id: uuid.UUID
    alert_id: uuid.UUID
    did: str
    caller_id: str | None
    started_at: dt.datetime
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    outcome: str | None
    number_name: str
    route: str | None
    alert_status: str
    legs: int
    answered_by: str | None  # users[].id of the responder who accepted

    @property
    def duration(self) -> dt.timedelta | None:
        return self.ended_at - self.started_at if self.ended_at is not None else None

    @property
    def position(self) -> tuple[dt.datetime, uuid.UUID]:
        """Where the call is in the log's order: what the next batch starts after."""
        return self.started_at, self.id


_SELECT = """
SELECT c.id, c.alert_id, c.did, c.caller_id, c.started_at, c.answered_at, c.ended_at,
       c.outcome, a.number_name, a.route, a.status AS alert_status,
       legs.legs, legs.answered_by
FROM calls c
JOIN alerts a ON a.id = c.alert_id
CROSS JOIN LATERAL (
    SELECT count(*)::int AS legs,
           (array_agg(l.user_id ORDER BY l.answered_at NULLS LAST, l.attempt)
                FILTER (WHERE l.outcome = 'accepted'))[1] AS answered_by
    FROM call_legs l
    WHERE l.call_id = c.id
) legs
"""


def _like_pattern(part: str) -> str:
    """`part` anywhere in the value, its own % and _ taken literally."""
    escaped = part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(
    wanted: CallFilter, after: tuple[dt.datetime, uuid.UUID] | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if wanted.did:
        clauses.append(f"c.did = {arg(wanted.did)}")
    if wanted.caller:
        clauses.append(f"c.caller_id ILIKE {arg(_like_pattern(wanted.caller))}")
    if wanted.outcome == IN_PROGRESS:
        clauses.append("c.outcome IS NULL")
    elif wanted.outcome:
        clauses.append(f"c.outcome = {arg(wanted.outcome)}")
    if wanted.since is not None:
        clauses.append(f"c.started_at >= {arg(wanted.since)}")
    if wanted.until is not None:
        clauses.append(f"c.started_at < {arg(wanted.until)}")
    if after is not None:
        started_at, call_id = after
        at, last = arg(started_at), arg(call_id)
        clauses.append(f"(c.started_at < {at} OR (c.started_at = {at} AND c.id > {last}))")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return where, args


async def logged_calls(
    conn: Any,
    wanted: CallFilter,
    *,
    limit: int,
    offset: int = 0,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    timeout_s: float = 10.0,
) -> list[LoggedCall]:
    """Up to `limit` calls matching `wanted`, newest first: from `offset`, or after the call
    at `after` (a LoggedCall.position)."""
    where, args = _conditions(wanted, after)
    args.extend([limit, offset])
    query = (
        f"{_SELECT} {where} ORDER BY c.started_at DESC, c.id"
        f" LIMIT ${len(args) - 1} OFFSET ${len(args)}"
    )
    rows = await conn.fetch(query, *args, timeout=timeout_s)
    return [LoggedCall(**dict(row)) for row in rows]


async def recent_outcomes(conn: Any, *, sample: int = 5000, timeout_s: float = 10.0) -> list[str]:
    """The outcomes among the newest `sample` calls (an outcome new to this list still shows
    up without a scan of every call ever made)."""
    rows = await conn.fetch(
        "SELECT DISTINCT outcome FROM (SELECT outcome FROM calls"
        " ORDER BY started_at DESC, id LIMIT $1) newest WHERE outcome IS NOT NULL",
        sample,
        timeout=timeout_s,
    )
    return sorted(str(row["outcome"]) for row in rows)
