"""The free-space reserve of the data dir (Postfix's ``queue_minfree``).

A full disk is worse than a refused message: SQLite cannot even write the WAL frames a
deletion needs, so nobody could free space through rmail. rmail therefore refuses new mail
while the filesystem holding the data dir has less than ``limits.min_free_space`` bytes
available, and keeps that reserve for what frees space (EXPUNGE, DELETE, queue removal) and for
the WAL. Writes that add mail ask ``require()`` first; deletions never do.

The measurement is one ``statvfs`` (available blocks for unprivileged users, so the root
reserve of ext4 does not count as free), cached for ``TTL`` seconds and taken on a thread
rather than on the event loop (statvfs on a network filesystem can block).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import StorageFull

log = logging.getLogger("rmail.store")

#: Seconds a measurement is trusted: a burst of deliveries costs one statvfs per second.
TTL = 1.0
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpaceState:
    """One measurement, for the console header and ``diagnose``."""

    free: int          #: bytes available to rmail on the data dir's filesystem
    reserve: int       #: limits.min_free_space (0: no reserve)

    @property
    def low(self) -> bool:
        return self.reserve > 0 and self.free < self.reserve

    def describe(self) -> str:
        return (f"{self.free // MIB} MiB free, below the reserve of {self.reserve // MIB} MiB "
                "(limits.min_free_space): new mail is refused until space is freed")


class FreeSpace:
    """Answers "may mail be added now?" from a cached statvfs of ``path``."""

    def __init__(self, path: Path, reserve: int, *, ttl: float = TTL,
                 statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.reserve = reserve
        self.ttl = ttl
        self._statvfs = statvfs
        self._clock = clock
        self._state: SpaceState | None = None
        self._measured = float("-inf")
        self._inflight: asyncio.Future[SpaceState] | None = None

    @property
    def state(self) -> SpaceState | None:
        """The last measurement (None before the first); never touches the disk."""
        return self._state

    def measure(self) -> SpaceState:
        """Measure now (blocking: call it on a thread). Logs when the reserve is crossed."""
        st = self._statvfs(self.path)
        state = SpaceState(st.f_bavail * st.f_frsize, self.reserve)
        before = self._state
        self._state, self._measured = state, self._clock()
        if state.low and (before is None or not before.low):
            log.warning("storage: %s: %s", self.path, state.describe())
        elif before is not None and before.low and not state.low:
            log.info("storage: %s: %d MiB free again; accepting mail", self.path, state.free // MIB)
        return state

    async def refresh(self) -> SpaceState:
        """A measurement no older than ``ttl``; concurrent callers share one statvfs."""
        if self._state is not None and self._clock() - self._measured < self.ttl:
            return self._state
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(asyncio.to_thread(self.measure))
            self._inflight.add_done_callback(self._done)
        return await asyncio.shield(self._inflight)

    def _done(self, future: asyncio.Future[SpaceState]) -> None:
        self._inflight = None
        if not future.cancelled():
            future.exception()   # retrieved: a failed statvfs is reported to its awaiters

    async def require(self) -> None:
        """Return if new mail may be stored.

        Raises:
            StorageFull: less than the reserve is free.
        """
        if self.reserve <= 0:
            return
        try:
            state = await self.refresh()
        except OSError as exc:
            # Cannot tell: let the write try; a real ENOSPC still fails it cleanly.
            log.warning("storage: cannot measure free space of %s: %s", self.path, exc)
            return
        if state.low:
            raise StorageFull("the server is short of disk space; try again later")
