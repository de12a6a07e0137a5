"""The Postgres store: alerts and call timelines, written in the background, read back."""

from ari_controller.store.migrate import MigrationError, migrate
from ari_controller.store.queries import get_alert, list_alerts, pending_notifications
from ari_controller.store.records import (
    AlertEscalated,
    AlertOpened,
    AlertRouted,
    AlertStatusChanged,
    CallEnded,
    CallStarted,
    LegEnded,
    LegPlaced,
    NotificationQueued,
    Record,
    TimelineEvent,
    VoicemailStored,
)
from ari_controller.store.writer import StoreWriter

__all__ = [
    "AlertEscalated",
    "AlertOpened",
    "AlertRouted",
    "AlertStatusChanged",
    "CallEnded",
    "CallStarted",
    "LegEnded",
    "LegPlaced",
    "MigrationError",
    "NotificationQueued",
    "Record",
    "StoreWriter",
    "TimelineEvent",
    "VoicemailStored",
    "get_alert",
    "list_alerts",
    "migrate",
    "pending_notifications",
]
