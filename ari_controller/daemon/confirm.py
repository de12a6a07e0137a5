"""The confirmation page behind the acknowledge/resolve links of alert e-mails.

    GET  /alerts/{id}/{action}?user=..&expires=..&sig=..   a page saying what the alert is,
                                                           with a button; changes nothing
    POST /alerts/{id}/{action}  (the same fields)          checks the link, then acts

`action` is `acknowledge` or `resolve`. A GET never acts, so a mail scanner or a link
preview that fetches the link does nothing. A POST checks the signature and expiry
(alerts/links.py) with the secret from the environment variable `alerts.link_secret_env`,
then acknowledges or resolves as the link's person (`via: email`). Expired or forged links:
403, nothing changed; an unknown alert: 404; the database away: 503.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from ari_controller.alerts import actions
from ari_controller.alerts.links import check_link
from ari_controller.config import AlertsSettings

log = structlog.get_logger(__name__)

Clock = Callable[[], dt.datetime]

ACQUIRE_TIMEOUT_S = 5.0
_PATH = "/alerts/{alert_id}/{action:acknowledge|resolve}"
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the signed link stays out of other sites' logs
    "X-Robots-Tag": "noindex",
    "X-Frame-Options": "DENY",
}
_VERB = {"acknowledge": "Acknowledge", "resolve": "Resolve"}
_DONE = {"acknowledge": "acknowledged", "resolve": "resolved"}


def confirm_routes(
    pool: Any | Callable[[], Any], alerts: Callable[[], AlertsSettings], clock: Clock
) -> list[web.RouteDef]:
    """The page's GET and POST over an asyncpg pool (or a callable giving it at request
    time); `alerts` gives the current `alerts` settings (the link secret's variable)."""
    page = ConfirmPage(pool if callable(pool) else (lambda: pool), alerts, clock)
    return [web.get(_PATH, page.show), web.post(_PATH, page.act)]


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family: sans-serif; max-width: 40em; margin: 2em auto'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html", headers=_HEADERS)


def _refused(reason: str, status: int = 403) -> web.Response:
    return _page("This link cannot be used", f"<p>{html.escape(reason)}.</p>", status)


class ConfirmPage:
    def __init__(
        self, pool: Callable[[], Any], alerts: Callable[[], AlertsSettings], clock: Clock
    ) -> None:
        self._pool = pool
        self._alerts = alerts
        self._clock = clock

    def _check(
        self, request: web.Request, fields: Mapping[str, str]
    ) -> tuple[uuid.UUID | None, web.Response | None]:
        """(the alert id, None) for a link that may act, or (None, the page saying why not)."""
        try:
            alert_id = uuid.UUID(request.match_info["alert_id"])
        except ValueError:
            return None, _refused("There is no such alert", 404)
        settings = self._alerts()
        env = settings.link_secret_env
        secret = os.environ.get(env) if env else None
        reason = check_link(
            str(alert_id),
            request.match_info["action"],
            fields.get("user", ""),
            fields.get("expires", ""),
            fields.get("sig", ""),
            secret or "",
            self._clock(),
        )
        if reason is not None:
            log.info("confirm_link_refused", path=request.path, reason=reason)
            return None, _refused(reason[:1].upper() + reason[1:])
        return alert_id, None

    async def show(self, request: web.Request) -> web.Response:
        """The page with its button; it acts on nothing."""
        fields = dict(request.query)
        alert_id, refused = self._check(request, fields)
        if refused is not None or alert_id is None:
            return refused or _refused("Invalid link")
        try:
            async with self._pool().acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                alert = await conn.fetchrow(
                    "SELECT number_name, number_did, route, caller_id, status, acknowledged_by,"
                    " created_at FROM alerts WHERE id = $1",
                    alert_id,
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.warning("confirm_database_unavailable", error=str(exc) or type(exc).__name__)
            return _refused("The database is not available, try again in a moment", 503)
        if alert is None:
            return _refused("There is no such alert", 404)
        action = request.match_info["action"]
        e = html.escape
        facts = [
            ("Number", f"{alert['number_name'] or ''} ({alert['number_did']})"),
            ("Route", alert["route"] or "-"),
            ("Caller", alert["caller_id"] or "unknown"),
            ("Since", alert["created_at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
            ("Status", alert["status"]),
        ]
        hidden = "".join(
            f"<input type='hidden' name='{name}' value='{e(fields.get(name, ''))}'>"
            for name in ("user", "expires", "sig")
        )
        body = (
            "<table>"
            + "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
            + "</table>"
            + f"<form method='post'>{hidden}"
            f"<p><button type='submit'>{_VERB[action]} this alert as {e(fields['user'])}"
            "</button></p></form>"
        )
        return _page(f"{_VERB[action]} the alert?", body)

    async def act(self, request: web.Request) -> web.Response:
        """Check the link, then acknowledge or resolve as its person."""
        form = await request.post()
        fields = {k: str(v) for k, v in request.query.items()}
        fields |= {k: v for k, v in form.items() if isinstance(v, str)}
        alert_id, refused = self._check(request, fields)
        if refused is not None or alert_id is None:
            return refused or _refused("Invalid link")
        action = request.match_info["action"]
        act = actions.acknowledge if action == "acknowledge" else actions.resolve
        user = fields["user"]
        try:
            async with self._pool().acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                result = await act(conn, alert_id, user, self._clock(), via="email")
        except actions.UnknownAlertError:
            return _refused("There is no such alert", 404)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.warning("confirm_database_unavailable", error=str(exc) or type(exc).__name__)
            return _refused("The database is not available, try again in a moment", 503)
        log.info(
            "alert_action_by_link",
            alert_id=str(alert_id),
            action=action,
            by=user,
            outcome=result.outcome.value,
        )
        if result.outcome is actions.Outcome.CHANGED:
            extra = " Its escalation has stopped." if result.escalation_stopped else ""
            return _page(
                f"Alert {_DONE[action]}",
                f"<p>The alert is {_DONE[action]} by {html.escape(user)}.{extra}</p>",
            )
        if result.outcome is actions.Outcome.ALREADY:
            return _page("Nothing to do", f"<p>The alert is {html.escape(result.status)}.</p>")
        return _page("Not done", f"<p>{html.escape(result.reason or 'refused')}.</p>", status=409)
