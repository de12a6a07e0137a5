"""The floor: one bare ARI round trip against the same simulator, in a process of its own.

    python bench/floor.py --ari-url URL --user U --password P

A plain aiohttp client with its own Stasis app and one idle channel, doing nothing but
`POST /channels/{id}/play` -> PlaybackStarted and `DELETE /playbacks/{id}` -> PlaybackFinished,
one at a time, timing each from the request leaving to the event arriving on the websocket.
No controller code runs here: this is what any ARI application pays for a request and the
event it causes, and the controller's reaction time is judged against it.

Answers bench/run.py (see lines.py): {"ready": ...} once its channel is up; "begin" starts
keeping samples; "end" answers with their percentiles; "quit" hangs up and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import time
from typing import Any

import aiohttp
from instruments import percentile
from lines import read_command, say

APP = "bench-floor"
PAUSE_S = 0.02  # between round trips: a light, steady probe
EVENT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 10.0
MIN_SAMPLES = 10
MIN_SAMPLES_WAIT_S = 5.0


class Floor:
    def __init__(
        self,
        ari_url: str,
        user: str,
        password: str,
        formats: str | None = None,
        pause_s: float = PAUSE_S,
    ) -> None:
        self.ari_url = ari_url.rstrip("/")
        # A real Asterisk plays to a Local channel originated without formats at about ten
        # times the CPU: bench/real_asterisk.py asks for ulaw, as a trunk's call would be.
        self.formats = formats
        self.pause_s = pause_s
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.samples: list[float] = []
        self.recording = False
        self.errors = 0
        self._waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        self._ids = itertools.count(1)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            arrived = time.perf_counter()
            event = json.loads(message.data)
            kind = event.get("type", "")
            ident = (event.get("playback") or event.get("channel") or {}).get("id", "")
            waiter = self._waiters.pop((kind, ident), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(arrived)

    def _expect(self, kind: str, ident: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[(kind, ident)] = future
        return future

    async def _round_trip(
        self, session: aiohttp.ClientSession, method: str, path: str, kind: str, ident: str
    ) -> float:
        arrived = self._expect(kind, ident)
        sent = time.perf_counter()
        async with session.request(method, self.ari_url + path) as response:
            await response.read()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status}")
        return await asyncio.wait_for(arrived, EVENT_TIMEOUT_S) - sent

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(headers=self.headers, timeout=timeout) as session:
            ws = await session.ws_connect(
                self.ari_url + "/events", params={"app": APP}, heartbeat=10.0
            )
            reader = asyncio.create_task(self._read(ws))
            channel = f"bench-floor-{int(time.time())}"
            try:
                started = self._expect("StasisStart", channel)
                params = {"endpoint": "Local/bench_idle@caller", "app": APP, "channelId": channel}
                if self.formats:
                    params["formats"] = self.formats
                async with session.post(self.ari_url + "/channels", params=params) as response:
                    if response.status != 200:
                        raise RuntimeError(f"floor channel: {response.status}")
                await asyncio.wait_for(started, EVENT_TIMEOUT_S)
                probing = asyncio.create_task(self._probe(session, channel))
                say({"ready": True})
                await self._obey()
                probing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probing
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.delete(f"{self.ari_url}/channels/{channel}"):
                        pass
            finally:
                reader.cancel()
                await ws.close()

    async def _probe(self, session: aiohttp.ClientSession, channel: str) -> None:
        while True:
            playback = f"bench-floor-pb-{next(self._ids)}"
            try:
                started = await self._round_trip(
                    session,
                    "POST",
                    f"/channels/{channel}/play?media=sound:tt-monkeys&playbackId={playback}",
                    "PlaybackStarted",
                    playback,
                )
                stopped = await self._round_trip(
                    session, "DELETE", f"/playbacks/{playback}", "PlaybackFinished", playback
                )
            except (aiohttp.ClientError, TimeoutError, RuntimeError):
                self.errors += 1
                await asyncio.sleep(self.pause_s)
                continue
            if self.recording:
                self.samples.extend((started, stopped))
            await asyncio.sleep(self.pause_s)

    async def _obey(self) -> None:
        while True:
            command = await read_command()
            if command == "begin":
                self.samples.clear()
                self.errors = 0
                self.recording = True
                say({"begun": True})
            elif command == "end":
                # A very short run still gets a few round trips to compare with.
                deadline = time.monotonic() + MIN_SAMPLES_WAIT_S
                while (  # noqa: ASYNC110 (samples come from _probe, one every ~20 ms)
                    len(self.samples) < MIN_SAMPLES and time.monotonic() < deadline
                ):
                    await asyncio.sleep(PAUSE_S)
                self.recording = False
                say(self.figures())
            elif command == "quit":
                return
            else:
                say({"error": f"unknown command {command!r}"})

    def figures(self) -> dict[str, Any]:
        def ms(q: float) -> float | None:
            if not self.samples:
                return None
            return round(percentile(self.samples, q) * 1000.0, 3)

        return {
            "floor_ms": {"p50": ms(50), "p99": ms(99)},
            "floor_samples": len(self.samples),
            "floor_errors": self.errors,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ari-url", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--formats", help="formats of the probe's channel, e.g. ulaw")
    parser.add_argument("--pause", type=float, default=PAUSE_S, help="seconds between round trips")
    args = parser.parse_args()
    floor = Floor(args.ari_url, args.user, args.password, args.formats, args.pause)
    asyncio.run(floor.run())


if __name__ == "__main__":
    main()
