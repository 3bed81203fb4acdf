"""Read models for the REST API on PostgreSQL: each request is one read transaction.

Every lookup starts from the caller's address (domain, local part) → user id, so a token whose
user was removed reaches nothing, and no query can name another user's mailbox.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import asyncpg

from ..errors import AuthenticationFailed, NotFound
from ..storage.flags import SEEN
from ..storage.views import FolderRow, MessageRow, Owner
from .database import PgDatabase

__all__ = ["PgMailViews"]

T = TypeVar("T")

_LIST_COLS = ("m.uid, m.sysflags, m.keywords, m.size, m.internaldate, b.date, b.from_, b.to_, b.subject,"
              " b.preview")


async def _user_id(conn: asyncpg.Connection, who: Owner) -> int:
    user_id: int | None = await conn.fetchval(
        "SELECT u.id FROM users u JOIN domains d ON d.id = u.domain_id WHERE d.name = $1 AND u.local_key = $2",
        who.domain, who.local.lower())
    if user_id is None:
        raise AuthenticationFailed("the account of this token no longer exists")
    return user_id


async def _mailbox_state(conn: asyncpg.Connection, who: Owner, name: str) -> tuple[int, int, int, int]:
    """(user id, mailbox id, UIDVALIDITY, HIGHESTMODSEQ) of the caller's selectable mailbox.

    Together they name the mailbox's content exactly: the MODSEQ moves with every change in
    it, and a mailbox id and UIDVALIDITY are never handed out twice.
    """
    user_id = await _user_id(conn, who)
    row = await conn.fetchrow("SELECT id, uidvalidity, highestmodseq FROM mailboxes WHERE user_id = $1"
                              " AND name = $2 AND NOT noselect", user_id, name)
    if row is None:
        raise NotFound(f"no folder named {name}")
    return user_id, row[0], row[1], row[2]


async def _page_of(conn: asyncpg.Connection, box: int, offset: int, limit: int) -> tuple[int, list[MessageRow]]:
    total = await conn.fetchval("SELECT count(*) FROM messages WHERE mailbox_id = $1", box)
    rows = await conn.fetch(f"SELECT {_LIST_COLS} FROM messages m JOIN blobs b ON b.id = m.blob_id"
                            " WHERE m.mailbox_id = $1 ORDER BY m.uid DESC LIMIT $2 OFFSET $3", box, limit, offset)
    return total, [MessageRow(*r) for r in rows]


class PgMailViews:
    """``storage.MailViews`` on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def folders(self, who: Owner) -> list[FolderRow]:
        async def q(conn: asyncpg.Connection) -> list[FolderRow]:
            rows = await conn.fetch(
                "SELECT b.name, b.special_use,"
                " EXISTS(SELECT 1 FROM subscriptions s WHERE s.user_id = b.user_id AND s.name = b.name), b.noselect,"
                " count(m.uid),"
                " count(m.uid) FILTER (WHERE m.sysflags & $2 = 0), coalesce(sum(m.size), 0)::bigint,"
                " b.uidvalidity, b.uidnext"
                " FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id WHERE b.user_id = $1"
                " GROUP BY b.id", await _user_id(conn, who), SEEN)
            out = [FolderRow(r[0], r[1], r[2], not r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]
            # INBOX first, then the hierarchy in name order (what mail clients show); sorted
            # here, by code point, whatever the database's collation.
            out.sort(key=lambda f: (f.name != "INBOX" and not f.name.startswith("INBOX/"), f.name))
            return out
        return await self.db.read(q)

    async def mailbox_id(self, who: Owner, name: str) -> int:
        async def q(conn: asyncpg.Connection) -> int:
            return (await _mailbox_state(conn, who, name))[1]
        return await self.db.read(q)

    async def special_mailbox(self, who: Owner, special_use: str) -> int | None:
        async def q(conn: asyncpg.Connection) -> int | None:
            box: int | None = await conn.fetchval(
                "SELECT id FROM mailboxes WHERE user_id = $1 AND special_use = $2 AND NOT noselect ORDER BY id LIMIT 1",
                await _user_id(conn, who), special_use)
            return box
        return await self.db.read(q)

    async def message(self, who: Owner, name: str, uid: int) -> MessageRow:
        async def q(conn: asyncpg.Connection) -> MessageRow:
            box = (await _mailbox_state(conn, who, name))[1]
            row = await conn.fetchrow(f"SELECT {_LIST_COLS}, b.cc, b.message_id, m.blob_id FROM messages m"
                                      " JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = $1 AND m.uid = $2",
                                      box, uid)
            if row is None:
                raise NotFound(f"no message with uid {uid} in {name}")
            return MessageRow(*row)
        return await self.db.read(q)

    async def page(self, who: Owner, name: str, offset: int, limit: int,
                   cached: Callable[[tuple[int, ...]], T | None]) -> tuple[tuple[int, ...], T | tuple[int, list[MessageRow]]]:
        """A page of the list, newest first, unless ``cached(key)`` already has it.

        ``key`` is (user id, mailbox id, UIDVALIDITY, HIGHESTMODSEQ, offset, limit): every
        change moves the MODSEQ, so a cached page under a key is never stale.
        """
        async def q(conn: asyncpg.Connection) -> tuple[tuple[int, ...], T | tuple[int, list[MessageRow]]]:
            key = (*await _mailbox_state(conn, who, name), offset, limit)
            hit = cached(key)
            return key, hit if hit is not None else await _page_of(conn, key[1], offset, limit)
        return await self.db.read(q)
