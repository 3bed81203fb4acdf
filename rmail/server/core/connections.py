"""Open client connections across all protocols: caps, live state, and the console's view.

Adapters register each connection when it opens and close it when it ends; updates publish
``ConnectionUpdated`` at most once per ``UPDATE_INTERVAL`` per connection, so a busy session
never floods the bus.
"""

from __future__ import annotations

import collections
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

from .events import ConnectionClosed, ConnectionOpened, ConnectionUpdated, EventBus

#: Listen backlog of every listener. asyncio's default of 100 drops SYNs when hundreds of
#: clients connect at once (each dropped one retries a second or more later); the kernel caps
#: it at net.core.somaxconn.
LISTEN_BACKLOG = 1024
#: Minimum seconds between two ConnectionUpdated events of one connection.
UPDATE_INTERVAL = 0.25


@dataclass(slots=True)
class ConnectionInfo:
    id: int
    protocol: str
    port: int
    peer: str
    tls: bool
    since: float = field(default_factory=time.time)
    user: str | None = None
    state: str = "connected"
    bytes_in: int = 0
    bytes_out: int = 0
    close: Callable[[], None] | None = None
    _published: float = 0.0


class ConnectionRegistry:
    def __init__(self, bus: EventBus, *, max_total: int, max_per_ip: int) -> None:
        self.bus = bus
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self._ids = itertools.count(1)
        self._open: dict[int, ConnectionInfo] = {}
        self._per_ip: collections.Counter[str] = collections.Counter()
        self.peak = 0
        self.total = 0

    def admit(self, peer_ip: str) -> str | None:
        """None if a new connection from ``peer_ip`` may open, else the reason it may not."""
        if len(self._open) >= self.max_total:
            return "too many connections"
        if self._per_ip[peer_ip] >= self.max_per_ip:
            return "too many connections from your address"
        return None

    def open(self, protocol: str, port: int, peer_ip: str, tls: bool,
             close: Callable[[], None] | None = None) -> ConnectionInfo:
        info = ConnectionInfo(next(self._ids), protocol, port, peer_ip, tls, close=close)
        self._open[info.id] = info
        self._per_ip[peer_ip] += 1
        self.total += 1
        self.peak = max(self.peak, len(self._open))
        self.bus.publish(ConnectionOpened(info.id, protocol, port, peer_ip, tls))
        return info

    def update(self, info: ConnectionInfo, *, force: bool = False, **changes: object) -> None:
        for key, value in changes.items():
            setattr(info, key, value)
        now = time.monotonic()
        if force or now - info._published >= UPDATE_INTERVAL:
            info._published = now
            self.bus.publish(ConnectionUpdated(info.id, info.state, info.user, info.tls,
                                               info.bytes_in, info.bytes_out))

    def closed(self, info: ConnectionInfo) -> None:
        if self._open.pop(info.id, None) is None:
            return
        self._per_ip[info.peer] -= 1
        if self._per_ip[info.peer] <= 0:
            del self._per_ip[info.peer]
        self.bus.publish(ConnectionClosed(info.id))

    def count_user(self, protocol: str, user: str) -> int:
        return sum(1 for c in self._open.values() if c.protocol == protocol and c.user == user)

    def disconnect(self, conn_id: int) -> bool:
        """Ask a connection to close (console action). False if unknown or not closable."""
        info = self._open.get(conn_id)
        if info is None or info.close is None:
            return False
        info.close()
        return True

    def snapshot(self) -> list[ConnectionInfo]:
        return sorted(self._open.values(), key=lambda c: c.id)

    def __len__(self) -> int:
        return len(self._open)
