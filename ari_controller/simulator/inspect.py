"""What a test (or the demo) may look at: media per channel, call history, leftovers."""

from __future__ import annotations

from ari_controller.simulator.events import JSON
from ari_controller.simulator.state import Asterisk


def channel_media(asterisk: Asterisk, channel_id: str) -> list[JSON]:
    """Ordered media of a channel (live or gone): playbacks, MOH, recordings."""
    channel = asterisk.channels.get(channel_id) or asterisk.gone_channels.get(channel_id)
    if channel is None:
        return []
    return [entry.to_json() for entry in channel.media_log]


def bridge_media(asterisk: Asterisk, bridge_id: str) -> list[JSON]:
    bridge = asterisk.bridges.get(bridge_id)
    return [] if bridge is None else [entry.to_json() for entry in bridge.media_log]


def history(asterisk: Asterisk) -> list[JSON]:
    return [record.to_json() for record in asterisk.history]


def live_channels(asterisk: Asterisk) -> list[JSON]:
    return [
        {
            **c.snapshot(),
            "in_stasis": c.stasis_app,
            "bridge": c.bridge.id if c.bridge else None,
            "subscribed": sorted(c.apps),
            "linkedid": c.linkedid,
            "formats": ",".join(c.formats),
        }
        for c in asterisk.channels.values()
    ]


def live_bridges(asterisk: Asterisk) -> list[JSON]:
    return [b.to_json() for b in asterisk.bridges.values()]


def live_playbacks(asterisk: Asterisk) -> list[JSON]:
    return [p.to_json() for p in asterisk.playbacks.values()]


def live_recordings(asterisk: Asterisk) -> list[JSON]:
    return [r.to_json() for r in asterisk.live_recordings.values()]


# What `leftovers` says once a controller cleaned up after itself.
NOTHING_LEFT: JSON = {"channels": [], "bridges": [], "playbacks": [], "recordings": []}


def leftovers(asterisk: Asterisk) -> JSON:
    """Everything still alive that a controller started (app channels, bridges, media).
    Channels outside any app (a phone's `;2` half, a call in the fallback) do not count."""
    return {
        "channels": sorted(c.id for c in asterisk.channels.values() if c.stasis_app),
        "bridges": sorted(asterisk.bridges),
        "playbacks": sorted(asterisk.playbacks),
        "recordings": sorted(asterisk.live_recordings),
    }
