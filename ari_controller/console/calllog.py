"""(placeholder: filled in next)"""

from __future__ import annotations

from aiohttp import web

from ari_controller.console.services import ConsoleServices


def add_routes(app: web.Application, services: ConsoleServices) -> None:
    pass
