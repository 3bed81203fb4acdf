"""The bytes of recently read small messages, kept in memory by blob id.

Clients fetch the same messages again and again (a header scan, then the body, then another
client on the same mailbox); each read of a small message is otherwise a store round trip
(a thread hand-off on SQLite, a network round trip on PostgreSQL) for a few KiB. A blob id
names bytes that never change once committed, so a cached copy is never stale: at worst it
serves a message that was expunged meanwhile to a session that has not been told yet, which
RFC 3501 §7.4.1 allows. Only the event loop uses it (no lock); bounded by total bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["ByteCache", "DEFAULT_BYTES"]

#: Default capacity: a few thousand typical messages.
DEFAULT_BYTES: Final = 32 * 1024 * 1024


class ByteCache:
    """Least-recently-used message bytes, at most ``capacity`` bytes in all; an entry over
    ``entry_max`` bytes is never kept (large messages stream from the store instead)."""

    __slots__ = ("capacity", "entry_max", "_entries", "_size", "hits", "misses")

    def __init__(self, capacity: int = DEFAULT_BYTES, entry_max: int = 256 * 1024) -> None:
        self.capacity = capacity
        self.entry_max = min(entry_max, capacity)
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def get(self, blob_id: str) -> bytes | None:
        data = self._entries.get(blob_id)
        if data is None:
            self.misses += 1
            return None
        self._entries.move_to_end(blob_id)
        self.hits += 1
        return data

    def put(self, blob_id: str, data: bytes) -> None:
        if len(data) > self.entry_max or blob_id in self._entries:
            return
        self._entries[blob_id] = data
        self._size += len(data)
        while self._size > self.capacity:
            _, old = self._entries.popitem(last=False)
            self._size -= len(old)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size
