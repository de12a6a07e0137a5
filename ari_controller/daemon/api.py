"""The JSON HTTP API on the daemon's server: people and tools reading and acting on alerts.

    GET  /api/alerts                      list (status, number, since, until, limit, cursor|offset)
    GET  /api/alerts/{id}                 one alert: calls, legs, timeline, voicemail, log,
                                          deliveries
    GET  /api/alerts/{id}/voicemail       the voicemail audio
    POST /api/alerts/{id}/acknowledge     (write scope; body optional: {"by": "..."})
    POST /api/alerts/{id}/resolve
    POST /api/alerts/{id}/escalate

Every request carries `Authorization: Bearer <token>` (alerts/tokens.py): 401 without a
token or with an unknown or revoked one, 403 for a read token on a write route. Then 400 for
a bad id or filter, 404 for an unknown alert, 409 when an action cannot apply (acknowledging
a resolved alert). It uses the daemon's connection pool (not the store writer's, which calls
depend on); a database that is down or slow answers 503 and never takes the daemon (or its
calls) down with it. Errors are JSON: {"error": "...", "status": 4xx}.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from ari_controller.alerts import actions
from ari_controller.alerts.tokens import Caller, Scope, authenticate
from ari_controller.store.queries import get_alert, list_alerts, voicemail_audio

log = structlog.get_logger(__name__)

Clock = Callable[[], dt.datetime]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 100_000
STATUSES = ("open", "acknowledged", "resolved")
# Waiting for a connection of the daemon's pool: past this, the database is "not available".
ACQUIRE_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 10.0
_LIST_PARAMS = frozenset({"status", "number", "since", "until", "limit", "cursor", "offset"})
_AUDIO_TYPES = {"wav": "audio/wav"}
_WWW_AUTHENTICATE = 'Bearer realm="ari-controller"'


def api_routes(pool: Any | Callable[[], Any], clock: Clock) -> list[web.RouteDef]:
    """The /api routes over an asyncpg pool, or a callable giving the pool at request time
    (the daemon's, opened after its server); `clock` stamps actions and token use."""
    api = AlertApi(pool if callable(pool) else (lambda: pool), clock)
    return [
        web.get("/api/alerts", _guarded(api.list_alerts)),
        web.get("/api/alerts/{alert_id}", _guarded(api.show_alert)),
        web.get("/api/alerts/{alert_id}/voicemail", _guarded(api.voicemail)),
        web.post(
            "/api/alerts/{alert_id}/acknowledge",
            _guarded(functools.partial(api.act, actions.acknowledge)),
        ),
        web.post(
            "/api/alerts/{alert_id}/resolve",
            _guarded(functools.partial(api.act, actions.resolve)),
        ),
        web.post(
            "/api/alerts/{alert_id}/escalate",
            _guarded(functools.partial(api.act, actions.escalate_now)),
        ),
    ]


class ApiError(Exception):
    """A request answered with an error status and a JSON body."""

    def __init__(
        self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.extra = extra

    def response(self) -> web.Response:
        body = {**self.extra, "error": self.message, "status": self.status}
        return _json(body, status=self.status, headers=self.headers)


def _guarded(handler: Handler) -> Handler:
    """Every answer is JSON, and no failure reaches the server: a database that is down or
    slow is a 503, a bug a logged 500."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.warning(
                "api_database_unavailable",
                path=request.path,
                error=str(exc) or type(exc).__name__,
            )
            return ApiError(503, "the database is not available, try again").response()
        except Exception:
            log.exception("api_failed", path=request.path, method=request.method)
            return ApiError(500, "internal error").response()

    return guarded


class AlertApi:
    """The handlers; each request takes one connection from the pool for its whole work."""

    def __init__(self, pool: Callable[[], Any], clock: Clock) -> None:
        self._pool = pool
        self._clock = clock

    def _acquire(self) -> Any:
        return self._pool().acquire(timeout=ACQUIRE_TIMEOUT_S)

    async def list_alerts(self, request: web.Request) -> web.StreamResponse:
        async with self._acquire() as conn:
            await self._caller(conn, request, "read")
            query = _list_query(request)
            limit = query.pop("limit")
            rows = await list_alerts(conn, limit + 1, timeout_s=QUERY_TIMEOUT_S, **query)
        page = rows[:limit]
        more = len(rows) > limit
        return _json(
            {
                "alerts": page,
                "count": len(page),
                "limit": limit,
                "next_cursor": _cursor(page[-1]) if more else None,
            }
        )

    async def show_alert(self, request: web.Request) -> web.StreamResponse:
        async with self._acquire() as conn:
            await self._caller(conn, request, "read")
            alert_id = _alert_id(request)
            alert = await get_alert(conn, alert_id, timeout_s=QUERY_TIMEOUT_S)
        if alert is None:
            raise ApiError(404, f"no alert {alert_id}")
        voicemail = alert["voicemail"]
        if voicemail is not None:
            has_audio = bool(voicemail.get("audio_bytes"))
            voicemail["audio_url"] = f"/api/alerts/{alert_id}/voicemail" if has_audio else None
        return _json(alert)

    async def voicemail(self, request: web.Request) -> web.StreamResponse:
        async with self._acquire() as conn:
            await self._caller(conn, request, "read")
            alert_id = _alert_id(request)
            found = await voicemail_audio(conn, alert_id, timeout_s=QUERY_TIMEOUT_S)
        if found is None:
            raise ApiError(404, f"no alert {alert_id}")
        if found["format"] is None:
            raise ApiError(404, f"alert {alert_id} has no voicemail")
        if found["audio"] is None:
            raise ApiError(
                404,
                f"the voicemail of alert {alert_id} is not stored in the database (it stayed"
                f" in Asterisk's recordings directory as {found['recording_name']!r})",
            )
        fmt = str(found["format"])
        return web.Response(
            body=bytes(found["audio"]),
            content_type=_AUDIO_TYPES.get(fmt, "application/octet-stream"),
            headers={"Content-Disposition": f'inline; filename="voicemail-{alert_id}.{fmt}"'},
        )

    async def act(self, action: _Action, request: web.Request) -> web.StreamResponse:
        async with self._acquire() as conn:
            caller = await self._caller(conn, request, "write")
            alert_id = _alert_id(request)
            by = await _actor(request, default=caller.name)
            try:
                result = await action(
                    conn, alert_id, by, self._clock(), via="api", timeout_s=QUERY_TIMEOUT_S
                )
            except actions.UnknownAlertError:
                raise ApiError(404, f"no alert {alert_id}") from None
        log.info(
            "alert_action",
            alert_id=str(alert_id),
            action=result.action,
            outcome=result.outcome.value,
            by=by,
            token=caller.name,
        )
        if result.outcome is actions.Outcome.REFUSED:
            raise ApiError(
                409, result.reason or "the action does not apply", result=result.as_dict()
            )
        return _json(result.as_dict())

    async def _caller(self, conn: Any, request: web.Request, needed: Scope) -> Caller:
        """Who the bearer token says is calling, when it may do `needed`; else 401/403."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "a bearer token is needed", headers={"WWW-Authenticate": _WWW_AUTHENTICATE}
            )
        caller = await authenticate(conn, token.strip(), self._clock(), timeout_s=QUERY_TIMEOUT_S)
        if caller is None:
            raise ApiError(
                401,
                "the token is not valid (unknown or revoked)",
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE + ', error="invalid_token"'},
            )
        if not caller.allows(needed):
            raise ApiError(403, f"token {caller.name!r} has {caller.scope} scope; {needed} needed")
        return caller


_Action = Callable[..., Awaitable[actions.ActionResult]]


def _alert_id(request: web.Request) -> uuid.UUID:
    text = request.match_info["alert_id"]
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ApiError(400, f"{text!r} is not an alert id (a UUID)") from None


async def _actor(request: web.Request, *, default: str) -> str:
    """Who acts: the body's optional "by", else the token's name."""
    raw = await request.read()
    if not raw.strip():
        return default
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object, e.g. {"by": "alice"}')
    unknown = sorted(set(body) - {"by"})
    if unknown:
        raise ApiError(400, f"unknown field(s) in the body: {', '.join(unknown)}")
    by = body.get("by", default)
    if not isinstance(by, str) or not by.strip() or len(by) > 200:
        raise ApiError(400, '"by" must be a non-empty string of at most 200 characters')
    return by.strip()


def _list_query(request: web.Request) -> dict[str, Any]:
    """The list's filters and paging from the query string, checked."""
    params = request.query
    unknown = sorted(set(params) - _LIST_PARAMS)
    if unknown:
        allowed = ", ".join(sorted(_LIST_PARAMS))
        raise ApiError(400, f"unknown parameter(s): {', '.join(unknown)} (allowed: {allowed})")
    for name in set(params):
        if len(params.getall(name)) > 1:
            raise ApiError(400, f"{name}: given more than once")
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"status: {status!r} is not one of {', '.join(STATUSES)}")
    number = params.get("number")
    if number is not None and not (0 < len(number) <= 64):
        raise ApiError(400, "number: 1-64 characters (the number's DID)")
    limit = _int_param(params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(params.get("offset"), "offset", 0, 0, MAX_OFFSET)
    cursor = params.get("cursor")
    if cursor is not None and "offset" in params:
        raise ApiError(400, "cursor and offset: give one or the other")
    return {
        "status": status,
        "number": number,
        "since": _moment_param(params.get("since"), "since"),
        "until": _moment_param(params.get("until"), "until"),
        "limit": limit,
        "offset": offset,
        "after": _parse_cursor(cursor) if cursor is not None else None,
    }


def _int_param(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name}: {text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name}: {value} is not between {low} and {high}")
    return value


def _moment_param(text: str | None, name: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"{name}: {text!r} is not an ISO-8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _cursor(alert: dict[str, Any]) -> str:
    """Where the next page starts: after this alert (its created_at and id), opaque."""
    raw = json.dumps([alert["created_at"].isoformat(), str(alert["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(text: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        at_text, id_text = json.loads(raw)
        at, alert_id = dt.datetime.fromisoformat(at_text), uuid.UUID(id_text)
    except (binascii.Error, ValueError, TypeError):
        raise ApiError(400, "cursor: not a next_cursor this API gave") from None
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)), alert_id


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return None  # audio is served on its own route
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        body,
        status=status,
        headers=headers,
        dumps=functools.partial(json.dumps, default=_default),
    )
