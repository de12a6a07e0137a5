"""`ari-controller`: run the daemon, check or explain a configuration, preview a greeting,
migrate the database, list and act on alerts, manage API tokens, or serve the Asterisk
simulator."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import random
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ari_controller.config import Config, ConfigError, load_config
from ari_controller.logging import configure_logging
from ari_controller.simulator.cli import positive_int
from ari_controller.simulator.sessions import DEFAULT_SESSION_LIMIT

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _load(path: str) -> Config:
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from ari_controller.prompts.catalogue import check_catalogue

    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    problems = [
        (f"numbers[{n}].language", message)
        for n, number in enumerate(config.numbers)
        for message in check_catalogue([number.language])
    ]
    if problems:
        print(str(ConfigError(args.config, problems)), file=sys.stderr)
        return EXIT_USAGE
    from ari_controller.speech.availability import speech_notes

    for number in config.numbers:
        for note in speech_notes(number):
            print(f"note: {number.name} ({number.did}): {note}")
    users = len(config.users)
    print(
        f"{args.config}: valid ({len(config.numbers)} numbers, {users} users, "
        f"{len(config.schedules)} schedules, {len(config.escalation_policies)} policies)"
    )
    return EXIT_OK


def _moment(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        print(f"--at: '{text}' is not an ISO-8601 date-time", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def cmd_explain(args: argparse.Namespace) -> int:
    from ari_controller.explain import UnknownNumber, explain, render_text

    config = _load(args.config)
    try:
        report = explain(
            config, args.number, _moment(args.at), args.choice, random.Random(args.seed)
        )
    except UnknownNumber as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    from ari_controller.announcements import greeting_and_menu
    from ari_controller.daemon.setup import make_library
    from ari_controller.numbers import numbered_routes
    from ari_controller.prompts.preview import preview

    config = _load(args.config)
    number = config.number(args.number)
    if number is None:
        print(f"error: no number with did '{args.number}'", file=sys.stderr)
        return EXIT_USAGE
    if args.language:
        number = number.model_copy(update={"language": args.language})
    sentences = greeting_and_menu(number, numbered_routes(number.routes))
    print("\n".join(sentences))
    library = make_library(config, Path(args.config).parent)
    seconds = asyncio.run(preview(sentences, number.language, Path(args.out), library.engine))
    print(f"wrote {args.out} ({seconds:.1f} s)")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from ari_controller.store.migrate import migrate

    dsn = args.dsn or _load(args.config).database.resolved_dsn()
    applied = asyncio.run(migrate(dsn))
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon: exit 0 after a clean stop (SIGTERM/SIGINT), 1 when it cannot start."""
    import structlog

    from ari_controller.daemon.app import Daemon

    path = Path(args.config)
    config = _load(args.config)
    daemon = Daemon(config, path, drain_s=args.drain_seconds)
    try:
        asyncio.run(daemon.run_until_signalled())
    except Exception as exc:
        # systemd's Restart=on-failure retries; the reason is in the journal.
        structlog.get_logger("ari_controller.cli").exception("daemon_failed", error=str(exc))
        return EXIT_FAILED
    return EXIT_OK


def cmd_simulator(args: argparse.Namespace) -> int:
    from ari_controller.simulator import serve

    try:
        asyncio.run(
            serve(
                host=args.host,
                port=args.port,
                user=args.user,
                password=args.password,
                app=args.app,
                time_scale=args.time_scale,
                sounds_dirs=[Path(d) for d in args.sounds_dir],
                scripts_files=[Path(f) for f in args.scripts],
                session_limit=args.session_limit,
            )
        )
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# ---- alerts and API tokens (the database named by --dsn or the configuration) ----------------

DB_TIMEOUT_S = 10.0


def _dsn(args: argparse.Namespace) -> str:
    if args.dsn:
        return str(args.dsn)
    if args.config:
        return _load(args.config).database.resolved_dsn()
    words = (args.command, getattr(args, "alerts_command", ""), getattr(args, "tokens_command", ""))
    print(f"error: {' '.join(w for w in words if w)} needs --config or --dsn", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _with_database(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    """Run `work` on one connection to the database; a database error is a clear message."""
    import asyncpg

    dsn = _dsn(args)

    async def run() -> int:
        conn = await asyncpg.connect(dsn, timeout=DB_TIMEOUT_S)
        try:
            return await work(conn)
        finally:
            await conn.close(timeout=DB_TIMEOUT_S)

    try:
        return asyncio.run(run())
    except asyncpg.UndefinedTableError:
        print(
            "error: the database has no alerts yet: run `ari-controller migrate`", file=sys.stderr
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"error: database: {str(exc) or type(exc).__name__}", file=sys.stderr)
    return EXIT_FAILED


def _alert_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        print(f"error: '{text}' is not an alert id (a UUID)", file=sys.stderr)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ari-controller", description=__doc__)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="handle calls (the daemon)")
    run.add_argument("--config", required=True)
    run.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="after SIGTERM, how long calls in progress may finish before being handed back",
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("config")
    check.set_defaults(func=cmd_check_config)

    exp = sub.add_parser("explain", help="what a caller would get, and who would be called")
    exp.add_argument("--config", required=True)
    exp.add_argument("--number", required=True, help="the DID")
    exp.add_argument("--at", help="ISO-8601 moment (default: now)")
    exp.add_argument("--choice", help="the menu digit the caller presses")
    exp.add_argument("--seed", type=int, default=0, help="random source for picks")
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(func=cmd_explain)

    prev = sub.add_parser("preview", help="write a number's greeting as one audio file")
    prev.add_argument("--config", required=True)
    prev.add_argument("--number", required=True)
    prev.add_argument("--language")
    prev.add_argument("--out", required=True)
    prev.set_defaults(func=cmd_preview)

    mig = sub.add_parser("migrate", help="create or update the database schema (idempotent)")
    mig.add_argument("--config")
    mig.add_argument("--dsn")
    mig.set_defaults(func=cmd_migrate)

    sim = sub.add_parser("simulator", help="serve the ARI-speaking Asterisk simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8088)
    sim.add_argument("--user")
    sim.add_argument("--password")
    sim.add_argument("--app")
    sim.add_argument("--time-scale", type=float, default=1.0)
    sim.add_argument("--sounds-dir", action="append", default=[])
    sim.add_argument("--scripts", action="append", default=[])
    sim.add_argument(
        "--session-limit",
        type=positive_int,
        default=DEFAULT_SESSION_LIMIT,
        help="HTTP connections open at once, as Asterisk's http.conf sessionlimit "
        f"(default {DEFAULT_SESSION_LIMIT}); one more is closed without an answer",
    )
    sim.set_defaults(func=cmd_simulator)
    _add_alert_commands(sub)
    return parser


def _add_alert_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _limit(text: str) -> int:
    value = positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"{value} is more than 1000")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "migrate" and not (args.config or args.dsn):
        parser.error("migrate needs --config or --dsn")
    configure_logging(args.log_level, args.log_format)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
