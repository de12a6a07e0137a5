"""On call: for each escalation policy, who a call reaches now (or at a chosen moment) and the
hand-offs of the seven days after it, in the schedules' time zones."""

from __future__ import annotations

import datetime as dt

import aiohttp_jinja2
from aiohttp import web

from ari_controller.config import Config
from ari_controller.console.format import zone
from ari_controller.console.oncall_view import oncall_views
from ari_controller.console.services import ConsoleServices
from ari_controller.oncall.plan import Directory

DAYS = 7


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    app.router.add_get("/oncall", OnCallPage(services).show, name="oncall")


def zone_choices(config: Config) -> list[str]:
    """The zones a person may read a moment in: the schedules', the numbers', and UTC."""
    names = [s.time_zone for s in config.schedules] + [n.zone_name for n in config.numbers]
    return list(dict.fromkeys([*names, "UTC"]))


def parse_moment(text: str, zone_name: str) -> dt.datetime:
    """An ISO date-time; one without an offset (what a datetime-local field sends) is a wall
    time in `zone_name`. Raises ValueError."""
    at = dt.datetime.fromisoformat(text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone(zone_name))
    return at


class OnCallPage:
    def __init__(self, services: ConsoleServices) -> None:
        self._services = services
        # Compiled once per configuration: calendar schedules read their files here.
        self._compiled: tuple[Config, Directory] | None = None

    def _directory(self, config: Config) -> Directory:
        if self._compiled is None or self._compiled[0] is not config:
            self._compiled = (config, Directory.build(config.users, config.schedules))
        return self._compiled[1]

    async def show(self, request: web.Request) -> web.StreamResponse:
        config = self._services.config()
        zones = zone_choices(config)
        zone_name = request.query.get("zone", "")
        if zone_name not in zones:
            zone_name = zones[0]
        error = ""
        at = self._services.clock()
        given = request.query.get("at", "").strip()
        if given:
            try:
                at = parse_moment(given, zone_name)
            except ValueError:
                error = f"'{given}' is not a date and time like 2026-03-02T09:30."
        directory = self._directory(config)
        local = at.astimezone(zone(zone_name))
        return aiohttp_jinja2.render_template(
            "oncall.html",
            request,
            {
                "views": oncall_views(config, directory, at, DAYS),
                "at": at,
                "chosen": bool(given) and not error,
                "at_field": local.strftime("%Y-%m-%dT%H:%M"),
                "zone_name": zone_name,
                "zones": zones,
                "days": DAYS,
                "error": error,
            },
            status=400 if error else 200,
        )
