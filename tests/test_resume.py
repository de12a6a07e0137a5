"""What a restarted controller reads back to pick a call up: where each call was (pure), what
is left of its hunt, and the store's answer (real Postgres). The whole restart, with a real
daemon process killed mid-call, is tests/test_restart.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ari_controller.calls import ids
from ari_controller.calls.journal import AlertSummary, CallJournal, LegRecord
from ari_controller.calls.outcomes import LegOutcome
from ari_controller.calls.resume import HuntProgress, Unfinished, plan_note
from ari_controller.config import parse_config
from ari_controller.daemon import controller as controller_module
from ari_controller.oncall.plan import CallPlan, Responder
from ari_controller.prompts.audio import silence, wav_bytes
from ari_controller.store.unfinished import unfinished_calls
from ari_controller.store.writer import StoreWriter
from ari_controller.testing.harness import running_stack
from ari_controller.testing.postgres import free_port

T0 = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)

ANA = Responder("ana", "Ana", "en", ("Local/ana@phones", "PJSIP/ana-mobile"), 0, "dba", "on call")
BEN = Responder("ben", "Ben", "de", ("PJSIP/ben",), 1, None, "named in rule 2")


def unfinished(
    *timeline: tuple[str, dict[str, Any]], legs: tuple[LegRecord, ...] = ()
) -> Unfinished:
    return Unfinished(
        call_id="c1",
        alert_id="a1",
        caller_channel="1.1",
        did="100",
        number_name="Ops",
        caller_id="+4930",
        opened_at=T0,
        status="open",
        acknowledged_by=None,
        escalations=0,
        route=None,
        policy_id="dba",
        timeline=timeline,
        last_seq=len(timeline),
        legs=legs,
    )


HOURS = ("support_hours", {"in_hours": True, "action": "menu"})
CLOSED = ("support_hours", {"in_hours": False, "action": "message"})
CHOSEN = ("route_chosen", {"digit": "2", "route": "database", "how": "voice"})


@pytest.mark.parametrize(
    ("timeline", "step", "reason"),
    [
        ((), "menu", None),
        ((HOURS,), "menu", None),
        ((HOURS, ("menu_input", {"digit": "9"})), "menu", None),
        ((CLOSED,), "closing", "outside_hours"),
        ((("support_hours", {"in_hours": False, "action": "voicemail"}),), "voicemail", None),
        ((HOURS, ("menu_gave_up", {"then": "hang_up"})), "closing", "no_choice"),
        ((HOURS, ("menu_gave_up", {"then": "voicemail"})), "voicemail", None),
        ((HOURS, CHOSEN), "hunting", None),
        ((HOURS, CHOSEN, ("plan", plan_note(CallPlan("dba", T0, (ANA,)), "sequential"))),
         "hunting", None),
        ((HOURS, CHOSEN, ("bridged", {"bridge": "c1-bridge"})), "connected", None),
        ((HOURS, CHOSEN, ("voicemail_started", {})), "voicemail", None),
        ((HOURS, CHOSEN, ("voicemail_started", {}), ("voicemail_stored", {})), "closing",
         "voicemail"),
        ((HOURS, ("call_ended", {"reason": "nobody_available"})), "closing", "nobody_available"),
    ],
)  # fmt: skip
def test_a_call_goes_on_from_the_furthest_step_its_timeline_reached(
    timeline: tuple[tuple[str, dict[str, Any]], ...], step: str, reason: str | None
) -> None:
    call = unfinished(*timeline)
    assert call.step == step
    if reason is not None:
        assert call.closing_reason == reason


def test_the_choice_and_the_plan_come_back_as_they_were_made() -> None:
    plan = CallPlan("dba", T0, (ANA, BEN))
    call = unfinished(HOURS, CHOSEN, ("plan", plan_note(plan, "simultaneous")))
    choice = call.choice
    assert choice is not None and (choice.digit, choice.label, choice.how) == (
        "2",
        "database",
        "voice",
    )
    on_record = call.plan
    assert on_record is not None and on_record.mode == "simultaneous"
    # The random picks of the earlier run are kept: the same people, contacts and order.
    assert on_record.plan.responders == (ANA, BEN)
    assert unfinished(HOURS, CHOSEN).plan is None  # chosen, but no plan made yet


def test_a_voicemail_outside_hours_stays_one_after_the_restart() -> None:
    closed = ("support_hours", {"in_hours": False, "action": "voicemail"})
    assert unfinished(closed, ("voicemail_started", {})).outside_hours
    assert not unfinished(HOURS, CHOSEN, ("voicemail_started", {})).outside_hours


def leg(order: int, user: str, contact: str, outcome: LegOutcome | None) -> LegRecord:
    return LegRecord(
        f"c1-leg{order}", user, user, contact, order, "sequential", T0, outcome=outcome
    )


def test_hunt_progress_knows_who_was_rung_who_said_no_and_the_next_leg_number() -> None:
    fresh = HuntProgress()
    assert fresh.next_order() == 1 and fresh.earlier_leg("ana", "x") is None
    progress = HuntProgress(
        [
            leg(1, "ana", "Local/ana@phones", LegOutcome.NO_ANSWER),
            leg(2, "ana", "PJSIP/ana-mobile", None),
            leg(3, "ben", "PJSIP/ben", LegOutcome.DECLINED),
        ]
    )
    assert progress.next_order() == 4
    ringing = progress.earlier_leg("ana", "PJSIP/ana-mobile")
    assert ringing is not None and ringing.order == 2 and ringing.outcome is None
    assert progress.declined("ben") and not progress.declined("ana")


# ---- durability and the store's answer -------------------------------------------------------


async def test_durable_means_in_postgres_and_the_spool_file_when_postgres_is_away(
    database: str, tmp_path: Path
) -> None:
    writer = StoreWriter(database, tmp_path / "up")
    await writer.start()
    try:
        journal = CallJournal(summary(), writer.submit, lambda: T0)
        journal.open()
        assert await writer.durable(2.0) == "database"
        conn = await asyncpg.connect(database)
        try:
            assert await conn.fetchval("SELECT count(*) FROM calls") == 1
        finally:
            await conn.close()
    finally:
        await writer.close()

    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    down = StoreWriter(nowhere, tmp_path / "down", retry_initial=0.02, connect_timeout=0.5)
    await down.start()
    try:
        journal = CallJournal(summary(), down.submit, lambda: T0)
        journal.open()
        started = time.monotonic()
        # Waits out one short attempt at most, then the file: a restart here replays it.
        assert await down.durable(0.3) == "spool"
        assert time.monotonic() - started < 2.0
        lines = (tmp_path / "down" / "pending.jsonl").read_text().splitlines()
        assert any('"CallStarted"' in line for line in lines)
        journal.note("route_chosen", digit="1", route="ops", how="digit")
        started = time.monotonic()
        assert await down.durable(0.3) == "spool"  # once failing, no wait for Postgres
        assert time.monotonic() - started < 0.3
    finally:
        await down.close(0.1)


def summary(app: str = "callrouting") -> AlertSummary:
    return AlertSummary(
        alert_id=str(uuid.uuid4()),
        call_id=str(uuid.uuid4()),
        did="100",
        number_name="Ops",
        caller_id="+4930555",
        caller_channel=f"chan-{uuid.uuid4().hex[:8]}",
        opened_at=T0,
        app=app,
    )


async def test_the_store_gives_back_each_unfinished_call_of_the_app_where_it_was(
    database: str, tmp_path: Path
) -> None:
    writer = StoreWriter(database, tmp_path)
    await writer.start()
    try:
        hunting = CallJournal(summary(), writer.submit, lambda: T0)
        hunting.open()
        hunting.note("support_hours", in_hours=True, action="menu")
        hunting.route_chosen("2", "database", "digit", "dba")
        hunting.note("plan", **plan_note(CallPlan("dba", T0, (ANA, BEN)), "sequential"))
        first = LegRecord(
            f"{hunting.alert.call_id}-leg1", "ana", "Ana", ANA.contacts[0], 1, "sequential", T0
        )
        hunting.leg_placed(first)
        hunting.leg_ended(first, LegOutcome.BUSY, 17)
        second = LegRecord(
            f"{hunting.alert.call_id}-leg2", "ana", "Ana", ANA.contacts[1], 2, "sequential", T0
        )
        hunting.leg_placed(second)

        ended = CallJournal(summary(), writer.submit, lambda: T0)
        ended.open()
        ended.end("connected")
        other_app = CallJournal(summary("another-app"), writer.submit, lambda: T0)
        other_app.open()
        assert await writer.flush(10)
    finally:
        await writer.close()

    conn = await asyncpg.connect(database)
    try:
        found = await unfinished_calls(conn, "callrouting")
    finally:
        await conn.close()
    assert [call.call_id for call in found] == [hunting.alert.call_id]
    call = found[0]
    assert call.step == "hunting"
    assert (call.route, call.policy_id, call.caller_channel) == (
        "database",
        "dba",
        hunting.alert.caller_channel,
    )
    assert call.last_seq == len(hunting.entries)  # the next entry is numbered after these
    assert [(leg.order, leg.user_name, leg.outcome) for leg in call.legs] == [
        (1, "Ana", LegOutcome.BUSY),
        (2, "Ana", None),
    ]
    on_record = call.plan
    assert on_record is not None and on_record.plan.responders == (ANA, BEN)


# ---- the controller picking up a call whose caller left while no daemon ran ----------------

CONFIG: dict[str, Any] = {
    "users": [{"id": "ana", "name": "Ana", "contacts": ["Local/noanswer@responders"]}],
    "escalation_policies": [{"id": "dba", "rules": [{"users": ["ana"]}]}],
    "numbers": [
        {
            "did": "100",
            "name": "Ops",
            "routes": [{"label": "database", "policy": "dba"}],
            "voicemail": {"enabled": False},
        }
    ],
}


async def test_a_caller_gone_meanwhile_ends_the_call_as_a_hang_up_and_leaves_nothing(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller_module, "EARLIER_UTTERANCES_DONE_S", 0.2)
    async with running_stack(parse_config(CONFIG, "resume"), database, tmp_path) as stack:
        # What an earlier run left: a call on hold (route chosen, Ana's leg ringing), whose
        # caller hung up while no daemon ran; two utterances it was listening to, one still
        # recorded after this run started. This run's own utterances are not touched.
        earlier = CallJournal(summary(), stack.daemon.writer.submit, lambda: T0)
        earlier.open()
        earlier.route_chosen("1", "database", "digit", "dba")
        earlier.note("plan", **plan_note(CallPlan("dba", T0, (ANA,)), "sequential"))
        leg = LegRecord(f"{earlier.alert.call_id}-leg1", "ana", "Ana", "x", 1, "sequential", T0)
        earlier.leg_placed(leg)
        assert await stack.daemon.writer.flush(5)
        caller = earlier.alert.caller_channel
        recordings = stack.sim.recordings_dir
        for name in (f"{caller}-said-0a0b0c-3", f"{caller}-said-{ids.RUN}-1", "someone-else"):
            (recordings / f"{name}.wav").write_bytes(wav_bytes(silence(0.1, 8000)))
        conn = await asyncpg.connect(database)
        try:
            left = await unfinished_calls(conn, "callrouting")
        finally:
            await conn.close()
        assert [call.step for call in left] == ["hunting"]

        await stack.daemon.controller.reconcile(False, left)
        (recordings / f"{caller}-said-0a0b0c-4.wav").write_bytes(wav_bytes(silence(0.1, 8000)))
        await stack.wait_calls_done(10)
        await asyncio.sleep(0.5)  # the second round of the clean-up
        alerts = await stack.alerts()
        left_over = sorted(p.stem for p in recordings.glob("*.wav"))
    (alert,) = alerts
    assert alert["id"] == uuid.UUID(earlier.alert.alert_id)  # the same alert, not a new one
    assert alert["ended_reason"] == "abandoned"
    assert alert["escalation_count"] == 1  # the team hears of the caller who gave up
    timeline = [event["kind"] for event in alert["calls"][0]["timeline"]]
    assert timeline[timeline.index("call_resumed") :] == [
        "call_resumed",
        "leg_ended",
        "caller_left_during_restart",
        "caller_hung_up",
        "alert_escalated",
        "call_ended",
    ]
    # The leg no longer rang (it never existed here): over, unobserved.
    assert [leg["outcome"] for leg in alert["calls"][0]["legs"]] == ["unobserved"]
    assert left_over == sorted([f"{caller}-said-{ids.RUN}-1", "someone-else"])
