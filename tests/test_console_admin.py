"""The console's admin page: console users and API tokens, for admins only, every change
through a form with the CSRF token, the last admin kept."""

from __future__ import annotations

import datetime as dt
import html
import re

from structlog.testing import capture_logs

from ari_controller.alerts import tokens
from ari_controller.console import accounts
from tests.console_client import PASSWORD, Console

ADMIN = "/console/admin"
NEW_PASSWORD = "a brand new password"
_SECRET = re.compile(r'id="secret"[^>]* value="(crt_[^"]+)"')


async def names(console: Console) -> dict[str, tuple[str, str | None]]:
    async with console.pool.acquire() as conn:
        return {a.name: (a.role, a.person) for a in await accounts.list_accounts(conn)}


async def signs_in(console: Console, name: str, password: str) -> bool:
    async with console.pool.acquire() as conn:
        result = await accounts.sign_in(
            conn,
            name,
            password,
            console.clock(),
            lockout_failures=3,
            lockout=dt.timedelta(minutes=15),
        )
    return result.account is not None


def add_form(name: str, role: str = "viewer", person: str = "", **extra: str) -> dict[str, str]:
    return {
        "name": name,
        "role": role,
        "person": person,
        "password": NEW_PASSWORD,
        "repeat": NEW_PASSWORD,
        **extra,
    }


def status_line(text: str) -> str:
    found = re.search(r'role="status">([^<]*)<', text)
    assert found, text[:2000]
    return html.unescape(found.group(1))


def alert_line(text: str) -> str:
    found = re.search(r'role="alert"[^>]*>([^<]*)<', text)
    assert found, text[:2000]
    return html.unescape(found.group(1))


async def test_the_admin_page_lists_users_and_tokens_accessibly(console: Console) -> None:
    await console.add_user("bea", "responder", person="bea-busy")
    admin = await console.browser("root", role="admin")
    page = await admin.get(ADMIN)
    assert page.status == 200
    assert "<h1>Admin</h1>" in page.text
    for heading in ("Console users", "Add a console user", "API tokens", "Create an API token"):
        assert f">{heading}</h2>" in page.text
    assert '<th scope="col">Last sign-in</th>' in page.text
    assert re.search(r"<td[^>]*>bea</td>\s*<td[^>]*>responder</td>", page.text)
    # The person select offers the configuration's people, and "none".
    assert '<option value="" selected>none</option>' in page.text
    assert '<option value="bea-busy">' in page.text
    assert " style=" not in page.text and "<script>" not in page.text
    ids = re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', page.text)
    assert ids and all(f'<label for="{i}">' in page.text for i in ids)
    assert page.text.count('name="csrf_token"') == page.text.count("<form")


async def test_an_admin_adds_a_user_who_can_then_sign_in(console: Console) -> None:
    admin = await console.browser("root", role="admin")
    with capture_logs() as logs:
        page = await admin.post(ADMIN + "/users", add_form("carl", "responder", "kim-key-decline"))
    assert page.status == 200 and page.url.split("?")[0].endswith(ADMIN)
    assert status_line(page.text) == "Console user carl added: they can sign in now."
    assert (await names(console))["carl"] == ("responder", "kim-key-decline")
    added = [e for e in logs if e["event"] == "console_user_added"]
    assert added and added[0]["by"] == "root" and added[0]["user"] == "carl"
    assert NEW_PASSWORD not in str(logs)

    carl = await console.browser()
    signed = await carl.post(
        "/console/login?next=/console/admin", {"name": "carl", "password": NEW_PASSWORD}
    )
    # Signed in; as a responder the admin page is not theirs.
    assert signed.status == 403 and signed.url.endswith(ADMIN)
    assert "carl" in signed.text and "Sign out" in signed.text


async def test_what_adding_refuses_is_said_next_to_the_form(console: Console) -> None:
    admin = await console.browser("root", role="admin")
    cases = [
        (add_form("dora", repeat="something else!"), "The two passwords differ."),
        (
            add_form("dora", password="short", repeat="short"),
            "A password has 10 to 1024 characters.",
        ),
        (add_form("dora", person="nobody-like-this"), "'nobody-like-this' is not a person"),
        (add_form("dora", role="owner"), "'owner' is not a role"),
        (add_form("no spaces please"), "'no spaces please' is not a console user name"),
        (add_form("root"), "There is already a console user 'root'."),
    ]
    for form, message in cases:
        page = await admin.post(ADMIN + "/users", form)
        assert page.status == 400, (message, page.status)
        assert alert_line(page.text).startswith(message), page.text[:1000]
        assert 'aria-describedby="add-user-error"' in page.text
        # What was typed stays, but never a password.
        assert f'value="{html.escape(form["name"])}"' in page.text
        assert form["password"] not in page.text
    assert set(await names(console)) == {"root"}


async def test_an_admin_changes_role_and_person_and_sets_a_password(console: Console) -> None:
    await console.add_user("eve", "viewer")
    admin = await console.browser("root", role="admin")
    page = await admin.get(ADMIN + "/users/eve")
    assert page.status == 200 and "<h1>Console user eve</h1>" in page.text

    with capture_logs() as logs:
        page = await admin.post(
            ADMIN + "/users/eve/change", {"role": "responder", "person": "olga-oncall"}
        )
    assert page.status == 200 and status_line(page.text) == "Saved the role and person of eve."
    assert (await names(console))["eve"] == ("responder", "olga-oncall")
    changed = next(e for e in logs if e["event"] == "console_user_changed")
    assert (changed["by"], changed["role_before"], changed["role"]) == (
        "root",
        "viewer",
        "responder",
    )
    page = await admin.post(ADMIN + "/users/eve/change", {"role": "responder", "person": ""})
    assert (await names(console))["eve"] == ("responder", None)
    page = await admin.post(ADMIN + "/users/eve/change", {"role": "boss", "person": ""})
    assert page.status == 400 and "'boss' is not a role" in alert_line(page.text)

    # Three wrong passwords lock eve out; a new password lets her in again.
    for _ in range(3):
        assert not await signs_in(console, "eve", "not her password")
    assert not await signs_in(console, "eve", PASSWORD)
    page = await admin.post(
        ADMIN + "/users/eve/password", {"password": NEW_PASSWORD, "repeat": "mistyped it"}
    )
    assert page.status == 400 and alert_line(page.text) == "The two passwords differ."
    page = await admin.post(
        ADMIN + "/users/eve/password", {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    )
    assert page.status == 200 and "eve has a new password" in status_line(page.text)
    assert await signs_in(console, "eve", NEW_PASSWORD)
    assert not await signs_in(console, "eve", PASSWORD)

    page = await admin.get(ADMIN + "/users/nobody")
    assert page.status == 404


async def test_an_admin_removes_a_user_after_confirming(console: Console) -> None:
    admin = await console.browser("root", role="admin")
    await console.add_user("finn", "responder")
    finn = await console.browser()
    await finn.sign_in("finn")

    page = await admin.post(ADMIN + "/users/finn/remove", {})
    assert page.status == 400
    assert alert_line(page.text) == "Tick “yes, remove finn” to remove this console user."
    assert "finn" in await names(console)

    with capture_logs() as logs:
        page = await admin.post(ADMIN + "/users/finn/remove", {"confirm": "yes"})
    assert page.status == 200 and page.url.split("?")[0].endswith(ADMIN)
    assert status_line(page.text) == "Console user finn removed: they are signed out."
    assert "finn" not in await names(console)
    assert any(e["event"] == "console_user_removed" and e["by"] == "root" for e in logs)
    # Their session is worth nothing now.
    page = await finn.get("/console/admin")
    assert "/console/login" in page.url


async def test_the_last_admin_can_neither_remove_nor_demote_themself(console: Console) -> None:
    admin = await console.browser("root", role="admin")
    page = await admin.post(ADMIN + "/users/root/remove", {"confirm": "yes"})
    assert page.status == 409
    assert alert_line(page.text).startswith("You are the last admin and cannot be removed")
    page = await admin.post(ADMIN + "/users/root/change", {"role": "viewer", "person": ""})
    assert page.status == 409
    assert alert_line(page.text).startswith("You are the last admin and cannot be made a viewer")
    assert (await names(console))["root"] == ("admin", None)
    # A change that keeps them admin is fine.
    page = await admin.post(
        ADMIN + "/users/root/change", {"role": "admin", "person": "ana-accepts"}
    )
    assert page.status == 200 and (await names(console))["root"] == ("admin", "ana-accepts")

    # With a second admin, they may step down (and are sent where a viewer may go).
    await console.add_user("gil", "admin")
    page = await admin.post(ADMIN + "/users/root/change", {"role": "viewer", "person": ""})
    assert page.url.endswith("/console/")
    assert (await names(console))["root"] == ("viewer", None)
    assert (await admin.get(ADMIN)).status == 403


async def test_an_admin_creates_a_token_shown_once_and_revokes_it(console: Console) -> None:
    admin = await console.browser("root", role="admin")
    with capture_logs() as logs:
        page = await admin.post(ADMIN + "/tokens", {"name": "grafana", "scope": "write"})
    assert page.status == 201
    assert "this is the only time it is shown" in alert_line(page.text)
    assert page.headers["Cache-Control"] == "no-store"
    secret = _SECRET.search(page.text)
    assert secret, page.text[:2000]
    assert secret.group(1) not in str(logs)
    assert any(e["event"] == "console_token_created" and e["by"] == "root" for e in logs)
    async with console.pool.acquire() as conn:
        caller = await tokens.authenticate(conn, secret.group(1), console.clock())
    assert caller == tokens.Caller("grafana", "write")

    listing = await admin.get(ADMIN)
    assert re.search(r"<td[^>]*>grafana</td>\s*<td[^>]*>write</td>", listing.text)
    assert secret.group(1) not in listing.text

    page = await admin.post(ADMIN + "/tokens", {"name": "grafana", "scope": "read"})
    assert page.status == 400 and "A token named 'grafana' exists" in alert_line(page.text)
    page = await admin.post(ADMIN + "/tokens", {"name": "x", "scope": "admin"})
    assert page.status == 400 and "Scope 'admin': read or write" in alert_line(page.text)

    page = await admin.post(ADMIN + "/tokens/grafana/revoke", {}, csrf_from=ADMIN)
    assert page.status == 400 and "yes, revoke grafana" in alert_line(page.text)
    page = await admin.post(ADMIN + "/tokens/grafana/revoke", {"confirm": "yes"}, csrf_from=ADMIN)
    assert page.status == 200 and "Token grafana revoked" in status_line(page.text)
    async with console.pool.acquire() as conn:
        assert await tokens.authenticate(conn, secret.group(1), console.clock()) is None
    page = await admin.post(ADMIN + "/tokens/grafana/revoke", {"confirm": "yes"}, csrf_from=ADMIN)
    assert page.status == 404 and "no active token 'grafana'" in alert_line(page.text)


async def test_responders_and_viewers_get_403_and_change_nothing(console: Console) -> None:
    await console.add_user("victim", "viewer")
    async with console.pool.acquire() as conn:
        await tokens.create_token(conn, "keep", "read", console.clock())
    posts = [
        ("/users", add_form("intruder", "admin")),
        ("/users/victim/change", {"role": "admin", "person": ""}),
        ("/users/victim/password", {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD}),
        ("/users/victim/remove", {"confirm": "yes"}),
        ("/tokens", {"name": "sneaky", "scope": "write"}),
        ("/tokens/keep/revoke", {"confirm": "yes"}),
    ]
    for role in ("responder", "viewer"):
        browser = await console.browser(f"a-{role}", role=role)
        assert (await browser.get(ADMIN)).status == 403
        assert (await browser.get(ADMIN + "/users/victim")).status == 403
        for path, form in posts:
            page = await browser.post(ADMIN + path, form, csrf_from=ADMIN)
            assert page.status == 403, (role, path)
            assert f"Your role ({role}) may not do this" in page.text
        # Their own role cannot be raised by them either.
        own = await browser.post(
            ADMIN + f"/users/a-{role}/change", {"role": "admin", "person": ""}, csrf_from=ADMIN
        )
        assert own.status == 403
    await _nothing_changed(console)


FORGED_POSTS = [
    ("/users", add_form("intruder", "admin")),
    ("/users/victim/change", {"role": "admin", "person": ""}),
    ("/users/victim/password", {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD}),
    ("/users/victim/remove", {"confirm": "yes"}),
    ("/tokens", {"name": "sneaky", "scope": "write"}),
    ("/tokens/keep/revoke", {"confirm": "yes"}),
]


async def _forge(console: Console) -> list[int]:
    """An admin's browser posting each form without the token, and with a wrong one."""
    await console.add_user("victim", "viewer")
    async with console.pool.acquire() as conn:
        await tokens.create_token(conn, "keep", "read", console.clock())
    admin = await console.browser("root", role="admin")
    statuses = []
    for path, form in FORGED_POSTS:
        statuses.append((await admin.post_raw(ADMIN + path, form)).status)
        forged = {**form, "csrf_token": "forged"}
        statuses.append((await admin.post_raw(ADMIN + path, forged)).status)
    return statuses


async def test_a_post_without_the_csrf_token_changes_nothing(console: Console) -> None:
    statuses = await _forge(console)
    assert all(status >= 400 for status in statuses), statuses
    await _nothing_changed(console, admin="root")


async def test_a_post_without_the_csrf_token_is_403(console: Console) -> None:
    assert set(await _forge(console)) == {403}


async def _nothing_changed(console: Console, admin: str | None = None) -> None:
    users = await names(console)
    assert users.pop("victim") == ("viewer", None)
    assert "intruder" not in users and all(
        role != "admin" or n == admin for n, (role, _) in users.items()
    )
    assert await signs_in(console, "victim", PASSWORD)
    async with console.pool.acquire() as conn:
        listed = await tokens.list_tokens(conn)
    assert [(t.name, t.active) for t in listed] == [("keep", True)]
