"""The privileged-port rule that the server and the mail client share.

A process that may bind ports below 1024 (root, or one holding CAP_NET_BIND_SERVICE, as the
systemd unit grants) keeps the standard port numbers; any other adds ``UNPRIVILEGED_OFFSET``
to the ports left at their defaults (SPEC Part 3). The client applies the same rule to a
server on this machine, so both agree without configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["UNPRIVILEGED_OFFSET", "may_bind_privileged_ports"]

#: Added to every default port when the process may not bind privileged ports.
UNPRIVILEGED_OFFSET = 10000
#: CAP_NET_BIND_SERVICE's bit in the capability masks (linux/capability.h).
_CAP_NET_BIND_SERVICE = 10


def may_bind_privileged_ports(*, euid: int | None = None, proc_status: str | None = None) -> bool:
    """Root, or a process holding CAP_NET_BIND_SERVICE: either may bind ports below 1024."""
    if (os.geteuid() if euid is None else euid) == 0:
        return True
    if proc_status is None:
        try:
            proc_status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace")
        except OSError:
            return False      # not Linux: only root counts
    for line in proc_status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> _CAP_NET_BIND_SERVICE & 1)
    return False
