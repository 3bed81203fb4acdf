"""Single-flight reads for the mail stores: concurrent identical calls share one query.

Every session idling on a mailbox wakes on the same event and asks the same question; one
query serves them all. A caller joins only a query issued since the store's last commit
(``commits()``): one issued earlier may have read its snapshot before a change this caller
was just told about.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    def __init__(self, commits: Callable[[], int]) -> None:
        self._commits = commits
        self._inflight: dict[K, tuple[int, asyncio.Future[T]]] = {}

    async def run(self, key: K, make: Callable[[], Awaitable[T]],
                  joined: Callable[[T], T] = lambda result: result) -> T:
        """``make()``'s result, or ``joined(result)`` of the query in flight for ``key``."""
        pending = self._inflight.get(key)
        if pending is not None and pending[0] == self._commits():
            return joined(await asyncio.shield(pending[1]))
        future: asyncio.Future[T] = asyncio.ensure_future(make())
        entry = (self._commits(), future)
        self._inflight[key] = entry
        try:
            return await asyncio.shield(future)
        finally:
            if self._inflight.get(key) is entry:
                del self._inflight[key]
