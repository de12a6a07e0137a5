"""Asterisk REST Interface: the REST client, the events websocket, and their typed values."""

from ari_controller.ari.client import AriClient
from ari_controller.ari.errors import (
    AriError,
    AriTimeout,
    AriUnreachable,
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnprocessableEntity,
)
from ari_controller.ari.events import EventConnection, EventRouter, Mailbox
from ari_controller.ari.models import (
    Application,
    AriEvent,
    Bridge,
    Channel,
    LiveRecording,
    Playback,
    StoredRecording,
)

__all__ = [
    "Application",
    "AriClient",
    "AriError",
    "AriEvent",
    "AriTimeout",
    "AriUnreachable",
    "BadRequest",
    "Bridge",
    "Channel",
    "Conflict",
    "EventConnection",
    "EventRouter",
    "LiveRecording",
    "Mailbox",
    "NotFound",
    "Playback",
    "PreconditionFailed",
    "ServerError",
    "ServiceUnavailable",
    "StoredRecording",
    "Unauthorized",
    "UnprocessableEntity",
]
