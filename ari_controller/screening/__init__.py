"""Caller screening: who may call a number, how often, and with which PIN.

Pure decisions (no I/O, no clock reads): caller IDs normalised (callerid), block and allow
lists (lists), PIN hashes (pins), the flood state (flood), the verdict (decide), and their
configuration (settings). The call flow counts calls, reads the clock and acts on the verdict.
"""

from ari_controller.screening.callerid import CallerId, caller_id, dialled_matches
from ari_controller.screening.decide import Step, Verdict, screen
from ari_controller.screening.flood import NO_FLOOD, FloodState, next_flood_state
from ari_controller.screening.lists import match, normalise_pattern
from ari_controller.screening.pins import check_pin, hash_pin
from ari_controller.screening.settings import GlobalScreening, PinConfig, ScreeningSettings

__all__ = [
    "NO_FLOOD",
    "CallerId",
    "FloodState",
    "GlobalScreening",
    "PinConfig",
    "ScreeningSettings",
    "Step",
    "Verdict",
    "caller_id",
    "check_pin",
    "dialled_matches",
    "hash_pin",
    "match",
    "next_flood_state",
    "normalise_pattern",
    "screen",
]
