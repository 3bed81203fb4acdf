"""Open client connections across all protocols: caps, live state, and the console's view.

Adapters ask ``admit`` before they register a connection with ``open``, report the user with
``update(info, user=...)`` once it has authenticated, and ``closed`` it when it ends; updates
publish ``ConnectionUpdated`` at most once per ``UPDATE_INTERVAL`` per connection, so a busy
session never floods the bus.

Room for real users (issue 11; Dovecot's login processes behave the same way): a connection
that has not authenticated yet holds a *pre-login* slot. Pre-login slots are capped per
protocol family (``preauth_connections``) and all slots together by ``connections``. When a
new connection finds either cap full, ``admit`` drops a pre-login connection to make room
instead of refusing the newcomer, so a flood of idle connections can delay a real user by one
login at most and never lock them out. Which one goes is chosen for fairness: the oldest
pre-login connection of the address holding the most of them (the newcomer counted), so an
attacker holding many slots from a few addresses loses its own connections first, while a
user's one pending login from another address survives. Authenticated sessions are never
dropped to make room: they are bounded by ``connections``, ``connections_per_ip`` and the
adapters' per-user caps only. A new connection over ``connections_per_ip`` is refused (the
address is its own competition).
"""

from __future__ import annotations

import collections
import itertools
import logging
import resource
import time
from dataclasses import dataclass, field
from typing import Callable, Final

from .events import ConnectionClosed, ConnectionOpened, ConnectionUpdated, EventBus

log = logging.getLogger("rmail.connections")

#: Listen backlog of every listener. asyncio's default of 100 drops SYNs when hundreds of
#: clients connect at once (each dropped one retries a second or more later); the kernel caps
#: it at net.core.somaxconn.
LISTEN_BACKLOG = 1024
#: Minimum seconds between two ConnectionUpdated events of one connection.
UPDATE_INTERVAL = 0.25
#: Seconds between two log lines about dropped pre-login connections (a flood drops thousands).
EVICTION_LOG_INTERVAL = 10.0

#: Descriptors kept beside the connection cap: listeners, the database and its WAL, blob files
#: being read or written, the event loop's own.
FD_HEADROOM: Final = 256

#: Protocol → the family whose pre-login slots it shares. Implicit-TLS and STARTTLS ports of
#: one service are one family; port 25 (other servers, never logging in) is apart from
#: submission (users), so a flood on one cannot drop the other's pending logins.
FAMILY: Final[dict[str, str]] = {
    "imap": "imap", "imaps": "imap",
    "smtp": "smtp",
    "submission": "submission", "smtps": "submission",
    "api": "api",
}


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
    #: Console "disconnect" and shutdown.
    close: Callable[[], None] | None = None
    #: Dropped to make room for another connection: say so in the protocol, then close.
    #: ``close`` is used when unset.
    evict: Callable[[], None] | None = None
    #: True once the client has logged in; it then holds no pre-login slot.
    authenticated: bool = False
    _published: float = 0.0


class _PreLogin:
    """The pre-login connections of one pool, by address, each address's oldest first."""

    __slots__ = ("by_ip", "size")

    def __init__(self) -> None:
        self.by_ip: dict[str, dict[int, ConnectionInfo]] = {}
        self.size = 0

    def add(self, info: ConnectionInfo) -> None:
        self.by_ip.setdefault(info.peer, {})[info.id] = info
        self.size += 1

    def remove(self, info: ConnectionInfo) -> None:
        conns = self.by_ip.get(info.peer)
        if conns is None or conns.pop(info.id, None) is None:
            return
        self.size -= 1
        if not conns:
            del self.by_ip[info.peer]

    def victim(self, newcomer_ip: str) -> ConnectionInfo | None:
        """The connection to drop for a newcomer from ``newcomer_ip``, or None if empty.

        The oldest of the address holding the most, counting the newcomer with its address;
        on a tie the newcomer's own address pays first, then the address with the oldest one.
        Linear in the number of addresses: a spray from many addresses costs microseconds per
        connection, and then every address holds one, so the oldest overall goes (Dovecot).
        """
        best: ConnectionInfo | None = None
        best_key: tuple[int, bool, int] | None = None
        for ip, conns in self.by_ip.items():
            oldest = next(iter(conns.values()))
            mine = ip == newcomer_ip
            key = (len(conns) + mine, mine, -oldest.id)
            if best_key is None or key > best_key:
                best, best_key = oldest, key
        return best


class ConnectionRegistry:
    """Every open connection, with the caps that decide who may open one.

    Args:
        bus: where Connection* events go (the console's Connections pane).
        max_total: all connections together (``limits.connections``).
        max_per_ip: connections from one address, logged in or not (``limits.connections_per_ip``).
        max_preauth: pre-login connections per protocol family (``limits.preauth_connections``);
            None means only ``max_total`` bounds them.
    """

    def __init__(self, bus: EventBus, *, max_total: int, max_per_ip: int,
                 max_preauth: int | None = None) -> None:
        self.bus = bus
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.max_preauth = max_preauth if max_preauth is not None else max_total
        self._ids = itertools.count(1)
        self._open: dict[int, ConnectionInfo] = {}
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._preauth_all = _PreLogin()
        self._preauth: dict[str, _PreLogin] = collections.defaultdict(_PreLogin)
        self.peak = 0
        self.total = 0
        #: Pre-login connections dropped to make room (the console and docs/SECURITY.md).
        self.evicted = 0
        self._evicted_logged = 0
        self._eviction_logged_at = 0.0

    def admit(self, protocol: str, peer_ip: str) -> str | None:
        """None if a new ``protocol`` connection from ``peer_ip`` may open, else why not.

        Makes room first when a cap is full by dropping a pre-login connection (see the
        module docstring); the caller then registers the newcomer with ``open`` at once.
        """
        if self._per_ip[peer_ip] >= self.max_per_ip:
            return "too many connections from your address"
        pool = self._preauth[FAMILY.get(protocol, protocol)]
        if pool.size >= self.max_preauth:
            victim = pool.victim(peer_ip)
            if victim is not None:
                self._evict(victim)
        if len(self._open) >= self.max_total:
            victim = self._preauth_all.victim(peer_ip)
            if victim is None:
                return "too many connections"
            self._evict(victim)
        return None

    def open(self, protocol: str, port: int, peer_ip: str, tls: bool,
             close: Callable[[], None] | None = None,
             evict: Callable[[], None] | None = None) -> ConnectionInfo:
        info = ConnectionInfo(next(self._ids), protocol, port, peer_ip, tls, close=close, evict=evict)
        self._open[info.id] = info
        self._per_ip[peer_ip] += 1
        self._preauth[FAMILY.get(protocol, protocol)].add(info)
        self._preauth_all.add(info)
        self.total += 1
        self.peak = max(self.peak, len(self._open))
        self.bus.publish(ConnectionOpened(info.id, protocol, port, peer_ip, tls))
        return info

    def update(self, info: ConnectionInfo, *, force: bool = False, **changes: object) -> None:
        """Change what the console shows; a non-None ``user`` marks the login (see
        ``authenticated``)."""
        for key, value in changes.items():
            setattr(info, key, value)
        if changes.get("user") is not None and not info.authenticated:
            self._logged_in(info)
        now = time.monotonic()
        if force or now - info._published >= UPDATE_INTERVAL:
            info._published = now
            self.bus.publish(ConnectionUpdated(info.id, info.state, info.user, info.tls,
                                               info.bytes_in, info.bytes_out))

    def authenticated(self, info: ConnectionInfo, user: str) -> None:
        """The client logged in as ``user``: it leaves the pre-login pool for good."""
        if not info.authenticated:
            self.update(info, force=True, user=user)

    def _logged_in(self, info: ConnectionInfo) -> None:
        info.authenticated = True
        self._preauth[FAMILY.get(info.protocol, info.protocol)].remove(info)
        self._preauth_all.remove(info)

    def closed(self, info: ConnectionInfo) -> None:
        if self._open.pop(info.id, None) is None:
            return
        self._per_ip[info.peer] -= 1
        if self._per_ip[info.peer] <= 0:
            del self._per_ip[info.peer]
        if not info.authenticated:
            self._preauth[FAMILY.get(info.protocol, info.protocol)].remove(info)
            self._preauth_all.remove(info)
        self.bus.publish(ConnectionClosed(info.id))

    def _evict(self, info: ConnectionInfo) -> None:
        """Free ``info``'s slot now and ask its adapter to say goodbye and close.

        The slot is released before the transport closes (that takes a loop turn), so the
        newcomer fits; the adapter's later ``closed`` call finds nothing to do.
        """
        self.closed(info)
        self.evicted += 1
        now = time.monotonic()
        if now - self._eviction_logged_at >= EVICTION_LOG_INTERVAL:
            log.warning("connections: slots full; dropped %d pre-login connection(s), the latest "
                        "from %s (%s)", self.evicted - self._evicted_logged, info.peer, info.protocol)
            self._eviction_logged_at = now
            self._evicted_logged = self.evicted
        drop = info.evict or info.close
        if drop is not None:
            try:
                drop()
            except Exception:  # noqa: BLE001 - one broken transport must not refuse the newcomer
                log.exception("connections: closing an evicted connection failed")

    def preauth_count(self, protocol: str | None = None) -> int:
        """Pre-login connections of ``protocol``'s family, or of all when None."""
        if protocol is None:
            return self._preauth_all.size
        return self._preauth[FAMILY.get(protocol, protocol)].size

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


def raise_fd_limit(max_connections: int) -> None:
    """Raise the soft RLIMIT_NOFILE so ``max_connections`` sockets fit (up to the hard limit).

    Many systems start services with a soft limit of 1024: with ``limits.connections`` at
    1000 the process would run out of descriptors before the cap, and asyncio then stops
    accepting for a second at a time, for real users too. Logs when even the hard limit
    is too low.
    """
    need = max_connections + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("connections: cannot raise the open-file limit to %d: %s", target, exc)
    if soft != resource.RLIM_INFINITY and soft < need:
        log.warning("connections: the open-file limit (%d) is below limits.connections + %d; "
                    "raise it (ulimit -n, systemd LimitNOFILE=) or lower limits.connections",
                    soft, FD_HEADROOM)
