"""The console's alerts: the list and its filters, acting on one or many, one alert with its
call's timeline, its legs, its voicemail and its escalation; and the sentences a timeline
entry becomes."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from ari_controller.alerts.log import log_alert
from ari_controller.console.alerts_pages import UnsatisfiableRange, byte_range
from ari_controller.console.timeline import describe
from tests.alert_rows import T0, insert_alert, insert_call, insert_delivery
from tests.console_client import Browser, Console

NAMES = {"bea-busy": "Bea Busy", "ana-accepts": "Ana Accepts", "nick-noanswer": "Nick Noanswer"}
BERLIN = "200"  # the demo configuration's number in Europe/Berlin
_ROW_LINK = re.compile(r'href="/console/alerts/([0-9a-f-]{36})"')


async def _status(console: Console, alert_id: uuid.UUID) -> str:
    async with console.pool.acquire() as conn:
        return str(await conn.fetchval("SELECT status FROM alerts WHERE id = $1", alert_id))


async def _alerts(console: Console, *statuses: str, **kwargs: Any) -> list[uuid.UUID]:
    async with console.pool.acquire() as conn:
        return [await insert_alert(conn, status=status, **kwargs) for status in statuses]


def _listed(text: str) -> list[str]:
    """The alerts a list page links to, in its order."""
    return list(dict.fromkeys(_ROW_LINK.findall(text)))


async def _events(conn: Any, call_id: uuid.UUID, *entries: tuple[str, dict[str, Any]]) -> None:
    """Timeline entries after the three insert_call writes, a second apart."""
    for seq, (kind, data) in enumerate(entries, start=4):
        await conn.execute(
            "INSERT INTO call_events (call_id, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5)",
            call_id,
            seq,
            T0 + timedelta(seconds=seq),
            kind,
            json.dumps(data),
        )


# ---- the list ------------------------------------------------------------------------------


async def test_the_list_shows_open_alerts_first_and_every_state_a_tab_away(
    console: Console,
) -> None:
    opened, acknowledged, resolved = await _alerts(console, "open", "acknowledged", "resolved")
    browser = await console.browser("ana", role="viewer")

    page = await browser.get("/console/alerts")
    assert page.status == 200
    assert _listed(page.text) == [str(opened)]
    assert 'href="/console/alerts?state=all"' in page.text

    everything = await browser.get("/console/alerts", state="all")
    assert set(_listed(everything.text)) == {str(opened), str(acknowledged), str(resolved)}
    assert "acknowledged by bob" in everything.text

    done = await browser.get("/console/alerts", state="resolved")
    assert _listed(done.text) == [str(resolved)]


async def test_the_list_filters_by_number_and_by_day_in_the_numbers_zone(console: Console) -> None:
    # 23:30 UTC on 1 March is already 2 March in Berlin.
    late = datetime(2026, 3, 1, 23, 30, tzinfo=T0.tzinfo)
    async with console.pool.acquire() as conn:
        berlin_late = await insert_alert(conn, number=BERLIN, created_at=late)
        berlin_before = await insert_alert(conn, number=BERLIN, created_at=late - timedelta(days=3))
        elsewhere = await insert_alert(conn, created_at=late)
    browser = await console.browser("ana", role="viewer")

    by_number = await browser.get("/console/alerts", number=BERLIN)
    assert set(_listed(by_number.text)) == {str(berlin_late), str(berlin_before)}
    assert '<option value="200" selected>' in by_number.text

    that_day = await browser.get(
        "/console/alerts", number=BERLIN, since="2026-03-02", until="2026-03-02"
    )
    assert _listed(that_day.text) == [str(berlin_late)]
    assert "Europe/Berlin" in that_day.text
    assert "2026-03-02 00:30:00 CET" in that_day.text  # shown in the number's zone

    every_number = await browser.get("/console/alerts", since="2026-03-01", until="2026-03-01")
    assert set(_listed(every_number.text)) == {str(berlin_late), str(elsewhere)}


async def test_a_date_that_is_not_a_day_is_said_and_not_applied(console: Console) -> None:
    (opened,) = await _alerts(console, "open")
    browser = await console.browser("ana", role="viewer")
    page = await browser.get("/console/alerts", since="yesterday")
    assert page.status == 400
    assert 'role="alert"' in page.text and "is not a date like" in page.text
    assert _listed(page.text) == [str(opened)]
    assert 'value="yesterday"' in page.text  # kept in the form to be corrected


async def test_the_list_pages_by_fifty_and_keeps_its_filters(console: Console) -> None:
    async with console.pool.acquire() as conn:
        made = [
            await insert_alert(conn, number=BERLIN, created_at=T0 + timedelta(minutes=i))
            for i in range(55)
        ]
        await insert_alert(conn, created_at=T0)  # another number: never listed below
    newest_first = [str(alert_id) for alert_id in reversed(made)]
    browser = await console.browser("ana", role="viewer")

    first = await browser.get("/console/alerts", state="all", number=BERLIN)
    assert _listed(first.text) == newest_first[:50]
    found = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert found, "no Next link"
    assert 'rel="prev"' not in first.text
    next_href = found.group(1).replace("&amp;", "&")
    assert "state=all" in next_href and "number=200" in next_href and "offset=50" in next_href

    second = await browser.get(next_href)
    assert _listed(second.text) == newest_first[50:]
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text


# ---- acting on many ------------------------------------------------------------------------


async def test_a_responder_acknowledges_several_and_the_list_says_what_happened(
    console: Console,
) -> None:
    first, second, third, taken, over = await _alerts(
        console, "open", "open", "open", "acknowledged", "resolved"
    )
    browser = await console.browser("ana", role="responder")
    page = await browser.get("/console/alerts", state="all")
    assert 'type="checkbox" name="alert"' in page.text
    assert f'<label for="pick-{first}" class="visually-hidden">' in page.text
    assert "Acknowledge selected" in page.text and "Resolve selected" in page.text

    after = await browser.post(
        "/console/alerts/act",
        [("alert", str(a)) for a in (first, second, third, taken, over)]
        + [("action", "acknowledge"), ("back", "/console/alerts?state=all")],
        csrf_from="/console/alerts",
    )
    assert after.status == 200
    assert "state=all" in after.url  # back on the list as it was filtered
    status = re.search(r'<p class="note" role="status">([^<]+)</p>', after.text)
    assert status, after.text[:2000]
    assert status.group(1) == (
        "3 alerts acknowledged. 1 alert already acknowledged."
        " 1 alert not acknowledged: a resolved alert stays resolved."
    )
    assert [await _status(console, a) for a in (first, second, third, taken, over)] == [
        "acknowledged",
        "acknowledged",
        "acknowledged",
        "acknowledged",
        "resolved",
    ]
    async with console.pool.acquire() as conn:
        assert await conn.fetchval("SELECT acknowledged_by FROM alerts WHERE id = $1", first) == (
            "ana"
        )
        via = await conn.fetchval(
            "SELECT data->>'via' FROM alert_log"
            " WHERE alert_id = $1 AND kind = 'alert_acknowledged'",
            first,
        )
    assert via == "console"


async def test_resolving_many_and_selecting_none(console: Console) -> None:
    first, second = await _alerts(console, "open", "acknowledged")
    browser = await console.browser("ana", role="responder")
    resolved = await browser.post(
        "/console/alerts/act",
        [("alert", str(first)), ("alert", str(second)), ("action", "resolve")],
        csrf_from="/console/alerts",
    )
    assert "2 alerts resolved." in resolved.text
    assert {await _status(console, first), await _status(console, second)} == {"resolved"}

    nothing = await browser.post(
        "/console/alerts/act", {"action": "resolve"}, csrf_from="/console/alerts"
    )
    assert nothing.status == 200 and "No alert was selected" in nothing.text


async def test_the_way_back_after_acting_stays_on_the_alerts_list(console: Console) -> None:
    (opened,) = await _alerts(console, "open")
    browser = await console.browser("ana", role="responder")
    page = await browser.post(
        "/console/alerts/act",
        {"alert": str(opened), "action": "acknowledge", "back": "https://example.org/x"},
        csrf_from="/console/alerts",
    )
    assert page.url.startswith(f"{console.base}/console/alerts?done=acknowledge")


async def test_a_viewer_may_look_but_not_act(console: Console) -> None:
    (opened,) = await _alerts(console, "open")
    browser = await console.browser("vic", role="viewer")
    page = await browser.get("/console/alerts")
    assert str(opened) in page.text
    assert 'type="checkbox"' not in page.text and "Acknowledge selected" not in page.text

    refused = await browser.post(
        "/console/alerts/act",
        {"alert": str(opened), "action": "acknowledge"},
        csrf_from="/console/alerts",
    )
    assert refused.status == 403
    one = await browser.post(
        f"/console/alerts/{opened}/acknowledge", {}, csrf_from="/console/alerts"
    )
    assert one.status == 403
    assert await _status(console, opened) == "open"

    alert_page = await browser.get(f"/console/alerts/{opened}")
    assert alert_page.status == 200 and "Escalate now" not in alert_page.text
    assert f'action="/console/alerts/{opened}/acknowledge"' not in alert_page.text


async def test_a_post_without_the_form_token_is_refused(console: Console) -> None:
    (opened,) = await _alerts(console, "open")
    browser = await console.browser("ana", role="responder")
    bulk = await browser.post_raw(
        "/console/alerts/act", {"alert": str(opened), "action": "acknowledge"}
    )
    one = await browser.post_raw(f"/console/alerts/{opened}/resolve", {})
    assert (bulk.status, one.status) == (403, 403)
    assert await _status(console, opened) == "open"


# ---- one alert -----------------------------------------------------------------------------


async def test_an_alert_reads_as_its_call_in_the_numbers_time_zone(console: Console) -> None:
    async with console.pool.acquire() as conn:
        alert_id = await insert_alert(conn, number=BERLIN, status="acknowledged")
        call_id = await insert_call(conn, alert_id)
        await _events(
            conn,
            call_id,
            ("menu_input", {"digit": "1", "attempt": 1, "step": "Chosen"}),
            (
                "leg_ended",
                {
                    "leg": "leg-1",
                    "user": "bea-busy",
                    "contact": "PJSIP/bea",
                    "outcome": "busy",
                    "cause": 17,
                    "ring_s": 3.2,
                },
            ),
            ("bridged", {"bridge": "b-1", "responder": "ana-accepts"}),
            ("alert_escalated", {"reason": "nobody_available", "policy": "database"}),
        )
    browser = await console.browser("vic", role="viewer")
    page = await browser.get(f"/console/alerts/{alert_id}")
    assert page.status == 200
    text = page.text
    assert "<h1>Alert from +4917000001 on Ops hotline" in text
    assert "2026-03-02 10:00:00 CET" in text  # created, in Berlin
    assert "by bob, 2026-03-02 10:01:00 CET" in text
    # The timeline: each entry at its time in Berlin, as a sentence.
    assert '<time datetime="2026-03-02T09:00:05+00:00"' in text
    assert ">10:00:05</time> <span>Bea Busy on PJSIP/bea was busy" in text
    assert "Bea Busy on PJSIP/bea was busy (rang 3.2 s; hang-up cause 17 (user busy))." in text
    assert "The caller pressed 1 (attempt 1): a route is chosen." in text
    assert "The caller and Ana Accepts are connected." in text
    assert "Alert escalated to policy database (because nobody was available)." in text
    # The legs table of insert_call: a busy leg and one that was not answered.
    legs = text.split("<h3>Responders rung</h3>")[1]
    assert '<td data-label="Outcome">was busy</td>' in legs
    assert '<td data-label="Hang-up cause">17 (user busy)</td>' in legs
    assert '<td data-label="Outcome">did not answer</td>' in legs
    assert (
        '<td data-label="Placed"><time datetime="2026-03-02T09:00:05+00:00">10:00:05</time>' in legs
    )


async def test_an_alert_with_its_voicemail_plays_downloads_and_seeks(console: Console) -> None:
    audio = b"RIFF" + bytes(range(256)) * 8
    async with console.pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        await insert_call(conn, alert_id, audio=audio)
    browser = await console.browser("vic", role="viewer")
    page = await browser.get(f"/console/alerts/{alert_id}")
    src = f"/console/alerts/{alert_id}/voicemail"
    assert f'<audio controls preload="metadata" src="{src}"' in page.text
    assert f'href="{src}?download=1"' in page.text
    assert "4.5 s long" in page.text

    status, body, headers = await browser.get_bytes(src)
    assert status == 200 and body == audio
    assert headers["Content-Type"] == "audio/wav"
    assert headers["Content-Disposition"] == "inline"
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Cache-Control"] == "private, max-age=300"

    status, body, headers = await browser.get_bytes(f"{src}?download=1")
    assert headers["Content-Disposition"] == f'attachment; filename="voicemail-{alert_id}.wav"'

    async with browser.session.get(browser.base + src, headers={"Range": "bytes=100-199"}) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 100-199/{len(audio)}"
        assert await r.read() == audio[100:200]
    async with browser.session.get(browser.base + src, headers={"Range": "bytes=-10"}) as r:
        assert r.status == 206 and await r.read() == audio[-10:]
    async with browser.session.get(
        browser.base + src, headers={"Range": f"bytes={len(audio)}-"}
    ) as r:
        assert r.status == 416
        assert r.headers["Content-Range"] == f"bytes */{len(audio)}"


async def test_a_voicemail_whose_audio_stayed_in_asterisk_says_where_it_is(
    console: Console,
) -> None:
    async with console.pool.acquire() as conn:
        alert_id = await insert_alert(conn)
        call_id = await insert_call(conn, alert_id)
        await conn.execute(
            "INSERT INTO voicemails (id, call_id, alert_id, recording_name, duration_s, format,"
            " audio, created_at) VALUES ($1, $2, $3, 'vm-kept-in-asterisk', 12, 'wav', NULL, $4)",
            uuid.uuid4(),
            call_id,
            alert_id,
            T0,
        )
    browser = await console.browser("vic", role="viewer")
    page = await browser.get(f"/console/alerts/{alert_id}")
    assert "<audio" not in page.text
    assert (
        "The audio of this voicemail is not in the database: it stayed in Asterisk's recordings"
        " directory as <code>vm-kept-in-asterisk</code>"
    ) in page.text
    status, _, _ = await browser.get_bytes(f"/console/alerts/{alert_id}/voicemail")
    assert status == 404


async def test_an_alert_without_a_voicemail_has_no_audio(console: Console) -> None:
    (opened,) = await _alerts(console, "open")
    browser = await console.browser("vic", role="viewer")
    page = await browser.get(f"/console/alerts/{opened}")
    assert "<h2>Voicemail</h2>" not in page.text and "No call is recorded" in page.text
    status, _, _ = await browser.get_bytes(f"/console/alerts/{opened}/voicemail")
    assert status == 404


async def test_acting_on_one_alert_says_what_happened_and_what_was_refused(
    console: Console,
) -> None:
    (opened,) = await _alerts(console, "open")
    page_path = f"/console/alerts/{opened}"
    browser = await console.browser("ana", role="responder")

    escalated = await browser.post(f"{page_path}/escalate", {}, csrf_from=page_path)
    assert escalated.status == 200 and escalated.url.startswith(console.base + page_path)
    assert "The alert is escalated again, now" in escalated.text
    assert (
        "Alert escalated to policy db-policy by ana in the console (asked for by hand;"
        " escalation 1)."
    ) in escalated.text
    assert "<dt>Escalations</dt>\n  <dd>1, the last" in escalated.text

    acknowledged = await browser.post(f"{page_path}/acknowledge", {}, csrf_from=page_path)
    assert 'role="status">The alert is acknowledged; its escalation has stopped.' in (
        acknowledged.text
    )
    assert "Alert acknowledged by ana in the console." in acknowledged.text
    assert "Escalate now" not in acknowledged.text  # someone has it
    assert await _status(console, opened) == "acknowledged"

    resolved = await browser.post(f"{page_path}/resolve", {}, csrf_from=page_path)
    assert "The alert is resolved" in resolved.text
    assert "nothing more to do" in resolved.text

    # A page left open from before: its Acknowledge button still posts.
    refused = await browser.post(f"{page_path}/acknowledge", {}, csrf_from=page_path)
    assert refused.status == 200
    assert '<p class="error" role="alert">Not acknowledged: the alert is resolved.</p>' in (
        refused.text
    )
    assert await _status(console, opened) == "resolved"


async def test_an_alerts_escalation_and_messages_are_listed(console: Console) -> None:
    async with console.pool.acquire() as conn:
        alert_id = await insert_alert(conn, number=BERLIN)
        await log_alert(
            conn,
            alert_id,
            T0 + timedelta(minutes=5),
            "escalation_rule_notified",
            {"policy": "database", "rule": 1, "round": 1, "people": ["bea-busy"], "messages": 1},
        )
        await insert_delivery(conn, alert_id, user_id="bea-busy", state="sent")
        await conn.execute(
            "UPDATE deliveries SET attempts = 2, last_error = 'HTTP 502' WHERE alert_id = $1",
            alert_id,
        )
    browser = await console.browser("vic", role="viewer")
    page = await browser.get(f"/console/alerts/{alert_id}")
    after_call = page.text.split("<h2>After the call</h2>")[1]
    assert ">10:05:00</time> <span>Escalation rule 1 (round 1): notifying Bea Busy" in after_call
    messages = page.text.split("<h2>Messages</h2>")[1]
    for cell in (
        '<td data-label="Event">alert escalated</td>',
        '<td data-label="Destination">chat-ops</td>',
        '<td data-label="For">Bea Busy</td>',
        '<td data-label="State">sent</td>',
        '<td data-label="Attempts">2</td>',
        '<td data-label="Last error">HTTP 502</td>',
    ):
        assert cell in messages


async def test_an_unknown_alert_is_not_found(console: Console) -> None:
    browser = await console.browser("vic", role="viewer")
    unknown = await browser.get(f"/console/alerts/{uuid.uuid4()}")
    assert unknown.status == 404 and "There is no such alert." in unknown.text
    not_an_id = await browser.get("/console/alerts/not-an-alert")
    assert not_an_id.status == 404
    responder = await _responder(console)
    acted = await responder.post(
        f"/console/alerts/{uuid.uuid4()}/acknowledge", {}, csrf_from="/console/alerts"
    )
    assert acted.status == 404


async def _responder(console: Console) -> Browser:
    return await console.browser("ana", role="responder")


# ---- byte ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", (0, 99)),
        ("bytes=10-19", (10, 19)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-30", (70, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=0-1,5-6", None),  # several: the whole file
        ("items=0-1", None),
    ],
)
def test_a_byte_range_is_read_as_players_ask(
    header: str | None, expected: tuple[int, int] | None
) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-2", "bytes=-0", "bytes=x-3", "bytes="])
def test_a_byte_range_outside_the_file_is_unsatisfiable(header: str) -> None:
    with pytest.raises(UnsatisfiableRange):
        byte_range(header, 100)


# ---- timeline sentences --------------------------------------------------------------------

SENTENCES: list[tuple[str, dict[str, Any], str]] = [
    ("call_started", {"caller_id": "+4917000001", "did": "200"}, "Call from +4917000001 to 200."),
    (
        "support_hours",
        {"in_hours": True, "action": "menu"},
        "Within support hours: the caller hears the menu.",
    ),
    (
        "support_hours",
        {"in_hours": False, "action": "voicemail"},
        "Outside support hours: the caller is asked for a voicemail.",
    ),
    (
        "menu_input",
        {"digit": "2", "attempt": 1, "step": "Chosen"},
        "The caller pressed 2 (attempt 1): a route is chosen.",
    ),
    (
        "menu_input",
        {"digit": None, "attempt": 2, "step": "Repeat"},
        "The caller pressed nothing (attempt 2): the menu plays again.",
    ),
    (
        "menu_input",
        {"digit": "?", "attempt": 3, "step": "GiveUp"},
        "The caller said something that was not understood (attempt 3): no more attempts.",
    ),
    (
        "menu_speech",
        {"phrase": "database", "confidence": 0.9, "attempt": 1},
        "The caller said “database” in the menu (confidence 0.90; attempt 1).",
    ),
    (
        "route_confirmation",
        {"label": "database", "digit": "1", "answer": "yes", "pressed": None, "attempt": 1},
        "Asked the caller “did you say database?”: they said yes: the route is chosen.",
    ),
    (
        "route_confirmation",
        {"label": "database", "digit": "1", "answer": "digit", "pressed": "2", "attempt": 1},
        "Asked the caller “did you say database?”: they pressed 2.",
    ),
    (
        "menu_gave_up",
        {"then": "voicemail"},
        "No valid choice in the menu after every attempt: the caller is asked for a voicemail.",
    ),
    (
        "speech_heard",
        {"party": "caller", "result": "counted", "phrase": "two", "confidence": 0.81},
        "Heard the caller say “two” (confidence 0.81): it counts.",
    ),
    (
        "speech_heard",
        {
            "party": "responder",
            "leg": "l1",
            "result": "rejected",
            "phrase": "yes",
            "confidence": 0.3,
            "detail": "below 0.6",
        },
        "Heard the responder say “yes” but not surely enough to count"
        " (confidence 0.30; below 0.6).",
    ),
    ("speech_heard", {"party": "caller", "result": "silence"}, "Listened to the caller: silence."),
    (
        "speech_heard",
        {"party": "caller", "result": "too_slow", "decode_ms": 2100},
        "Recognising the caller's speech took too long (2100 ms): it did not count.",
    ),
    (
        "speech_heard",
        {"party": "caller", "result": "unreadable", "detail": "bad header"},
        "The caller's speech could not be read (bad header).",
    ),
    (
        "responder_speech",
        {"leg": "l1", "phrase": "accept", "confidence": 0.95},
        "The responder accepted by saying “accept” (confidence 0.95).",
    ),
    (
        "route_chosen",
        {"digit": "1", "route": "Database", "how": "voice"},
        "Route “Database” chosen (digit 1; by voice).",
    ),
    (
        "plan",
        {
            "policy": "database",
            "mode": "sequential",
            "responders": [{"user": "bea-busy", "name": "B."}, {"user": "zed", "name": "Zed Z"}],
        },
        "Who to ring (policy database; one after another): Bea Busy, Zed Z.",
    ),
    (
        "plan",
        {"policy": "nobody", "mode": "simultaneous", "responders": []},
        "Who to ring (policy nobody): nobody is on call.",
    ),
    (
        "leg_placed",
        {"leg": "l1", "user": "bea-busy", "contact": "PJSIP/bea", "order": 1, "mode": "sequential"},
        "Ringing Bea Busy on PJSIP/bea (number 1; one after another).",
    ),
    (
        "leg_answered",
        {"leg": "l1", "user": "ana-accepts"},
        "Ana Accepts answered; asked to accept the call.",
    ),
    (
        "leg_ended",
        {
            "leg": "l1",
            "user": "nick-noanswer",
            "contact": "PJSIP/nick",
            "outcome": "no_answer",
            "cause": 19,
            "ring_s": 20.0,
        },
        "Nick Noanswer on PJSIP/nick did not answer (rang 20.0 s; hang-up cause 19 (no answer)).",
    ),
    (
        "leg_ended",
        {"user": "ana-accepts", "outcome": "accepted", "cause": None, "ring_s": 75},
        "Ana Accepts accepted the call (rang 1 min 15 s).",
    ),
    (
        "leg_adopted",
        {"leg": "l1", "user": "ana-accepts", "answered": True},
        "After a restart, Ana Accepts's leg was taken over (answered).",
    ),
    (
        "bridged",
        {"bridge": "b", "responder": "ana-accepts"},
        "The caller and Ana Accepts are connected.",
    ),
    ("hangup", {"by": "responder"}, "The responder hung up."),
    ("hangup", {"by": "caller"}, "The caller hung up."),
    ("voicemail_started", {}, "Voicemail: the caller is asked to leave a message."),
    (
        "voicemail_stored",
        {"recording": "vm-1", "duration_s": 4.5, "bytes": 9000},
        "Voicemail recorded (4.5 s long): kept in the database.",
    ),
    (
        "voicemail_stored",
        {"recording": "vm-1", "duration_s": None, "bytes": 0},
        "Voicemail recorded: the audio stayed in Asterisk's recordings as vm-1.",
    ),
    (
        "voicemail_skipped",
        {"why": "caller hung up before the beep"},
        "No voicemail: caller hung up before the beep.",
    ),
    (
        "voicemail_recorded_during_restart",
        {"state": "done"},
        "The voicemail was recorded while the controller restarted: it finished.",
    ),
    (
        "call_resumed",
        {"step": "hunting", "caller_present": True},
        "The controller restarted and picked the call up again at ringing responders;"
        " the caller is still on the line.",
    ),
    (
        "caller_left_during_restart",
        {"step": "menu"},
        "The caller hung up while the controller restarted (at the menu).",
    ),
    ("caller_hung_up", {}, "The caller hung up."),
    ("controller_error", {}, "The controller failed on this call; the log says why."),
    (
        "left_connected_at_shutdown",
        {},
        "The controller shut down and left the caller and the responder connected.",
    ),
    (
        "handed_back_to_dialplan",
        {},
        "The controller shut down and handed the caller back to the dialplan.",
    ),
    ("call_ended", {"reason": "connected"}, "The call ended: the caller spoke with a responder."),
    ("call_ended", {"reason": "weird_new"}, "The call ended: weird new."),
    ("alert_acknowledged", {"by": "ana-accepts"}, "Alert acknowledged by Ana Accepts."),
    ("alert_resolved", {"by": None}, "Alert resolved."),
    (
        "alert_resolved",
        {"by": "ops-lead", "via": "api"},
        "Alert resolved by ops-lead through the API.",
    ),
    (
        "alert_escalated",
        {"reason": "voicemail", "policy": "database", "hold_until": "2026-03-02T07:00:00+00:00"},
        "Alert escalated to policy database (because the caller left a voicemail;"
        " not before 2026-03-02 08:00:00 CET, when support hours begin).",
    ),
    (
        "alert_escalated",
        {"by": "ana", "via": "console", "reason": "manual", "escalation": 2, "policy_id": None},
        "Alert escalated by ana in the console (asked for by hand; escalation 2).",
    ),
    (
        "escalation_started",
        {"policy": "database", "held": False},
        "Escalation (policy database) started.",
    ),
    (
        "escalation_started",
        {"policy": "database", "held": True, "due_at": "2026-03-02T07:00:00+00:00"},
        "Escalation (policy database) waits until 2026-03-02 08:00:00 CET.",
    ),
    (
        "escalation_not_started",
        {"status": "acknowledged"},
        "Escalation not started: the alert is acknowledged.",
    ),
    (
        "escalation_rule_notified",
        {
            "policy": "database",
            "rule": 2,
            "round": 1,
            "people": ["bea-busy", "ana-accepts"],
            "messages": 3,
            "without_rules": ["ana-accepts"],
        },
        "Escalation rule 2 (round 1): notifying Bea Busy, Ana Accepts"
        " (3 messages; without notification rules: Ana Accepts).",
    ),
    (
        "escalation_stopped",
        {"by_event": "alert.acknowledged", "cancelled_messages": 2},
        "Escalation stopped: the alert is acknowledged (2 pending messages cancelled).",
    ),
    ("escalation_done", {"why": "every rule notified"}, "Escalation done: every rule notified."),
    (
        "delivery_sent",
        {
            "event": "alert.escalated",
            "destination": "chat-ops",
            "user_id": "bea-busy",
            "attempt": 1,
            "status": 200,
        },
        "Alert escalated message to chat-ops for Bea Busy sent (attempt 1; HTTP 200).",
    ),
    (
        "delivery_failed",
        {
            "event": "alert.created",
            "destination": "hook",
            "user_id": None,
            "attempt": 2,
            "status": 503,
            "error": "HTTP 503",
            "retry_at": "2026-03-02T09:01:00+00:00",
        },
        "Alert created message to hook failed"
        " (attempt 2; HTTP 503; HTTP 503; trying again at 2026-03-02 10:01:00 CET).",
    ),
    (
        "delivery_dead",
        {"event": "alert.created", "destination": "hook", "error": "410 Gone"},
        "Alert created message to hook given up (410 Gone).",
    ),
    (
        "delivery_retried",
        {"destination": "hook", "user_id": "bea-busy"},
        "Message to hook for Bea Busy sent again.",
    ),
    (
        "phone_not_reached",
        {"user_id": "bea-busy", "contact": "PJSIP/bea", "why": "no answer"},
        "Phoned Bea Busy on PJSIP/bea: not reached (no answer).",
    ),
    (
        "phone_call_answered",
        {"user_id": "bea-busy", "contact": "PJSIP/bea", "leg": "n1"},
        "Bea Busy answered the notification call on PJSIP/bea.",
    ),
    (
        "phone_key",
        {"user_id": "bea-busy", "contact": "PJSIP/bea", "digit": "2", "action": "acknowledge"},
        "Bea Busy pressed 2 on the notification call to acknowledge.",
    ),
]


@pytest.mark.parametrize(("kind", "data", "sentence"), SENTENCES, ids=[s[0] for s in SENTENCES])
def test_a_timeline_entry_reads_as_a_sentence(
    kind: str, data: dict[str, Any], sentence: str
) -> None:
    assert describe(kind, data, NAMES, "Europe/Berlin") == sentence


def test_an_unknown_entry_still_reads_with_its_data() -> None:
    assert describe("fax_received", {"pages": 3, "from": "+49301", "empty": None}, NAMES) == (
        "Fax received: pages 3, from +49301."
    )
    assert describe("something_new", {}, NAMES) == "Something new."


def test_an_entry_of_another_shape_falls_back_to_its_data() -> None:
    # ring_s as text (a row from some other version) must not break the page.
    assert describe("leg_ended", {"user": "bea-busy", "ring_s": "long"}, NAMES) == (
        "Leg ended: user bea-busy, ring s long."
    )
