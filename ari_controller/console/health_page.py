"""Health: is the daemon connected to Asterisk and the database, is anything waiting to be
written, which version and configuration run; in words, with a verdict on top."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ari_controller.console.format import moment
from ari_controller.console.services import ConsoleServices


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    app.router.add_get("/health", HealthPage(services).show, name="health")


@dataclass(frozen=True, slots=True)
class Check:
    label: str
    value: str
    ok: bool | None  # None: a fact, neither good nor bad
    problem: str = ""  # what the verdict says when not ok


def _flag(
    health: Mapping[str, Any], key: str, label: str, good: str, bad: str, problem: str
) -> Check:
    # A missing key is a daemon that does not report it: not a reason to say all is well.
    ok = health.get(key) is True
    return Check(label, good if ok else bad, ok, problem)


def health_checks(health: Mapping[str, Any]) -> list[Check]:
    """The health dict (Daemon._health) as lines a person reads."""
    backlog = health.get("spool_backlog")
    pending = backlog if isinstance(backlog, int) else None
    loaded = health.get("config_loaded_at")
    return [
        _flag(
            health,
            "ari_connected",
            "Asterisk (ARI)",
            "connected",
            "not connected",
            "Asterisk is not connected",
        ),
        _flag(
            health,
            "owns_app",
            "Stasis application",
            "ours",
            "taken over by another connection",
            "another connection took the Stasis application",
        ),
        _flag(
            health,
            "calls_picked_up",
            "Calls of the last run",
            "picked up",
            "not picked up yet",
            "the calls of the last run are not picked up yet",
        ),
        _flag(
            health,
            "accepting_calls",
            "New calls",
            "accepted",
            "refused (stopping or starting)",
            "new calls are refused",
        ),
        _flag(
            health,
            "database",
            "Database",
            "reachable",
            "not reachable",
            "the database is not reachable",
        ),
        _backlog(pending, database_up=health.get("database") is True),
        Check("Calls in progress", str(health.get("calls_in_progress", "unknown")), None),
        Check("Stasis application name", str(health.get("app", "")), None),
        Check("Version", str(health.get("version", "")), None),
        Check("Configuration digest", str(health.get("config_digest", "")), None),
        Check(
            "Configuration loaded",
            moment(loaded) if isinstance(loaded, dt.datetime) else str(loaded or "unknown"),
            None,
        ),
    ]


# Records wait in the writer's queue for a moment while calls run; this many waiting (or any
# while the database is down) means writes are not keeping up.
BACKLOG_WARNING = 100


def _backlog(pending: int | None, *, database_up: bool) -> Check:
    label = "Spool backlog"
    if pending is None:
        return Check(label, "unknown", False, "the spool backlog is unknown")
    if pending == 0:
        return Check(label, "nothing waiting", True)
    waiting = f"{pending} records waiting to be written to the database"
    if pending >= BACKLOG_WARNING or not database_up:
        return Check(label, waiting, False, f"{pending} records wait in the spool")
    return Check(label, waiting, None)


class HealthPage:
    def __init__(self, services: ConsoleServices) -> None:
        self._services = services

    async def show(self, request: web.Request) -> web.StreamResponse:
        checks = health_checks(await self._services.health())
        problems = [c.problem for c in checks if c.ok is False]
        return aiohttp_jinja2.render_template(
            "health.html",
            request,
            {"checks": checks, "problems": problems, "checked_at": self._services.clock()},
        )
