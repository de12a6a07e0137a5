"""systemd's notify protocol (READY, STATUS, STOPPING, WATCHDOG): a datagram to $NOTIFY_SOCKET.

Without systemd (no $NOTIFY_SOCKET) every call is a no-op, so the daemon runs the same from a
terminal, a container or a unit with Type=notify.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one notification ("READY=1", or several "KEY=value" lines); False when not run by
    systemd or when it could not be sent (a lost notification is not the daemon's failure)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when systemd does not
    watch this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        period = int(usec) / 1_000_000
    except ValueError:
        return None
    return period / 2 if period > 0 else None
