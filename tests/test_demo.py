"""`make demo` shows every path and says so; a call that ends wrongly makes it fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_controller import demo


async def test_demo_runs_every_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.run_demo(tmp_path) == 0
    out = capsys.readouterr().out
    for scenario in demo.SCENARIOS:
        assert scenario.title in out
    assert "caller connected to ana-accepts" in out
    assert "voicemail stored" in out
    assert "every call ended as expected" in out
    # the alerts as read back from Postgres
    assert out.count("connected ") >= 3 and "abandoned" in out
    # ... and what happened to them after the calls: one acknowledged through the API, one
    # escalated to its second rule (Kim), every webhook signed.
    assert "Acknowledged through the API" in out
    assert "[300] @kim: A missed call for the night shift" in out
    assert "[400] @kim" not in out
    assert "signature ok" in out and "BAD SIGNATURE" not in out
    # ... and the after-hours voicemail: a mail with the message attached, and a notification
    # call on which Olga's phone pressed 4.
    assert "Acknowledged by key 4 on a notification call" in out
    assert "to olga@example.com: [Acme After Hours] Voicemail" in out
    assert "attached: voicemail-" in out
    # ... and screening: a blocked caller on record without an alert, a repeat call that
    # joined the alert of the call before it (the demo checks both and fails otherwise).
    assert "blocked (+49900*); no alert, no page" in out
    assert "a repeat call: it joins the caller's open alert" in out


def test_an_unexpected_ending_is_reported() -> None:
    scenario = demo.Scenario("t", "demo_listen", "300", "nobody_available", ["busy"])
    alert = {
        "ended_reason": "connected",
        "acknowledged_by": "x",
        "voicemail": None,
        "calls": [{"caller_channel_id": "c1", "legs": [{"outcome": "accepted"}]}],
    }
    problems = demo.check(scenario, alert, "c1")
    assert any("expected nobody_available" in p for p in problems)
    assert any("expected ['busy']" in p for p in problems)
