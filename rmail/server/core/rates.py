"""Per-key event rates, bounded memory: port-25 connections and messages per client address,
and sending per user (one limiter shared by REST and SMTP submission, so using both does not
double a user's rate).

A token bucket per key: ``per_minute`` tokens at most, refilled at ``per_minute`` a minute, one
taken per event. So a client may burst up to the full minute's allowance and then continue at
the average rate, which is what Postfix's anvil limits (``smtpd_client_connection_rate_limit``,
``smtpd_client_message_rate_limit``, per 60 s) allow in effect. Each key costs two floats;
when ``max_keys`` are held, keys whose bucket has refilled are forgotten first (they carry no
information), then the oldest ones, so a spray from many addresses cannot grow memory.
"""

from __future__ import annotations

import time
from typing import Callable, Final, Hashable

__all__ = ["RateLimiter"]

#: Keys remembered at most (each ~200 bytes with the dict entry): 100k addresses ≈ 20 MiB.
MAX_KEYS: Final = 100_000


class RateLimiter:
    """Allows at most ``per_minute`` events per key per minute, with a burst of as many.

    Args:
        per_minute: the allowance; a burst of this many, then one every ``60 / per_minute`` s;
            0 (or less) means no limit.
        max_keys: keys remembered at most (see the module docstring).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, per_minute: int, *, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.unlimited = per_minute <= 0
        per_minute = max(per_minute, 1)
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0          # tokens per second
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}   # key → (tokens, at)

    def _tokens(self, key: Hashable, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.refill)

    def allow(self, key: Hashable) -> bool:
        """Count one event for ``key``; False (and nothing counted) when over the rate."""
        if self.unlimited:
            return True
        now = self.clock()
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._forget(now)
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may have one more event (0 when it may now)."""
        if self.unlimited:
            return 0.0
        tokens = self._tokens(key, self.clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.refill

    def take(self, key: Hashable) -> float:
        """Spend one event for ``key``: 0.0 when allowed, else the seconds until it would be
        (nothing is spent then)."""
        return 0.0 if self.allow(key) else max(self.retry_after(key), 1e-3)

    def _forget(self, now: float) -> None:
        """Free at least a tenth of the keys, so the linear sweep runs once per that many
        new keys (amortised constant time per event even under a spray of addresses)."""
        full = [k for k in self._buckets if self._tokens(k, now) >= self.capacity]
        for key in full:
            del self._buckets[key]
        excess = max(self.max_keys // 10, 1) - len(full)
        if excess > 0:
            for key in list(self._buckets)[:excess]:   # insertion order: the oldest first
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
