"""Cooperative time slicing for work proportional to a mailbox's size (DESIGN "Hostile clients").

Everything in rmail shares one event loop, so a loop that walks every message of a large
mailbox (SEARCH, FETCH 1:*, STORE 1:*) must give the loop back every few milliseconds, or
every other client waits for it. A thread is no cure for pure-Python work: it holds the GIL for
the interpreter's switch interval at a time and takes it again whenever the loop thread
releases it for a socket call, so the loop is slowed as much and less predictably. Instead, the
loop asks `due()` after each small step (a perf_counter read) and awaits `pause()` when its
slice is used up.

A `Slicer` with a budget also meters the CPU time the command has spent on the loop (only
inside its own slices: time spent awaiting the store or other clients is not counted) and
raises `LimitExceeded` once the budget is gone, so a command that would run for a minute is
refused after a bounded amount of work instead.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Awaitable, Callable, Final, TypeVar

from .errors import LimitExceeded

__all__ = ["SLICE_SECONDS", "OnePerKey", "Slicer"]

T = TypeVar("T")

#: Longest stretch on the loop between two yields. CPython's own GIL switch interval is 5 ms
#: (sys.getswitchinterval), the granularity a thread would get; a yield costs one loop
#: iteration (tens of microseconds), so 5 ms keeps the overhead near 1%.
SLICE_SECONDS: Final = 0.005


class Slicer:
    """Yields the loop between slices and meters the CPU time a command spends on it.

    Args:
        budget: CPU seconds the command may spend on the loop; None for no limit.
        what: names the command in the `LimitExceeded` message.
        slice_seconds: wall-clock length of one slice.
        clock, cpu: injectable for tests (perf_counter and this thread's CPU time).
    """

    __slots__ = ("budget", "what", "slice_seconds", "used", "pauses", "_clock", "_cpu",
                 "_deadline", "_cpu_start")

    def __init__(self, *, budget: float | None = None, what: str = "the command",
                 slice_seconds: float = SLICE_SECONDS,
                 clock: Callable[[], float] = time.perf_counter,
                 cpu: Callable[[], float] = time.thread_time) -> None:
        self.budget = budget
        self.what = what
        self.slice_seconds = slice_seconds
        self.used = 0.0          #: CPU seconds spent in the slices so far (metered with a budget)
        self.pauses = 0          #: times the loop was given back
        self._clock = clock
        self._cpu = cpu
        self._deadline = 0.0
        self._cpu_start = 0.0
        self._start()

    def due(self) -> bool:
        """True when the current slice is used up (cheap enough to ask after every step)."""
        return self._clock() >= self._deadline

    async def pause(self) -> None:
        """Give the loop to everyone else once, then start a new slice.

        Raises:
            LimitExceeded: the budget is spent.
        """
        self._stop()
        self.pauses += 1
        await asyncio.sleep(0)
        self._start()

    async def tick(self) -> None:
        """`pause()` if the slice is used up, else nothing."""
        if self._clock() >= self._deadline:
            await self.pause()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await something off the loop (a store read) without metering the wait.

        Raises:
            LimitExceeded: the budget was spent before the wait.
        """
        try:
            self._stop()
        except LimitExceeded:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never started: do not leave it "never awaited"
            raise
        try:
            return await awaitable
        finally:
            self._start()

    def _start(self) -> None:
        self._deadline = self._clock() + self.slice_seconds
        if self.budget is not None:   # the thread's CPU clock is a system call: only to meter
            self._cpu_start = self._cpu()

    def _stop(self) -> None:
        if self.budget is None:
            return
        self.used += max(0.0, self._cpu() - self._cpu_start)
        if self.used > self.budget:
            raise LimitExceeded(f"{self.what} needs more than its budget of {self.budget:g} s of"
                                " CPU time; narrow it down")


class OnePerKey:
    """One holder per key at a time (one costly scan per user): the others wait their turn.

    Slicing shares the loop round-robin between everything runnable, so N scans of one user
    would take N slices per round; serialising them per user keeps that share at one. Locks
    live only while someone holds or awaits them (weak values), so the table never grows.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[object, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, key: object) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
