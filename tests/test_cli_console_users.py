"""`ari-controller console-users add|passwd|remove|list|key` against a real Postgres: what they
print, their exit codes, and that what they store is what the console's sign-in checks."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from ari_controller import cli_console
from ari_controller.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from ari_controller.console import accounts
from ari_controller.testing.postgres import free_port
from tests.test_cli_alerts import with_conn

PASSWORD = "a long enough secret"


@pytest.fixture
def config(database: str, tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": {"dsn": database},
                "escalation_policies": [{"id": "p", "name": "P", "rules": [{"users": ["ana"]}]}],
                "users": [{"id": "ana", "name": "Ana", "contacts": ["PJSIP/ana"]}],
                "numbers": [{"did": "1", "name": "N", "routes": [{"label": "x", "policy": "p"}]}],
            }
        )
    )
    return str(path)


class Terminal:
    """Standard input: piped lines, or a terminal on which getpass reads typed answers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.typed: list[str] = []
        self.prompts: list[str] = []
        monkeypatch.setattr("getpass.getpass", self._getpass)

    def _getpass(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        return self.typed.pop(0)

    def pipe(self, text: str) -> None:
        self._monkeypatch.setattr("sys.stdin", io.StringIO(text))

    def type(self, *answers: str) -> None:
        stdin = io.StringIO("")
        stdin.isatty = lambda: True  # type: ignore[method-assign]
        self._monkeypatch.setattr("sys.stdin", stdin)
        self.typed = list(answers)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    yield Terminal(monkeypatch)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["--log-format", "console", *argv])
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def sign_in(dsn: str, name: str, password: str, *, now: dt.datetime | None = None) -> Any:
    async def work(conn: Any) -> Any:
        return await accounts.sign_in(
            conn,
            name,
            password,
            now or dt.datetime.now(dt.UTC),
            lockout_failures=3,
            lockout=dt.timedelta(minutes=15),
        )

    return with_conn(dsn, work)


def test_add_then_sign_in_and_list(
    database: str, config: str, terminal: Terminal, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal.pipe(PASSWORD + "\n")
    code, out, err = cli(
        capsys, "console-users", "add", "ana", "--role", "admin", "--person", "ana",
        "--config", config, "--password-stdin",
    )  # fmt: skip
    assert (code, out, err) == (EXIT_OK, "console user 'ana' added (admin, person ana)\n", "")
    signed = sign_in(database, "ana", PASSWORD)
    assert signed.account is not None and signed.account.role == "admin"
    assert signed.account.person == "ana"

    # On a terminal: asked twice, never echoed, no --person.
    terminal.type("another good secret", "another good secret")
    code, out, _ = cli(capsys, "console-users", "add", "bo", "--role", "viewer", "--dsn", database)
    assert (code, out) == (EXIT_OK, "console user 'bo' added (viewer)\n")
    assert terminal.prompts == ["New password: ", "Repeat it: "]
    assert sign_in(database, "bo", "another good secret").account is not None

    code, out, _ = cli(capsys, "console-users", "list", "--dsn", database)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME", "ROLE", "PERSON", "LAST", "SIGN-IN", "(UTC)", "LOCKED", "UNTIL", "(UTC)",
    ]  # fmt: skip
    assert lines[1].split()[:3] == ["ana", "admin", "ana"] and lines[1].endswith("-")
    assert lines[2].split() == ["bo", "viewer", "-", *lines[2].split()[3:5], "-"]
    code, out, _ = cli(capsys, "console-users", "list", "--config", config, "--json")
    listed = json.loads(out)
    assert [(u["name"], u["role"], u["person"]) for u in listed] == [
        ("ana", "admin", "ana"),
        ("bo", "viewer", None),
    ]
    assert listed[0]["last_sign_in_at"] is not None and listed[0]["locked_until"] is None


def test_what_add_refuses(
    database: str, config: str, terminal: Terminal, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ("console-users", "add", "--config", config, "--password-stdin")
    terminal.pipe(PASSWORD + "\n")
    code, _, err = cli(capsys, *add, "zed", "--role", "viewer", "--person", "zed")
    assert code == EXIT_USAGE
    assert err == f"error: --person 'zed' is not a user of {config} (users: ana)\n"
    code, _, err = cli(
        capsys, "console-users", "add", "zed", "--role", "viewer", "--person", "ana",
        "--dsn", database,
    )  # fmt: skip
    assert code == EXIT_USAGE and "--person needs --config" in err

    terminal.pipe("too short\n")
    code, _, err = cli(capsys, *add, "zed", "--role", "viewer")
    assert (code, err) == (EXIT_USAGE, "error: a password has 10 to 1024 characters\n")

    terminal.type("first try is long", "second try is long")
    code, _, err = cli(capsys, "console-users", "add", "zed", "--role", "viewer", "--dsn", database)
    assert (code, err) == (EXIT_USAGE, "error: the two passwords differ; nothing changed\n")

    # Not a terminal and no --password-stdin: refused, not read from the pipe in the clear.
    terminal.pipe(PASSWORD + "\n")
    code, _, err = cli(capsys, "console-users", "add", "zed", "--role", "viewer", "--dsn", database)
    assert code == EXIT_USAGE and "--password-stdin" in err

    code, _, err = cli(capsys, *add, "no spaces", "--role", "viewer")
    assert code == EXIT_USAGE and "is not a console user name" in err
    code, _, err = cli(capsys, *add, "zed", "--role", "boss")
    assert code == EXIT_USAGE and "invalid choice: 'boss'" in err

    terminal.pipe(PASSWORD + "\n")
    assert cli(capsys, *add, "zed", "--role", "viewer")[0] == EXIT_OK
    terminal.pipe("something else entirely\n")
    code, _, err = cli(capsys, *add, "zed", "--role", "admin")
    assert (code, err) == (EXIT_USAGE, "error: there is already a console user 'zed'\n")
    # Nothing of the refused attempts was stored, and the first zed keeps its password.
    assert [a.name for a in with_conn(database, accounts.list_accounts)] == ["zed"]
    assert sign_in(database, "zed", PASSWORD).account is not None


def test_passwd_changes_the_password_and_lifts_a_lock_out(
    database: str, terminal: Terminal, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal.pipe(PASSWORD + "\n")
    add = ("console-users", "add", "cy", "--role", "responder", "--dsn", database)
    assert cli(capsys, *add, "--password-stdin")[0] == EXIT_OK
    for _ in range(3):
        assert sign_in(database, "cy", "wrong password!").account is None
    locked = sign_in(database, "cy", PASSWORD)
    assert locked.account is None and locked.locked_until is not None
    code, out, _ = cli(capsys, "console-users", "list", "--dsn", database)
    assert out.splitlines()[1].split()[-2] == locked.locked_until.strftime("%Y-%m-%d")

    terminal.type("the new password", "the new password")
    code, out, _ = cli(capsys, "console-users", "passwd", "cy", "--dsn", database)
    assert (code, out) == (EXIT_OK, "password of 'cy' changed (any lock-out is lifted)\n")
    assert sign_in(database, "cy", PASSWORD).account is None
    assert sign_in(database, "cy", "the new password").account is not None

    terminal.pipe("whatever it is long\n")
    code, _, err = cli(capsys, "console-users", "passwd", "nobody", "--dsn", database)
    assert (code, err) == (EXIT_USAGE, "error: no console user 'nobody'\n")


def test_remove(database: str, terminal: Terminal, capsys: pytest.CaptureFixture[str]) -> None:
    for name, role in (("di", "admin"), ("ed", "viewer")):
        terminal.pipe(PASSWORD + "\n")
        add = ("console-users", "add", name, "--role", role, "--password-stdin")
        assert cli(capsys, *add, "--dsn", database)[0] == EXIT_OK
    code, out, err = cli(capsys, "console-users", "remove", "ed", "--dsn", database)
    assert (code, out, err) == (EXIT_OK, "console user 'ed' removed\n", "")
    assert sign_in(database, "ed", PASSWORD).account is None
    code, _, err = cli(capsys, "console-users", "remove", "ed", "--dsn", database)
    assert (code, err) == (EXIT_USAGE, "error: no console user 'ed'\n")
    # The last admin may go from the command line (it is how one gets back in), with a note.
    code, _, err = cli(capsys, "console-users", "remove", "di", "--dsn", database)
    assert code == EXIT_OK and "no console admin is left" in err
    code, out, _ = cli(capsys, "console-users", "list", "--dsn", database)
    assert (code, out) == (EXIT_OK, "no console users\n")


def test_errors_of_the_database_and_the_arguments(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    code, out, err = cli(capsys, "console-users", "list", "--dsn", dsn)
    assert (code, out) == (EXIT_FAILED, "")
    assert err.startswith("error: database: ") and err.count("\n") == 1
    code, _, err = cli(capsys, "console-users", "list")
    assert (code, err) == (EXIT_USAGE, "error: console-users list needs --config or --dsn\n")
    code, _, err = cli(capsys, "console-users", "passwd", "x", "--password", "secret")
    assert code == EXIT_USAGE and "a password is never an argument" in err


def test_key_prints_a_fernet_key_without_a_database(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "console-users", "key")
    assert code == EXIT_OK
    key = out.strip()
    token = Fernet(key.encode()).encrypt(b"x")
    assert Fernet(key.encode()).decrypt(token) == b"x"
    assert "CALLROUTING_CONSOLE_KEY" in err
    assert cli(capsys, "console-users", "key")[1].strip() != key


def test_the_roles_offered_are_the_accounts_roles() -> None:
    assert cli_console.ROLES == accounts.ROLES
