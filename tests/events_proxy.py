"""A TCP proxy between a daemon and (real or simulated) Asterisk's HTTP port that can drop the
daemon's events websocket and keep it away for a while, REST going on untouched."""

from __future__ import annotations

import asyncio
import time


class EventsProxy:
    """Forwards TCP from a local port to Asterisk's HTTP port. `cut(seconds)` closes the
    daemon's events websocket (`GET /ari/events`) and refuses a new one for `seconds`; REST
    connections go on untouched. Runs on the suite's loop."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.cuts = 0
        self.events_connections = 0  # accepted websockets, the first one included
        self._server: asyncio.Server | None = None
        self._events: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refuse_until = 0.0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cut(self, refuse_for: float) -> int:
        """Drop every events websocket now; refuse new ones for `refuse_for` seconds."""
        self.cuts += 1
        self._refuse_until = time.monotonic() + refuse_for
        dropped = list(self._events)
        for writer in dropped:
            writer.transport.abort()
        return len(dropped)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            first = await reader.readline()
            is_events = first.startswith(b"GET ") and b"/ari/events" in first
            if is_events and time.monotonic() < self._refuse_until:
                writer.transport.abort()  # Asterisk unreachable for the websocket
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            if is_events:
                self.events_connections += 1
                self._events.add(writer)
            up_writer.write(first)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._events.discard(writer)
                up_writer.transport.abort()
                writer.transport.abort()
        except (OSError, asyncio.IncompleteReadError):
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sink.transport.abort()
