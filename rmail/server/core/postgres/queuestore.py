"""The outbound queue's rows on PostgreSQL, shared by the schedulers of every node.

An entry is handed to one scheduler at a time by a lease: ``lease_due`` picks due entries
nobody holds with ``FOR UPDATE SKIP LOCKED`` (a scheduler racing us skips the rows we are
taking rather than waiting for them) and stamps ``leased_until``; ``reschedule`` and ``delete``
end the lease. A node that dies mid-attempt holds its entries only until the lease runs out,
then another node tries them again (at-least-once, as after a crash on one machine).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import asyncpg

from ..errors import NotFound
from ..events import QueueChanged
from ..model import QueueEntry
from .database import PgDatabase, PgTxn

if TYPE_CHECKING:
    from .mail import PgMailStore

__all__ = ["PgQueueStore"]

_COLS = "id, sender, recipient, blob_id, size, created, attempts, next_attempt, last_error, delayed_notified"

_Q_COLS = ", ".join(f"q.{col.strip()}" for col in _COLS.split(","))


def _entry(row: asyncpg.Record) -> QueueEntry:
    return QueueEntry(row[0], row[1], row[2], row[3], row[4], datetime.fromtimestamp(row[5], timezone.utc),
                      row[6], datetime.fromtimestamp(row[7], timezone.utc), row[8], row[9])


class PgQueueStore:
    """storage.QueueStore over PostgreSQL.

    Args:
        db: the node's database.
        mail: the mail store, which drops a message's bytes with the last entry using them.
    """

    def __init__(self, db: PgDatabase, mail: PgMailStore) -> None:
        self.db = db
        self.mail = mail

    async def age_summary(self, older_than: float) -> tuple[int, int, float | None]:
        async def q(conn: asyncpg.Connection) -> tuple[int, int, float | None]:
            # created is whole seconds: created < older_than exactly when created < ceil(older_than).
            row = await conn.fetchrow("SELECT count(*), count(*) FILTER (WHERE created < $1), min(created)"
                                      " FROM queue", math.ceil(older_than))
            assert row is not None      # an aggregate without GROUP BY returns one row
            return int(row[0]), int(row[1]), None if row[2] is None else float(row[2])
        return await self.db.read(q)

    async def get(self, entry_id: int) -> QueueEntry:
        async def q(conn: asyncpg.Connection) -> QueueEntry:
            row = await conn.fetchrow(f"SELECT {_COLS} FROM queue WHERE id = $1", entry_id)
            if row is None:
                raise NotFound(f"no queue entry {entry_id}")
            return _entry(row)
        return await self.db.read(q)

    async def lease_due(self, now: float, limit: int, lease_seconds: float) -> list[QueueEntry]:
        async def w(txn: PgTxn) -> list[QueueEntry]:
            # next_attempt is whole seconds, so "<= floor(now)" is "<= now" and can use the index.
            rows = await txn.conn.fetch(
                "WITH due AS (SELECT id FROM queue WHERE next_attempt <= $1 AND leased_until <= $2"
                "             ORDER BY next_attempt, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
                f" UPDATE queue q SET leased_until = $4 FROM due WHERE q.id = due.id RETURNING {_Q_COLS}",
                math.floor(now), now, limit, now + lease_seconds)
            # RETURNING comes in no particular order.
            return sorted((_entry(r) for r in rows), key=lambda e: (e.next_attempt, e.id))
        if limit <= 0:
            return []
        return await self.db.write(w)

    async def next_due(self, now: float) -> float | None:
        async def q(conn: asyncpg.Connection) -> float | None:
            value = await conn.fetchval(
                "SELECT min(CASE WHEN leased_until > $1 THEN greatest(next_attempt::float8, leased_until)"
                " ELSE next_attempt END) FROM queue", now)
            return None if value is None else float(value)
        return await self.db.read(q)

    async def reschedule(self, entry_id: int, *, attempts: int, next_attempt: float, last_error: str,
                         delayed_notified: bool) -> None:
        async def w(txn: PgTxn) -> None:
            done = await txn.conn.execute(
                "UPDATE queue SET attempts = $2, next_attempt = $3, last_error = $4, delayed_notified = $5,"
                " leased_until = 0 WHERE id = $1",
                entry_id, attempts, int(next_attempt), last_error, delayed_notified)
            if done != "UPDATE 0":
                txn.emit(QueueChanged())
        await self.db.write(w)

    async def retry(self, entry_id: int, now: float) -> None:
        # The lease stays: an entry being tried right now must not be sent twice at once.
        async def w(txn: PgTxn) -> None:
            if await txn.conn.execute("UPDATE queue SET next_attempt = $2 WHERE id = $1",
                                      entry_id, int(now)) == "UPDATE 0":
                raise NotFound(f"no queue entry {entry_id}")
            txn.emit(QueueChanged())
        await self.db.write(w)

    async def delete(self, entry_id: int, *, missing_ok: bool = False) -> None:
        async def w(txn: PgTxn) -> None:
            blob_id = await txn.conn.fetchval("DELETE FROM queue WHERE id = $1 RETURNING blob_id", entry_id)
            if blob_id is None:
                if missing_ok:
                    return
                raise NotFound(f"no queue entry {entry_id}")
            await self.mail.collect_blobs(txn, [blob_id])
            txn.emit(QueueChanged())
        await self.db.write(w)

    # Last in the class: below it, ``list`` in an annotation would name this method.
    async def list(self, *, by_next_attempt: bool = False, limit: int | None = None) -> list[QueueEntry]:
        order = "next_attempt, id" if by_next_attempt else "id"

        async def q(conn: asyncpg.Connection) -> list[QueueEntry]:
            # LIMIT NULL is no limit.
            return [_entry(r) for r in await conn.fetch(f"SELECT {_COLS} FROM queue ORDER BY {order} LIMIT $1",
                                                        limit)]
        return await self.db.read(q)
