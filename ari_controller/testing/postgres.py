"""A throwaway PostgreSQL server for tests and the demo, started from the installed binaries
(the system's, or those the pgserver wheel embeds where the system has none).

The server lives in a temporary directory, listens on 127.0.0.1 on a free port (and a socket
in that directory), trusts every local connection and skips fsync: fast to start (about a
second) and gone without a trace when stopped. initdb refuses to run as root, so as root the
server runs as an unprivileged OS user (default "postgres") that owns the directory.
"""

from __future__ import annotations

import asyncio
import atexit
import glob
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

_DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
POSTGRES_CHOICE_ENV = "CALLROUTING_POSTGRES"
# Who runs the server as root where no "postgres" user exists: initdb refuses root.
_FALLBACK_OS_USER = "nobody"
_REQUIRED = ("initdb", "postgres")


class PostgresNotFoundError(RuntimeError):
    """No PostgreSQL server binaries (initdb, postgres) on this machine."""


class PostgresStartError(RuntimeError):
    """initdb or the server failed; the message carries the end of its log."""


def _version_key(bindir: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6)
    name = Path(bindir).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in _REQUIRED)


def embedded_postgres_bindir() -> Path | None:
    """The server binaries of the pgserver wheel (PostgreSQL 16), when it is installed.

    Found without importing pgserver, whose import creates directories of its own."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bindir = Path(location) / "pginstall" / "bin"
        if _has_server(bindir):
            return bindir
    return None


def find_postgres_bindir() -> Path:
    """Where initdb and postgres are: Debian layout (newest first), pg_config, PATH, and the
    embedded server of the pgserver wheel where none of those has one.

    CALLROUTING_POSTGRES=embedded takes the embedded server even where a system one exists;
    CALLROUTING_POSTGRES=system never takes it."""
    choice = os.environ.get(POSTGRES_CHOICE_ENV, "auto")
    if choice not in ("auto", "system", "embedded"):
        raise PostgresNotFoundError(
            f"{POSTGRES_CHOICE_ENV}={choice!r}: expected auto, system or embedded"
        )
    embedded = embedded_postgres_bindir() if choice != "system" else None
    if choice == "embedded":
        if embedded is None:
            raise PostgresNotFoundError(
                f"{POSTGRES_CHOICE_ENV}=embedded, but the pgserver wheel is not installed "
                "(pip install pgserver; `make` installs it with the dev extra)"
            )
        return embedded
    candidates = [Path(d) for d in sorted(glob.glob(_DEBIAN_BINDIRS), key=_version_key)[::-1]]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=5, check=True
            )
            candidates.append(Path(out.stdout.strip()))
        except (subprocess.SubprocessError, OSError):
            pass
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if _has_server(bindir):
            return bindir
    if embedded is not None:
        return embedded
    raise PostgresNotFoundError(
        "no PostgreSQL server binaries (initdb, postgres) found in "
        f"{_DEBIAN_BINDIRS}, `pg_config --bindir`, PATH or the pgserver wheel; install the "
        "PostgreSQL server (Debian: apt-get install postgresql) or pgserver (pip), or set "
        "DATABASE_URL to an existing database"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class _RunAs:
    uid: int
    gid: int


class ThrowawayPostgres:
    """Start with `start()` / `async with`, use `dsn`, stop with `stop()`.

    `stop_server()` / `start_server()` take the server down and bring it back on the same port
    with the same data, to test what happens while the database is away.
    """

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        os_user: str = "postgres",
        startup_timeout: float = 30.0,
    ) -> None:
        self._bindir = bindir
        self._os_user = os_user
        self._startup_timeout = startup_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self._root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: _RunAs | None = None

    @property
    def dsn(self) -> str:
        if self._root is None:
            raise RuntimeError("ThrowawayPostgres is not started")
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def _data(self) -> Path:
        assert self._root is not None
        return self._root / "data"

    @property
    def _sockets(self) -> Path:
        assert self._root is not None
        return self._root / "sockets"

    @property
    def _log(self) -> Path:
        assert self._root is not None
        return self._root / "postgres.log"

    def start(self) -> ThrowawayPostgres:
        if self._root is not None:
            raise RuntimeError("ThrowawayPostgres is already started")
        bindir = self._bindir or find_postgres_bindir()
        if not _has_server(bindir):
            raise PostgresNotFoundError(f"no initdb and postgres executables in {bindir}")
        self._bindir = bindir
        self._run_as = self._unprivileged_user() if os.geteuid() == 0 else None
        self._root = Path(tempfile.mkdtemp(prefix="throwaway-postgres-"))
        atexit.register(self.stop)
        try:
            self._sockets.mkdir()
            self._log.touch()
            if self._run_as is not None:
                for path in (self._root, self._sockets, self._log):
                    os.chown(path, self._run_as.uid, self._run_as.gid)
            self._run(
                [
                    str(bindir / "initdb"),
                    "--pgdata",
                    str(self._data),
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ]
            )
            self.start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def start_server(self) -> None:
        """Run the server (again) on its port; returns once it accepts connections."""
        if self._root is None or self._bindir is None:
            raise RuntimeError("ThrowawayPostgres is not started")
        if self.running:
            return
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = free_port(self.host)
            if self._spawn_and_wait():
                return
        raise PostgresStartError(f"postgres did not start:\n{self._log_tail()}")

    def stop_server(self, timeout: float = 10.0) -> None:
        """Fast shutdown of the server this object started (by pid); keeps the data."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT is Postgres' "fast" shutdown: roll back sessions, checkpoint, exit.
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                process.send_signal(sig)
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return

    def stop(self) -> None:
        """Stop the server and remove its directory. Safe to call more than once."""
        atexit.unregister(self.stop)
        self.stop_server()
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self if self._root is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ThrowawayPostgres:
        return self if self._root is not None else await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # --- internals -------------------------------------------------------------------------

    def _unprivileged_user(self) -> _RunAs:
        for name in (self._os_user, _FALLBACK_OS_USER):
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return _RunAs(entry.pw_uid, entry.pw_gid)
        raise PostgresStartError(
            f"running as root, and initdb refuses root: create the unprivileged user "
            f"{self._os_user!r} (Debian's postgresql package does) or run as another user"
        )

    def _popen_kwargs(self) -> dict[str, Any]:
        assert self._root is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs: dict[str, Any] = {"cwd": self._root, "env": env}
        if self._run_as is not None:
            # Like `runuser -u postgres --`, but the pid we hold is the server's own.
            kwargs.update(user=self._run_as.uid, group=self._run_as.gid, extra_groups=[])
        return kwargs

    def _run(self, argv: list[str]) -> None:
        with self._log.open("ab") as log:
            result = subprocess.run(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=self._startup_timeout,
                check=False,
                **self._popen_kwargs(),
            )
        if result.returncode != 0:
            raise PostgresStartError(
                f"{Path(argv[0]).name} failed ({result.returncode}):\n{self._log_tail()}"
            )

    def _spawn_and_wait(self) -> bool:
        assert self._bindir is not None
        argv = [
            str(self._bindir / "postgres"),
            "-D",
            str(self._data),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"unix_socket_directories={self._sockets}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, **self._popen_kwargs()
            )
        deadline = time.monotonic() + self._startup_timeout
        pidfile = self._data / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                self._process = None
                return False
            try:
                lines = pidfile.read_text().splitlines()
            except OSError:
                lines = []
            # Line 8 of postmaster.pid is the server's status; "ready" = accepting connections.
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return True
            time.sleep(0.02)
        self.stop_server()
        raise PostgresStartError(
            f"postgres not ready after {self._startup_timeout}s:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
