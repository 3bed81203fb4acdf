"""Message bytes read from PostgreSQL piece by piece (``MailStore.open_message`` of a large one).

A message up to one chunk is fetched whole with its size (one query) and handed out as a
``BytesBody``. A larger one is read a chunk at a time, as the consumer (an IMAP literal going out
at the client's pace) asks for it, with ``substring(data from … for …)``: ``blob_data`` is
stored uncompressed (STORAGE EXTERNAL), so PostgreSQL reads only the TOAST pages of that range.
Memory per open body is one chunk however large the message, and nothing is held between
chunks: no pool connection and no open transaction, whose snapshot would hold back VACUUM for
as long as a slow client takes to download an attachment.

The price: a large message whose last reference is expunged and collected while its body is
being read loses its remaining bytes; the next read raises TemporaryFailure (the caller has
announced a size it cannot send, and ends the session as with a broken stream). Small bodies
are already in memory and always stay readable until closed.
"""

from __future__ import annotations

from typing import AsyncIterator

import asyncpg

from ..errors import NotFound, TemporaryFailure
from ..storage.body import CHUNK, BytesBody, MessageBody
from .database import PgDatabase

__all__ = ["PgStreamBody", "open_body"]


async def open_body(db: PgDatabase, blob_id: str) -> MessageBody:
    """The bytes of blob ``blob_id``: whole when they fit one chunk, else streamed.

    Raises: NotFound (no such blob), TemporaryFailure.
    """
    async def q(conn: asyncpg.Connection) -> tuple[int, bytes | None] | None:
        row = await conn.fetchrow("SELECT octet_length(data), CASE WHEN octet_length(data) <= $2 THEN data END"
                                  " FROM blob_data WHERE id = $1", blob_id, CHUNK)
        return None if row is None else (row[0], row[1])
    found = await db.read(q)
    if found is None:
        raise NotFound("message no longer exists")
    size, data = found
    if data is not None:
        return BytesBody(data)
    return PgStreamBody(db, blob_id, size)


class PgStreamBody:
    """A large message read chunk by chunk, each chunk one short read."""

    __slots__ = ("db", "blob_id", "size", "inline", "_closed")

    def __init__(self, db: PgDatabase, blob_id: str, size: int) -> None:
        self.db = db
        self.blob_id = blob_id
        self.size = size
        self.inline: bytes | None = None
        self._closed = False

    async def read(self, start: int = 0, length: int | None = None) -> bytes:
        end = self.size if length is None else min(self.size, start + length)
        if start >= end:
            return b""
        pieces = [piece async for piece in self.chunks(start, end - start)]
        return b"".join(pieces)

    async def chunks(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        end = self.size if length is None else min(self.size, start + length)
        while start < end:
            want = min(CHUNK, end - start)
            yield await self._range(start, want)
            start += want

    async def _range(self, start: int, length: int) -> bytes:
        if self._closed:
            raise TemporaryFailure("the message body was closed")

        async def q(conn: asyncpg.Connection) -> bytes | None:
            value: bytes | None = await conn.fetchval(
                "SELECT substring(data from $2 for $3) FROM blob_data WHERE id = $1", self.blob_id, start + 1, length)
            return value
        piece = await self.db.read(q)
        if piece is None or len(piece) != length:
            # Expunged and collected since it was opened: what was announced cannot be sent.
            raise TemporaryFailure("the message was removed while it was being read")
        return piece

    async def close(self) -> None:
        self._closed = True
