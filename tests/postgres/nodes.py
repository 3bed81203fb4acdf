"""Open PostgreSQL backends as rmail nodes do, several on one database.

``pg_open`` opens backends through ``rmail.server.core.postgres.open`` and closes them after
the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest

from rmail.server.core.events import Event
from rmail.server.core.postgres import PostgresBackend, open as open_pg
from rmail.server.core.postgres.database import PgDatabase, PgTxn
from rmail.server.core.storage import StoreLocation

Opener = Callable[..., Awaitable[PostgresBackend]]


@pytest.fixture
async def pg_open(pg_url: str, tmp_path: Path) -> AsyncIterator[Opener]:
    """``await pg_open(events=list)``: a new node on the test's database; events it
    publishes are appended to ``events`` when given."""
    opened: list[PostgresBackend] = []

    async def opener(events: list[Event] | None = None, url: str = pg_url, **kwargs: object) -> PostgresBackend:
        publish = events.extend if events is not None else None
        backend = await open_pg(StoreLocation(tmp_path, url), publish=publish, **kwargs)  # type: ignore[arg-type]
        opened.append(backend)
        return backend
    yield opener
    for backend in opened:
        await backend.close()


async def insert_blob(db: PgDatabase, blob_id: str, data: bytes = b"Subject: x\r\n\r\nbody\r\n") -> None:
    """Message bytes as a delivery would leave them (tests of the queue and of removals)."""
    async def w(txn: PgTxn) -> None:
        await txn.conn.execute(
            "INSERT INTO blobs(id, size, subject, from_, to_, cc, message_id, in_reply_to, refs, preview,"
            " envelope, body, bodystructure, header_text, search_text)"
            " VALUES($1, $2, '', '', '', '', '', '', '', '', ''::bytea, ''::bytea, ''::bytea, '', '')",
            blob_id, len(data))
        await txn.conn.execute("INSERT INTO blob_data(id, data) VALUES($1, $2)", blob_id, data)
    await db.write(w)


async def put_message(db: PgDatabase, user_id: int, mailbox: str, blob_id: str, size: int) -> int:
    """A message row in a user's mailbox, with the mailbox's UIDNEXT and MODSEQ moved as a
    delivery would; returns its UID."""
    async def w(txn: PgTxn) -> int:
        row = await txn.conn.fetchrow(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
            " WHERE user_id = $1 AND name = $2 RETURNING id, uidnext - 1, highestmodseq", user_id, mailbox)
        await txn.conn.execute("INSERT INTO messages(mailbox_id, uid, modseq, internaldate, size, blob_id, savedate)"
                               " VALUES($1, $2, $3, 0, $4, $5, 0)", row[0], row[1], row[2], size, blob_id)
        return int(row[1])
    return await db.write(w)
