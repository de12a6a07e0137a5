"""What barge-in costs Asterisk: CPU per call with a snoop channel and back-to-back recordings
on it during the menu, against the menu alone, at the real-Asterisk benchmark's loads.

Starts a throwaway Asterisk (the build in ASTERISK_PREFIX, the project's configuration) and,
for each N (`--sizes`, default 30,100), places N silent callers at once (`formats=ulaw`, the
shipped `Local/listen@caller` into `from-pstn`) and drives them itself, as the controller does:

- menu: answer, play a prompt for `--prompt-s` seconds, stop it, hang up;
- barge-in: the same, plus a snoop (`spy=in`) on the caller and utterances recorded on it one
  after another for as long as the prompt plays (`maxSilenceSeconds=1`: a silent caller ends
  one every second, the most a call makes), each fetched and deleted, and the snoop hung up.

Asterisk's CPU (user + system, /proc) over each phase, divided by N, is the cost per call.

    .venv/bin/python bench/barge_in_cost.py [--sizes 30,100] [--prompt-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import time
from collections import defaultdict
from typing import Any

import aiohttp

from ari_controller.testing.asterisk import ThrowawayAsterisk

APP = "callrouting"


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Ari:
    def __init__(self, asterisk: ThrowawayAsterisk) -> None:
        self.base = asterisk.ari_url
        token = base64.b64encode(f"{asterisk.ari_user}:{asterisk.ari_password}".encode())
        self.session = aiohttp.ClientSession(
            headers={"Authorization": "Basic " + token.decode()},
            connector=aiohttp.TCPConnector(limit=40),
        )
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.arrived: asyncio.Queue[str] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ws = await self.session.ws_connect(f"{self.base}/events", params={"app": APP})
        self.reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            event = json.loads(message.data)
            kind = event["type"]
            channel = event.get("channel", {}).get("id")
            if kind == "StasisStart" and "-snoop" not in str(channel):
                self.arrived.put_nowait(channel)
            elif kind == "StasisStart":
                self.queues[channel].put_nowait(event)
            elif kind in ("RecordingFinished", "RecordingFailed"):
                self.queues[event["recording"]["name"]].put_nowait(event)

    async def call(self, method: str, path: str, **params: Any) -> Any:
        async with self.session.request(
            method, self.base + path, params={k: str(v) for k, v in params.items()}
        ) as reply:
            body = await reply.read()
            if reply.status >= 400 and reply.status != 404:
                raise RuntimeError(f"{method} {path}: {reply.status} {body[:200]!r}")
            return body

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.session.close()


async def one_call(ari: Ari, channel: str, prompt_s: float, barge_in: bool) -> int:
    """One caller's menu; the number of utterances recorded."""
    await ari.call("POST", f"/channels/{channel}/answer")
    snoop = f"{channel}-snoop"
    if barge_in:
        await ari.call("POST", f"/channels/{channel}/snoop", spy="in", app=APP, snoopId=snoop)
        await asyncio.wait_for(ari.queues[snoop].get(), 5)
    await ari.call(
        "POST", f"/channels/{channel}/play", media="sound:tt-monkeys", playbackId=f"{channel}-pb"
    )
    ends = time.monotonic() + prompt_s
    utterances = 0
    while barge_in and time.monotonic() < ends:
        name = f"{channel}-said-{utterances}"
        await ari.call(
            "POST",
            f"/channels/{snoop}/record",
            name=name,
            format="wav",
            maxSilenceSeconds=1,
            maxDurationSeconds=4,
            ifExists="overwrite",
        )
        await asyncio.wait_for(ari.queues[name].get(), 10)
        await ari.call("GET", f"/recordings/stored/{name}/file")
        await ari.call("DELETE", f"/recordings/stored/{name}")
        utterances += 1
    await asyncio.sleep(max(0.0, ends - time.monotonic()))
    await ari.call("DELETE", f"/playbacks/{channel}-pb")
    if barge_in:
        await ari.call("DELETE", f"/channels/{snoop}")
    await ari.call("DELETE", f"/channels/{channel}")
    return utterances


async def phase(
    ari: Ari, asterisk: ThrowawayAsterisk, size: int, prompt_s: float, barge_in: bool
) -> dict[str, Any]:
    assert asterisk.pid is not None
    before, began = cpu_s(asterisk.pid), time.monotonic()
    for i in range(size):
        await ari.call(
            "POST",
            "/channels",
            endpoint="Local/listen@caller",
            context="from-pstn",
            extension="100",
            priority=1,
            formats="ulaw",
            callerId=f"bench <+49301{i:05d}>",
        )
    channels = [await asyncio.wait_for(ari.arrived.get(), 30) for _ in range(size)]
    counts = await asyncio.gather(*(one_call(ari, c, prompt_s, barge_in) for c in channels))
    await asyncio.sleep(1.0)  # the hang-ups done
    spent, wall = cpu_s(asterisk.pid) - before, time.monotonic() - began
    return {
        "flow": "barge-in" if barge_in else "menu",
        "calls": size,
        "wall_s": round(wall, 1),
        "asterisk_cpu_s": round(spent, 2),
        "asterisk_cpu_ms_per_call": round(spent * 1000 / size, 1),
        "asterisk_cpu_mean_pct": round(spent * 100 / wall, 1),
        "utterances_per_call": round(sum(counts) / size, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="30,100")
    parser.add_argument("--prompt-s", type=float, default=10.0)
    args = parser.parse_args()
    with ThrowawayAsterisk() as asterisk:
        ari = Ari(asterisk)
        await ari.start()
        try:
            rows = []
            for size in (int(s) for s in args.sizes.split(",")):
                for barge_in in (False, True):
                    row = await phase(ari, asterisk, size, args.prompt_s, barge_in)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    await asyncio.sleep(2.0)
            left = json.loads(await ari.call("GET", "/channels"))
            stored = json.loads(await ari.call("GET", "/recordings/stored"))
            print(f"left in Asterisk: {len(left)} channels, {len(stored)} stored recordings")
            print(f"{'calls':>6} {'flow':>9} {'CPU ms/call':>12} {'mean CPU':>9} {'utt/call':>9}")
            for row in rows:
                print(
                    f"{row['calls']:>6} {row['flow']:>9} {row['asterisk_cpu_ms_per_call']:>12}"
                    f" {row['asterisk_cpu_mean_pct']:>8}% {row['utterances_per_call']:>9}"
                )
        finally:
            await ari.close()


if __name__ == "__main__":
    asyncio.run(main())
