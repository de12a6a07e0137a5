"""The one place the daemon is built from its configuration, started, reloaded and stopped.

Signals (as systemd sends them):
- SIGTERM / SIGINT: stop taking new calls (they are handed back to the dialplan's fallback),
  let calls in flight finish for up to `drain_s`, hand the rest back (a connected
  conversation is left talking in its bridge), write what is pending, exit 0.
- SIGHUP: read the configuration file again. New calls use it; calls in progress keep the
  one they started with. A bad file is rejected with its reasons logged and the old one stays.

HTTP (daemon/http.py): /healthz, /readyz (ARI connected, database
reachable, still owning the Stasis app, taking calls: else 503), /metrics (Prometheus); and
the alerts API under /api (daemon/api.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import random
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from ari_controller import __version__
from ari_controller.alerts.delivery import DeliveryWorker, Sender
from ari_controller.alerts.email import email_senders
from ari_controller.alerts.engine import AlertEngine
from ari_controller.announcements import greeting_and_menu
from ari_controller.ari.client import AriClient
from ari_controller.ari.events import EventConnection, EventRouter
from ari_controller.calls.journal import Clock, utc_now
from ari_controller.calls.notification import PhoneNotifier
from ari_controller.calls.resume import Unfinished
from ari_controller.config import Config, ConfigError, load_config
from ari_controller.console.services import ConsoleServices
from ari_controller.console.web import console_app, session_key
from ari_controller.daemon import systemd
from ari_controller.daemon.api import api_routes
from ari_controller.daemon.confirm import confirm_routes
from ari_controller.daemon.controller import Controller
from ari_controller.daemon.failover import Failover
from ari_controller.daemon.http import StatusServer, database_reachable
from ari_controller.daemon.metrics import Metrics
from ari_controller.daemon.setup import (
    build_setup,
    config_digest,
    keep_restart_only,
    make_library,
    resolve,
)
from ari_controller.numbers import Number, numbered_routes
from ari_controller.prompts.library import PromptLibrary, media_routes
from ari_controller.prompts.preview import preview_wav
from ari_controller.prompts.tts import SpeechEngine
from ari_controller.store.callers import StoredCallerHistory
from ari_controller.store.unfinished import unfinished_calls
from ari_controller.store.writer import StoreWriter

log = structlog.get_logger(__name__)

# Alert engine and API connections; the store writer has its own.
DB_POOL_SIZE = 6
# Closing them waits for queries in flight no longer than this.
DB_POOL_CLOSE_S = 5.0
# How long in-flight calls may go on after SIGTERM before they are handed back.
DEFAULT_DRAIN_S = 30.0
# Writing what is pending at shutdown; what is left after this stays in the spool file.
FLUSH_AT_STOP_S = 10.0
# A call waits this long at most for its record to reach Postgres before acting on a
# decision (a route chosen, a leg about to ring); past it, the record goes to the spool file.
# (500 calls arriving at once keep commits under 0.7 s at p99 on two cores.)
DURABLE_LIMIT_S = 1.0
# At start-up: the spool an earlier run left is written first, then the unfinished calls
# are read back. Past these, the callers still waiting are taken as new calls.
RESUME_FLUSH_S = 2.0
RESUME_READ_S = 3.0


def tune_garbage_collector() -> None:
    """After start-up: what it built (modules, configuration, prompts) leaves the collector's
    view, and young collections come less often. Measured with `make bench` at 1000 calls:
    time in GC 1.9 s -> 0.27 s, worst loop lag 222-412 ms -> 80-125 ms, same memory."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


@dataclass
class Running:
    """What a started daemon is made of: built together, started in this order."""

    library: PromptLibrary
    writer: StoreWriter
    ari: AriClient
    router: EventRouter
    controller: Controller
    events: EventConnection
    http: StatusServer
    # Connections for work that reads and locks rows (the alert engine, the API), apart from
    # the store writer's: opened on demand, so the daemon starts while Postgres is away.
    db: asyncpg.Pool
    alert_engine: AlertEngine
    deliveries: DeliveryWorker


@dataclass
class Daemon:
    """Owns the daemon's lifetime: builds its parts from the configuration, starts them, swaps
    the configuration on reload, drains and closes them on stop, and answers signals. It does
    no call work: calls belong to the controller, their records to the store writer."""

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
        self.running: Running | None = None
        # Set once the first connection to Asterisk has picked up what an earlier run left.
        self.caught_up = asyncio.Event()
        # Another controller took the Stasis app (ApplicationReplaced): see `_replaced`.
        self.replaced = False
        # With `failover` enabled: the lease runner, and why this daemon stopped driving the
        # app (its lease taken over, or replaced): it then exits for its supervisor to start
        # it again as a standby.
        self.failover: Failover | None = None
        self.lost_lease: str | None = None
        self.handed_over = False
        self._handing_over_started = False
        self._must_stop = asyncio.Event()
        self._events_started = False
        self.config_loaded_at = dt.datetime.now(dt.UTC)
        # What `_close` undoes, in reverse order: each part once it has started.
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._db_users: list[asyncio.Task[None]] = []  # tasks on the pool: stopped before it
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[bool]] = set()
        self._stopping = False
        self._closed = False
        self._all_written = True
        self._flush_s = 0.0

    # The parts, once started (tests, the bench and the HTTP endpoints read them).

    def _parts(self) -> Running:
        if self.running is None:
            raise RuntimeError("the daemon is not started")
        return self.running

    @property
    def controller(self) -> Controller:
        return self._parts().controller

    @property
    def writer(self) -> StoreWriter:
        return self._parts().writer

    @property
    def events(self) -> EventConnection:
        return self._parts().events

    @property
    def router(self) -> EventRouter:
        return self._parts().router

    @property
    def library(self) -> PromptLibrary:
        return self._parts().library

    @property
    def http_port(self) -> int | None:
        return self.running.http.port if self.running is not None else None

    def _api_pool(self) -> asyncpg.Pool:
        """The pool the HTTP API reads and acts through (it answers 503 until it is open)."""
        return self._parts().db

    async def start(self) -> None:
        """Build and start everything; on failure, close what was started and raise."""
        try:
            await self._start()
        except BaseException:
            await self._close(flush_s=1.0)
            raise

    async def _start(self) -> None:
        config = self.config
        library = make_library(config, self.base_dir, self.engine)
        setup = await build_setup(config, self.base_dir, library)
        db = config.database
        writer = StoreWriter(
            db.resolved_dsn(),
            resolve(self.base_dir, db.spool_dir),
            on_write=self.metrics.store_write,
        )
        if config.failover.enabled:
            writer.idle_in_transaction_s = config.failover.lease_s
        asterisk = config.asterisk
        ari = AriClient(
            asterisk.url,
            asterisk.username,
            asterisk.resolved_password() or "",
            request_timeout=asterisk.request_timeout_s,
            max_connections=asterisk.max_connections,
            on_closed_connection=self.metrics.ari_closed_connection,
        )
        router = EventRouter()
        controller = Controller(
            ari,
            router,
            setup,
            writer.submit,
            clock=self.clock,
            rng=self.rng,
            on_call_started=self.metrics.call_started,
            on_call_finished=self.metrics.call_finished,
            on_unknown_number=self.metrics.unknown_number,
            durable=lambda: writer.durable(DURABLE_LIMIT_S),
        )
        events = EventConnection(
            asterisk.url,
            asterisk.username,
            asterisk.resolved_password() or "",
            asterisk.app,
            router,
            on_connected=self._connected,
            on_disconnected=self._disconnected,
            on_replaced=self._replaced,
        )
        http = StatusServer(
            config.http.host,
            config.http.port,
            checks=self.ready,
            status=self._status,
            metrics=self._exposition,
            extra_routes=[
                *media_routes(library),
                *api_routes(self._api_pool, self.clock),
                *confirm_routes(self._api_pool, lambda: self.config.alerts, self.clock),
            ],
            subapps={"/console": self._console(library)} if config.console.enabled else None,
        )
        db_pool = asyncpg.create_pool(
            db.resolved_dsn(), min_size=0, max_size=DB_POOL_SIZE, command_timeout=10
        )
        controller.history = StoredCallerHistory(db_pool)
        alert_engine = AlertEngine(db_pool, lambda: self.config, self.clock)
        # Notification calls: the daemon's own Asterisk rings the people of an alert.
        phone = PhoneNotifier(ari, router, library, db_pool, lambda: self.config, self.clock)
        deliveries = DeliveryWorker(
            db_pool,
            lambda: self.config.alerts,
            self.clock,
            self.rng,
            senders={
                "phone": Sender(phone.send, lease_s=phone.lease_s(), background=True),
                **email_senders(db_pool, lambda: self.config, self.clock),
            },
            on_attempt=self.metrics.alert_delivery,
        )
        self.running = Running(
            library,
            writer,
            ari,
            router,
            controller,
            events,
            http,
            db_pool,
            alert_engine,
            deliveries,
        )

        await writer.start()
        self._closers.append(self._close_writer)
        await ari.start()
        self._closers.append(ari.close)
        controller.attach()
        if config.failover.enabled:
            # A standby: Asterisk is connected only once the lease is ours (_became_active).
            self.failover = Failover(
                lambda: self.config.database.resolved_dsn(),
                asterisk.app,
                config.failover,
                __version__,
                on_active=self._became_active,
                on_lost=self._lost_lease,
                asterisk_connected=lambda: self.events.is_connected,
                on_handover=self._hand_over,
            )
            ari.may_send = self.failover.confirm
            self.events.may_connect = self.failover.confirm
            self._background(self.failover.run(), "failover")
        else:
            self._start_events()
        self._closers.append(self._stop_events_and_tasks)
        if self.failover is not None:
            self._closers.append(self._give_the_lease_up)  # before the events stop
        await http.start()
        self._closers.append(http.close)
        await db_pool  # min_size 0: no connection is opened yet
        self._closers.append(self._close_db_pool)
        if config.alerts.engine.enabled:
            self._db_users.append(self._background(alert_engine.run(), "alert-engine"))
            if self.failover is None:
                self._start_deliveries()
        self._background(self._sweep(asterisk.sweep_interval_s), "orphan-sweep")
        interval = systemd.watchdog_interval()
        if interval:
            self._background(self._watchdog(interval), "watchdog")
        systemd.notify("READY=1\nSTATUS=connecting to Asterisk")
        log.info(
            "daemon_started",
            app=asterisk.app,
            numbers=len(config.numbers),
            http_port=http.port,
            config=config_digest(config),
            watchdog_s=interval,
        )

    def _background(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    def _console(self, library: PromptLibrary) -> web.Application:
        """The web console, reading through the daemon's pool and configuration of the moment."""

        async def greeting_audio(number: Number) -> bytes:
            sentences = greeting_and_menu(number, numbered_routes(number.routes))
            return await preview_wav(sentences, number.language, library.engine)

        services = ConsoleServices(
            pool=self._api_pool,
            dsn=lambda: self.config.database.resolved_dsn(),
            config=lambda: self.config,
            clock=self.clock,
            health=self._health,
            greeting_audio=greeting_audio,
        )
        return console_app(services, session_key(self.config.console.resolved_session_key()))

    async def _health(self) -> dict[str, Any]:
        """What the console's health page shows."""
        return {
            "ari_connected": self.events.is_connected,
            "owns_app": not self.replaced,
            "calls_picked_up": self.caught_up.is_set(),
            "accepting_calls": self.controller.accepting,
            "database": await self.database_reachable(),
            "spool_backlog": self.writer.pending,
            "calls_in_progress": len(self.controller.calls),
            "app": self.config.asterisk.app,
            "version": __version__,
            "config_digest": config_digest(self.config),
            "config_loaded_at": self.config_loaded_at,
        }

    # ---- ARI connection ---------------------------------------------------------------------

    def _start_deliveries(self) -> None:
        # Phone notifications need Asterisk: with a standby, only the active daemon delivers.
        self._db_users.append(self._background(self._parts().deliveries.run(), "alert-deliveries"))

    def _start_events(self) -> None:
        self._events_started = True
        self._background(self.events.run(), "ari-events")

    def _became_active(self, fencing: int) -> None:
        """The lease is ours: writes carry it, and Asterisk is connected; the calls the last
        active daemon left are picked up at the first connection, as after a restart."""
        assert self.failover is not None
        self.writer.fence = (self.config.asterisk.app, self.failover.member, fencing)
        systemd.notify(f"STATUS=active (fencing {fencing}), connecting to Asterisk")
        self._start_events()
        if self.config.alerts.engine.enabled:
            self._start_deliveries()

    def _hands_over_on_stop(self) -> bool:
        failover = self.failover
        return (
            failover is not None
            and failover.role == "active"
            and failover.lost is None
            and failover.standby_present
            and not self._handing_over_started
        )

    async def _stop_asked(self, stop_requested: asyncio.Event) -> None:
        """Until a stop signal came that is not a handover (that one ends in `_must_stop`)."""
        await stop_requested.wait()
        if self._handing_over_started:
            await self._must_stop.wait()  # the handover ends in it

    def _hand_over(self) -> None:
        """`ari-controller handover` (an upgrade), or a stop signal while a standby is there:
        give the calls to the standby."""
        if self._handing_over_started:
            return
        self._handing_over_started = True
        self._background(self._handing_over(), "handover")

    async def _handing_over(self) -> None:
        """Everything recorded so far is written; from then on this daemon neither acts nor
        writes, gives the lease up and leaves Asterisk. The standby takes the lease at its
        next try and picks every call up from the database, as after a restart; a call that
        arrives meanwhile rings in the dialplan until it connects."""
        assert self.failover is not None
        try:
            written = await self.writer.flush(RESUME_FLUSH_S)
            self.writer.discard_from_now()
            self._refuse_requests()
            await self.failover.release()
            if self._events_started:
                await self.events.stop()
            log.info("handed_over", all_written=written, calls=len(self.controller.calls))
            self.handed_over = True
        finally:
            # Whatever went wrong on the way, this daemon no longer drives the calls.
            self._lost_lease("handed over to a standby")

    def _lost_lease(self, why: str) -> None:
        """Another daemon drives the app now: stop touching calls and leave (the supervisor
        starts this one again, as a standby)."""
        if self.lost_lease is not None:
            return
        self.lost_lease = why
        self.replaced = True
        self._refuse_requests()
        # What the calls do from now on is their new driver's to record; what was recorded
        # before still goes out (fenced: refused if the new driver holds the lease already).
        self.writer.discard_from_now()
        if self._events_started:
            # Never again: a websocket opened now would take the app from the new driver.
            self._background(self.events.stop(), "events-stop")
        self.metrics.ari_connected.set(0)
        systemd.notify(f"STATUS=not driving the app any more: {why}")
        log.error("controller_stepping_aside", why=why, calls=len(self.controller.calls))
        self._must_stop.set()

    async def _connected(self, is_reconnect: bool) -> None:
        self.metrics.ari_connected.set(1)
        if is_reconnect:
            self.metrics.ari_reconnects.inc()
        systemd.notify("STATUS=handling calls")
        unfinished = [] if is_reconnect else await self._unfinished_calls()
        try:
            await self.controller.reconcile(is_reconnect, unfinished)
        finally:
            if not self.caught_up.is_set():
                self.caught_up.set()
                log.info("calls_picked_up", earlier_unfinished=len(unfinished))

    async def _unfinished_calls(self) -> list[Unfinished]:
        """The calls an earlier run of this app left unfinished (killed, crashed): read once,
        at the first connection to Asterisk, after what that run left in the spool."""
        if not await self.writer.flush(RESUME_FLUSH_S):
            log.warning("resume_spool_not_written", pending=self.writer.pending)
        try:
            async with asyncio.timeout(RESUME_READ_S), self._parts().db.acquire() as conn:
                return await unfinished_calls(conn, self.config.asterisk.app)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Callers an earlier run left are then greeted as new calls (with a new alert).
            log.error("resume_unavailable", error=f"{type(exc).__name__}: {exc}")
            return []

    def _disconnected(self, why: str) -> None:
        self.metrics.ari_connected.set(0)
        systemd.notify(f"STATUS=ARI disconnected: {why}")
        log.warning("ari_disconnected", why=why)

    def _replaced(self) -> None:
        """Another controller opened the events websocket of our Stasis app, and Asterisk now
        sends it our events (and new calls).

        Fighting back would make the two take the app from each other forever, so this one
        steps aside: it logs an error, stops reading events (the connection's default
        policy), and reports not ready (/readyz 503) so an operator or orchestrator notices
        two controllers for one app. Calls in progress are not touched: a connected
        conversation goes on in its bridge, and the rest end by their own bounded waits. The
        process stays up, so systemd does not restart it into the same fight; restart it
        (or stop the other one) to take the app back.
        """
        if self.failover is not None:
            # Expected with a standby: the newcomer holds the lease (or will at once).
            self.failover.lose("another controller connected for the app (ApplicationReplaced)")
            return
        self.replaced = True
        self.metrics.ari_connected.set(0)
        systemd.notify("STATUS=replaced by another controller for the same Stasis app")
        log.error(
            "ari_application_replaced",
            app=self.config.asterisk.app,
            calls_in_progress=len(self.controller.calls),
            hint="another controller took the app; restart this one to take it back",
        )

    def _refuse_requests(self) -> None:
        """No request leaves this daemon any more (its calls are another daemon's)."""

        async def refuse() -> bool:
            return False

        if self.running is not None:
            self.running.ari.may_send = refuse

    # ---- what /readyz and /metrics tell ------------------------------------------------------

    async def database_reachable(self) -> bool:
        return await database_reachable(self.config.database.resolved_dsn())

    async def ready(self) -> dict[str, bool]:
        """Each readiness check by name; ready when all are true. A standby is ready when it
        could take over: it reaches the database and still may."""
        if self.failover is not None and self.failover.role == "standby":
            return {
                "database": await self.database_reachable(),
                "may_take_over": self.lost_lease is None,
            }
        return {
            "ari_connected": self.events.is_connected,
            "calls_picked_up": self.caught_up.is_set(),
            "database": await self.database_reachable(),
            "owns_app": not self.replaced,
            "accepting_calls": self.controller.accepting,
        }

    def _status(self) -> dict[str, Any]:
        failover = self.failover.status() if self.failover is not None else None
        return {
            "role": failover.role if failover is not None else "active",
            **(
                {
                    "member": failover.member,
                    "fencing": failover.fencing,
                    "active_since": (
                        failover.active_since.isoformat() if failover.active_since else None
                    ),
                    "standby_present": failover.standby_present,
                }
                if failover is not None
                else {}
            ),
            "calls_in_progress": len(self.controller.calls),
            "config": {
                "digest": config_digest(self.config),
                "loaded_at": self.config_loaded_at.isoformat(),
            },
        }

    def _exposition(self) -> bytes:
        self.metrics.db_pending.set(self.writer.pending)
        if self.failover is not None:
            status = self.failover.status()
            active = status.role == "active"
            self.metrics.controller_active.set(1 if active else 0)
            self.metrics.controller_fencing.set(status.fencing if active and status.fencing else 0)
            since = status.active_since.timestamp() if active and status.active_since else 0
            self.metrics.controller_active_since.set(since)
            self.metrics.standby_present.set(1 if status.standby_present else 0)
        else:
            self.metrics.controller_active.set(1)
        return self.metrics.exposition()

    # ---- reload and stop ----------------------------------------------------------------------

    async def reload(self) -> bool:
        """Load the configuration file again; calls in progress keep the one they started with.

        A bad new configuration is rejected with its reasons logged, and the old one stays.
        The connection sections (asterisk, database, http, prompts) keep their running values:
        a change there is logged and takes effect at the next restart.
        """
        if self.config_path is None:
            log.warning("reload_ignored", reason="no configuration file")
            return False
        async with self._reload_lock:  # two SIGHUPs in a row: one reload after the other
            ok = await self._reload(self.config_path)
        if self.on_reloaded:
            self.on_reloaded(ok)
        return ok

    async def _reload(self, path: Path) -> bool:
        try:
            loaded = load_config(path)
            config, needs_restart = keep_restart_only(loaded, self.config)
            setup = await build_setup(config, self.base_dir, self.library)
        except ConfigError as exc:
            log.error(
                "reload_rejected",
                path=str(path),
                problems=[f"{p}: {m}" for p, m in exc.problems],
                kept=config_digest(self.config),
            )
            self.metrics.reloads.labels("rejected").inc()
            return False
        except Exception as exc:  # prompts or schedules that cannot be prepared
            log.error(
                "reload_rejected", path=str(path), error=str(exc), kept=config_digest(self.config)
            )
            self.metrics.reloads.labels("rejected").inc()
            return False
        if needs_restart:
            log.warning("reload_needs_restart", sections=needs_restart)
        self.config = config
        self.config_loaded_at = dt.datetime.now(dt.UTC)
        self.controller.setup = setup
        self.metrics.reloads.labels("ok").inc()
        log.info(
            "reloaded",
            numbers=len(config.numbers),
            config=config_digest(config),
            calls_in_progress=len(self.controller.calls),
        )
        return True

    def request_reload(self) -> None:
        """From the SIGHUP handler: reload in a task of its own (kept until it is done)."""
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def stop(self) -> None:
        """Stop taking calls, let calls finish (or hand them back), flush writes, close."""
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        systemd.notify("STOPPING=1\nSTATUS=draining calls")
        controller = self.running.controller if self.running is not None else None
        calls = len(controller.calls) if controller else 0
        log.info("daemon_stopping", calls=calls, drain_s=self.drain_s)
        handed_back = 0
        if controller is not None and self.lost_lease is not None:
            await controller.let_go()  # another daemon drives these calls now
        elif controller is not None:
            handed_back = await controller.drain(self.drain_s)
        flushed = await self._close(flush_s=FLUSH_AT_STOP_S)
        log.info("daemon_stopped", handed_back=handed_back, all_written=flushed)
        self.stopped.set()

    async def _close(self, flush_s: float) -> bool:
        """Close whatever was started, in reverse order; True when every record was written."""
        if self._closed:
            return self._all_written
        self._closed = True
        self._flush_s = flush_s
        while self._closers:
            await self._closers.pop()()
        await self._cancel_tasks()  # any left by a start that failed half-way
        return self._all_written

    async def _stop_events_and_tasks(self) -> None:
        if self._events_started:
            await self.events.stop()
        await self._cancel_tasks()

    async def _cancel_tasks(self) -> None:
        tasks = [*self._tasks, *self._reloads]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _close_db_pool(self) -> None:
        # What uses the pool stops first: a round cut short is undone by its transaction.
        for task in self._db_users:
            task.cancel()
        await asyncio.gather(*self._db_users, return_exceptions=True)
        await self._parts().deliveries.close()
        try:
            await asyncio.wait_for(self._parts().db.close(), DB_POOL_CLOSE_S)
        except TimeoutError:
            self._parts().db.terminate()  # a query that would not end: cut it

    async def _give_the_lease_up(self) -> None:
        """A clean stop: what the calls recorded goes in first (a released lease takes no
        more writes), then a standby may take over at its next try."""
        assert self.failover is not None
        if self.lost_lease is None:
            await self.writer.flush(self._flush_s)
        await self.failover.release()

    async def _close_writer(self) -> None:
        # What is not written within the flush time stays in the spool for the next start.
        self._all_written = await self.writer.close(timeout=self._flush_s)

    async def _sweep(self, interval: float) -> None:
        """Now and then, take over channels in the application that no call owns."""
        while True:
            await asyncio.sleep(interval)
            if self._stopping or self.replaced or not self.events.is_connected:
                continue
            try:
                adopted = await self.controller.sweep()
            except Exception:  # a bug here must not end the sweeping, nor the daemon
                log.exception("sweep_failed")
                continue
            if adopted:
                log.warning("orphaned_channels_adopted", count=adopted)

    async def _watchdog(self, interval: float) -> None:
        # Pings come from the event loop itself: a wedged loop stops them and systemd restarts us.
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def run_until_signalled(self) -> None:
        """Start, serve until SIGTERM or SIGINT (SIGHUP reloads), then stop cleanly."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()

        def on_stop_signal(sig: signal.Signals) -> None:
            if not stop_requested.is_set() and self._hands_over_on_stop():
                # An active daemon with a standby (a restart, an upgrade, a host shutting
                # down): the standby takes the calls on, the callers notice nothing.
                log.info("stop_hands_over", signal=sig.name)
                stop_requested.set()
                self._hand_over()
                return
            if stop_requested.is_set():
                # Asked again: the operator will not wait for the drain; hand calls back now.
                log.info("stop_hurried", signal=sig.name)
                if self.running is not None:
                    self.running.controller.hurry()
                return
            log.info("stop_requested", signal=sig.name)
            stop_requested.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            await self.start()
            tune_garbage_collector()
            stopping = asyncio.ensure_future(self._stop_asked(stop_requested))
            stepping_aside = asyncio.ensure_future(self._must_stop.wait())
            await asyncio.wait({stopping, stepping_aside}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            stepping_aside.cancel()
            await self.stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
