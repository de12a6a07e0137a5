"""Signing in to the console: passwords, lock-out, sessions, CSRF, roles, headers."""

from __future__ import annotations

from tests.console_client import Console


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
