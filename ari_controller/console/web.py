"""The console as an aiohttp sub-application mounted at /console on the daemon's server:
templates, the encrypted session, sign-in, error pages, and each page module's routes."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from aiohttp_session import setup as setup_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from ari_controller import __version__
from ari_controller.config import ConfigError, fernet_key_problem
from ari_controller.console import (
    admin_pages,
    alerts_pages,
    calllog,
    health_page,
    live,
    numbers_page,
    oncall_page,
    sign_in,
)
from ari_controller.console.format import FILTERS
from ari_controller.console.security import (
    ACCOUNT,
    CSRF,
    DATABASE_ERRORS,
    Handler,
    security_headers,
    signed_in_middleware,
)
from ari_controller.console.services import ConsoleServices

log = structlog.get_logger(__name__)

HERE = Path(__file__).resolve().parent
COOKIE_NAME = "callrouting_console"
SERVICES = web.AppKey("console_services", ConsoleServices)


def session_key(configured: str | None) -> bytes:
    """The configured Fernet key, or a new one for this run only (said in the log: everyone
    signs in again after a restart, and two daemons do not share sign-ins)."""
    if configured:
        try:
            fernet_key_problem(configured, "the console's session key")
        except ValueError as exc:
            raise ConfigError("console", [("console.session_key(_env)", str(exc))]) from None
        return configured.encode("ascii")
    log.warning(
        "console_session_key_missing",
        hint="set console.session_key_env's variable to a key from `ari-controller"
        " console-users key` to keep sign-ins across restarts and daemons",
    )
    return base64.urlsafe_b64encode(secrets.token_bytes(32))


def console_app(services: ConsoleServices, key: bytes) -> web.Application:
    settings = services.config().console
    app = web.Application(middlewares=[error_pages])
    app[SERVICES] = services
    setup_session(
        app,
        EncryptedCookieStorage(
            Fernet(key),
            cookie_name=COOKIE_NAME,
            path="/console",
            max_age=int(settings.session_hours * 3600),
            secure=settings.secure_cookies,
            httponly=True,
            samesite="Strict",
        ),
    )
    app.middlewares.append(
        signed_in_middleware(
            services.pool,
            lambda: dt.timedelta(hours=services.config().console.session_hours),
            services.clock,
        )
    )
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        context_processors=[_page_context],
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(FILTERS)
    app.on_response_prepare.append(security_headers)
    app.router.add_static("/static", HERE / "static", name="static")
    for module in (
        sign_in,
        live,
        alerts_pages,
        calllog,
        oncall_page,
        numbers_page,
        health_page,
        admin_pages,
    ):
        module.add_routes(app, services)
    return app


async def _page_context(request: web.Request) -> dict[str, Any]:
    return {
        "account": request.get(ACCOUNT),
        "csrf_token": request.get(CSRF, ""),
        "path": request.path,
        "version": __version__,
    }


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as pages a person can read; a database that is down is a 503 that says so, and
    never reaches the daemon (or its calls)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or (
            exc.status == 401 and "text/html" not in request.headers.get("Accept", "")
        ):
            raise
        return await _error(request, exc.status, exc.reason, exc.text or "")
    except DATABASE_ERRORS as exc:
        log.warning(
            "console_database_unavailable", path=request.path, error=str(exc) or type(exc).__name__
        )
        return await _error(
            request,
            503,
            "Database not available",
            "The database is not answering. Calls go on; this page will work again when it does.",
        )
    except Exception:
        log.exception("console_failed", path=request.path, method=request.method)
        return await _error(
            request, 500, "Internal error", "Something went wrong; it is in the log."
        )


async def _error(request: web.Request, status: int, title: str, message: str) -> web.Response:
    if message.startswith(f"{status}:"):
        message = ""
    # The page context too: a request refused before the templates' own context step ran
    # (a forged form, the database down at the account lookup) still gets its page.
    context = {**(await _page_context(request)), "status": status, "title": title}
    return aiohttp_jinja2.render_template(
        "error.html", request, {**context, "message": message}, status=status
    )
