"""ConnectionRegistry: caps, pre-login pools and which connection is dropped to make room."""

from __future__ import annotations

from rmail.server.core.connections import ConnectionInfo, ConnectionRegistry
from rmail.server.core.events import ConnectionClosed, EventBus


class Fleet:
    """Opens connections through a registry the way adapters do, and records evictions."""

    def __init__(self, **caps: int) -> None:
        self.registry = ConnectionRegistry(EventBus(), **caps)
        self.evicted: list[ConnectionInfo] = []

    def connect(self, ip: str, protocol: str = "imap") -> ConnectionInfo | str:
        reason = self.registry.admit(protocol, ip)
        if reason is not None:
            return reason
        box: list[ConnectionInfo] = []
        info = self.registry.open(protocol, 143, ip, False, evict=lambda: self.evicted.append(box[0]))
        box.append(info)
        return info


def test_per_address_cap_refuses_and_frees_on_close() -> None:
    fleet = Fleet(max_total=10, max_per_ip=2)
    a, b = fleet.connect("10.0.0.1"), fleet.connect("10.0.0.1")
    assert fleet.connect("10.0.0.1") == "too many connections from your address"
    assert isinstance(fleet.connect("10.0.0.2"), ConnectionInfo)
    assert isinstance(a, ConnectionInfo) and isinstance(b, ConnectionInfo)
    fleet.registry.closed(a)
    assert isinstance(fleet.connect("10.0.0.1"), ConnectionInfo)
    assert fleet.evicted == []


def test_full_registry_drops_the_oldest_of_the_biggest_holder() -> None:
    fleet = Fleet(max_total=6, max_per_ip=10)
    flood = [fleet.connect("10.0.0.9") for _ in range(4)]
    user = fleet.connect("10.0.0.1")
    other = fleet.connect("10.0.0.2")
    assert len(fleet.registry) == 6
    # A newcomer from a third address takes the flooder's oldest slot, not the user's.
    newcomer = fleet.connect("10.0.0.3")
    assert isinstance(newcomer, ConnectionInfo)
    assert fleet.evicted == [flood[0]]
    # The flooder's next connection pays with its own oldest one.
    fleet.connect("10.0.0.9")
    assert fleet.evicted == [flood[0], flood[1]]
    assert {c.id for c in fleet.registry.snapshot()} >= {user.id, other.id, newcomer.id}
    assert fleet.registry.evicted == 2 and len(fleet.registry) == 6


def test_authenticated_sessions_are_never_dropped() -> None:
    fleet = Fleet(max_total=3, max_per_ip=10)
    sessions = [fleet.connect("10.0.0.1") for _ in range(2)]
    for info in sessions:
        fleet.registry.update(info, user="alice@example.com", state="authenticated")
    waiting = fleet.connect("10.0.0.2")
    assert fleet.registry.preauth_count() == 1
    fleet.connect("10.0.0.3")   # full: only the pre-login one can go
    assert fleet.evicted == [waiting]
    fleet.registry.authenticated(fleet.registry.snapshot()[-1], "bob@example.com")
    assert fleet.connect("10.0.0.4") == "too many connections"
    assert all(c.authenticated for c in fleet.registry.snapshot())


def test_family_pools_are_separate() -> None:
    fleet = Fleet(max_total=100, max_per_ip=100, max_preauth=3)
    imap = [fleet.connect("10.0.0.9", "imap") for _ in range(3)]
    submission = fleet.connect("10.0.0.8", "submission")
    # imaps shares IMAP's pool; a fourth pre-login IMAP connection drops the oldest IMAP one,
    # never the pending submission login.
    fleet.connect("10.0.0.7", "imaps")
    assert fleet.evicted == [imap[0]]
    assert fleet.registry.preauth_count("imap") == 3
    assert fleet.registry.preauth_count("smtps") == 1 and submission not in fleet.evicted


def test_ties_fall_to_the_oldest_and_eviction_publishes_closed() -> None:
    fleet = Fleet(max_total=3, max_per_ip=10)
    feed = fleet.registry.bus.feed(lambda e: isinstance(e, ConnectionClosed))
    first, second, third = (fleet.connect(f"10.0.0.{i}") for i in (1, 2, 3))
    fleet.connect("10.0.0.4")
    assert fleet.evicted == [first]
    assert [e.conn_id for e in feed.drain()] == [first.id]
    fleet.registry.closed(first)        # the adapter's own close later is harmless
    assert len(fleet.registry) == 3
    assert fleet.registry.preauth_count() == 3
    assert second in fleet.registry.snapshot() and third in fleet.registry.snapshot()
