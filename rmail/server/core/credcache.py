"""Verified-credential cache: a password that bcrypt accepted recently is accepted again in
microseconds (issue 16: mail clients reconnect all day; bcrypt at cost 12 is ~0.25 s of CPU).

What it stores, per user: the user's id, the stored bcrypt hash the password was verified
against, an expiry, and HMAC-SHA256(process key, user id ‖ stored hash ‖ password). Never the
password. The key is random per process and never leaves it.

Why it cannot accept a wrong or changed password:
- A lookup succeeds only when the MAC of the *offered* password equals the remembered one
  (``hmac.compare_digest``); a wrong password misses and pays full bcrypt (and the guard).
- The caller passes the user id and stored hash it has just read from the database; an entry
  made against another hash (password changed, by this process or by the CLI in another one)
  or another id (user removed and re-created) misses. The database read is the source of
  truth, so no cross-process event is needed; in-process changes also ``forget`` at once.

Limits: an attacker who dumps the running process's memory gets the key with the MACs, so the
passwords used within the TTL become guessable at HMAC speed instead of bcrypt speed. Such an
attacker also sees passwords in transit, so this adds little; ``limits.auth_cache_seconds = 0``
turns the cache off for those who disagree.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["CredentialCache"]

#: Users remembered at most (least recently verified dropped first): ~200 bytes each.
MAX_ENTRIES = 10000


@dataclass(frozen=True, slots=True)
class _Entry:
    user_id: int
    stored_hash: bytes
    mac: bytes
    expires: float


class CredentialCache:
    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _mac(self, user_id: int, stored_hash: bytes, password: bytes) -> bytes:
        # Length-prefixed fields: no two (id, hash, password) triples share an input.
        msg = b"%d:%d:%s%s" % (user_id, len(stored_hash), stored_hash, password)
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def verify(self, key: str, user_id: int, stored_hash: bytes, password: bytes) -> bool:
        """True when ``password`` was verified for this user and this stored hash within the TTL."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry.expires <= self._clock() or entry.user_id != user_id or entry.stored_hash != stored_hash:
            del self._entries[key]
            return False
        return hmac.compare_digest(entry.mac, self._mac(user_id, stored_hash, password))

    def remember(self, key: str, user_id: int, stored_hash: bytes, password: bytes) -> None:
        """Record a password that bcrypt just accepted against ``stored_hash``."""
        if self.ttl <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = _Entry(user_id, stored_hash, self._mac(user_id, stored_hash, password),
                                    self._clock() + self.ttl)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
