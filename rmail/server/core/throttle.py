"""Failed-login throttling per client address, shared by SMTP, IMAP and the REST API.

Each failure from an address makes the next answer slower (doubling from ``base_delay`` up to
``max_delay``); after ``max_failures`` the address is locked out for ``lockout_seconds``. A
success clears the record. The table is bounded, dropping the oldest records first.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Callable

#: Addresses remembered at most; an attacker rotating addresses cannot grow memory past this.
MAX_TRACKED = 10000


@dataclass(slots=True)
class _Record:
    failures: int
    last: float
    locked_until: float


class AuthThrottle:
    def __init__(self, *, max_failures: int = 10, lockout_seconds: float = 300, base_delay: float = 0.5,
                 max_delay: float = 8.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._records: collections.OrderedDict[str, _Record] = collections.OrderedDict()

    def locked_for(self, peer: str) -> float:
        """Seconds left in a lockout for ``peer``; 0 when it may try."""
        rec = self._records.get(peer)
        if rec is None:
            return 0.0
        return max(0.0, rec.locked_until - self._clock())

    def failure(self, peer: str) -> float:
        """Record a failed login; returns how long to wait before answering it."""
        now = self._clock()
        rec = self._records.pop(peer, None)
        if rec is None or (rec.locked_until and rec.locked_until <= now):
            rec = _Record(0, now, 0.0)
        rec.failures += 1
        rec.last = now
        if rec.failures >= self.max_failures:
            rec.locked_until = now + self.lockout_seconds
        self._records[peer] = rec
        while len(self._records) > MAX_TRACKED:
            self._records.popitem(last=False)
        return min(self.max_delay, self.base_delay * (2 ** (rec.failures - 1))) if self.base_delay else 0.0

    def success(self, peer: str) -> None:
        self._records.pop(peer, None)

    def failures(self, peer: str) -> int:
        rec = self._records.get(peer)
        return rec.failures if rec else 0
