"""`ari-controller alerts|deliveries|tokens|notify-test`: alerts, their deliveries and the
API's tokens, on the database named by --dsn or the configuration."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ari_controller.cli_common import DB_TIMEOUT_S, EXIT_FAILED, EXIT_OK, EXIT_USAGE, on_database
from ari_controller.cli_common import load_or_exit as _load
from ari_controller.simulator.cli import positive_int


def _dsn(args: argparse.Namespace) -> str:
    if args.dsn:
        return str(args.dsn)
    if args.config:
        return _load(args.config).database.resolved_dsn()
    words = (
        args.command,
        *(getattr(args, f"{group}_command", "") for group in ("alerts", "tokens", "deliveries")),
    )
    print(f"error: {' '.join(w for w in words if w)} needs --config or --dsn", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _with_database(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    """Run `work` on one connection to the database; a database error is a clear message."""
    return on_database(_dsn(args), work, what="alerts")


def _alert_id(text: str, what: str = "an alert") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        print(f"error: '{text}' is not {what} id (a UUID)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return None
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_json_default))


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from ari_controller.store.queries import list_alerts

    async def work(conn: Any) -> int:
        alerts = await list_alerts(
            conn, args.limit, status=args.status, number=args.number, timeout_s=DB_TIMEOUT_S
        )
        if args.json:
            _print_json(alerts)
        elif not alerts:
            print("no alerts")
        else:
            header = ("ID", "CREATED (UTC)", "STATUS", "NUMBER", "ROUTE", "CALLER", "ENDED", "ESC")
            rows = [
                (
                    str(a["id"]),
                    _when(a["created_at"]),
                    a["status"],
                    a["number_did"],
                    a["route"] or "-",
                    a["caller_id"] or "-",
                    a["ended_reason"] or "-",
                    str(a["escalation_count"]),
                )
                for a in alerts
            ]
            print(_table(header, rows))
        return EXIT_OK

    return _with_database(args, work)


def cmd_alerts_show(args: argparse.Namespace) -> int:
    from ari_controller.store.queries import get_alert

    alert_id = _alert_id(args.id)

    async def work(conn: Any) -> int:
        alert = await get_alert(conn, alert_id, timeout_s=DB_TIMEOUT_S)
        if alert is None:
            print(f"error: no alert {alert_id}", file=sys.stderr)
            return EXIT_USAGE
        if args.json:
            _print_json(alert)
        else:
            print(render_alert(alert))
        return EXIT_OK

    return _with_database(args, work)


def render_alert(alert: dict[str, Any]) -> str:
    """An alert for a terminal: what it is, its calls, voicemail, log and deliveries."""
    policy = f" (policy {alert['policy_id']})" if alert["policy_id"] else ""
    lines = [
        f"alert {alert['id']}: {alert['status']}",
        f"  number:   {alert['number_name']} ({alert['number_did']})",
        f"  caller:   {alert['caller_id'] or '-'}",
        f"  route:    {alert['route'] or '-'}{policy}",
        f"  created:  {_when(alert['created_at'])}",
        f"  ended:    {alert['ended_reason'] or '-'}",
    ]
    if alert["acknowledged_at"]:
        by = alert["acknowledged_by"] or "-"
        lines.append(f"  acknowledged: {_when(alert['acknowledged_at'])} by {by}")
    if alert["resolved_at"]:
        lines.append(f"  resolved: {_when(alert['resolved_at'])} by {alert['resolved_by'] or '-'}")
    if alert["escalation_count"]:
        lines.append(
            f"  escalated: {alert['escalation_count']} time(s),"
            f" last {_when(alert['last_escalated_at'])}"
        )
    for call in alert["calls"]:
        lines.append(
            f"call {call['id']}: {_when(call['started_at'])} - {_when(call['ended_at'])},"
            f" {call['outcome'] or 'in progress'}"
        )
        for leg in call["legs"]:
            cause = f" (cause {leg['hangup_cause']})" if leg["hangup_cause"] is not None else ""
            lines.append(
                f"  leg {leg['attempt']}: {leg['user_id']} {leg['contact']} {leg['mode']}:"
                f" {leg['outcome'] or 'in progress'}{cause}"
            )
        for event in call["timeline"]:
            data = json.dumps(event["data"], default=_json_default) if event["data"] else ""
            lines.append(f"  {_when(event['at'])}  {event['kind']}  {data}".rstrip())
    voicemail = alert["voicemail"]
    if voicemail is not None:
        seconds = voicemail["duration_s"]
        length = f"{seconds:.1f} s" if seconds is not None else "length unknown"
        stored = (
            f"{voicemail['audio_bytes']} bytes stored"
            if voicemail["audio_bytes"]
            else "audio not stored"
        )
        lines.append(
            f"voicemail: {voicemail['recording_name']}, {length}, {voicemail['format']}, {stored}"
        )
    if alert["log"]:
        lines.append("log:")
        for entry in alert["log"]:
            data = json.dumps(entry["data"], default=_json_default) if entry["data"] else ""
            lines.append(f"  {_when(entry['at'])}  {entry['kind']}  {data}".rstrip())
    if alert["deliveries"]:
        lines.append("deliveries:")
        for d in alert["deliveries"]:
            who = f" ({d['user_id']})" if d["user_id"] else ""
            error = f": {d['last_error']}" if d["last_error"] else ""
            lines.append(
                f"  {_when(d['created_at'])}  {d['event']} -> {d['destination']}{who}:"
                f" {d['state']}, {d['attempts']} attempt(s){error}"
            )
    return "\n".join(lines)


_ACTION_DONE = {"acknowledge": "acknowledged", "resolve": "resolved", "escalate": "escalated"}


def cmd_alerts_act(args: argparse.Namespace) -> int:
    from ari_controller.alerts import actions

    act = {
        "ack": actions.acknowledge,
        "resolve": actions.resolve,
        "escalate": actions.escalate_now,
    }[args.alerts_command]
    alert_id = _alert_id(args.id)
    by = args.by or _who()

    async def work(conn: Any) -> int:
        try:
            result = await act(
                conn, alert_id, by, dt.datetime.now(dt.UTC), via="cli", timeout_s=DB_TIMEOUT_S
            )
        except actions.UnknownAlertError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if result.outcome is actions.Outcome.REFUSED:
            print(
                f"error: alert {alert_id}: {result.reason}: not {_ACTION_DONE[result.action]}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        if result.outcome is actions.Outcome.ALREADY:
            print(f"alert {alert_id}: {result.reason} (nothing changed)")
            return EXIT_OK
        notes = []
        if result.action == "escalate":
            notes.append(f"escalation {result.escalation_count}")
        if result.escalation_stopped:
            notes.append("escalation stopped")
        if result.deliveries_cancelled:
            notes.append(f"{result.deliveries_cancelled} pending message(s) cancelled")
        extra = f" ({', '.join(notes)})" if notes else ""
        print(f"alert {alert_id} {_ACTION_DONE[result.action]} by {by}{extra}")
        return EXIT_OK

    return _with_database(args, work)


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return "cli"


def cmd_tokens_add(args: argparse.Namespace) -> int:
    from ari_controller.alerts.tokens import TokenError, check_name, create_token

    try:
        check_name(args.name)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def work(conn: Any) -> int:
        try:
            made = await create_token(
                conn, args.name, args.scope, dt.datetime.now(dt.UTC), timeout_s=DB_TIMEOUT_S
            )
        except TokenError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(made.secret)
        print(
            f"token '{made.name}' ({made.scope} scope) created. It is shown only now: keep it"
            " secret, send it as `Authorization: Bearer <token>`.",
            file=sys.stderr,
        )
        return EXIT_OK

    return _with_database(args, work)


def cmd_tokens_list(args: argparse.Namespace) -> int:
    from ari_controller.alerts.tokens import list_tokens

    async def work(conn: Any) -> int:
        tokens = await list_tokens(conn, timeout_s=DB_TIMEOUT_S)
        if args.json:
            _print_json([t.as_dict() for t in tokens])
        elif not tokens:
            print("no tokens")
        else:
            header = ("NAME", "SCOPE", "CREATED (UTC)", "LAST USED", "STATE")
            rows = [
                (
                    t.name,
                    t.scope,
                    _when(t.created_at),
                    _when(t.last_used_at),
                    "active" if t.active else f"revoked {_when(t.revoked_at)}",
                )
                for t in tokens
            ]
            print(_table(header, rows))
        return EXIT_OK

    return _with_database(args, work)


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    from ari_controller.alerts.tokens import revoke_token

    async def work(conn: Any) -> int:
        if not await revoke_token(conn, args.name, dt.datetime.now(dt.UTC), timeout_s=DB_TIMEOUT_S):
            print(f"error: no active token named '{args.name}'", file=sys.stderr)
            return EXIT_USAGE
        print(f"token '{args.name}' revoked")
        return EXIT_OK

    return _with_database(args, work)


def cmd_deliveries_list(args: argparse.Namespace) -> int:
    from ari_controller.alerts.delivery import disabled_destinations, list_deliveries

    async def work(conn: Any) -> int:
        try:
            found = await list_deliveries(
                conn, args.state, args.limit, destination=args.destination
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        disabled = await disabled_destinations(conn)
        if args.json:
            _print_json(
                {
                    "deliveries": [d.__dict__ for d in found],
                    "disabled_destinations": [
                        {"destination": d, "disabled_at": at, "reason": why}
                        for d, at, why in disabled
                    ],
                }
            )
            return EXIT_OK
        if not found:
            print("no deliveries")
        else:
            header = ("ID", "CREATED (UTC)", "EVENT", "TO", "USER", "STATE", "TRIES", "LAST ERROR")
            rows = [
                (
                    str(d.id),
                    _when(d.created_at),
                    d.event,
                    d.destination,
                    d.user_id or "-",
                    d.state,
                    str(d.attempts),
                    (d.last_error or "-")[:60],
                )
                for d in found
            ]
            print(_table(header, rows))
        for destination, at, why in disabled:
            print(f"destination '{destination}' disabled since {_when(at)}: {why}")
        return EXIT_OK

    return _with_database(args, work)


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    from ari_controller.alerts.delivery import retry_delivery

    delivery_id = _alert_id(args.id, "a delivery")

    async def work(conn: Any) -> int:
        if not await retry_delivery(conn, delivery_id, dt.datetime.now(dt.UTC)):
            print(f"error: no dead delivery {delivery_id}", file=sys.stderr)
            return EXIT_USAGE
        print(f"delivery {delivery_id} will be sent again (the daemon's next round)")
        return EXIT_OK

    return _with_database(args, work)


def cmd_deliveries_enable(args: argparse.Namespace) -> int:
    from ari_controller.alerts.delivery import enable_destination

    async def work(conn: Any) -> int:
        if not await enable_destination(conn, args.destination):
            print(f"destination '{args.destination}' was not disabled")
            return EXIT_OK
        print(f"destination '{args.destination}' enabled: its waiting deliveries go out now")
        return EXIT_OK

    return _with_database(args, work)


def cmd_notify_test(args: argparse.Namespace) -> int:
    """Send a person a test message through each of their notification rules of `--method`."""
    from ari_controller.alerts.delivery import DeliveryWorker
    from ari_controller.alerts.email import send_test_email

    config = _load(args.config)
    user = next((u for u in config.users if u.id == args.user), None)
    if user is None:
        print(f"error: no user '{args.user}' in {args.config}", file=sys.stderr)
        return EXIT_USAGE
    rules = [rule for rule in user.notify if rule.method == args.method]
    if not rules:
        print(
            f"error: {user.id} has no notification rule with method {args.method}", file=sys.stderr
        )
        return EXIT_USAGE
    now = dt.datetime.now(dt.UTC)

    async def send() -> int:
        async with DeliveryWorker(config.database.resolved_dsn(), config.alerts) as worker:
            failed = 0
            for rule in rules:
                message_id = str(uuid.uuid4())
                payload = {
                    "type": "test",
                    "timestamp": now.isoformat(),
                    "data": {
                        "alert": {"number_name": "a test notification", "status": "open"},
                        "user": {"id": user.id, "name": user.name, "mention": rule.mention},
                    },
                }
                if rule.method == "email":
                    attempt = await send_test_email(config, user.id, payload)
                    verdict = f"SMTP {attempt.status}" if attempt.ok else attempt.error
                    print(f"email to {user.email or '(no address)'}: {verdict}")
                    failed += not attempt.ok
                    continue
                attempt = await worker.send_once(rule.destination, payload, message_id, now)
                verdict = f"HTTP {attempt.status}" if attempt.ok else attempt.error
                print(f"{rule.method} to {rule.destination}: {verdict} (webhook-id {message_id})")
                failed += not attempt.ok
            return EXIT_OK if not failed else EXIT_FAILED

    return asyncio.run(send())


def add_alert_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--config", help="the configuration (its database DSN)")
    database.add_argument("--dsn", help="the database, instead of the configuration's")

    alerts = sub.add_parser("alerts", help="list, show and act on alerts")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    listing = alerts_sub.add_parser("list", parents=[database], help="the newest alerts")
    listing.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    listing.add_argument("--number", help="only this number's alerts (its DID)")
    listing.add_argument("--limit", type=_limit, default=20, help="at most this many (1-1000)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_alerts_list)
    show = alerts_sub.add_parser(
        "show", parents=[database], help="an alert with its calls, voicemail, log, deliveries"
    )
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_alerts_show)
    for name, what in (
        ("ack", "acknowledge an alert (its escalation stops)"),
        ("resolve", "resolve an alert"),
        ("escalate", "escalate an open alert to its policy again, now"),
    ):
        act = alerts_sub.add_parser(name, parents=[database], help=what)
        act.add_argument("id")
        act.add_argument("--by", help="who acts (default: your user name)")
        act.set_defaults(func=cmd_alerts_act)

    tokens = sub.add_parser("tokens", help="bearer tokens of the HTTP API")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    add = tokens_sub.add_parser(
        "add", parents=[database], help="create a token (printed once, stored hashed)"
    )
    add.add_argument("name")
    add.add_argument("--scope", choices=["read", "write"], required=True)
    add.set_defaults(func=cmd_tokens_add)
    listing = tokens_sub.add_parser("list", parents=[database], help="every token (no secrets)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_tokens_list)
    revoke = tokens_sub.add_parser("revoke", parents=[database], help="revoke a token at once")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_tokens_revoke)

    deliveries = sub.add_parser("deliveries", help="messages to chat and webhook destinations")
    deliveries_sub = deliveries.add_subparsers(dest="deliveries_command", required=True)
    listing = deliveries_sub.add_parser("list", parents=[database], help="the newest deliveries")
    listing.add_argument("--state", help="pending, sent, dead or cancelled (dead: dead letters)")
    listing.add_argument("--destination", help="only those to this destination")
    listing.add_argument("--limit", type=_limit, default=50, help="at most this many (1-1000)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_deliveries_list)
    retry = deliveries_sub.add_parser("retry", parents=[database], help="send a dead one again")
    retry.add_argument("id")
    retry.set_defaults(func=cmd_deliveries_retry)
    enable = deliveries_sub.add_parser(
        "enable", parents=[database], help="a destination disabled by a 410 receives again"
    )
    enable.add_argument("destination")
    enable.set_defaults(func=cmd_deliveries_enable)

    test = sub.add_parser("notify-test", help="send a person a test notification now")
    test.add_argument("--config", required=True)
    test.add_argument("--user", required=True)
    test.add_argument("--method", choices=["chat", "webhook", "email"], required=True)
    test.set_defaults(func=cmd_notify_test)


def _limit(text: str) -> int:
    value = positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"{value} is more than 1000")
    return value
