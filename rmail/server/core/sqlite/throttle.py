"""The embedded backend's failed-login ledger (storage.FailureLedger), in this process's memory.

Nothing to share: one process serves an embedded store (it holds the data-dir lock), and the
other process that opens it, the CLI, checks no passwords. So the counts live in memory, as
they always did, and a restart forgets them. This is also the ledger's reference behaviour:
the PostgreSQL one is tested against the same contract tests.
"""

from __future__ import annotations

import collections
import itertools
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..storage.throttle import Bucket, FailureCount, Standing

__all__ = ["MemoryFailureLedger"]

#: Counters kept at most (~150 bytes each), least recently changed dropped first: the guard
#: keeps 20,000 per kind (authguard.MAX_TRACKED) and there are three kinds.
MAX_COUNTERS = 60000
#: Known pairs kept at most (authguard.MAX_KNOWN).
MAX_KNOWN = 50000
#: Worthless entries dropped at most per call (from the least recently changed end).
SWEEP = 16
#: Float slack when comparing leaked counts with integer limits (as the guard does).
_EPSILON = 1e-9


@dataclass(slots=True)
class _Row:
    level: float
    stamp: float
    locked_until: float
    limit: int
    seconds: float
    version: int

    def leaked(self, now: float) -> float:
        return max(0.0, self.level - max(0.0, now - self.stamp) * self.limit / self.seconds)

    def count(self, now: float, started: bool = False) -> FailureCount:
        return FailureCount(self.leaked(now), max(0.0, self.locked_until - now), self.version, started)

    def expires(self) -> float:
        """When the row is worth nothing (leaked to 0, lock over) plus one period: a node that
        still remembers the count hears of a success within that period, and by its end has
        leaked the count away itself (the PostgreSQL ledger's rule; moot in one process)."""
        return max(self.locked_until, self.stamp + self.level * self.seconds / self.limit) + self.seconds


class MemoryFailureLedger:
    """storage.FailureLedger for one process. Every method completes without yielding, so
    each call is atomic on the event loop."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_counters: int = MAX_COUNTERS,
                 max_known: int = MAX_KNOWN) -> None:
        self._clock = clock
        self._max_counters = max_counters
        self._max_known = max_known
        self._rows: collections.OrderedDict[str, _Row] = collections.OrderedDict()
        self._known: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._versions = itertools.count(1)

    def __len__(self) -> int:
        return len(self._rows)

    async def look(self, keys: Sequence[str], known: str) -> Standing:
        now = self._clock()
        counts = {key: row.count(now) for key in keys if (row := self._rows.get(key)) is not None}
        return Standing(counts, max(0.0, self._known.get(known, now) - now))

    async def fail(self, buckets: Sequence[Bucket]) -> dict[str, FailureCount]:
        now = self._clock()
        out: dict[str, FailureCount] = {}
        for b in buckets:
            row = self._rows.pop(b.key, None)
            if row is None:
                row = _Row(0.0, now, 0.0, b.limit, b.seconds, 0)
            row.limit, row.seconds = b.limit, b.seconds
            level = row.leaked(now) + 1
            started = level > b.limit - 1 + _EPSILON
            if started:
                row.level, row.locked_until = 0.0, now + b.seconds
            else:
                row.level = level
            row.stamp = now
            row.version = next(self._versions)
            self._rows[b.key] = row
            out[b.key] = row.count(now, started)
        for _ in range(SWEEP):
            if not self._rows or next(iter(self._rows.values())).expires() >= now:
                break
            self._rows.popitem(last=False)
        while len(self._rows) > self._max_counters:
            self._rows.popitem(last=False)
        return out

    async def succeed(self, key: str, known_seconds: float) -> None:
        now = self._clock()
        row = self._rows.pop(key, None)
        if row is not None:
            row.level, row.locked_until, row.stamp = 0.0, 0.0, now
            row.version = next(self._versions)
            self._rows[key] = row
        self._known[key] = max(self._known.pop(key, now), now + known_seconds)
        for _ in range(SWEEP):
            if next(iter(self._known.values())) >= now:
                break
            self._known.popitem(last=False)
        while len(self._known) > self._max_known:
            self._known.popitem(last=False)
