"""The failed-login ledger: the counts behind the login locks, kept where every node that
shares a store sees them (core/authguard.py says what the counts mean and uses them).

A ledger holds *counters* under opaque string keys (the guard makes one per (address, user)
pair, per address and per user name) and *known* marks (a pair that logged in recently).
A counter is a leaky bucket: it gains 1 per failure and loses ``limit`` per ``seconds``;
the failure that takes it past ``limit - 1`` locks it for ``seconds`` and starts it afresh
at 0. The ledger applies that rule itself, atomically per counter, however many nodes record
failures at once, on one clock of its own (nodes' clocks need not agree: times cross the
contract as "seconds from now").

What stays out of a ledger, because it is per node by nature: checks in flight (their
reservations) and the cap on concurrent checks per address, which guard this node's own
password-checking threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

__all__ = ["Bucket", "FailureCount", "FailureLedger", "Standing"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """A counter to add one failure to, with its tier's rule."""

    key: str
    limit: int          #: failures that lock (at least 1)
    seconds: float      #: how long a lock lasts; the count also leaks ``limit`` per ``seconds``


@dataclass(frozen=True, slots=True)
class FailureCount:
    """One counter as the ledger holds it."""

    level: float = 0.0          #: failures, leaked up to now (0 right after a lock started)
    locked_for: float = 0.0     #: seconds until its lock ends; 0: not locked
    #: Orders what a node hears about one counter: every change gives it a higher version
    #: than any it had before, so a node can tell a stale answer from a fresh one when
    #: answers arrive out of order. 0: the ledger holds no such counter.
    version: int = 0
    started: bool = False       #: ``fail`` only: this very failure started the lock


@dataclass(frozen=True, slots=True)
class Standing:
    """What ``look`` found: the counters it holds (keys it holds nothing for are absent)
    and how much longer the pair asked about stays known."""

    counts: Mapping[str, FailureCount]
    known_for: float = 0.0      #: seconds; 0: not known


class FailureLedger(Protocol):
    """Failure counters and known pairs shared by the nodes of one store.

    Every method raises TemporaryFailure (never a driver's exception) when the ledger cannot
    answer; the guard then counts on its own node alone for a while.
    """

    async def look(self, keys: Sequence[str], known: str) -> Standing:
        """The counters under ``keys`` now, and whether ``known`` is a known pair. Changes
        nothing (a refused login must leave no trace)."""
        ...

    async def fail(self, buckets: Sequence[Bucket]) -> dict[str, FailureCount]:
        """Add one failure to each bucket's counter (created at 0 if absent) under its rule,
        and return every counter as it now stands, ``started`` set where this call started
        a lock. Two nodes' calls on one counter never lose an increment. Counters worth
        nothing any more (leaked to 0, lock over) are dropped in time, so the ledger stays
        bounded by the failures of the last lockout periods."""
        ...

    async def succeed(self, key: str, known_seconds: float) -> None:
        """A login succeeded: the counter under ``key`` (the pair's), if the ledger holds one,
        starts afresh at 0, not locked, with a new version (so every node hears of it); and
        ``key`` is known for at least ``known_seconds`` from now."""
        ...
