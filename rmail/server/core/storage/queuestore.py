"""The outbound queue's rows. The scheduler (core.queue.OutboundQueue) holds the logic;
entries are added by ``MailStore.deliver(..., outbound=...)`` in a delivery's transaction.

Several nodes may run schedulers on one store: ``lease_due`` hands each due entry to one of
them (a lease that expires, so an entry held by a node that died is tried again later).
"""

from __future__ import annotations

from typing import Protocol

from ..model import QueueEntry

__all__ = ["QueueStore"]


class QueueStore(Protocol):
    """Changes publish QueueChanged after commit."""

    async def age_summary(self, older_than: float) -> tuple[int, int, float | None]:
        """(entries, entries created before ``older_than``, oldest creation time)."""
        ...

    async def get(self, entry_id: int) -> QueueEntry:
        """Raises: NotFound."""
        ...

    async def lease_due(self, now: float, limit: int, lease_seconds: float) -> list[QueueEntry]:
        """Up to ``limit`` entries due at ``now`` that no scheduler holds, in the order they
        are to be tried, each now held by the caller until ``now + lease_seconds`` (or until
        ``reschedule``/``delete``). No two callers get the same entry while a lease runs."""
        ...

    async def next_due(self, now: float) -> float | None:
        """When the next entry not held by anyone falls due (held ones: when their lease
        ends), or None for an empty queue."""
        ...

    async def reschedule(self, entry_id: int, *, attempts: int, next_attempt: float, last_error: str,
                         delayed_notified: bool) -> None:
        """Record a failed attempt and release the lease. A missing entry is no error."""
        ...

    async def retry(self, entry_id: int, now: float) -> None:
        """Make an entry due now (``queue retry``). Raises: NotFound."""
        ...

    async def delete(self, entry_id: int, *, missing_ok: bool = False) -> None:
        """Remove an entry (delivered, bounced, or by an administrator); its message bytes go
        with the last entry and message using them. Raises: NotFound unless ``missing_ok``."""
        ...

    async def list(self, *, by_next_attempt: bool = False, limit: int | None = None) -> list[QueueEntry]:
        """Entries by id, or in the order they will be tried; at most ``limit``."""
        ...
