"""A few lines of sd_notify(3): tell systemd we are ready, alive or stopping.

No dependency on libsystemd or python-systemd: the protocol is one datagram to
the AF_UNIX socket named by ``$NOTIFY_SOCKET``. Outside systemd it does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(*states: str) -> bool:
    """Send ``states`` (e.g. ``"READY=1"``) to systemd; False when not under systemd or on error."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)  # a manager that is not reading must never stall our event loop
            sock.connect(address)
            sock.send("\n".join(states).encode())
    except OSError:
        return False
    return True


def watchdog_period() -> float | None:
    """Return how often to send ``WATCHDOG=1`` (half of ``WatchdogSec``), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
