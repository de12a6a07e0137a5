"""Who is asking, and may they: the signed-in console user, roles, CSRF tokens, and the
headers every console answer carries (Content-Security-Policy and friends).

The session is an encrypted cookie (aiohttp-session with Fernet): it holds the account's
name, when it signed in and the CSRF token, nothing else. The account itself is read from
Postgres on every request, so a removed user or a changed role takes effect at once.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import structlog
from aiohttp import web
from aiohttp_session import Session, get_session

from ari_controller.console import accounts
from ari_controller.console.accounts import Account, Role

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A handler function, or a handler method (the request its last argument).
AnyHandler = TypeVar("AnyHandler", bound=Callable[..., Awaitable[web.StreamResponse]])

ACCOUNT = web.RequestKey("console_account", Account)
CSRF = web.RequestKey("console_csrf", str)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# The console's own files only: no inline script or style, no frames, forms post home.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
DB_TIMEOUT_S = 5.0
_FORGED = "This form has expired or did not come from the console. Reload the page and try again."
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class Refused(web.HTTPForbidden):
    """A signed-in user asked for something their role may not do (or a forged form)."""


def csrf_token(session: Session) -> str:
    """The session's CSRF token, made on first use (a visitor not signed in has one too, for
    the sign-in form)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def check_csrf(request: web.Request, session: Session) -> None:
    """A form or script posting must carry the session's token, in the form or a header."""
    expected = session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not given or not hmac.compare_digest(expected, given):
        log.warning("console_csrf_refused", path=request.path, remote=request.remote)
        raise Refused(text=_FORGED)


def account(request: web.Request) -> Account:
    """The signed-in account of a request the sign-in middleware let through."""
    found: Account | None = request.get(ACCOUNT)
    if found is None:
        raise web.HTTPUnauthorized(text="sign in first")
    return found


def requires(role: Role) -> Callable[[AnyHandler], AnyHandler]:
    """Only accounts that may do what `role` may reach the handler (a function or a method
    taking the request last); others get 403."""

    def decorate(handler: AnyHandler) -> AnyHandler:
        @functools.wraps(handler)
        async def guarded(*args: Any) -> web.StreamResponse:
            request = args[-1]
            who = account(request)
            if not who.may(role):
                log.info("console_refused", user=who.name, role=who.role, needed=role)
                raise Refused(text=f"Your role ({who.role}) may not do this; it needs {role}.")
            return await handler(*args)

        return guarded  # type: ignore[return-value]

    return decorate


def signed_in_middleware(
    pool: Callable[[], Any],
    session_age: Callable[[], dt.timedelta],
    clock: Callable[[], dt.datetime],
) -> Any:
    """Lets through the public routes (sign-in, static files) and requests of a signed-in
    account that still exists; sends browsers to the sign-in page otherwise. Checks the CSRF
    token of every POST, signed in or not."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        session = await get_session(request)
        request[CSRF] = csrf_token(session)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await check_csrf(request, session)
        route = request.match_info.route
        if getattr(route.handler, "console_public", False) or request.path.startswith(
            "/console/static/"
        ):
            return await handler(request)
        name = session.get("user")
        signed_in_at = session.get("signed_in_at")
        expired = not isinstance(signed_in_at, int | float) or (
            clock() - dt.datetime.fromtimestamp(signed_in_at, dt.UTC) > session_age()
        )
        found = None
        if isinstance(name, str) and not expired:
            async with pool().acquire(timeout=DB_TIMEOUT_S) as conn:
                found = await accounts.find(conn, name, timeout_s=DB_TIMEOUT_S)
        if found is None:
            if name is not None:
                session.pop("user", None)
                session.pop("signed_in_at", None)
            return _to_sign_in(request)
        request[ACCOUNT] = found
        return await handler(request)

    return middleware


def public(handler: AnyHandler) -> AnyHandler:
    """Marks a handler that needs no sign-in (the sign-in page itself)."""
    handler.console_public = True  # type: ignore[attr-defined]
    return handler


def _to_sign_in(request: web.Request) -> web.StreamResponse:
    wants_html = "text/html" in request.headers.get("Accept", "") or request.method == "POST"
    if not wants_html or request.headers.get("Accept") == "text/event-stream":
        raise web.HTTPUnauthorized(text="sign in first")
    target = request.path_qs if request.method == "GET" else "/console/"
    raise web.HTTPSeeOther(f"/console/login?{_next(target)}")


def _next(target: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"next": target})


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a console page of this server."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return "/console/"


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, pages, errors, files and the live stream alike."""
    for key, value in SECURITY_HEADERS.items():
        if key == "Cache-Control" and key in response.headers:
            continue
        response.headers[key] = value
