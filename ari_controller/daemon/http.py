"""What the daemon answers over HTTP: /healthz (the process and its event loop answer), /readyz
(every readiness check true, else 503), /metrics (Prometheus), and the prompt audio Asterisk
fetches when prompts are served over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import asyncpg
import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

# Checking the database for /readyz must answer quickly even when Postgres hangs.
READY_DB_TIMEOUT_S = 2.0

ReadinessChecks = Callable[[], Awaitable[dict[str, bool]]]


async def database_reachable(dsn: str) -> bool:
    """A fresh connection and `SELECT 1`, each bounded: what a new call's writes would need."""
    try:
        conn = await asyncpg.connect(dsn, timeout=READY_DB_TIMEOUT_S)
        try:
            await conn.fetchval("SELECT 1", timeout=READY_DB_TIMEOUT_S)
        finally:
            await conn.close(timeout=READY_DB_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError) as exc:
        log.info("readiness_database_unreachable", error=str(exc) or type(exc).__name__)
        return False
    return True


class StatusServer:
    """Owns the HTTP listener and its routes; it reads the daemon's state only through the
    callables it is given, and changes nothing."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        checks: ReadinessChecks,
        status: Callable[[], dict[str, Any]],
        metrics: Callable[[], bytes],
        extra_routes: Iterable[web.RouteDef] = (),
        subapps: Mapping[str, web.Application] | None = None,
    ) -> None:
        self.host = host
        self.port = port  # the bound port once started (the configured one may be 0)
        self._checks = checks
        self._status = status
        self._metrics = metrics
        self._extra_routes = list(extra_routes)
        self._subapps = dict(subapps or {})
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/metrics", self._exposition),
                *self._extra_routes,
            ]
        )
        for prefix, subapp in self._subapps.items():
            app.add_subapp(prefix, subapp)
            app.router.add_get(prefix, _redirect_to(prefix + "/"))
            if prefix == "/console":
                app.router.add_get("/", _redirect_to(prefix + "/"))
        # Open event streams (the console's live view) end at once on close, not after a wait.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        # Answering at all shows the event loop is not wedged.
        return web.json_response({"status": "alive"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = await self._checks()
        ok = all(checks.values())
        body: dict[str, Any] = {"ready": ok, **checks, **self._status()}
        return web.json_response(body, status=200 if ok else 503)

    async def _exposition(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._metrics(), content_type="text/plain", charset="utf-8")


def _redirect_to(target: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def redirect(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target)

    return redirect
