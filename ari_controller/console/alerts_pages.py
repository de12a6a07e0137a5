"""The alerts: the list (by state, number and day, paged), acting on one or many, and one
alert with its calls, its voicemail, its escalation and its messages.

Acting posts a form and answers 303 back to the page it came from, which says what happened
(post/redirect/get: reloading a page never acts twice). The message travels as counts and
outcome words in the query, never as text, so a link cannot make the console say anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp_jinja2
import structlog
from aiohttp import web

from ari_controller.alerts import actions
from ari_controller.config import Config
from ari_controller.console import security
from ari_controller.console.format import caller, clock_time, day_bounds, moment, zone
from ari_controller.console.services import ConsoleServices
from ari_controller.console.timeline import cause, describe, ending, leg_outcome, seconds
from ari_controller.store import queries

log = structlog.get_logger(__name__)

PAGE_SIZE = 50
# One bulk form acts on at most this many alerts (a page is 50; more is not a person).
MAX_BULK = 200
STATES = ("open", "acknowledged", "resolved")
TABS = (*STATES, "all")
DEFAULT_STATE = "open"
LIST_PATH = "/console/alerts"
AUDIO_CACHE = "private, max-age=300"
AUDIO_TYPES = {"wav": "audio/wav"}

Act = Callable[..., Awaitable[actions.ActionResult]]
ACTIONS: dict[str, Act] = {
    "acknowledge": actions.acknowledge,
    "resolve": actions.resolve,
    "escalate": actions.escalate_now,
}
PAST = {"acknowledge": "acknowledged", "resolve": "resolved", "escalate": "escalated"}
# Query keys of the message after a bulk action (dropped from the `back` address).
_BULK_KEYS = ("done", "changed", "already", "refused", "unknown")
_MODES = {"sequential": "one after another", "simultaneous": "all at once"}


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    pages = AlertPages(services)
    app.router.add_get("/alerts", pages.list_page, name="alerts")
    app.router.add_post("/alerts/act", pages.act_on_many)
    app.router.add_get("/alerts/{alert_id}", pages.alert_page, name="alert")
    app.router.add_post(
        "/alerts/{alert_id}/{action:acknowledge|resolve|escalate}", pages.act_on_one
    )
    app.router.add_get("/alerts/{alert_id}/voicemail", pages.voicemail)


# ---- the list's filters --------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What the list shows, as the query string says it (the form's own values kept, so a
    wrong date is shown back to be corrected)."""

    state: str = DEFAULT_STATE
    number: str = ""
    since: str = ""
    until: str = ""
    offset: int = 0

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        state = query.get("state", DEFAULT_STATE)
        try:
            offset = max(0, int(query.get("offset", "0")))
        except ValueError:
            offset = 0
        return cls(
            state=state if state in TABS else DEFAULT_STATE,
            number=query.get("number", "").strip(),
            since=query.get("since", "").strip(),
            until=query.get("until", "").strip(),
            offset=offset,
        )

    def query(self, **changes: Any) -> str:
        """This list's address with some filters changed (defaults left out)."""
        changed = replace(self, **changes)
        fields = {
            "state": changed.state,
            "number": changed.number,
            "since": changed.since,
            "until": changed.until,
            "offset": str(changed.offset) if changed.offset else "",
        }
        kept = {key: value for key, value in fields.items() if value}
        return f"{LIST_PATH}?{urlencode(kept)}" if kept else LIST_PATH


def bulk_message(query: Mapping[str, str]) -> str:
    """What the last bulk action did, from its counts."""
    done = query.get("done", "")
    if done == "none":
        return "No alert was selected: tick the alerts to act on first."
    if done not in ("acknowledge", "resolve"):
        return ""
    past = PAST[done]

    def count(key: str) -> int:
        try:
            return max(0, int(query.get(key, "0")))
        except ValueError:
            return 0

    def alerts(n: int) -> str:
        return "1 alert" if n == 1 else f"{n} alerts"

    changed, already, refused, unknown = (count(k) for k in _BULK_KEYS[1:])
    said = [f"{alerts(changed)} {past}."]
    if already:
        said.append(f"{alerts(already)} already {past}.")
    if refused:
        said.append(f"{alerts(refused)} not {past}: a resolved alert stays resolved.")
    if unknown:
        said.append(f"{alerts(unknown)} no longer found.")
    return " ".join(said)


def safe_back(target: str) -> str:
    """Back to the alerts list with its filters, never elsewhere (the field comes from a
    form anyone can edit); the previous action's message dropped."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path != LIST_PATH:
        return LIST_PATH
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in _BULK_KEYS]
    return f"{LIST_PATH}?{urlencode(kept)}" if kept else LIST_PATH


def alert_message(query: Mapping[str, str], status: str) -> tuple[str, bool]:
    """What the last action on this alert did (said against what the alert is now), and
    whether it was refused."""
    done = query.get("done", "")
    outcome = query.get("outcome", "")
    if done not in PAST:
        return "", False
    past = PAST[done]
    if outcome == "changed":
        if done == "escalate":
            return "The alert is escalated again, now: its policy's people are notified.", False
        return f"The alert is {past}; its escalation has stopped.", False
    if outcome == "already":
        return f"The alert was already {past}.", False
    if outcome == "refused":
        return f"Not {past}: the alert is {status}.", True
    return "", False


def _alert_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["alert_id"])
    except ValueError:
        raise web.HTTPNotFound(text="There is no such alert.") from None


def _zone_of(config: Config, did: str) -> str:
    number = config.number(did)
    return number.zone_name if number is not None else "UTC"


def _names(config: Config) -> dict[str, str]:
    return {user.id: user.name for user in config.users}


def _who(names: Mapping[str, str], value: str | None) -> str:
    return names.get(value, value) if value else ""


# ---- the pages -----------------------------------------------------------------------------


class AlertPages:
    def __init__(self, services: ConsoleServices) -> None:
        self._services = services

    async def list_page(self, request: web.Request) -> web.StreamResponse:
        config = self._services.config()
        filters = Filters.of(request.query)
        number = config.number(filters.number) if filters.number else None
        day_zone = number.zone_name if number is not None else "UTC"
        since, until, error = day_bounds(filters.since, filters.until, zone(day_zone))
        async with self._services.pool().acquire(timeout=security.DB_TIMEOUT_S) as conn:
            rows = await queries.list_alerts(
                conn,
                PAGE_SIZE + 1,
                status=None if filters.state == "all" else filters.state,
                number=filters.number or None,
                since=since,
                until=until,
                offset=filters.offset,
                timeout_s=security.DB_TIMEOUT_S,
            )
        names = _names(config)
        alerts = [self._row(config, names, row) for row in rows[:PAGE_SIZE]]
        numbers = [(n.did, f"{n.name} ({n.did})") for n in config.numbers]
        if filters.number and number is None:
            # A number no longer configured: its alerts are still there to look at.
            numbers.append((filters.number, f"{filters.number} (not configured)"))
        previous = max(0, filters.offset - PAGE_SIZE)
        return aiohttp_jinja2.render_template(
            "alerts.html",
            request,
            {
                "filters": filters,
                "tabs": [(state, filters.query(state=state, offset=0)) for state in TABS],
                "numbers": numbers,
                "day_zone": day_zone,
                "alerts": alerts,
                "first": filters.offset + 1,
                "last": filters.offset + len(alerts),
                "previous": filters.query(offset=previous) if filters.offset > 0 else None,
                "next": filters.query(offset=filters.offset + PAGE_SIZE)
                if len(rows) > PAGE_SIZE
                else None,
                "back": filters.query(),
                "page_size": PAGE_SIZE,
                "error": error,
                "message": bulk_message(request.query),
                "may_act": security.account(request).may("responder"),
            },
            status=400 if error else 200,
        )

    def _row(
        self, config: Config, names: Mapping[str, str], row: Mapping[str, Any]
    ) -> dict[str, Any]:
        tz = _zone_of(config, row["number_did"])
        taken = []
        if row["acknowledged_by"]:
            taken.append(f"acknowledged by {_who(names, row['acknowledged_by'])}")
        if row["resolved_by"]:
            taken.append(f"resolved by {_who(names, row['resolved_by'])}")
        elif row["status"] == "resolved":
            taken.append("resolved")
        return {
            "id": str(row["id"]),
            "href": f"{LIST_PATH}/{row['id']}",
            "created": moment(row["created_at"], tz),
            "created_iso": row["created_at"].isoformat(),
            "number": row["number_name"] or row["number_did"],
            "caller": caller(row["caller_id"]),
            "route": row["route"] or "",
            "state": row["status"],
            "ended": ending(row["ended_reason"]),
            "taken": "; ".join(taken),
        }

    @security.requires("responder")
    async def act_on_many(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        action = str(form.get("action", ""))
        back = safe_back(str(form.get("back", "")))
        if action not in ("acknowledge", "resolve"):
            raise web.HTTPBadRequest(text="Choose Acknowledge selected or Resolve selected.")
        picked = [str(value) for value in form.getall("alert", [])]
        if len(picked) > MAX_BULK:
            raise web.HTTPBadRequest(text=f"At most {MAX_BULK} alerts at once.")
        if not picked:
            raise web.HTTPSeeOther(_with_query(back, {"done": "none"}))
        counts = dict.fromkeys(_BULK_KEYS[1:], 0)
        who = security.account(request)
        async with self._services.pool().acquire(timeout=security.DB_TIMEOUT_S) as conn:
            for value in dict.fromkeys(picked):  # once each, in the order ticked
                try:
                    alert_id = uuid.UUID(value)
                    result = await ACTIONS[action](
                        conn,
                        alert_id,
                        who.actor,
                        self._services.clock(),
                        via="console",
                        timeout_s=security.DB_TIMEOUT_S,
                    )
                except (ValueError, actions.UnknownAlertError):
                    counts["unknown"] += 1
                    continue
                counts[result.outcome.value] += 1
        log.info("console_alerts_acted", user=who.name, action=action, **counts)
        raise web.HTTPSeeOther(
            _with_query(back, {"done": action, **{k: str(v) for k, v in counts.items()}})
        )

    @security.requires("responder")
    async def act_on_one(self, request: web.Request) -> web.StreamResponse:
        alert_id = _alert_id(request)
        action = request.match_info["action"]
        who = security.account(request)
        async with self._services.pool().acquire(timeout=security.DB_TIMEOUT_S) as conn:
            try:
                result = await ACTIONS[action](
                    conn,
                    alert_id,
                    who.actor,
                    self._services.clock(),
                    via="console",
                    timeout_s=security.DB_TIMEOUT_S,
                )
            except actions.UnknownAlertError:
                raise web.HTTPNotFound(text="There is no such alert.") from None
        log.info(
            "console_alert_acted",
            user=who.name,
            alert_id=str(alert_id),
            action=action,
            outcome=result.outcome.value,
        )
        raise web.HTTPSeeOther(
            f"{LIST_PATH}/{alert_id}?{urlencode({'done': action, 'outcome': result.outcome.value})}"
        )

    async def alert_page(self, request: web.Request) -> web.StreamResponse:
        alert_id = _alert_id(request)
        alert = await queries.get_alert(
            self._services.pool(), alert_id, timeout_s=security.DB_TIMEOUT_S
        )
        if alert is None:
            raise web.HTTPNotFound(text="There is no such alert.")
        config = self._services.config()
        names = _names(config)
        tz = _zone_of(config, alert["number_did"])
        message, refused = alert_message(request.query, alert["status"])
        policy = next((p for p in config.escalation_policies if p.id == alert["policy_id"]), None)
        return aiohttp_jinja2.render_template(
            "alert.html",
            request,
            {
                "alert": alert,
                "id": str(alert_id),
                "tz": tz,
                "facts": _facts(alert, names, tz, policy.name if policy is not None else ""),
                "calls": [_call(call, names, tz) for call in alert["calls"]],
                "voicemail": _voicemail(alert, str(alert_id)),
                "log": [_entry(entry, names, tz) for entry in alert["log"]],
                "deliveries": [_delivery(d, names, tz) for d in alert["deliveries"]],
                "message": message,
                "refused": refused,
                "may_act": security.account(request).may("responder"),
            },
        )

    async def voicemail(self, request: web.Request) -> web.StreamResponse:
        alert_id = _alert_id(request)
        async with self._services.pool().acquire(timeout=security.DB_TIMEOUT_S) as conn:
            found = await queries.voicemail_audio(conn, alert_id, timeout_s=security.DB_TIMEOUT_S)
        if found is None or found["format"] is None:
            raise web.HTTPNotFound(text="This alert has no voicemail.")
        audio: bytes | None = found["audio"]
        if audio is None:
            raise web.HTTPNotFound(
                text="The voicemail's audio is not in the database: it stayed in Asterisk's"
                f" recordings as {found['recording_name']}."
            )
        disposition = (
            f'attachment; filename="voicemail-{alert_id}.wav"'
            if request.query.get("download")
            else "inline"
        )
        headers = {
            "Accept-Ranges": "bytes",
            "Cache-Control": AUDIO_CACHE,
            "Content-Disposition": disposition,
        }
        content_type = AUDIO_TYPES.get(str(found["format"]), "application/octet-stream")
        size = len(audio)
        try:
            wanted = byte_range(request.headers.get("Range"), size)
        except UnsatisfiableRange:
            return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if wanted is None:
            return web.Response(body=audio, content_type=content_type, headers=headers)
        first, last = wanted
        return web.Response(
            status=206,
            body=audio[first : last + 1],
            content_type=content_type,
            headers={**headers, "Content-Range": f"bytes {first}-{last}/{size}"},
        )


# ---- ranges of the voicemail's bytes -------------------------------------------------------


class UnsatisfiableRange(ValueError):
    """A byte range that is malformed or lies past the end (answered 416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte of the one range a `Range: bytes=...` header asks for; None
    for the whole file (no header, another unit, or several ranges: a player asks for one,
    and answering the whole is allowed)."""
    if not header:
        return None
    unit, _, ranges = header.strip().partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in ranges:
        return None
    first_text, dash, last_text = ranges.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or not (first_text or last_text):
        raise UnsatisfiableRange(header)
    if not all(part.isdigit() for part in (first_text, last_text) if part):
        raise UnsatisfiableRange(header)
    if not first_text:  # the last n bytes
        length = int(last_text)
        if length == 0 or size == 0:
            raise UnsatisfiableRange(header)
        return max(0, size - length), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        raise UnsatisfiableRange(header)
    return first, min(last, size - 1)


def _with_query(path: str, extra: Mapping[str, str]) -> str:
    joiner = "&" if "?" in path else "?"
    return f"{path}{joiner}{urlencode(extra)}"


# ---- one alert, ready for its template ----------------------------------------------------


def _facts(
    alert: Mapping[str, Any], names: Mapping[str, str], tz: str, policy_name: str
) -> list[tuple[str, str]]:
    facts = [
        ("State", alert["status"]),
        ("Number", f"{alert['number_name']} ({alert['number_did']})"),
        ("Caller", alert["caller_id"] or "unknown"),
        ("Route", alert["route"] or "none chosen"),
        (
            "Escalation policy",
            f"{policy_name} ({alert['policy_id']})"
            if policy_name
            else alert["policy_id"] or "none",
        ),
        ("Created", moment(alert["created_at"], tz)),
    ]
    if alert["acknowledged_at"] is not None or alert["acknowledged_by"]:
        by = _who(names, alert["acknowledged_by"]) or "someone"
        facts.append(("Acknowledged", f"by {by}, {moment(alert['acknowledged_at'], tz)}"))
    if alert["resolved_at"] is not None:
        by = _who(names, alert["resolved_by"])
        at = moment(alert["resolved_at"], tz)
        facts.append(("Resolved", f"by {by}, {at}" if by else at))
    facts.append(("Call ended", ending(alert["ended_reason"]) or "not yet"))
    count = alert["escalation_count"] or 0
    escalations = "none" if count == 0 else str(count)
    if count and alert["last_escalated_at"] is not None:
        escalations += f", the last {moment(alert['last_escalated_at'], tz)}"
    facts.append(("Escalations", escalations))
    return facts


def _call(call: Mapping[str, Any], names: Mapping[str, str], tz: str) -> dict[str, Any]:
    return {
        "started": moment(call["started_at"], tz),
        "ended": moment(call["ended_at"], tz),
        "outcome": ending(call["outcome"]),
        "caller": caller(call["caller_id"]),
        "legs": [_leg(leg, names, tz) for leg in call["legs"]],
        "timeline": [_entry(entry, names, tz) for entry in call["timeline"]],
    }


def _leg(leg: Mapping[str, Any], names: Mapping[str, str], tz: str) -> dict[str, Any]:
    rang_until = leg["answered_at"] or leg["ended_at"]
    ring = (
        seconds((rang_until - leg["placed_at"]).total_seconds())
        if rang_until is not None and leg["placed_at"] is not None
        else ""
    )
    return {
        "who": _who(names, leg["user_id"]),
        "contact": leg["contact"],
        "mode": _MODES.get(leg["mode"], leg["mode"] or ""),
        "placed": clock_time(leg["placed_at"], tz),
        "placed_iso": leg["placed_at"].isoformat() if leg["placed_at"] else "",
        "outcome": leg_outcome(leg["outcome"]),
        "cause": cause(leg["hangup_cause"]),
        "ring": ring,
    }


def _entry(entry: Mapping[str, Any], names: Mapping[str, str], tz: str) -> dict[str, str]:
    data = entry["data"] if isinstance(entry["data"], dict) else {}
    return {
        "iso": entry["at"].isoformat(),
        "clock": clock_time(entry["at"], tz),
        "day": moment(entry["at"], tz),
        "text": describe(entry["kind"], data, names, tz),
    }


def _voicemail(alert: Mapping[str, Any], alert_id: str) -> dict[str, Any] | None:
    found = alert["voicemail"]
    if found is None:
        return None
    src = f"{LIST_PATH}/{alert_id}/voicemail"
    return {
        "in_database": bool(found["audio_bytes"]),
        "src": src,
        "download": f"{src}?download=1",
        "duration": seconds(found["duration_s"]),
        "recording_name": found["recording_name"],
    }


def _delivery(delivery: Mapping[str, Any], names: Mapping[str, str], tz: str) -> dict[str, str]:
    return {
        "event": str(delivery["event"]).replace("alert.", "alert "),
        "destination": delivery["destination"],
        "who": _who(names, delivery["user_id"]) or "the number's channel",
        "state": delivery["state"],
        "attempts": str(delivery["attempts"]),
        "error": delivery["last_error"] or "",
        "created": moment(delivery["created_at"], tz),
        "sent": moment(delivery["sent_at"], tz),
    }
