"""The numbers page (what callers hear, hours, the greeting as audio) and the health page."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from ari_controller.config import parse_config
from ari_controller.console.numbers_page import (
    DASH,
    GreetingPreviews,
    PreviewFailed,
    hours_view,
    number_view,
)
from ari_controller.console.services import ConsoleServices
from ari_controller.console.web import console_app
from ari_controller.daemon.http import StatusServer
from ari_controller.numbers import Number
from ari_controller.prompts.tts import SpeechError
from tests import console_client
from tests.console_client import Console

HOURS = {
    "users": [{"id": "ada", "name": "Ada Lane", "contacts": ["PJSIP/ada"]}],
    "escalation_policies": [{"id": "desk", "name": "Front desk", "rules": [{"users": ["ada"]}]}],
    "numbers": [
        {
            "did": "+4930123456",
            "name": "Acme Desk",
            "greeting": "Welcome to Acme.",
            "routes": [
                {"label": "billing", "policy": "desk", "digit": "5"},
                {"label": "support", "policy": "desk", "mode": "simultaneous"},
            ],
            "support_hours": {
                "time_zone": "Europe/Berlin",
                "windows": [
                    {"days": "mon-fri", "start": "09:00", "end": "17:00"},
                    {"days": ["sat"], "start": "22:00", "end": "06:00"},
                ],
                "holidays": ["2026-12-25"],
                "exceptions": [
                    {"date": "2026-12-24", "start": "09:00", "end": "12:00", "note": "Eve"}
                ],
            },
            "outside_hours": {"action": "message", "message": "We are closed."},
        }
    ],
}


def test_a_number_as_the_page_describes_it() -> None:
    config = parse_config(HOURS)
    number = config.numbers[0]
    assert number.support_hours is not None
    hours = hours_view(number.support_hours)
    assert hours.windows == [
        f"Mon{DASH}Fri 09:00{DASH}17:00",
        f"Sat 22:00{DASH}06:00 (into the next day)",
    ]
    assert hours.holidays == ["2026-12-25"]
    assert hours.exceptions == [f"2026-12-24: open 09:00{DASH}12:00 (Eve)"]

    tuesday_noon = number_view(number, config, datetime(2026, 3, 3, 11, tzinfo=UTC))
    assert tuesday_noon.open_now and tuesday_noon.gets_now == "the greeting and menu"
    assert tuesday_noon.greeting == "Welcome to Acme."
    assert tuesday_noon.menu[:2] == ["For billing, press 5.", "For support, press 1."]
    assert [(r.digit, r.policy, r.mode) for r in tuesday_noon.routes] == [
        ("5", "Front desk", "sequential"),
        ("1", "Front desk", "simultaneous"),
    ]
    sunday = number_view(number, config, datetime(2026, 3, 1, 11, tzinfo=UTC))
    assert not sunday.open_now
    assert sunday.gets_now == "a message, then goodbye: “We are closed.”"


async def test_previews_are_rendered_once_per_greeting_and_failures_say_so() -> None:
    rendered: list[str] = []

    async def render(number: Number) -> bytes:
        rendered.append(number.did)
        if number.did == "broken":
            raise SpeechError("espeak-ng exited with 1")
        return f"RIFF {number.greeting}".encode()

    previews = GreetingPreviews(render)
    config = parse_config(HOURS)
    number = config.numbers[0]
    assert await previews.wav(number) == b"RIFF Welcome to Acme."
    assert await previews.wav(number) == b"RIFF Welcome to Acme."
    assert rendered == ["+4930123456"]
    # A changed greeting (a reload) is rendered anew.
    changed = number.model_copy(update={"greeting": "Hello again."})
    assert await previews.wav(changed) == b"RIFF Hello again."
    assert rendered == ["+4930123456", "+4930123456"]
    with pytest.raises(PreviewFailed, match="espeak-ng exited"):
        await previews.wav(number.model_copy(update={"did": "broken"}))


@pytest.fixture
def synthesised(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Numbers whose greeting the console's renderer was asked for (set up before `console`,
    which takes the renderer when it starts); number 300's engine fails."""
    asked: list[str] = []

    async def counting(number: Number) -> bytes:
        asked.append(number.did)
        if number.did == "300":
            raise SpeechError("the voice for 'en' is not installed")
        return b"RIFF" + number.did.encode()

    monkeypatch.setattr(console_client, "_greeting", counting)
    return asked


async def test_numbers_page_shows_what_callers_hear_and_the_player(console: Console) -> None:
    # A Tuesday: number 200's support hours never open, 100 has none.
    console.clock.now = datetime(2026, 3, 3, 11, tzinfo=UTC)
    browser = await console.browser("ana", role="viewer")
    page = await browser.get("/console/numbers")
    assert page.status == 200
    operations = page.text.split("Acme Operations", 1)[1].split("</section>", 1)[0]
    assert "You have reached Acme Operations." in operations
    assert "For the database team, press 1." in operations
    assert "Database team" in operations and "Site reliability" in operations
    assert "no support hours, always open" in operations
    assert '<audio controls preload="none" src="/console/numbers/100/greeting.wav"' in operations
    assert 'href="/console/numbers/100/greeting.wav" download' in operations
    after_hours = page.text.split("Acme After Hours", 1)[1].split("</section>", 1)[0]
    assert "Europe/Berlin" in after_hours
    assert "Closed</span>: outside support hours (2026-03-03 12:00 CET)" in after_hours
    assert "never (no weekly hours)" in after_hours
    assert "a voicemail" in after_hours


async def test_the_greeting_wav_is_rendered_once_and_served_as_audio(
    synthesised: list[str], console: Console
) -> None:
    browser = await console.browser("ana", role="viewer")
    for _ in range(2):
        status, body, headers = await browser.get_bytes("/console/numbers/100/greeting.wav")
        assert status == 200 and body == b"RIFF100"
        assert headers["Content-Type"] == "audio/wav"
        assert headers["Cache-Control"] == "private, max-age=300"
    assert synthesised == ["100"]

    unknown = await browser.get("/console/numbers/%2B4999/greeting.wav")
    assert unknown.status == 404 and "No number +4999 in the configuration" in unknown.text

    failed = await browser.get("/console/numbers/300/greeting.wav")
    assert failed.status == 503
    assert "speech engine could not render this greeting" in failed.text
    assert "the voice for &#39;en&#39; is not installed" in failed.text


async def test_without_a_speech_engine_there_is_no_player(console: Console) -> None:
    """A console whose daemon has no prompt engine (greeting_audio None), on the same
    database and configuration."""

    async def health() -> dict[str, object]:
        return dict(console.health)

    services = ConsoleServices(
        pool=lambda: console.pool,
        dsn=lambda: "",
        config=lambda: console.config,
        clock=console.clock,
        health=health,
    )
    server = StatusServer(
        "127.0.0.1",
        0,
        checks=_no_checks,
        status=dict,
        metrics=bytes,
        subapps={"/console": console_app(services, console_client.KEY)},
    )
    await server.start()
    try:
        browser = await console.browser("ana", role="viewer")
        browser.base = f"http://127.0.0.1:{server.port}"
        page = await browser.get("/console/numbers")
        assert page.status == 200 and "You have reached Acme Operations." in page.text
        assert "<audio" not in page.text
        assert "Greeting previews are not available here" in page.text
        wav = await browser.get("/console/numbers/100/greeting.wav")
        assert wav.status == 404 and "Greeting previews are not available here" in wav.text
    finally:
        await server.close()


async def _no_checks() -> dict[str, bool]:
    return {}


def verdict(text: str) -> str:
    found = re.search(r'<p class="(ok|bad)" role="(?:status|alert)">([^<]+)</p>', text)
    assert found, text[:2000]
    return found.group(2)


def fact(text: str, label: str) -> str:
    found = re.search(rf"<dt>{re.escape(label)}</dt>\s*<dd>(.*?)</dd>", text, re.S)
    assert found, f"no {label}"
    return re.sub(r"<[^>]+>", "", found.group(1))


async def test_health_page_reflects_the_daemon(console: Console) -> None:
    browser = await console.browser("ana", role="viewer")
    page = await browser.get("/console/health")
    assert page.status == 200 and "<h1>Health</h1>" in page.text
    assert verdict(page.text).startswith("All is well")
    assert fact(page.text, "Asterisk (ARI)") == "OK: connected"
    assert fact(page.text, "Database") == "OK: reachable"
    assert fact(page.text, "Spool backlog") == "OK: nothing waiting"
    assert fact(page.text, "Version") == "0.1.0"
    assert fact(page.text, "Configuration digest") == "abc123"

    # A few records on their way while calls run are no problem.
    console.health["spool_backlog"] = 3
    page = await browser.get("/console/health")
    assert verdict(page.text).startswith("All is well")
    assert fact(page.text, "Spool backlog") == "3 records waiting to be written to the database"

    console.health["ari_connected"] = False
    console.health["spool_backlog"] = 250
    page = await browser.get("/console/health")
    assert fact(page.text, "Asterisk (ARI)") == "Not OK: not connected"
    assert (
        fact(page.text, "Spool backlog")
        == "Not OK: 250 records waiting to be written to the database"
    )
    assert verdict(page.text) == (
        "Needs attention: Asterisk is not connected; 250 records wait in the spool."
    )

    console.health["database"] = False
    page = await browser.get("/console/health")
    assert fact(page.text, "Database") == "Not OK: not reachable"
    assert "the database is not reachable" in verdict(page.text)
