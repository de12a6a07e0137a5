"""Asterisk's HTTP session limit (http.conf `sessionlimit`, 100 unless set).

Asterisk counts every open HTTP connection to it, keep-alive REST connections and events
websockets alike, whichever ARI client (or anything else) opened it. A connection beyond the
limit is accepted and closed at once, before any request is read: the client gets no HTTP
answer, only the closed connection ("Server disconnected"), and Asterisk logs
`HTTP session count exceeded 100 sessions.` (main/http.c, httpd_helper_thread). A connection
counts until it is closed, by either side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

DEFAULT_SESSION_LIMIT = 100

log = logging.getLogger(__name__)


class SessionGate:
    """Counts open HTTP connections and refuses those beyond `limit`."""

    def __init__(self, limit: int = DEFAULT_SESSION_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the session limit must be at least 1")
        self.limit = limit
        self.open = 0  # connections open now
        self.peak = 0  # most open at once
        self.refused = 0  # connections closed at once for being beyond the limit

    def protocol_factory(
        self, serve: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """A factory for `loop.create_server`: `serve()` makes the HTTP protocol of a
        connection within the limit; one beyond it gets a protocol that closes it."""

        def make() -> asyncio.Protocol:
            if self.open >= self.limit:
                self.refused += 1
                log.warning("HTTP session count exceeded %d sessions.", self.limit)
                return _Refused()
            self.open += 1
            self.peak = max(self.peak, self.open)
            return _Counted(serve(), self._closed)

        return make

    def _closed(self) -> None:
        self.open -= 1

    def to_json(self) -> dict[str, int]:
        return {"limit": self.limit, "open": self.open, "peak": self.peak, "refused": self.refused}


class _Counted(asyncio.Protocol):
    """Passes everything to the HTTP protocol; tells the gate when the connection is gone."""

    def __init__(self, inner: asyncio.Protocol, on_closed: Callable[[], None]) -> None:
        self._inner = inner
        self._on_closed: Callable[[], None] | None = on_closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._on_closed is not None:
            on_closed, self._on_closed = self._on_closed, None
            on_closed()
        self._inner.connection_lost(exc)


class _Refused(asyncio.Protocol):
    """A connection beyond the limit: closed without reading or answering anything
    (Asterisk shuts the socket down both ways, then closes it)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        with contextlib.suppress(OSError, RuntimeError):
            transport.write_eof()
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass
