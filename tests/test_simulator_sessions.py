"""The simulator's HTTP session limit, as Asterisk's http.conf `sessionlimit` (default 100):
every open connection counts (REST keep-alive and websockets alike); one beyond the limit is
closed at once without an HTTP answer; a closed one frees its place."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from ari_controller.simulator import Simulator
from ari_controller.simulator.sessions import DEFAULT_SESSION_LIMIT, SessionGate
from ari_controller.testing.postgres import free_port
from tests.fixtures_simulator import SIM_PASSWORD, SIM_USER

AUTH = base64.b64encode(f"{SIM_USER}:{SIM_PASSWORD}".encode()).decode()


class RawConnection:
    """One keep-alive HTTP/1.1 connection, held open until closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str = "/ari/asterisk/info") -> int | None:
        """The status of a GET on this connection, or None when the connection is closed
        without an answer."""
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {AUTH}\r\n"
            "Connection: keep-alive\r\n\r\n".encode()
        )
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode().split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def limited() -> AsyncIterator[Simulator]:
    """A simulator with the default session limit, which nothing else talks to."""
    sim = Simulator(user=SIM_USER, password=SIM_PASSWORD, time_scale=20.0)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def _until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_default_limit_is_asterisks() -> None:
    assert DEFAULT_SESSION_LIMIT == 100
    assert Simulator().sessions.limit == 100
    with pytest.raises(ValueError):
        SessionGate(0)


async def test_the_101st_connection_is_closed_unanswered_the_100th_served(
    limited: Simulator,
) -> None:
    held = [await RawConnection.open(limited.port) for _ in range(99)]
    try:
        # Every one of them is served (and stays open: keep-alive).
        assert await asyncio.gather(*(c.get() for c in held)) == [200] * 99
        hundredth = await RawConnection.open(limited.port)
        held.append(hundredth)
        assert await hundredth.get() == 200
        assert limited.sessions.open == 100
        extra = await RawConnection.open(limited.port)
        assert await extra.get() is None  # closed, no HTTP answer at all
        await extra.close()
        # An HTTP client sees the server hang up, as with Asterisk.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with session.get(f"{limited.ari_url}/asterisk/info"):
                    pass
        assert limited.sessions.refused >= 2  # aiohttp may try a GET twice
        # The ones within the limit go on working.
        assert await hundredth.get() == 200
        # A closed connection frees its place.
        await held.pop(0).close()
        await _until(lambda: limited.sessions.open == 99)
        again = await RawConnection.open(limited.port)
        held.append(again)
        assert await again.get() == 200
        assert limited.sessions.peak == 100
    finally:
        for connection in held:
            await connection.close()
    await _until(lambda: limited.sessions.open == 0)


async def test_websockets_count_against_the_limit(limited: Simulator) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {AUTH}"}) as session:
        ws = await session.ws_connect(f"{limited.ari_url}/events", params={"app": "callrouting"})
        held = [await RawConnection.open(limited.port) for _ in range(99)]
        try:
            assert await asyncio.gather(*(c.get() for c in held)) == [200] * 99
            extra = await RawConnection.open(limited.port)
            assert await extra.get() is None
            await extra.close()
            # The websocket closing frees a place.
            await ws.close()
            await _until(lambda: limited.sessions.open == 99)
            again = await RawConnection.open(limited.port)
            held.append(again)
            assert await again.get() == 200
        finally:
            for connection in held:
                await connection.close()


async def test_a_small_limit_and_the_inspection_endpoint() -> None:
    sim = Simulator(session_limit=2)
    await sim.start()
    try:
        first = await RawConnection.open(sim.port)
        assert await first.get("/_sim/sessions") == 200
        second = await RawConnection.open(sim.port)
        assert await second.get() == 200
        third = await RawConnection.open(sim.port)
        assert await third.get() is None
        for connection in (first, second, third):
            await connection.close()
        await _until(lambda: sim.sessions.open == 0)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{sim.url}/_sim/sessions") as reply:
                figures = await reply.json()
        assert figures == {"limit": 2, "open": 1, "peak": 2, "refused": 1}
    finally:
        await sim.stop()


async def test_the_command_line_takes_a_session_limit() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari_controller.simulator",
        "--port",
        str(port),
        "--session-limit",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"ARI simulator on" in line
        first = await RawConnection.open(port)
        assert await first.get() == 200
        second = await RawConnection.open(port)
        assert await second.get() is None
        await second.close()
        await first.close()
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    assert b"HTTP session count exceeded 1 sessions." in stderr
    refused = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari_controller.simulator",
        "--session-limit",
        "0",
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await refused.communicate()
    assert refused.returncode == 2 and b"--session-limit" in stderr
