"""Who hears an event: the events websocket of each Stasis application.

Publishing never blocks the simulator: each connection has its own queue and writer
task; a reader that stalls is dropped (Asterisk closes such websockets too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from ari_controller.simulator.events import JSON

SEND_TIMEOUT = 5.0
FLUSH_TIMEOUT = 0.5

Sender = Callable[[str], Awaitable[None]]
Closer = Callable[[], Awaitable[object]]


class Connection:
    """One events websocket, as the simulator sees it."""

    def __init__(
        self, app: str, send: Sender, close: Closer, drop: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        self._send = send
        self._close = close
        self._drop = drop  # cuts the TCP connection at once, like a failed network
        self._queue: asyncio.Queue[JSON | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{app}")

    def push(self, event: JSON) -> None:
        if not self.closed.is_set():
            self._queue.put_nowait(event)

    async def drain(self) -> None:
        await self._queue.join()

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                try:
                    if item is None:
                        return
                    # A reader that does not take an event in time is gone for us.
                    await asyncio.wait_for(self._send(json.dumps(item)), SEND_TIMEOUT)
                finally:
                    self._queue.task_done()
        except (ConnectionError, TimeoutError, RuntimeError):
            pass
        finally:
            self.closed.set()
            while not self._queue.empty():
                self._queue.get_nowait()
                self._queue.task_done()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._close(), SEND_TIMEOUT)

    async def shut(self) -> None:
        """Send what is queued, then close."""
        self._queue.put_nowait(None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._writer), SEND_TIMEOUT)

    async def close_now(self) -> None:
        """Drop the websocket without sending what is queued (a network failure)."""
        if self._drop is not None:
            self._drop()  # no closing handshake: the peer just sees the connection go
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self.closed.set()
        if self._drop is not None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._close(), SEND_TIMEOUT)

    def abort(self) -> None:
        self._writer.cancel()
        self.closed.set()


class Hub:
    """The newest events websocket of each application."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    def attach(self, connection: Connection) -> Connection | None:
        """Make `connection` the app's websocket; returns the one it replaces."""
        old = self._connections.get(connection.app)
        self._connections[connection.app] = connection
        return old

    def detach(self, connection: Connection) -> None:
        if self._connections.get(connection.app) is connection:
            del self._connections[connection.app]

    def is_connected(self, app: str) -> bool:
        connection = self._connections.get(app)
        return connection is not None and not connection.closed.is_set()

    def apps(self) -> list[str]:
        return [app for app in self._connections if self.is_connected(app)]

    def publish(self, app: str, event: JSON) -> None:
        connection = self._connections.get(app)
        if connection is not None:
            connection.push(event)

    async def flush(self) -> None:
        """Let queued events reach the websockets (so they precede a REST reply, as
        Asterisk's often do)."""
        drains = [c.drain() for c in self._connections.values() if not c.closed.is_set()]
        if drains:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*drains), FLUSH_TIMEOUT)

    def drop_all(self) -> list[Connection]:
        dropped = list(self._connections.values())
        self._connections.clear()
        return dropped
