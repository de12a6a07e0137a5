"""`ari-controller console-users add|passwd|remove|list|key`: the web console's users, on the
database named by --dsn or the configuration, and a new key for its session cookies.

Passwords are never arguments (they would sit in the shell's history and the process list):
they are asked twice on a terminal, or read as one line from standard input with
--password-stdin, for scripts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ari_controller.cli_common import DB_TIMEOUT_S, EXIT_OK, EXIT_USAGE, on_database
from ari_controller.cli_common import load_or_exit as _load
from ari_controller.config import Config

if TYPE_CHECKING:
    from ari_controller.console.accounts import Account

# accounts.ROLES, spelled out: importing accounts hashes a password (argon2, 64 MiB) at once,
# which every other command would pay for (a test keeps the two the same).
ROLES = ("viewer", "responder", "admin")


class _Refused(Exception):
    """What the person asked cannot be done: the message says why (exit 2)."""


def _config(args: argparse.Namespace) -> Config | None:
    return _load(args.config) if args.config else None


def _dsn(args: argparse.Namespace, config: Config | None) -> str:
    if args.dsn:
        return str(args.dsn)
    if config is not None:
        return config.database.resolved_dsn()
    print(f"error: console-users {args.users_command} needs --config or --dsn", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _with_database(dsn: str, work: Callable[[Any], Awaitable[int]]) -> int:
    """Run `work` on one connection; a database that cannot be reached is one line, exit 1."""
    return on_database(dsn, work, what="console users", usage_errors=(_Refused,))


def read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or typed twice on the terminal."""
    from ari_controller.console import accounts

    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise _Refused("--password-stdin: standard input is empty")
        password = line.rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            # getpass would fall back to echoing standard input: refuse rather than guess.
            raise _Refused("no terminal to ask the password on: pipe it in with --password-stdin")
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise _Refused("the two passwords differ; nothing changed")
    try:
        return accounts.check_password(password)
    except accounts.AccountError as exc:
        raise _Refused(str(exc)) from None


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def cmd_add(args: argparse.Namespace) -> int:
    from ari_controller.console import accounts

    config = _config(args)
    dsn = _dsn(args, config)
    try:
        accounts.check_name(args.name)
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.person is not None:
        if config is None:
            print(
                "error: --person needs --config: the person must be one of its users",
                file=sys.stderr,
            )
            return EXIT_USAGE
        known = [user.id for user in config.users]
        if args.person not in known:
            print(
                f"error: --person '{args.person}' is not a user of {args.config}"
                f" (users: {', '.join(known) or 'none'})",
                file=sys.stderr,
            )
            return EXIT_USAGE

    async def work(conn: Any) -> int:
        # Asked before the password, so nobody types one for a name that is taken.
        if await accounts.find(conn, args.name, timeout_s=DB_TIMEOUT_S) is not None:
            raise _Refused(f"there is already a console user '{args.name}'")
        password = read_password(args.password_stdin)
        try:
            made = await accounts.add(
                conn,
                args.name,
                password,
                args.role,
                args.person,
                dt.datetime.now(dt.UTC),
                timeout_s=DB_TIMEOUT_S,
            )
        except accounts.AccountError as exc:
            raise _Refused(str(exc)) from None
        person = f", person {made.person}" if made.person else ""
        print(f"console user '{made.name}' added ({made.role}{person})")
        return EXIT_OK

    return _with_database(dsn, work)


def cmd_passwd(args: argparse.Namespace) -> int:
    from ari_controller.console import accounts

    dsn = _dsn(args, _config(args))

    async def work(conn: Any) -> int:
        if await accounts.find(conn, args.name, timeout_s=DB_TIMEOUT_S) is None:
            raise _Refused(f"no console user '{args.name}'")
        password = read_password(args.password_stdin)
        now = dt.datetime.now(dt.UTC)
        if not await accounts.set_password(conn, args.name, password, now, timeout_s=DB_TIMEOUT_S):
            raise _Refused(f"no console user '{args.name}' (removed meanwhile)")
        print(f"password of '{args.name}' changed (any lock-out is lifted)")
        return EXIT_OK

    return _with_database(dsn, work)


def cmd_remove(args: argparse.Namespace) -> int:
    from ari_controller.console import accounts

    dsn = _dsn(args, _config(args))

    async def work(conn: Any) -> int:
        if not await accounts.remove(conn, args.name, timeout_s=DB_TIMEOUT_S):
            raise _Refused(f"no console user '{args.name}'")
        print(f"console user '{args.name}' removed")
        left = await accounts.list_accounts(conn, timeout_s=DB_TIMEOUT_S)
        if not any(account.role == "admin" for account in left):
            # Allowed here (this command is how one gets back in), but worth saying.
            print(
                "note: no console admin is left: add one with `console-users add NAME"
                " --role admin`",
                file=sys.stderr,
            )
        return EXIT_OK

    return _with_database(dsn, work)


def cmd_list(args: argparse.Namespace) -> int:
    from ari_controller.console import accounts

    dsn = _dsn(args, _config(args))

    async def work(conn: Any) -> int:
        found = await accounts.list_accounts(conn, timeout_s=DB_TIMEOUT_S)
        now = dt.datetime.now(dt.UTC)
        if args.json:
            print(json.dumps([_as_dict(a, now) for a in found], indent=2))
        elif not found:
            print("no console users")
        else:
            header = ("NAME", "ROLE", "PERSON", "LAST SIGN-IN (UTC)", "LOCKED UNTIL (UTC)")
            rows = [
                (
                    a.name,
                    a.role,
                    a.person or "-",
                    _when(a.last_sign_in_at),
                    _when(_locked_until(a, now)),
                )
                for a in found
            ]
            print(_table(header, rows))
        return EXIT_OK

    return _with_database(dsn, work)


def _locked_until(account: Account, now: dt.datetime) -> dt.datetime | None:
    """A lock-out that is over is no lock-out (the row keeps it until the next sign-in)."""
    until = account.locked_until
    return until if until is not None and until > now else None


def _as_dict(account: Account, now: dt.datetime) -> dict[str, Any]:
    locked = _locked_until(account, now)
    return {
        "name": account.name,
        "role": account.role,
        "person": account.person,
        "created_at": account.created_at.isoformat(),
        "last_sign_in_at": account.last_sign_in_at.isoformat() if account.last_sign_in_at else None,
        "locked_until": locked.isoformat() if locked else None,
    }


def cmd_key(_args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode("ascii"))
    print(
        "a new key for the console's session cookies: put it in the environment variable named"
        " by console.session_key_env (CALLROUTING_CONSOLE_KEY unless changed) or in"
        " console.session_key, the same on every daemon; keep it secret.",
        file=sys.stderr,
    )
    return EXIT_OK


class _NoPasswordArgument(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        parser.error(
            "a password is never an argument (it would stay in the shell's history and the"
            " process list): type it when asked, or pipe it in with --password-stdin"
        )


def add_console_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--config", help="the configuration (its database DSN and users)")
    database.add_argument("--dsn", help="the database, instead of the configuration's")
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password as one line of standard input (else it is asked twice)",
    )
    # Else argparse would take `--password x` for an abbreviated --password-stdin.
    password.add_argument("--password", action=_NoPasswordArgument, help=argparse.SUPPRESS)

    users = sub.add_parser("console-users", help="who may sign in to the web console")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", parents=[database, password], help="add a console user")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--person", help="who they are: a users[].id of the configuration")
    add.set_defaults(func=cmd_add)
    passwd = users_sub.add_parser(
        "passwd", parents=[database, password], help="set a new password (lifts a lock-out)"
    )
    passwd.add_argument("name")
    passwd.set_defaults(func=cmd_passwd)
    remove = users_sub.add_parser("remove", parents=[database], help="remove a console user")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_remove)
    listing = users_sub.add_parser("list", parents=[database], help="every console user")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    key = users_sub.add_parser("key", help="print a new key for the session cookies")
    key.set_defaults(func=cmd_key)
