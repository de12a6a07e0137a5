"""`make demo`: every path of a call, end to end, on this machine.

Starts a throwaway Postgres and the Asterisk simulator, runs the controller on
examples/demo.yaml, places scripted calls at once, prints each call's timeline and what the
caller heard, then the alerts as Postgres has them, and cleans everything up. Exits 1 if any
call did not end as expected.

With --serve (`make demo SERVE=1`) it then keeps the daemon running, with a console user
"demo" (an admin), and prints the web console's address, until Ctrl-C or SIGTERM: the calls
just placed can be looked at in the console.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import Fernet

from ari_controller.config import Config, load_config
from ari_controller.console import accounts
from ari_controller.demo_alerts import (
    CALLED_NUMBER,
    ON_CALL_PHONE,
    Receivers,
    acknowledge_when_notified,
    print_received,
    wait_deliveries_done,
)
from ari_controller.logging import configure_logging
from ari_controller.store.migrate import migrate
from ari_controller.testing.harness import Stack, running_stack
from ari_controller.testing.postgres import ThrowawayPostgres

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
# The phones run five times faster than life, so the whole demo takes well under a minute.
TIME_SCALE = 5.0
# Alerts run on the real clock: escalations and deliveries are over within this.
ALERTS_LIMIT_S = 60.0
# The console user --serve makes. Known to all: the demo's database is thrown away at the end
# and its server listens on 127.0.0.1 only.
CONSOLE_USER = "demo"
CONSOLE_PASSWORD = "demo-console-pass"

# Demo callers: each presses a key, holds, and hangs up a while after being connected.
CALLERS: dict[str, list[Any]] = {
    "demo_press1": [{"answer": {}}, {"wait": 3}, {"dtmf": "1"}, {"wait": 45}, {"hangup": {}}],
    "demo_press2": [{"answer": {}}, {"wait": 3}, {"dtmf": "2"}, {"wait": 45}, {"hangup": {}}],
    "demo_press3": [{"answer": {}}, {"wait": 3}, {"dtmf": "3"}, {"wait": 45}, {"hangup": {}}],
    "demo_impatient": [{"answer": {}}, {"wait": 3}, {"dtmf": "1"}, {"wait": 6}, {"hangup": {}}],
    "demo_listen": [{"answer": {}}, {"wait": 90}, {"hangup": {}}],
    "demo_wait_then_leave": [{"answer": {}}, {"wait": 30}, {"hangup": {}}],
    "demo_message": [
        {"answer": {}},
        {"wait": 6},
        {"speak": "tt-monkeys"},
        {"dtmf": "#"},
        {"wait": 30},
        {"hangup": {}},
    ],
}


DEFAULT_CALLER = "Caller <+4930999000>"


@dataclass(frozen=True)
class Scenario:
    title: str
    script: str
    did: str
    ended: str  # the alert's ended_reason we expect ("screened": turned away, no alert)
    outcomes: list[str] | None = None  # leg outcomes in order, when they are certain
    acknowledged_by: str | None = None
    caller: str = DEFAULT_CALLER
    screened: str | None = None  # the screening verdict of a call turned away
    joins: int | None = None  # a repeat call: the number of the scenario whose alert it joins
    delay_s: float = 0.0  # placed this long after the one before it


SCENARIOS = [
    Scenario(
        "Sequential calling: busy, then a decline, then an accept",
        "demo_press1",
        "100",
        "connected",
        ["busy", "declined", "accepted"],
        "ana-accepts",
    ),
    Scenario(
        "Simultaneous calling: everyone rings, the fastest accept wins",
        "demo_press2",
        "100",
        "connected",
        None,
        "fay-fast",
    ),
    Scenario(
        "One person, two phones: the first fails, the second is answered",
        "demo_press3",
        "100",
        "connected",
        ["failed", "accepted"],
        "max-two-phones",
    ),
    Scenario("After hours: straight to voicemail", "demo_message", "200", "voicemail", []),
    Scenario(
        "Nobody available, no voicemail: the alert is escalated",
        "demo_listen",
        "300",
        "nobody_available",
        ["busy", "declined"],
    ),
    Scenario(
        "Nobody available: the caller leaves a message",
        "demo_message",
        "400",
        "voicemail",
        ["busy", "declined"],
    ),
    Scenario(
        "The caller hangs up while we are still ringing",
        "demo_impatient",
        "100",
        "abandoned",
    ),
    Scenario(
        "Screening: a premium-rate number on the block list hears why and pages nobody",
        "demo_listen",
        "500",
        "screened",
        caller="Premium <+49900123456>",
        screened="blocked",
    ),
    Scenario(
        "A caller for the hotline: a new alert",
        "demo_wait_then_leave",
        "500",
        "connected",
        ["accepted"],
        "quinn-quick",
        caller="Carla <+4930555111>",
    ),
    Scenario(
        "The same caller again while the alert is open: the call joins it",
        "demo_wait_then_leave",
        "500",
        "connected",
        ["accepted"],
        "quinn-quick",
        caller="Carla <+4930555111>",
        joins=9,
        delay_s=2.0,
    ),
]


def describe(kind: str, data: dict[str, Any]) -> str:
    """One timeline entry as a person would say it."""
    match kind:
        case "call_started":
            return f"call from {data.get('caller_id')} to {data.get('did')}"
        case "support_hours":
            where = "inside" if data.get("in_hours") else "outside"
            return f"{where} support hours -> {data.get('action')}"
        case "menu_input":
            digit = data.get("digit")
            return f"caller pressed {digit}" if digit else "caller pressed nothing"
        case "route_chosen":
            return f"route {data.get('digit')}: {data.get('route')} ({data.get('how')})"
        case "plan":
            people = ", ".join(r["user"] for r in data.get("responders", []))
            return f"{data.get('mode')} call plan: {people or 'nobody on call'}"
        case "leg_placed":
            return f"ringing {data.get('user')} on {data.get('contact')}"
        case "leg_answered":
            return f"{data.get('user')} answered"
        case "leg_ended":
            cause = f", cause {data['cause']}" if data.get("cause") is not None else ""
            return f"{data.get('user')}: {data.get('outcome')}{cause}"
        case "alert_acknowledged" | "alert_resolved":
            who = f" by {data['by']}" if data.get("by") else ""
            return f"alert {kind.removeprefix('alert_')}{who}"
        case "bridged":
            return f"caller connected to {data.get('responder')}"
        case "hangup":
            return f"{data.get('by')} hung up"
        case "voicemail_stored":
            return f"voicemail stored ({data.get('bytes')} bytes)"
        case "alert_escalated":
            return f"alert escalated ({data.get('reason')})"
        case "call_ended":
            return f"call ended: {data.get('reason')}"
        case "screening":
            found = [
                f"{step['check']} {step['outcome']}"
                for step in data.get("steps", [])
                if step.get("outcome") not in ("off", "no_match")
            ]
            return f"screened: {data.get('action')} ({', '.join(found)})"
        case "repeat_call":
            return "a repeat call: it joins the caller's open alert"
        case _:
            extra = ", ".join(f"{k}={v}" for k, v in data.items() if v is not None)
            return f"{kind.replace('_', ' ')}{': ' + extra if extra else ''}"


def call_of(alert: dict[str, Any], channel: str) -> dict[str, Any]:
    """The call on the alert whose caller was on `channel` (a repeat call is not the first)."""
    return next(c for c in alert["calls"] if c["caller_channel_id"] == channel)


def check(scenario: Scenario, alert: dict[str, Any], channel: str) -> list[str]:
    problems = []
    if alert["ended_reason"] != scenario.ended:
        problems.append(f"ended {alert['ended_reason']}, expected {scenario.ended}")
    outcomes = [leg["outcome"] for leg in call_of(alert, channel)["legs"]]
    if scenario.outcomes is not None and outcomes != scenario.outcomes:
        problems.append(f"legs {outcomes}, expected {scenario.outcomes}")
    expected_by = scenario.acknowledged_by
    if expected_by is not None and alert["acknowledged_by"] != expected_by:
        problems.append(f"acknowledged by {alert['acknowledged_by']}, expected {expected_by}")
    if scenario.ended == "voicemail" and not (alert["voicemail"] or {}).get("audio_bytes"):
        problems.append("no voicemail audio stored")
    return problems


def print_call(
    n: int, scenario: Scenario, alert: dict[str, Any], channel: str, heard: list[str]
) -> None:
    print(f"\n{n}. {scenario.title}  (times as the caller lives them)")
    timeline = call_of(alert, channel)["timeline"]
    start: dt.datetime = timeline[0]["at"]
    for entry in timeline:
        offset = (entry["at"] - start).total_seconds() * TIME_SCALE
        print(f"   +{offset:6.1f}s  {describe(entry['kind'], entry['data'])}")
    print("   caller heard: " + " / ".join(f'"{text}"' for text in heard))


def print_alerts(alerts: list[dict[str, Any]]) -> None:
    print("\nAlerts in Postgres:")
    print(f"   {'number':<7}{'route':<22}{'status':<13}{'ack. by':<16}{'ended':<18}esc  vm")
    for alert in alerts:
        vm = "yes" if alert["voicemail"] else "-"
        print(
            f"   {alert['number_did']:<7}{(alert['route'] or '-'):<22}{alert['status']:<13}"
            f"{(alert['acknowledged_by'] or '-'):<16}{alert['ended_reason']:<18}"
            f"{alert['escalation_count']:<5}{vm}"
        )


async def run_demo(work_dir: Path, *, serve: bool = False) -> int:
    """The scripted calls and what became of them; with `serve`, then the console until a
    signal (the report is printed first, while everything still runs)."""
    started = time.monotonic()
    config = with_console_key(load_config(DEMO_CONFIG))
    print("Starting a throwaway Postgres, the Asterisk simulator, the controller, and a chat")
    print("and a webhook receiver for the alerts ...")
    receivers = Receivers()
    await receivers.start()
    try:
        config = with_mail_server(config, receivers.smtp_port)
        with ThrowawayPostgres() as postgres:
            await migrate(postgres.dsn)
            async with running_stack(
                config, postgres.dsn, work_dir, time_scale=TIME_SCALE
            ) as stack:
                for name, steps in CALLERS.items():
                    stack.sim.register_script(name, steps)
                stack.sim.register_script("demo_ack4", ON_CALL_PHONE)
                print(f"Placing {len(SCENARIOS)} calls at once (phones {TIME_SCALE:g}x faster).")
                api = f"http://127.0.0.1:{stack.daemon.http_port}"
                acknowledging = asyncio.ensure_future(
                    acknowledge_when_notified(postgres.dsn, api, ALERTS_LIMIT_S)
                )
                channels = await place_all(stack)
                await stack.wait_calls_done(50)
                acknowledged = await acknowledging
                await wait_deliveries_done(postgres.dsn, receivers, ALERTS_LIMIT_S)
                alerts = await stack.alerts()
                screened = await screened_calls(postgres.dsn)
                leftovers = stack.leftovers()
                heard = {channel: stack.heard(channel) for channel in channels}
                if serve:
                    failures = report(
                        alerts, screened, channels, heard, acknowledged, receivers, leftovers
                    )
                    print(
                        f"\nDemo calls done in {time.monotonic() - started:.0f} s:"
                        f" {verdict(failures)}."
                    )
                    await serve_console(postgres.dsn, stack.daemon.http_port)
    finally:
        await receivers.stop()
    if serve:
        print("Stopped: everything the demo started is stopped.")
        return 0 if not failures else 1
    failures = report(alerts, screened, channels, heard, acknowledged, receivers, leftovers)
    seconds = time.monotonic() - started
    print(
        f"\nDemo finished in {seconds:.0f} s: {verdict(failures)}."
        " Everything it started is stopped."
    )
    return 0 if not failures else 1


def verdict(failures: int) -> str:
    return "every call ended as expected" if not failures else f"{failures} problem(s)"


def report_screened(
    n: int, scenario: Scenario, row: dict[str, Any] | None, heard: list[str]
) -> int:
    """A call screening turned away: its verdict and rule; returns the problems found."""
    print(f"\n{n}. {scenario.title}")
    if row is None:
        print("   NOT ON RECORD as a screened call")
        return 1
    print(f"   caller {row['caller_key']}: {row['verdict']} ({row['rule']}); no alert, no page")
    print("   caller heard: " + " / ".join(f'"{text}"' for text in heard))
    if row["verdict"] != scenario.screened:
        print(f"   UNEXPECTED: {row['verdict']}, expected {scenario.screened}")
        return 1
    return 0


def report(
    alerts: list[dict[str, Any]],
    screened: list[dict[str, Any]],
    channels: list[str],
    heard: dict[str, list[str]],
    acknowledged: Any,
    receivers: Receivers,
    leftovers: dict[str, Any],
) -> int:
    """Prints each call, the alerts and what was received; returns the problems found."""
    by_channel = {c["caller_channel_id"]: a for a in alerts for c in a["calls"]}
    turned_away = {row["caller_channel_id"]: row for row in screened}
    failures = 0
    for n, (scenario, channel) in enumerate(zip(SCENARIOS, channels, strict=True), 1):
        if scenario.screened is not None:
            failures += report_screened(n, scenario, turned_away.get(channel), heard[channel])
            if channel in by_channel:
                print("   UNEXPECTED: an alert was opened for a caller turned away")
                failures += 1
            continue
        alert = by_channel.get(channel)
        if alert is None:
            print(f"\n{n}. {scenario.title}\n   NO ALERT RECORDED")
            failures += 1
            continue
        print_call(n, scenario, alert, channel, heard[channel])
        problems = check(scenario, alert, channel)
        if scenario.joins is not None:
            first = by_channel.get(channels[scenario.joins - 1])
            if first is None or first["id"] != alert["id"]:
                problems.append(f"did not join the alert of call {scenario.joins}")
        for problem in problems:
            print(f"   UNEXPECTED: {problem}")
            failures += 1
    shown = {a["id"]: a for c in channels if (a := by_channel.get(c)) is not None}
    print_alerts(list(shown.values()))
    if acknowledged is None:
        print("\n   UNEXPECTED: the night desk's voicemail alert was not acknowledged via the API")
        failures += 1
    else:
        print(f"\nAcknowledged through the API: alert {acknowledged} (number 400)")
    called = next((a for a in alerts if a["number_did"] == CALLED_NUMBER), None)
    if called is None or called["acknowledged_by"] != "olga-oncall":
        print("\n   UNEXPECTED: the after-hours voicemail was not acknowledged on Olga's phone")
        failures += 1
    else:
        print("Acknowledged by key 4 on a notification call: the after-hours voicemail (200),")
        print("   by olga-oncall, who also got a mail with the message attached")
    for problem in print_received(receivers):
        print(f"   UNEXPECTED: {problem}")
        failures += 1
    if any(leftovers.values()):
        print(f"\nLEFT OVER in Asterisk: {leftovers}")
        failures += 1
    return failures


def with_console_key(config: Config) -> Config:
    """A session key of this run: without one the daemon warns that sign-ins do not survive a
    restart, which a demo never has."""
    console = config.console.model_copy(
        update={"session_key": Fernet.generate_key().decode("ascii"), "session_key_env": None}
    )
    return config.model_copy(update={"console": console})


async def add_console_user(dsn: str) -> accounts.Account:
    """The demo's console user: an admin tied to no person (its actions are by "demo")."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await accounts.add(
            conn, CONSOLE_USER, CONSOLE_PASSWORD, "admin", None, dt.datetime.now(dt.UTC)
        )
    finally:
        await conn.close(timeout=5)


def console_line(port: int) -> str:
    return (
        f"Console: http://127.0.0.1:{port}/console/  sign in as {CONSOLE_USER} / {CONSOLE_PASSWORD}"
    )


async def serve_console(dsn: str, port: int | None) -> None:
    """Makes the console user and keeps everything running until SIGINT or SIGTERM."""
    if port is None:
        raise RuntimeError("the daemon has no HTTP server")
    await add_console_user(dsn)
    print(f"\n{console_line(port)}")
    print("The daemon, the simulator and Postgres keep running; Ctrl-C stops them all.")
    await until_signalled()


async def until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def with_mail_server(config: Config, port: int) -> Config:
    """The demo configuration's alert mails go to the demo's own SMTP server."""
    mail = config.alerts.email
    if mail is None:
        return config
    alerts = config.alerts.model_copy(update={"email": mail.model_copy(update={"port": port})})
    return config.model_copy(update={"alerts": alerts})


async def place_all(stack: Stack) -> list[str]:
    channels = []
    for scenario in SCENARIOS:
        await asyncio.sleep(scenario.delay_s)  # a repeat call: once the first has its alert
        channels.append(await stack.place_call(scenario.script, scenario.did, scenario.caller))
        await asyncio.sleep(0.05)  # keeps the calls' timelines apart in the alert list
    return channels


async def screened_calls(dsn: str) -> list[dict[str, Any]]:
    """The calls screening turned away, as Postgres has them."""
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(row) for row in await conn.fetch("SELECT * FROM screened_calls")]
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ari-controller demo", description=__doc__)
    parser.add_argument(
        "--serve",
        action="store_true",
        help="afterwards keep the daemon and its web console running until Ctrl-C",
    )
    args = parser.parse_args(argv)
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="callrouting-demo-") as work:
        return asyncio.run(run_demo(Path(work), serve=args.serve))


if __name__ == "__main__":
    sys.exit(main())
