"""Signing in and out of the console."""

from __future__ import annotations

import datetime as dt
import secrets

import aiohttp_jinja2
import structlog
from aiohttp import web
from aiohttp_session import get_session, new_session

from ari_controller.console import accounts
from ari_controller.console.format import moment
from ari_controller.console.security import DB_TIMEOUT_S, public, safe_next
from ari_controller.console.services import ConsoleServices

log = structlog.get_logger(__name__)


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    pages = SignInPages(services)
    app.router.add_get("/login", pages.form, name="login")
    app.router.add_post("/login", pages.submit)
    app.router.add_post("/logout", pages.sign_out, name="logout")


class SignInPages:
    def __init__(self, services: ConsoleServices) -> None:
        self._services = services

    @public
    async def form(self, request: web.Request) -> web.StreamResponse:
        return self._render(request, error=None, name="")

    @public
    async def submit(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name = str(form.get("name", "")).strip()
        password = str(form.get("password", ""))
        settings = self._services.config().console
        now = self._services.clock()
        async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
            result = await accounts.sign_in(
                conn,
                name,
                password,
                now,
                lockout_failures=settings.lockout_failures,
                lockout=dt.timedelta(minutes=settings.lockout_minutes),
                timeout_s=DB_TIMEOUT_S,
            )
        if result.account is None:
            log.info(
                "console_sign_in_refused",
                user=name[:64],
                remote=request.remote,
                locked=result.locked_until is not None,
            )
            error = "The name or the password is wrong."
            if result.locked_until is not None:
                error = (
                    "Too many wrong passwords: this account is locked until"
                    f" {moment(result.locked_until)}. An admin can set a new password."
                )
            return self._render(
                request, error=error, name=name, status=401, next_page=str(form.get("next", ""))
            )
        # A new session at sign-in: a cookie planted before it is worth nothing after.
        session = await new_session(request)
        session["user"] = result.account.name
        session["signed_in_at"] = int(now.timestamp())
        session["csrf"] = secrets.token_urlsafe(32)
        log.info("console_signed_in", user=result.account.name, role=result.account.role)
        raise web.HTTPSeeOther(safe_next(request.query.get("next") or str(form.get("next", ""))))

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        log.info("console_signed_out", user=session.get("user"))
        session.invalidate()
        raise web.HTTPSeeOther("/console/login?signed_out=1")

    def _render(
        self,
        request: web.Request,
        *,
        error: str | None,
        name: str,
        status: int = 200,
        next_page: str | None = None,
    ) -> web.Response:
        return aiohttp_jinja2.render_template(
            "login.html",
            request,
            {
                "error": error,
                "name": name,
                "next": safe_next(next_page or request.query.get("next")),
                "signed_out": "signed_out" in request.query,
            },
            status=status,
        )
