"""Scripted phones for the real-Asterisk suite, as dialplan.

A caller is `Local/<script>@suite-callers` (its `;1` half dials the DID in from-pstn, its `;2`
half runs the script); a responder is a user's contact `Local/<script>@suite-responders`.
The contexts are the suite's own, added with ThrowawayAsterisk(extra_dialplan=...), so the
project's asterisk/extensions.conf stays as shipped.
"""

from __future__ import annotations

CALLERS = "suite-callers"
RESPONDERS = "suite-responders"


def responder(script: str) -> str:
    """The contact (dial string) of a responder phone running `script`."""
    return f"Local/{script}@{RESPONDERS}"


def dialplan(contexts: dict[str, dict[str, str]]) -> str:
    """`{context: {extension: "Answer > Wait(2) > SendDTMF(1) > Hangup"}}` as extensions.conf
    text: each script's applications in order (an application without arguments may leave
    out its parentheses)."""
    lines: list[str] = []
    for context, scripts in contexts.items():
        lines.append(f"[{context}]")
        for name, script in scripts.items():
            steps = [s.strip() if "(" in s else f"{s.strip()}()" for s in script.split(">")]
            first, *rest = steps
            lines.append(f"exten => {name},1,{first}")
            lines += [f" same => n,{step}" for step in rest]
        lines.append("")
    return "\n".join(lines)
