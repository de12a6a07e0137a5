"""The Postgres store: alerts and call timelines, written in the background, read back.

It writes the call records of `calls/records.py`: `statements.py` (each record's SQL),
`spool.py` (records waiting on disk), `writer.py` (the queue and its retries), `queries.py`
(reading alerts back), `migrate.py` (the schema).
"""

from ari_controller.calls.records import (
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
from ari_controller.store.migrate import MigrationError, migrate
from ari_controller.store.queries import get_alert, list_alerts, pending_notifications
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
