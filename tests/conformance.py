"""Compare a JSONL trace the simulator produced with the real Asterisk trace.

What must match:
- the control sequence, call for call: every REST call (method, path, params, status, body
  shape and error message), websocket connect/close and recorder notes ("wait timed out");
- the bodies that tell Asterisk's state: which channels and bridges an application is
  subscribed to (`GET /applications/{app}`: `channel_ids`, `bridge_ids`, as sets), and each
  channel's `id`, `state` and `dialplan.app_name` in `GET /channels` (as a set) and
  `GET /channels/{id}`;
- the events: same multiset of (type, channel, channel state, the dialplan application
  and data the channel runs, digit, cause, dialstatus, playback id/state, recording
  name/state, bridge id/members, variable/value, args), the `;2` halves of the Local
  channels the app originated included;
- event order, except inside an *instant*: events Asterisk timestamps within 2 ms of each
  other (chained) may come in any order across different channels (Asterisk's channel,
  bridge and Dial topics are delivered independently, e.g. ChannelLeftBridge vs
  ChannelDestroyed); per channel (or playback, recording, bridge) the order must hold;
- events clearly before (after) a REST reply in the real trace (by more than 50 ms) are
  before (after) it in the simulator's trace; closer ones race in Asterisk too;
- timing: each event within 0.5 s of when Asterisk sent it (scenario time).

Ids Asterisk generates (`1795428696.2`, `Local/...-0000001b;1`) differ between runs and
are compared by correspondence: each is replaced by its order of first appearance (lists
Asterisk answers in no particular order are put in creation order first, so that ids that
first appear there are numbered alike in both traces).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

INSTANT_MS = 2.0
RACE_SECONDS = 0.05
TIME_TOLERANCE = 0.5

GENERATED_ID = re.compile(r"\b\d{9,}\.\d+\b")
LOCAL_SERIAL = re.compile(r"-[0-9a-f]{8}(;[12])")
ANNOUNCER = re.compile(r"Announcer/ARI-[0-9a-f]{8}")
# Snoop channels are numbered per Asterisk process; the traces were recorded one after another.
SNOOP_SERIAL = re.compile(r"(Snoop/[^\"]*?)-[0-9a-f]{8}\b")


@dataclass
class Event:
    index: int
    t: float
    stamp: float  # Asterisk timestamp, seconds
    key: str  # what it is about: channel, playback, recording or bridge
    shape: tuple[Any, ...]


@dataclass
class Trace:
    control: list[tuple[int, float, tuple[Any, ...]]]  # (position, t, shape)
    events: list[Event]
    positions: dict[int, int]  # event index -> position in the whole file


def _id_order(ident: Any) -> tuple[int, int, int, str]:
    """Generated ids in creation order (epoch, then sequence), then the others by name."""
    text = str(ident)
    match = GENERATED_ID.fullmatch(text)
    if match is None:
        return (1, 0, 0, text)
    epoch, _, sequence = text.partition(".")
    return (0, int(epoch), int(sequence), "")


def _canonical(line: str) -> str:
    """A REST record whose body lists channels or ids in Asterisk's (hash) order, with the
    lists in creation order instead."""
    record = json.loads(line)
    if record.get("dir") != "rest":
        return line
    body = record.get("body")
    if isinstance(body, list) and all(isinstance(item, dict) and "id" in item for item in body):
        body.sort(key=lambda item: _id_order(item["id"]))
    elif isinstance(body, dict):
        for key in ("channel_ids", "bridge_ids"):
            if isinstance(body.get(key), list):
                body[key].sort(key=_id_order)
    else:
        return line
    return json.dumps(record, sort_keys=True)


def normalize_ids(lines: list[str]) -> list[dict[str, Any]]:
    """Replace generated ids by their order of first appearance."""
    seen: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"ID{len(seen) + 1}")

    out = []
    for line in lines:
        line = GENERATED_ID.sub(rename, _canonical(line))
        line = LOCAL_SERIAL.sub(r"-SERIAL\1", line)
        line = ANNOUNCER.sub("Announcer/ARI-SERIAL", line)
        line = SNOOP_SERIAL.sub(r"\1-SERIAL", line)
        out.append(json.loads(line))
    return out


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _body_shape(body: Any) -> Any:
    if isinstance(body, dict):
        if "message" in body:
            return ("error", body["message"])
        if "content_type" in body:
            return ("file", body["content_type"])
        return ("object", tuple(sorted(body)), body.get("id"), body.get("name"))
    if isinstance(body, list):
        return ("list", len(body))
    return body


def _channel_state(channel: Any) -> tuple[Any, ...]:
    if not isinstance(channel, dict):
        return (channel,)
    dialplan = channel.get("dialplan") or {}
    return (channel.get("id"), channel.get("state"), dialplan.get("app_name"))


def state_shape(method: str, path: str, status: int, body: Any) -> Any:
    """What a successful GET tells of Asterisk's state: an application's subscriptions,
    the channels and where each is in its dialplan; None for other requests."""
    if method != "GET" or status != 200:
        return None
    parts = path.strip("/").split("/")
    if parts[0] == "applications" and len(parts) == 2 and isinstance(body, dict):
        return (
            "subscribed",
            tuple(sorted(map(str, body.get("channel_ids", ())))),
            tuple(sorted(map(str, body.get("bridge_ids", ())))),
        )
    if parts == ["channels"] and isinstance(body, list):
        return ("channels", tuple(sorted(map(_channel_state, body), key=repr)))
    if parts[0] == "channels" and len(parts) == 2:
        return ("channel", _channel_state(body))
    return None


def event_shape(ev: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    kind = ev["type"]
    channel = ev.get("channel") or ev.get("peer") or {}
    playback = ev.get("playback") or {}
    recording = ev.get("recording") or {}
    bridge = ev.get("bridge") or {}
    key = (
        channel.get("id")
        or playback.get("id")
        or (recording and "rec:" + recording.get("name", ""))
        or bridge.get("id")
        or kind
    )
    shape = (
        kind,
        channel.get("id"),
        channel.get("state"),
        (channel.get("dialplan") or {}).get("app_name"),
        (channel.get("dialplan") or {}).get("app_data"),
        ev.get("digit"),
        ev.get("cause"),
        ev.get("dialstatus"),
        playback.get("id"),
        playback.get("state"),
        playback.get("media_uri"),
        recording.get("name"),
        recording.get("state"),
        bridge.get("id"),
        tuple(bridge.get("channels", ())),
        ev.get("variable"),
        ev.get("value"),
        tuple(ev.get("args", ())),
    )
    return str(key), shape


def parse(lines: list[str]) -> Trace:
    control: list[tuple[int, float, tuple[Any, ...]]] = []
    events: list[Event] = []
    positions: dict[int, int] = {}
    for position, rec in enumerate(normalize_ids(lines)):
        if rec["dir"] == "event":
            key, shape = event_shape(rec["event"])
            ev = Event(len(events), rec["t"], _stamp(rec["event"]["timestamp"]), key, shape)
            positions[ev.index] = position
            events.append(ev)
        elif rec["dir"] == "rest":
            shape = (
                "rest",
                rec["method"],
                rec["path"],
                tuple(sorted(rec["params"].items())),
                rec["status"],
                _body_shape(rec["body"]),
                state_shape(rec["method"], rec["path"], rec["status"], rec["body"]),
            )
            control.append((position, rec["t"], shape))
        else:
            control.append((position, rec["t"], (rec["dir"], rec["what"])))
    return Trace(control, events, positions)


def instants(events: list[Event]) -> list[list[Event]]:
    groups: list[list[Event]] = []
    for ev in events:
        if groups and (ev.stamp - groups[-1][-1].stamp) * 1000 <= INSTANT_MS:
            groups[-1].append(ev)
        else:
            groups.append([ev])
    return groups


def compare(real_lines: list[str], sim_lines: list[str]) -> list[str]:
    """Differences that matter between the real trace and the simulator's (empty: same)."""
    real, sim = parse(real_lines), parse(sim_lines)
    problems: list[str] = []
    for i in range(max(len(real.control), len(sim.control))):
        want = real.control[i][2] if i < len(real.control) else None
        got = sim.control[i][2] if i < len(sim.control) else None
        if want != got:
            problems.append(f"control #{i}: expected {want}, got {got}")
            return problems
    # Align events instant by instant.
    matched: dict[int, int] = {}  # real event index -> sim event index
    cursor = 0
    for group in instants(real.events):
        chunk = sim.events[cursor : cursor + len(group)]
        cursor += len(group)
        want_counts = Counter(e.shape for e in group)
        got_counts = Counter(e.shape for e in chunk)
        if want_counts != got_counts:
            missing = list((want_counts - got_counts).elements())
            extra = list((got_counts - want_counts).elements())
            problems.append(f"events near t={group[0].t}: missing {missing}, unexpected {extra}")
            return problems
        for key in {e.key for e in group}:
            want_order = [e.shape for e in group if e.key == key]
            got_order = [e.shape for e in chunk if e.key == key]
            if want_order != got_order:
                problems.append(f"order of {key} near t={group[0].t}: {want_order} vs {got_order}")
        pool = list(chunk)
        for ev in group:
            twin = next(s for s in pool if s.shape == ev.shape)
            pool.remove(twin)
            matched[ev.index] = twin.index
    if cursor < len(sim.events):
        problems.append(f"unexpected events at the end: {[e.shape for e in sim.events[cursor:]]}")
    # Events against REST replies, and timing.
    for (_, real_t, shape), (sim_pos, _, _) in zip(real.control, sim.control, strict=True):
        for ev in real.events:
            twin = sim.events[matched[ev.index]]
            sim_before = sim.positions[twin.index] < sim_pos
            if ev.t < real_t - RACE_SECONDS and not sim_before:
                problems.append(f"{ev.shape[:2]} must come before {shape[:3]}")
            if ev.t > real_t + RACE_SECONDS and sim_before:
                problems.append(f"{ev.shape[:2]} must come after {shape[:3]}")
    for ev in real.events:
        twin = sim.events[matched[ev.index]]
        if abs(twin.t - ev.t) > TIME_TOLERANCE:
            problems.append(f"{ev.shape[:2]} at t={twin.t}, Asterisk at t={ev.t}")
    return problems


def compare_files(real: Path, sim: Path) -> list[str]:
    return compare(real.read_text().splitlines(), sim.read_text().splitlines())
