"""A channel arriving in the application: what a new call is started from.

A StasisStart, or (after a reconnect or a lost event) a channel found in the application that
no call owns: both become the same typed Arrival, so a call picked up again starts exactly as
one that has just rung.
"""

from __future__ import annotations

from dataclasses import dataclass

from ari_controller.ari.models import AriEvent, Channel
from ari_controller.calls.ids import NOTIFICATION_ARG, RESPONDER_ARG, SNOOP_ARG


@dataclass(frozen=True, slots=True)
class Arrival:
    channel_id: str
    args: tuple[str, ...]  # the Stasis() arguments after the application's name
    caller_name: str
    caller_number: str
    exten: str  # the dialplan extension the channel was in when it entered Stasis()

    @classmethod
    def from_stasis_start(cls, event: AriEvent) -> Arrival:
        channel = event.raw.get("channel", {})
        caller = channel.get("caller", {})
        return cls(
            channel_id=event.channel_id or "",
            args=tuple(event.args),
            caller_name=caller.get("name", ""),
            caller_number=caller.get("number", ""),
            exten=channel.get("dialplan", {}).get("exten", ""),
        )

    @classmethod
    def from_channel(cls, channel: Channel) -> Arrival:
        """A channel already in Stasis(<app>,<args>...), as `GET /channels` shows it."""
        return cls(
            channel_id=channel.id,
            args=tuple(channel.dialplan_app_data.split(",")[1:]),
            caller_name=channel.caller_name,
            caller_number=channel.caller_number,
            exten=channel.dialplan_exten,
        )

    @property
    def is_responder_leg(self) -> bool:
        """A leg some call placed to a responder, not a caller."""
        return bool(self.args) and self.args[0] == RESPONDER_ARG

    @property
    def is_notification_leg(self) -> bool:
        """A call placed to a person about an alert (a notification call), not a caller."""
        return bool(self.args) and self.args[0] == NOTIFICATION_ARG

    @property
    def is_snoop(self) -> bool:
        """A snoop channel some call listened through (an earlier run's, or already over)."""
        return bool(self.args) and self.args[0] == SNOOP_ARG

    @property
    def did(self) -> str:
        """The number the caller dialled: Stasis()'s first argument, else the extension."""
        return self.args[0] if self.args else self.exten

    @property
    def caller_id(self) -> str:
        """`"Name" <number>` as a phone shows it, or the bare number."""
        if self.caller_name:
            return f'"{self.caller_name}" <{self.caller_number}>'
        return self.caller_number
