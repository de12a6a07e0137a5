"""Signing in to the console: passwords, lock-out, sessions, CSRF, roles, headers."""

from __future__ import annotations

import datetime as dt

import pytest

from ari_controller.config import ConfigError, alert_notes, environment_problems, load_config
from ari_controller.console.web import session_key
from tests.console_client import DEMO_CONFIG, KEY, PASSWORD, Console


async def test_a_visitor_is_sent_to_sign_in_and_back_where_they_were(console: Console) -> None:
    await console.add_user("ana", "responder")
    browser = await console.browser()
    page = await browser.get("/console/alerts")
    assert page.status == 200 and "/console/login" in page.url
    assert "<h1>Sign in</h1>" in page.text
    signed = await browser.post(
        "/console/login?next=/console/health", {"name": "ana", "password": "correct horse battery"}
    )
    assert signed.status == 200 and signed.url.endswith("/console/health"), signed.text[:300]
    assert "ana" in signed.text and "Sign out" in signed.text


async def test_headers_forbid_framing_and_foreign_scripts(console: Console) -> None:
    browser = await console.browser()
    page = await browser.get("/console/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_check_config_names_a_bad_session_key_and_notes_a_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load_config(DEMO_CONFIG)
    monkeypatch.delenv("CALLROUTING_CONSOLE_KEY", raising=False)
    assert any("sign in again after each restart" in note for note in alert_notes(config))
    monkeypatch.setenv("CALLROUTING_CONSOLE_KEY", "not-a-key")
    assert [p for p in environment_problems(config) if p[0].startswith("console")] == [
        (
            "console.session_key_env",
            "environment variable CALLROUTING_CONSOLE_KEY is not a Fernet key (32 bytes,"
            " URL-safe base64; `ari-controller console-users key` prints one)",
        )
    ]
    with pytest.raises(ConfigError, match=r"console\.session_key"):
        session_key(config.console.resolved_session_key())
    monkeypatch.setenv("CALLROUTING_CONSOLE_KEY", KEY.decode())
    assert not [p for p in environment_problems(config) if p[0].startswith("console")]
    assert not any("restart" in note for note in alert_notes(config))
    assert session_key(config.console.resolved_session_key()) == KEY


async def test_wrong_passwords_lock_the_account_for_a_while(console: Console) -> None:
    await console.add_user("ana", "responder")
    browser = await console.browser()
    for _ in range(4):
        page = await browser.sign_in("ana", "wrong password!")
        assert page.status == 401 and "The name or the password is wrong." in page.text
    page = await browser.sign_in("ana", "wrong password!")  # the fifth
    assert page.status == 401 and "locked until" in page.text
    page = await browser.sign_in("ana")  # the right one, but locked
    assert page.status == 401 and "locked until" in page.text
    console.clock.now += dt.timedelta(minutes=15, seconds=1)
    page = await browser.sign_in("ana")
    assert page.status == 200 and page.url.endswith("/console/")
    async with console.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT failed_attempts, locked_until FROM console_users WHERE name = 'ana'"
        )
    assert (row["failed_attempts"], row["locked_until"]) == (0, None)


async def test_an_unknown_name_is_answered_like_a_wrong_password(console: Console) -> None:
    browser = await console.browser()
    page = await browser.sign_in("nobody", "whatever password")
    assert page.status == 401 and "The name or the password is wrong." in page.text


async def test_the_session_cookie_is_encrypted_http_only_strict_and_scoped(
    console: Console,
) -> None:
    await console.add_user("ana", "viewer")
    browser = await console.browser()
    token = (await browser.get("/console/login")).csrf
    async with browser.session.post(
        console.base + "/console/login",
        data={"csrf_token": token, "name": "ana", "password": PASSWORD},
        allow_redirects=False,
    ) as reply:
        assert reply.status == 303
        cookie = reply.cookies["callrouting_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    assert "ana" not in cookie.value  # encrypted, not merely signed


async def test_a_session_ends_after_its_hours_at_sign_out_and_when_the_user_is_removed(
    console: Console,
) -> None:
    browser = await console.browser("ana", role="viewer")
    assert (await browser.get("/console/health")).url.endswith("/console/health")
    console.clock.now += dt.timedelta(hours=12, seconds=1)
    assert "/console/login" in (await browser.get("/console/health")).url
    await browser.sign_in("ana")
    page = await browser.post("/console/logout", {}, csrf_from="/console/health")
    assert "You are signed out" in page.text
    assert "/console/login" in (await browser.get("/console/health")).url
    await browser.sign_in("ana")
    async with console.pool.acquire() as conn:
        await conn.execute("DELETE FROM console_users WHERE name = 'ana'")
    assert "/console/login" in (await browser.get("/console/health")).url


async def test_after_sign_in_only_a_console_page_is_a_destination(console: Console) -> None:
    await console.add_user("ana", "viewer")
    for target in ("//evil.example/console/", "https://evil.example/", "/metrics"):
        browser = await console.browser()
        page = await browser.post(
            f"/console/login?next={target}",
            {"name": "ana", "password": PASSWORD},
            csrf_from="/console/login",
        )
        assert page.url == console.base + "/console/", target
