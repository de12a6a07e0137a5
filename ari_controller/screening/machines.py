"""Is an automated caller talking to the menu? Pure: the call flow measures, this decides.

A recorded announcement or a monitoring system's voice call talks on and on and never
presses a key. A person listens to the menu, says a word or two, or presses a key. So a
caller who pressed nothing and talked for most of the time the menu was offered (and for a
while in all) sounds like a machine; a silent caller never does, and neither does a hesitant
one who spoke once. Even then the call flow asks once more ("If you are a person, press any
key now.") before sending the call to voicemail.
"""

from __future__ import annotations

from dataclasses import dataclass

from ari_controller.screening.settings import MachineDetection


@dataclass(frozen=True, slots=True)
class Talk:
    """What the caller did while the menu was offered: seconds talked (as Asterisk's talk
    detection counts them), seconds the menu was offered, and whether a key was pressed."""

    talked_s: float
    offered_s: float
    pressed_a_key: bool

    @property
    def share(self) -> float:
        return self.talked_s / self.offered_s if self.offered_s > 0 else 0.0


def sounds_like_a_machine(talk: Talk, settings: MachineDetection) -> bool:
    if not settings.enabled or talk.pressed_a_key:
        return False
    return talk.talked_s >= settings.min_talk_s and talk.share >= settings.min_share
