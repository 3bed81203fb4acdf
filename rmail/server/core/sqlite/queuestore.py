"""storage.QueueStore over rmail.db's ``queue`` table (entries are added by deliver)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any, Sequence

from ..errors import NotFound
from ..events import QueueChanged
from ..model import QueueEntry
from .database import Database, WriteTxn
from .mail import SqliteMailStore

_COLS = "id, sender, recipient, blob_id, size, created, attempts, next_attempt, last_error, delayed_notified"


def _entry(row: Sequence[Any]) -> QueueEntry:
    return QueueEntry(row[0], row[1], row[2], row[3], row[4], datetime.fromtimestamp(row[5], timezone.utc),
                      row[6], datetime.fromtimestamp(row[7], timezone.utc), row[8], bool(row[9]))


class SqliteQueueStore:
    def __init__(self, db: Database, mail: SqliteMailStore) -> None:
        self.db = db
        self.mail = mail

    def release_all(self) -> int:
        """Release every lease (blocking). Only the server, holding the data-dir lock at
        start-up, may: it is the one scheduler of an embedded store, so a lease found then
        was held by a process that ended without releasing it (a crash, SIGKILL)."""
        def w(txn: WriteTxn) -> int:
            return txn.conn.execute("UPDATE queue SET leased_until = 0 WHERE leased_until > 0").rowcount
        return self.db.write_sync(w)

    async def age_summary(self, older_than: float) -> tuple[int, int, float | None]:
        def q(conn: sqlite3.Connection) -> tuple[int, int, float | None]:
            total, old, oldest = conn.execute("SELECT count(*), coalesce(sum(created < ?), 0), min(created) FROM queue",
                                              (int(older_than),)).fetchone()
            return total, old, oldest
        return await self.db.read(q)

    async def get(self, entry_id: int) -> QueueEntry:
        def q(conn: sqlite3.Connection) -> QueueEntry:
            row = conn.execute(f"SELECT {_COLS} FROM queue WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise NotFound(f"no queue entry {entry_id}")
            return _entry(row)
        return await self.db.read(q)

    async def lease_due(self, now: float, limit: int, lease_seconds: float) -> list[QueueEntry]:
        # The one writer serialises leases: a read and its UPDATE in one write request, taken
        # only when a read says something is due (most wake-ups find nothing).
        def due(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM queue WHERE next_attempt <= ? AND leased_until <= ? LIMIT 1",
                                (int(now), now)).fetchone() is not None
        if not await self.db.read(due):
            return []

        def w(txn: WriteTxn) -> list[QueueEntry]:
            rows = txn.conn.execute(f"SELECT {_COLS} FROM queue WHERE next_attempt <= ? AND leased_until <= ?"
                                    " ORDER BY next_attempt, id LIMIT ?", (int(now), now, limit)).fetchall()
            txn.conn.executemany("UPDATE queue SET leased_until = ? WHERE id = ?",
                                 [(now + lease_seconds, r[0]) for r in rows])
            return [_entry(r) for r in rows]
        return await self.db.write(w)

    async def next_due(self, now: float) -> float | None:
        def q(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT min(CASE WHEN leased_until > ? THEN max(next_attempt, leased_until)"
                               " ELSE next_attempt END) FROM queue", (now,)).fetchone()
            return None if row is None or row[0] is None else float(row[0])
        return await self.db.read(q)

    async def reschedule(self, entry_id: int, *, attempts: int, next_attempt: float, last_error: str,
                         delayed_notified: bool) -> None:
        def w(txn: WriteTxn) -> None:
            txn.conn.execute("UPDATE queue SET attempts = ?, next_attempt = ?, last_error = ?, delayed_notified = ?,"
                             " leased_until = 0 WHERE id = ?",
                             (attempts, int(next_attempt), last_error, int(delayed_notified), entry_id))
            txn.emit(QueueChanged())
        await self.db.write(w)

    async def retry(self, entry_id: int, now: float) -> None:
        def w(txn: WriteTxn) -> None:
            if txn.conn.execute("UPDATE queue SET next_attempt = ? WHERE id = ?", (int(now), entry_id)).rowcount == 0:
                raise NotFound(f"no queue entry {entry_id}")
            txn.emit(QueueChanged())
        await self.db.write(w)

    async def delete(self, entry_id: int, *, missing_ok: bool = False) -> None:
        def w(txn: WriteTxn) -> None:
            row = txn.conn.execute("DELETE FROM queue WHERE id = ? RETURNING blob_id", (entry_id,)).fetchone()
            if row is None:
                if missing_ok:
                    return
                raise NotFound(f"no queue entry {entry_id}")
            self.mail.collect_blobs(txn, [row[0]])
            txn.emit(QueueChanged())
        await self.db.write(w)

    async def list(self, *, by_next_attempt: bool = False, limit: int | None = None) -> list[QueueEntry]:
        order = "next_attempt, id" if by_next_attempt else "id"

        def q(conn: sqlite3.Connection) -> list[QueueEntry]:
            return [_entry(r) for r in conn.execute(f"SELECT {_COLS} FROM queue ORDER BY {order} LIMIT ?",
                                                    (-1 if limit is None else limit,))]
        return await self.db.read(q)
