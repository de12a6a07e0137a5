"""The one place the daemon is built from its configuration, started, reloaded and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import structlog
from aiohttp import web

from ari_controller import systemd
from ari_controller.alert_records import AlertRecords
from ari_controller.announcements import prepare_announcements
from ari_controller.ari.client import AriClient
from ari_controller.ari.events import EventConnection, EventRouter
from ari_controller.calls.context import Planner
from ari_controller.calls.journal import Clock, utc_now
from ari_controller.config import Config, ConfigError, load_config
from ari_controller.controller import CallSetup, Controller
from ari_controller.metrics import Metrics
from ari_controller.oncall.plan import Directory, plan
from ari_controller.prompts.library import PromptLibrary, media_routes
from ari_controller.prompts.tts import SpeechEngine, engine_from_config
from ari_controller.store.writer import StoreWriter

log = structlog.get_logger(__name__)

# How long in-flight calls may go on after SIGTERM before they are handed back.
DEFAULT_DRAIN_S = 30.0
# Checking the database for /readyz must answer quickly even when Postgres hangs.
READY_DB_TIMEOUT_S = 2.0


def make_planner(config: Config, base_dir: Path) -> Planner:
    directory = Directory.build(config.users, config.schedules)
    policies = {p.id: p for p in config.escalation_policies}

    def planner(policy_id: str, at: object, rng: random.Random):  # type: ignore[no-untyped-def]
        return plan(policies[policy_id], at, rng, directory)  # type: ignore[arg-type]

    return planner


def resolve(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def make_library(
    config: Config, base_dir: Path, engine: SpeechEngine | None = None
) -> PromptLibrary:
    settings = config.prompts
    return PromptLibrary(
        resolve(base_dir, settings.cache_dir),
        engine or engine_from_config(settings.engine, **settings.engine_options),
        media_mode=settings.media,
        sound_prefix=settings.sound_prefix,
        http_base=settings.http_base,
    )


async def build_setup(config: Config, base_dir: Path, library: PromptLibrary) -> CallSetup:
    """Everything a new call needs; raises when the configuration cannot be used."""
    announcements = await prepare_announcements(library, config.numbers, base_dir)
    return CallSetup(config, announcements, make_planner(config, base_dir))


@dataclass
class Daemon:
    config: Config
    config_path: Path | None = None
    clock: Clock = utc_now
    rng: random.Random = field(default_factory=random.Random)
    engine: SpeechEngine | None = None
    drain_s: float = DEFAULT_DRAIN_S
    metrics: Metrics = field(default_factory=Metrics)
    on_reloaded: Callable[[bool], None] | None = None

    def __post_init__(self) -> None:
        self.base_dir = self.config_path.parent if self.config_path else Path.cwd()
        self.stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None

    async def start(self) -> None:
        config = self.config
        self.library = make_library(config, self.base_dir, self.engine)
        setup = await build_setup(config, self.base_dir, self.library)
        db = config.database
        self.writer = StoreWriter(
            db.resolved_dsn(),
            resolve(self.base_dir, db.spool_dir),
            on_write=self.metrics.store_write,
        )
        await self.writer.start()
        asterisk = config.asterisk
        self.ari = AriClient(
            asterisk.url,
            asterisk.username,
            asterisk.resolved_password() or "",
            request_timeout=asterisk.request_timeout_s,
        )
        await self.ari.start()
        self.router = EventRouter()
        self.controller = Controller(
            self.ari,
            self.router,
            setup,
            AlertRecords(self.writer.submit),
            clock=self.clock,
            rng=self.rng,
            on_call_started=self.metrics.call_started,
            on_call_finished=self.metrics.call_finished,
        )
        self.controller.attach()
        self.events = EventConnection(
            asterisk.url,
            asterisk.username,
            asterisk.resolved_password() or "",
            asterisk.app,
            self.router,
            on_connected=self._connected,
            on_disconnected=self._disconnected,
            on_replaced=self._replaced,
        )
        self._tasks.append(asyncio.create_task(self.events.run(), name="ari-events"))
        await self._start_http()
        interval = systemd.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(self._watchdog(interval), name="watchdog"))
        systemd.notify("READY=1")
        log.info("daemon_started", app=asterisk.app, numbers=len(config.numbers))

    # ---- ARI connection ---------------------------------------------------------------------

    async def _connected(self, is_reconnect: bool) -> None:
        self.metrics.ari_connected.set(1)
        if is_reconnect:
            self.metrics.ari_reconnects.inc()
        await self.controller.reconcile(is_reconnect)

    def _disconnected(self, why: str) -> None:
        self.metrics.ari_connected.set(0)
        log.warning("ari_disconnected", why=why)

    def _replaced(self) -> None:
        log.error("ari_application_replaced", hint="another controller took the app")

    # ---- HTTP: health, readiness, metrics, prompt audio ---------------------------------------

    async def _start_http(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/metrics", self._metrics),
                *media_routes(self.library),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http.port

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def ready(self) -> dict[str, bool]:
        database = False
        try:
            conn = await asyncpg.connect(
                self.config.database.resolved_dsn(), timeout=READY_DB_TIMEOUT_S
            )
            try:
                await conn.fetchval("SELECT 1", timeout=READY_DB_TIMEOUT_S)
                database = True
            finally:
                await conn.close(timeout=READY_DB_TIMEOUT_S)
        except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError):
            database = False
        return {"ari_connected": self.events.is_connected, "database": database}

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = await self.ready()
        ok = all(checks.values()) and self.controller.accepting
        return web.json_response(
            {"ready": ok, **checks, "accepting_calls": self.controller.accepting},
            status=200 if ok else 503,
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        self.metrics.db_pending.set(self.writer.pending)
        return web.Response(
            body=self.metrics.exposition(), content_type="text/plain", charset="utf-8"
        )

    # ---- reload and stop ----------------------------------------------------------------------

    async def reload(self) -> bool:
        """Load the configuration file again; calls in progress keep the one they started with.

        A bad new configuration is rejected with its reasons logged, and the old one stays.
        """
        if self.config_path is None:
            return False
        try:
            config = load_config(self.config_path)
            setup = await build_setup(config, self.base_dir, self.library)
        except ConfigError as exc:
            log.error("reload_rejected", problems=[f"{p}: {m}" for p, m in exc.problems])
            self.metrics.reloads.labels("rejected").inc()
            ok = False
        except Exception as exc:  # prompts or schedules that cannot be prepared
            log.error("reload_rejected", error=str(exc))
            self.metrics.reloads.labels("rejected").inc()
            ok = False
        else:
            self.config = config
            self.controller.setup = setup
            self.metrics.reloads.labels("ok").inc()
            log.info("reloaded", numbers=len(config.numbers))
            ok = True
        if self.on_reloaded:
            self.on_reloaded(ok)
        return ok

    async def stop(self) -> None:
        """Stop taking calls, let calls finish (or hand them back), flush writes, close."""
        systemd.notify("STOPPING=1")
        log.info("daemon_stopping", calls=len(self.controller.calls))
        handed_back = await self.controller.drain(self.drain_s)
        await self.events.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        flushed = await self.writer.close(timeout=10.0)
        await self.ari.close()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("daemon_stopped", handed_back=handed_back, all_written=flushed)
        self.stopped.set()

    async def _watchdog(self, interval: float) -> None:
        # Pings come from the event loop itself: a wedged loop stops them and systemd restarts us.
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        await self.start()
        try:
            await stop_requested.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            await self.stop()
