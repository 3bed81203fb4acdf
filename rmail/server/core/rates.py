"""Event rates per key (a user, an address): token buckets, shared by every protocol.

One limiter instance is shared by the REST API and SMTP submission for sending, so a user
cannot double its rate by using both. A bucket holds up to `per_minute` tokens and refills at
`per_minute` a minute: a client may send a burst of a minute's worth, then one every
60/per_minute seconds. Postfix's anvil counts the same way (MAIL FROM requests per time unit,
smtpd_client_message_rate_limit).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Callable, Final, Hashable

__all__ = ["MAX_TRACKED", "RateLimiter"]

#: Keys remembered at most; when full the least recently used goes (a forgotten key has a
#: full bucket again, which only an attacker holding that many accounts could exploit).
MAX_TRACKED: Final = 10000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per key.

    Args:
        per_minute: events allowed per minute and burst size; 0 disables the limit.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: collections.OrderedDict[Hashable, _Bucket] = collections.OrderedDict()

    def take(self, key: Hashable) -> float:
        """Spend one event for `key`: 0.0 when allowed, else the seconds until it would be
        (nothing is spent then)."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        rate = self.per_minute / 60.0
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.per_minute), now)
        else:
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        self._buckets[key] = bucket
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate
