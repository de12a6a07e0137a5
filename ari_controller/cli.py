"""`ari-controller`: run the daemon, check or explain a configuration, preview a greeting,
migrate the database, list and act on alerts, manage API tokens and console users, hash a
caller PIN, serve the Asterisk simulator, or run the demo."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from ari_controller.cli_alerts import add_alert_commands
from ari_controller.cli_common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ari_controller.cli_common import load_or_exit as _load
from ari_controller.cli_console import add_console_commands
from ari_controller.cli_failover import add_failover_commands
from ari_controller.cli_screening import add_screening_commands
from ari_controller.config import ConfigError, alert_notes, environment_problems, load_config
from ari_controller.logging import configure_logging
from ari_controller.simulator.cli import positive_int
from ari_controller.simulator.sessions import DEFAULT_SESSION_LIMIT


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
    # Secrets live in the environment: the daemon's must hold what the configuration names.
    problems += environment_problems(config)
    if problems:
        print(str(ConfigError(args.config, problems)), file=sys.stderr)
        return EXIT_USAGE
    from ari_controller.speech.availability import speech_notes

    for number in config.numbers:
        for note in speech_notes(number):
            print(f"note: {number.name} ({number.did}): {note}")
    for note in alert_notes(config):
        print(f"note: {note}")
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
            config,
            args.number,
            _moment(args.at),
            args.choice,
            random.Random(args.seed),
            caller=args.caller_id,
            caller_calls=args.caller_calls,
            flood=args.flood,
            pin=args.pin,
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
    if daemon.lost_lease is not None and not daemon.handed_over:
        # Another daemon drives the app now; the supervisor starts this one again (standby).
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


def cmd_demo(args: argparse.Namespace) -> int:
    from ari_controller import demo

    return demo.main(["--serve"] if args.serve else [])


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
    exp.add_argument(
        "--caller-id",
        help="screen this caller ID first, as the trunk sends it (e.g. 030123456, anonymous)",
    )
    exp.add_argument(
        "--caller-calls",
        type=positive_int,
        default=1,
        help="assume this many calls from the caller in the rate window, this one included"
        " (default 1: a first call)",
    )
    exp.add_argument("--flood", action="store_true", help="assume the number is flooded")
    exp.add_argument("--pin", help="the PIN the caller enters when asked (default: none)")
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
    add_alert_commands(sub)
    add_console_commands(sub)
    add_failover_commands(sub)
    add_screening_commands(sub)

    demo = sub.add_parser(
        "demo", help="every path of a call on this machine (simulator, throwaway Postgres)"
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="afterwards keep the daemon and its web console running until Ctrl-C",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


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
