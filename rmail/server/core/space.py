"""The free-space reserve of the data dir (Postfix's ``queue_minfree``).

A full disk is worse than a refused message: SQLite cannot even write the WAL frames a
deletion needs, so nobody could free space through rmail. rmail therefore refuses new mail
that would leave less than ``limits.min_free_space`` bytes available on the filesystem holding
the data dir, and keeps that reserve for what frees space (EXPUNGE, DELETE, queue removal)
and for the WAL. Writes that add mail ask ``require()`` first; deletions never do.

The measurement is one ``statvfs`` (available blocks for unprivileged users, so the root
reserve of ext4 does not count as free), cached for ``TTL`` seconds and taken on a thread
rather than on the event loop (statvfs on a network filesystem can block), plus the pages
rmail.db has free inside (``reusable``): deleting small messages frees pages SQLite reuses for
new ones without growing the file, so they count as free although statvfs does not see them.
Between two
measurements every admitted message counts against the cached figure, ``COST`` times its size,
so a burst within one TTL cannot run through the reserve unnoticed.
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
#: Disk bytes a message takes per byte until the next checkpoint: its bytes (a file or a row),
#: the text parsed from it for SEARCH and the WAL frames of that row. Measured on a tmpfs:
#: 40 messages of 300 KiB took 12 MiB of files and 23 MiB in all.
COST = 3
#: After a refusal the state reads "refusing" this long (the console header, one log line).
REFUSING_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class SpaceState:
    """Free space against the reserve, for the console header and ``diagnose``."""

    free: int                #: bytes available to rmail on the data dir's filesystem
    reserve: int             #: limits.min_free_space (0: no reserve)
    refusing: bool = False   #: mail was refused for want of space in the last REFUSING_SECONDS

    @property
    def low(self) -> bool:
        """New mail is refused: less than the reserve is free, or the last messages offered
        would have left less."""
        return self.reserve > 0 and (self.free < self.reserve or self.refusing)

    def describe(self) -> str:
        return (f"{self.free // MIB} MiB free, reserve {self.reserve // MIB} MiB (limits.min_free_space): "
                "new mail is refused until space is freed")


class FreeSpace:
    """Answers "may mail be added now?" from a cached statvfs of ``path``."""

    def __init__(self, path: Path, reserve: int, *, ttl: float = TTL,
                 reusable: Callable[[], int] = lambda: 0,
                 statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.reserve = reserve
        self._reusable = reusable
        self.ttl = ttl
        self._statvfs = statvfs
        self._clock = clock
        self._free: int | None = None       #: the last measurement
        self._measured = float("-inf")
        self._spent = 0                     #: bytes admitted since the last measurement
        self._refused = float("-inf")       #: when mail was last refused
        self._inflight: asyncio.Future[SpaceState] | None = None

    @property
    def state(self) -> SpaceState | None:
        """The last measurement less what was admitted since (None before the first); never
        touches the disk."""
        if self._free is None:
            return None
        return SpaceState(max(0, self._free - self._spent), self.reserve,
                          self._clock() - self._refused < REFUSING_SECONDS)

    def measure(self) -> SpaceState:
        """Measure now (blocking: call it on a thread). Logs when the reserve is crossed."""
        st = self._statvfs(self.path)
        free = st.f_bavail * st.f_frsize + self._reusable()
        was_low = self._free is not None and self._free < self.reserve
        self._free, self._measured, self._spent = free, self._clock(), 0
        state = self.state
        assert state is not None
        if self.reserve > 0 and free < self.reserve and not was_low:
            log.warning("storage: %s: %s", self.path, state.describe())
        elif was_low and free >= self.reserve:
            log.info("storage: %s: %d MiB free again; accepting mail", self.path, free // MIB)
        return state

    async def refresh(self) -> SpaceState:
        """A measurement no older than ``ttl``; concurrent callers share one statvfs."""
        state = self.state
        if state is not None and self._clock() - self._measured < self.ttl:
            return state
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(asyncio.to_thread(self.measure))
            self._inflight.add_done_callback(self._done)
        return await asyncio.shield(self._inflight)

    def _done(self, future: asyncio.Future[SpaceState]) -> None:
        self._inflight = None
        if not future.cancelled():
            future.exception()   # retrieved: a failed statvfs is reported to its awaiters

    async def require(self, size: int = 0) -> None:
        """Return if ``size`` more bytes of mail may be stored, and count them as spent.

        Raises:
            StorageFull: less than the reserve would be left.
        """
        if self.reserve <= 0:
            return
        try:
            state = await self.refresh()
        except OSError as exc:
            # Cannot tell: let the write try; a real ENOSPC still fails it cleanly.
            log.warning("storage: cannot measure free space of %s: %s", self.path, exc)
            return
        if state.free - COST * size < self.reserve:
            if not state.refusing and state.free >= self.reserve:   # below it, measure() said so
                log.warning("storage: %s: %d MiB free, reserve %d MiB (limits.min_free_space): "
                            "refusing new mail until space is freed", self.path, state.free // MIB,
                            self.reserve // MIB)
            self._refused = self._clock()
            raise StorageFull("the server is short of disk space; try again later")
        self._spent += COST * size
