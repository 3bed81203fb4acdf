"""Immutable store values kept in memory: the bytes of recently read small messages (by blob
id), their parsed fields and blob ids (by mailbox id and UID).

Clients fetch the same messages again and again (a header scan, then the body, then another
client on the same mailbox); each is otherwise a store round trip (a thread hand-off on
SQLite, a network round trip on PostgreSQL) for a few KiB. Both keys name values that never
change once committed: a blob id its bytes, and a (mailbox id, UID) pair one message — UIDs
are never reused in a mailbox and mailbox ids never across mailboxes, on either backend. So
a cached value is never stale: at worst it serves a message that was expunged meanwhile to a
session that has not been told yet, which RFC 3501 §7.4.1 allows. Only the event loop uses a
cache (no lock); each is bounded by the total size of its values.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Awaitable, Callable, Final, Generic, Hashable, Iterable, TypeVar

from .model import MessageInfo

__all__ = ["BLOB_ID_CACHE_BYTES", "BLOB_ID_COST", "DEFAULT_BYTES", "INFO_CACHE_BYTES", "SizedLRU", "info_size", "read_through"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Default capacity of one cache: a few thousand typical messages.
DEFAULT_BYTES: Final = 32 * 1024 * 1024
#: Capacity of a store's cache of parsed fields.
INFO_CACHE_BYTES: Final = 16 * 1024 * 1024
#: A cached blob id's cost (the key, the string, the entry) and the capacity for them.
BLOB_ID_COST: Final = 160
BLOB_ID_CACHE_BYTES: Final = 4 * 1024 * 1024


class SizedLRU(Generic[K, V]):
    """Least-recently-used values, at most ``capacity`` in total size; a value larger than
    ``entry_max`` is never kept (large messages stream from the store instead)."""

    __slots__ = ("capacity", "entry_max", "_entries", "_size", "hits", "misses")

    def __init__(self, capacity: int = DEFAULT_BYTES, entry_max: int = 256 * 1024) -> None:
        self.capacity = capacity
        self.entry_max = min(entry_max, capacity)
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[0]

    def put(self, key: K, value: V, size: int) -> None:
        if size > self.entry_max or key in self._entries:
            return
        self._entries[key] = (value, size)
        self._size += size
        while self._size > self.capacity:
            _, (_, old) = self._entries.popitem(last=False)
            self._size -= old

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size


async def read_through(cache: SizedLRU[K, V], keys: Iterable[K],
                       read: Callable[[list[K]], Awaitable[dict[K, V]]],
                       size: Callable[[V], int]) -> dict[K, V]:
    """The values of ``keys`` that exist: cached ones from ``cache``, the others from one
    ``read`` of the missing keys (then cached)."""
    found: dict[K, V] = {}
    missing: list[K] = []
    for key in keys:
        value = cache.get(key)
        if value is None:
            missing.append(key)
        else:
            found[key] = value
    if missing:
        for key, value in (await read(missing)).items():
            cache.put(key, value, size(value))
            found[key] = value
    return found


def info_size(info: MessageInfo) -> int:
    """About what a cached `MessageInfo` holds in memory (its large fields)."""
    return (len(info.envelope) + len(info.bodystructure) + len(info.body) + len(info.header_text)
            + len(info.references) + 256)
