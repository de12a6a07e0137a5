"""The records waiting for the database, on disk, so they survive an outage and a restart.

`<spool_dir>/pending.jsonl` holds records not yet written (one `to_json` line each),
read back by the next writer that starts on the directory; `<spool_dir>/rejected.jsonl` holds
what the database refused and spool lines that could not be read, for a person to look at.
One writer per directory: `open()` takes an exclusive lock (`writer.lock`) held until `release()`.

Every method here does blocking disk I/O: the writer calls them in a worker thread. Knowing
which queued records are already in the file is the writer's business, not the spool's.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import enum
import fcntl
import json
import os
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Union
from uuid import UUID

from ari_controller.calls.records import RECORD_TYPES, Record

PENDING_FILE = "pending.jsonl"
REJECTED_FILE = "rejected.jsonl"
_LOCK_FILE = "writer.lock"


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _decode(value: object, annotation: object) -> object:
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _decode(value, kinds[0]) if len(kinds) == 1 else value
    if annotation is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    if annotation is UUID and isinstance(value, str):
        return UUID(value)
    if annotation is bytes and isinstance(value, str):
        return base64.b64decode(value.encode("ascii"), validate=True)
    if annotation is float and isinstance(value, int):
        return float(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)  # ValueError for a value that is not a member
    return value


def to_json(record: Record) -> str:
    """One line of the spool: {"type": <record class>, <field>: <value>, ...}."""
    body: dict[str, object] = {"type": type(record).__name__}
    for f in dataclasses.fields(record):
        body[f.name] = _encode(getattr(record, f.name))
    # default=str: timeline data may hold datetimes or enums; the database gets them as text
    # too (see statements.py), so the spooled record writes the same row.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)


def from_json(line: str) -> Record:
    """Inverse of to_json; raises ValueError on anything that is not a valid record."""
    try:
        body = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValueError("a record must be a JSON object")
    cls = RECORD_TYPES.get(str(body.pop("type", "")))
    if cls is None:
        raise ValueError(f"unknown record type in {line[:80]!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(body) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    try:
        kwargs: dict[str, Any] = {name: _decode(value, hints[name]) for name, value in body.items()}
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid {cls.__name__}: {exc}") from exc


class SpoolInUseError(RuntimeError):
    """Another writer (in this or another process) holds the spool directory."""


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.has_lines = False
        """pending.jsonl may hold records (it is removed once they are all written)."""
        self._lock_file: IO[bytes] | None = None

    @property
    def pending_path(self) -> Path:
        return self.directory / PENDING_FILE

    @property
    def rejected_path(self) -> Path:
        return self.directory / REJECTED_FILE

    def open(self) -> tuple[list[Record], list[tuple[int, str]]]:
        """Take the directory for this writer and read what an earlier run left: the records,
        and (line number, error) for each line that is not one (kept in rejected.jsonl)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._lock_file is None:
            lock_file = (self.directory / _LOCK_FILE).open("ab")
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock_file.close()
                raise SpoolInUseError(
                    f"spool directory {self.directory} is used by another store writer"
                ) from None
            self._lock_file = lock_file
        try:
            text = self.pending_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return [], []
        self.has_lines = True
        records: list[Record] = []
        unreadable: list[tuple[int, str]] = []
        kept: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(from_json(line))
            except ValueError as exc:
                # A torn last line after a crash, or a hand-edited file: keep it aside.
                unreadable.append((number, str(exc)))
                kept.append(json.dumps({"error": f"unreadable spool line: {exc}", "line": line}))
        if kept:
            _append_lines(self.rejected_path, kept)
        return records, unreadable

    def append(self, records: list[Record]) -> None:
        """Add records at the end of pending.jsonl, on disk (fsync) when this returns."""
        if not records:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        _append_lines(self.pending_path, [to_json(record) for record in records])
        self.has_lines = True

    def truncate(self) -> None:
        """Everything in pending.jsonl is in the database now."""
        with contextlib.suppress(FileNotFoundError):
            self.pending_path.unlink()
        self.has_lines = False

    def reject(self, record: Record, exc: BaseException) -> None:
        """Keep a record the database refused in rejected.jsonl, with the reason."""
        line = json.dumps(
            {
                "rejected_at": datetime.now(UTC).isoformat(),
                "error": f"{type(exc).__name__}: {exc}",
                "sqlstate": getattr(exc, "sqlstate", None),
                "record": json.loads(to_json(record)),
            },
            ensure_ascii=False,
        )
        _append_lines(self.rejected_path, [line])

    def release(self) -> None:
        """Let another writer take the directory."""
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None


def _append_lines(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as spool:
        spool.write("".join(line + "\n" for line in lines))
        spool.flush()
        os.fsync(spool.fileno())
