"""Signing in to the console: passwords, lock-out, sessions, CSRF, roles, headers."""

from __future__ import annotations

import pytest

from ari_controller.config import ConfigError, alert_notes, environment_problems, load_config
from ari_controller.console.web import session_key
from tests.console_client import DEMO_CONFIG, KEY, Console


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
