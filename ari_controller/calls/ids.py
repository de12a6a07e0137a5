"""The names a call gives the things it makes in Asterisk: legs, bridges, playbacks, recordings.

Chosen by the controller, never by Asterisk, so a call registers them before it sends the request
(events can arrive before the reply) and can find them again after a restart. Each one starts
with the id of the channel or call it belongs to: what a log line or an operator reads first.
"""

from __future__ import annotations

import itertools
import secrets

# The first argument of Stasis() on a responder leg: such a channel is never a new call.
RESPONDER_ARG = "responder"
# The first argument of Stasis() on a notification call to a person about an alert.
NOTIFICATION_ARG = "notification"
# The first argument of Stasis() on a snoop channel a call listens through (barge-in).
SNOOP_ARG = "snoop"

_playbacks = itertools.count(1)
_utterances = itertools.count(1)
_snoops = itertools.count(1)
# Tells this run's playbacks and utterances from those of an earlier run of the controller
# that Asterisk may still have (Asterisk takes a playback id already in use without a word).
RUN = secrets.token_hex(3)


def leg_id(call_id: str, order: int) -> str:
    """A responder leg: the n-th channel placed for the call."""
    return f"{leg_prefix(call_id)}{order}"


def leg_prefix(call_id: str) -> str:
    """What the id of every responder leg of the call starts with."""
    return f"{call_id}-leg"


def is_leg_of(call_id: str, channel_id: str) -> bool:
    """Whether the channel is a responder leg of the call (not the `;2` half Asterisk names
    `<leg id>;2` when it creates a Local channel for it)."""
    prefix = leg_prefix(call_id)
    return channel_id.startswith(prefix) and channel_id[len(prefix) :].isdigit()


def responder_app_args(call_id: str) -> str:
    """What a responder leg carries into Stasis(): it belongs to that call."""
    return f"{RESPONDER_ARG},{call_id}"


def notification_leg_id(delivery_id: str, attempt: int, order: int) -> str:
    """A notification call: the n-th contact rung on one attempt of one delivery (a retry
    gets new ids, so a channel of an earlier attempt still in Asterisk never gives a 409)."""
    return f"notify-{delivery_id}-a{attempt}-c{order}"


def notification_app_args(delivery_id: str) -> str:
    """What a notification call carries into Stasis(): the delivery it is for."""
    return f"{NOTIFICATION_ARG},{delivery_id}"


def bridge_id(call_id: str) -> str:
    """The bridge a caller and the accepting responder talk in."""
    return f"{call_id}-bridge"


def playback_id(channel_id: str) -> str:
    """One prompt played on a channel (unique within this process)."""
    return f"{channel_id}-pb-{RUN}-{next(_playbacks)}"


def voicemail_name(call_id: str) -> str:
    """The stored recording of the call's voicemail."""
    return f"vm-{call_id}"


def utterance_name(channel_id: str) -> str:
    """One utterance recorded to be recognised, then deleted."""
    return f"{utterance_prefix(channel_id)}{RUN}-{next(_utterances)}"


def utterance_prefix(channel_id: str) -> str:
    """What the name of every utterance recorded on the channel starts with (any run)."""
    return f"{channel_id}-said-"


def snoop_id(channel_id: str) -> str:
    """A snoop channel on the channel: its far end heard while a prompt plays to it."""
    return f"{channel_id}-snoop-{RUN}-{next(_snoops)}"
