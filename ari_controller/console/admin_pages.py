"""The admin page: console users (add, change role and person, set a password, remove) and the
HTTP API's bearer tokens (create, shown once; revoke). Admins only.

Every change is logged with who made it. Forms post and are answered with a redirect back and
a status line, or the same page again with the error next to the form and what was typed
(never a password). The last admin can be neither removed nor demoted: nobody could then
manage the console except from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import structlog
from aiohttp import web

from ari_controller.alerts import tokens
from ari_controller.console import accounts
from ari_controller.console.accounts import Account, AccountError
from ari_controller.console.security import DB_TIMEOUT_S, account, requires
from ari_controller.console.services import ConsoleServices

log = structlog.get_logger(__name__)

ROLE_TEXT = {
    "viewer": "viewer: sees calls, alerts and schedules",
    "responder": "responder: also acts on alerts",
    "admin": "admin: also manages console users and API tokens",
}
# What a redirect's ?done= says; the name comes from the query and is escaped like any text.
DONE = {
    "user-added": "Console user {name} added: they can sign in now.",
    "user-changed": "Saved the role and person of {name}.",
    "password-set": "{name} has a new password (a lock-out, if any, is lifted).",
    "user-removed": "Console user {name} removed: they are signed out.",
    "token-revoked": "Token {name} revoked: requests with it are refused from now on.",
}


class FormError(Exception):
    """What was posted cannot be done; said next to the form it came from."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Person:
    id: str
    name: str


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    pages = AdminPages(services)
    app.router.add_get("/admin", pages.overview, name="admin")
    app.router.add_post("/admin/users", pages.add_user)
    app.router.add_get("/admin/users/{name}", pages.user, name="admin_user")
    app.router.add_post("/admin/users/{name}/change", pages.change_user)
    app.router.add_post("/admin/users/{name}/password", pages.set_password)
    app.router.add_post("/admin/users/{name}/remove", pages.remove_user)
    app.router.add_post("/admin/tokens", pages.create_token)
    app.router.add_post("/admin/tokens/{name}/revoke", pages.revoke_token)


def user_path(name: str) -> str:
    return f"/console/admin/users/{quote(name, safe='')}"


def _done(target: str, code: str, name: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{target}?{urlencode({'done': code, 'name': name})}")


def _field(form: Any, key: str) -> str:
    value = form.get(key, "")
    return value if isinstance(value, str) else ""


class AdminPages:
    def __init__(self, services: ConsoleServices) -> None:
        self._services = services

    # -- pages -----------------------------------------------------------------------------

    @requires("admin")
    async def overview(self, request: web.Request) -> web.StreamResponse:
        return await self._overview(request)

    @requires("admin")
    async def user(self, request: web.Request) -> web.StreamResponse:
        return await self._user_page(request, request.match_info["name"])

    # -- console users ---------------------------------------------------------------------

    @requires("admin")
    async def add_user(self, request: web.Request) -> web.StreamResponse:
        who = account(request)
        form = await request.post()
        entered = {
            "name": _field(form, "name").strip(),
            "role": _field(form, "role"),
            "person": _field(form, "person"),
        }
        try:
            name = accounts.check_name(entered["name"])
            role = accounts.check_role(entered["role"])
            person = self._person(entered["person"])
            password = _new_password(form)
            async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
                await accounts.add(
                    conn,
                    name,
                    password,
                    role,
                    person,
                    self._services.clock(),
                    timeout_s=DB_TIMEOUT_S,
                )
        except (AccountError, FormError) as exc:
            return await self._overview(
                request, errors={"user": _sentence(exc)}, entered=entered, status=_status(exc)
            )
        log.info("console_user_added", by=who.name, user=name, role=role, person=person)
        raise _done("/console/admin", "user-added", name)

    @requires("admin")
    async def change_user(self, request: web.Request) -> web.StreamResponse:
        who = account(request)
        name = request.match_info["name"]
        form = await request.post()
        try:
            role = accounts.check_role(_field(form, "role"))
            person = self._person(_field(form, "person"))
            async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
                async with conn.transaction():
                    before = await self._keeping_an_admin(conn, who, name, role)
                    await accounts.change(
                        conn,
                        name,
                        role=role,
                        person=person,
                        clear_person=person is None,
                        timeout_s=DB_TIMEOUT_S,
                    )
        except (AccountError, FormError) as exc:
            return await self._user_page(
                request, name, errors={"change": _sentence(exc)}, status=_status(exc)
            )
        log.info(
            "console_user_changed",
            by=who.name,
            user=name,
            role=role,
            person=person,
            role_before=before.role,
            person_before=before.person,
        )
        if name == who.name and role != "admin":
            # They may no longer see the admin page: send them where they may go.
            raise web.HTTPSeeOther("/console/")
        raise _done(user_path(name), "user-changed", name)

    @requires("admin")
    async def set_password(self, request: web.Request) -> web.StreamResponse:
        who = account(request)
        name = request.match_info["name"]
        form = await request.post()
        try:
            password = _new_password(form)
            async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
                changed = await accounts.set_password(
                    conn, name, password, self._services.clock(), timeout_s=DB_TIMEOUT_S
                )
        except (AccountError, FormError) as exc:
            return await self._user_page(
                request, name, errors={"password": _sentence(exc)}, status=_status(exc)
            )
        if not changed:
            raise web.HTTPNotFound(text=f"There is no console user {name!r}.")
        log.info("console_user_password_set", by=who.name, user=name)
        raise _done(user_path(name), "password-set", name)

    @requires("admin")
    async def remove_user(self, request: web.Request) -> web.StreamResponse:
        who = account(request)
        name = request.match_info["name"]
        form = await request.post()
        try:
            if _field(form, "confirm") != "yes":
                raise FormError(f"Tick “yes, remove {name}” to remove this console user.")
            async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
                async with conn.transaction():
                    before = await self._keeping_an_admin(conn, who, name, None)
                    await accounts.remove(conn, name, timeout_s=DB_TIMEOUT_S)
        except FormError as exc:
            return await self._user_page(
                request, name, errors={"remove": _sentence(exc)}, status=_status(exc)
            )
        log.info("console_user_removed", by=who.name, user=name, role=before.role)
        raise _done("/console/admin", "user-removed", name)

    async def _keeping_an_admin(
        self, conn: Any, who: Account, name: str, new_role: str | None
    ) -> Account:
        """The user as they are, unless the change would leave no admin. The admins' rows stay
        locked to the end of the transaction, so two admins removing each other at once
        cannot both succeed."""
        admins = await conn.fetch(
            "SELECT name FROM console_users WHERE role = 'admin' ORDER BY name FOR UPDATE",
            timeout=DB_TIMEOUT_S,
        )
        target = await accounts.find(conn, name, timeout_s=DB_TIMEOUT_S)
        if target is None:
            raise web.HTTPNotFound(text=f"There is no console user {name!r}.")
        if target.role == "admin" and new_role != "admin" and len(admins) <= 1:
            whose = "You are" if name == who.name else f"{name} is"
            what = "removed" if new_role is None else "made a " + new_role
            raise FormError(
                f"{whose} the last admin and cannot be {what}: nobody could manage the console"
                " any more. Make someone else an admin first.",
                status=409,
            )
        return target

    def _person(self, person_id: str) -> str | None:
        """A person of the configuration, or none ("")."""
        if not person_id:
            return None
        if person_id not in {user.id for user in self._services.config().users}:
            raise FormError(f"{person_id!r} is not a person of the configuration.")
        return person_id

    # -- API tokens ------------------------------------------------------------------------

    @requires("admin")
    async def create_token(self, request: web.Request) -> web.StreamResponse:
        who = account(request)
        form = await request.post()
        entered = {"token_name": _field(form, "name").strip(), "scope": _field(form, "scope")}
        try:
            async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
                made = await tokens.create_token(
                    conn,
                    entered["token_name"],
                    entered["scope"],
                    self._services.clock(),
                    timeout_s=DB_TIMEOUT_S,
                )
        except tokens.TokenError as exc:
            return await self._overview(
                request, errors={"token": _sentence(exc)}, entered=entered, status=400
            )
        log.info("console_token_created", by=who.name, token=made.name, scope=made.scope)
        # The secret is on this answer only (never in a redirect's address, never stored);
        # Cache-Control: no-store keeps it out of the browser's cache.
        return aiohttp_jinja2.render_template(
            "admin_token.html", request, {"token": made}, status=201
        )

    @requires("admin")
    async def revoke_token(self, request: web.Request) -> web.StreamResponse:
        who = account(request)
        name = request.match_info["name"]
        form = await request.post()
        try:
            if _field(form, "confirm") != "yes":
                raise FormError(f"Tick “yes, revoke {name}” to revoke this token.")
            async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
                revoked = await tokens.revoke_token(
                    conn, name, self._services.clock(), timeout_s=DB_TIMEOUT_S
                )
            if not revoked:
                raise FormError(f"There is no active token {name!r}.", status=404)
        except FormError as exc:
            return await self._overview(
                request, errors={"token": _sentence(exc)}, status=exc.status
            )
        log.info("console_token_revoked", by=who.name, token=name)
        raise _done("/console/admin", "token-revoked", name)

    # -- rendering -------------------------------------------------------------------------

    def _people(self) -> list[Person]:
        return [Person(user.id, user.name) for user in self._services.config().users]

    def _common(self, request: web.Request) -> dict[str, Any]:
        message = DONE.get(request.query.get("done", ""))
        return {
            "done": message.format(name=request.query.get("name", "")) if message else None,
            "people": self._people(),
            "person_names": {p.id: p.name for p in self._people()},
            "roles": ROLE_TEXT,
            "now": self._services.clock(),
        }

    async def _overview(
        self,
        request: web.Request,
        *,
        errors: dict[str, str] | None = None,
        entered: dict[str, str] | None = None,
        status: int = 200,
    ) -> web.Response:
        async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
            users = await accounts.list_accounts(conn, timeout_s=DB_TIMEOUT_S)
            api_tokens = await tokens.list_tokens(conn, timeout_s=DB_TIMEOUT_S)
        blank = {"name": "", "role": "viewer", "person": "", "token_name": "", "scope": "read"}
        return aiohttp_jinja2.render_template(
            "admin.html",
            request,
            {
                **self._common(request),
                "users": users,
                "tokens": api_tokens,
                "errors": errors or {},
                "entered": {**blank, **(entered or {})},
            },
            status=status,
        )

    async def _user_page(
        self,
        request: web.Request,
        name: str,
        *,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> web.Response:
        async with self._services.pool().acquire(timeout=DB_TIMEOUT_S) as conn:
            found = await accounts.find(conn, name, timeout_s=DB_TIMEOUT_S)
        if found is None:
            raise web.HTTPNotFound(text=f"There is no console user {name!r}.")
        return aiohttp_jinja2.render_template(
            "admin_user.html",
            request,
            {
                **self._common(request),
                "user": found,
                "user_path": user_path(found.name),
                "errors": errors or {},
            },
            status=status,
        )


def _new_password(form: Any) -> str:
    password = _field(form, "password")
    if password != _field(form, "repeat"):
        raise FormError("The two passwords differ.")
    return accounts.check_password(password)


def _status(exc: Exception) -> int:
    return exc.status if isinstance(exc, FormError) else 400


def _sentence(exc: Exception) -> str:
    """The library's message ("there is already ...") as a sentence on a page."""
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
