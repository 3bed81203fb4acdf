"""storage.MailViews over rmail.db: one snapshot, one reader-thread hop each.

The hot paths (folder list, message list, message entry) need the caller's user id, the
folder's id and the rows in one go; chaining the store's coroutines would cost three thread
hops per request.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, TypeVar

from ..errors import AuthenticationFailed, NotFound
from ..model import SYSTEM_FLAGS
from ..storage.views import FolderRow, MessageRow, Owner
from .database import Database

T = TypeVar("T")


def user_id(conn: sqlite3.Connection, who: Owner) -> int:
    row = conn.execute("SELECT u.id FROM users u JOIN domains d ON d.id = u.domain_id"
                       " WHERE d.name = ? AND u.local_key = ?", (who.domain, who.local.lower())).fetchone()
    if row is None:
        raise AuthenticationFailed("the account of this token no longer exists")
    return int(row[0])


def mailbox_id(conn: sqlite3.Connection, who: Owner, name: str) -> int:
    """The id of the caller's selectable mailbox ``name`` (already normalized)."""
    row = conn.execute("SELECT b.id FROM mailboxes b WHERE b.user_id = ? AND b.name = ? AND b.noselect = 0",
                       (user_id(conn, who), name)).fetchone()
    if row is None:
        raise NotFound(f"no folder named {name}")
    return int(row[0])


def special_mailbox(conn: sqlite3.Connection, who: Owner, special_use: str) -> int | None:
    row = conn.execute("SELECT id FROM mailboxes WHERE user_id = ? AND special_use = ? AND noselect = 0"
                       " ORDER BY id LIMIT 1", (user_id(conn, who), special_use)).fetchone()
    return row[0] if row else None


def folders(conn: sqlite3.Connection, who: Owner) -> list[FolderRow]:
    rows = conn.execute(
        "SELECT b.name, b.special_use,"
        " EXISTS(SELECT 1 FROM subscriptions s WHERE s.user_id = b.user_id AND s.name = b.name), b.noselect,"
        " count(m.uid),"
        " coalesce(sum((m.sysflags & ?) = 0), 0), coalesce(sum(m.size), 0), b.uidvalidity, b.uidnext"
        " FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id WHERE b.user_id = ?"
        " GROUP BY b.id", (SYSTEM_FLAGS["\\Seen"], user_id(conn, who))).fetchall()
    out = [FolderRow(r[0], r[1], bool(r[2]), not r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]
    # INBOX first, then the hierarchy in name order (what mail clients show).
    out.sort(key=lambda f: (f.name != "INBOX" and not f.name.startswith("INBOX/"), f.name))
    return out


_LIST_COLS = ("m.uid, m.sysflags, m.keywords, m.size, m.internaldate, b.date, b.from_, b.to_, b.subject,"
              " b.preview")


def mailbox_state(conn: sqlite3.Connection, who: Owner, name: str) -> tuple[int, int, int, int]:
    """(user id, mailbox id, UIDVALIDITY, HIGHESTMODSEQ) of the caller's mailbox.

    Together they name the mailbox's content exactly: the MODSEQ moves with every change in
    it, and UIDVALIDITY is new for every created mailbox, so a reused row id never matches.
    """
    uid_ = user_id(conn, who)
    row = conn.execute("SELECT b.id, b.uidvalidity, b.highestmodseq FROM mailboxes b WHERE b.user_id = ?"
                       " AND b.name = ? AND b.noselect = 0", (uid_, name)).fetchone()
    if row is None:
        raise NotFound(f"no folder named {name}")
    return uid_, row[0], row[1], row[2]


def page(conn: sqlite3.Connection, who: Owner, name: str, offset: int, limit: int) -> tuple[int, list[MessageRow]]:
    """Newest first (highest UID first); returns (total, rows)."""
    return page_of(conn, mailbox_id(conn, who, name), offset, limit)


def page_of(conn: sqlite3.Connection, box: int, offset: int, limit: int) -> tuple[int, list[MessageRow]]:
    total = conn.execute("SELECT count(*) FROM messages WHERE mailbox_id = ?", (box,)).fetchone()[0]
    rows = conn.execute(f"SELECT {_LIST_COLS} FROM messages m JOIN blobs b ON b.id = m.blob_id"
                        " WHERE m.mailbox_id = ? ORDER BY m.uid DESC LIMIT ? OFFSET ?", (box, limit, offset))
    return total, [MessageRow(*r) for r in rows]


def message(conn: sqlite3.Connection, who: Owner, name: str, uid: int) -> MessageRow:
    box = mailbox_id(conn, who, name)
    row = conn.execute(f"SELECT {_LIST_COLS}, b.cc, b.message_id, m.blob_id FROM messages m"
                       " JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?", (box, uid)).fetchone()
    if row is None:
        raise NotFound(f"no message with uid {uid} in {name}")
    return MessageRow(*row)


class SqliteMailViews:
    """The views above as coroutines, each one read on one reader thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def folders(self, who: Owner) -> list[FolderRow]:
        return await self.db.read(lambda conn: folders(conn, who))

    async def mailbox_id(self, who: Owner, name: str) -> int:
        return await self.db.read(lambda conn: mailbox_id(conn, who, name))

    async def special_mailbox(self, who: Owner, special_use: str) -> int | None:
        return await self.db.read(lambda conn: special_mailbox(conn, who, special_use))

    async def message(self, who: Owner, name: str, uid: int) -> MessageRow:
        return await self.db.read(lambda conn: message(conn, who, name, uid))

    async def page(self, who: Owner, name: str, offset: int, limit: int,
                   cached: Callable[[tuple[int, ...]], T | None]) -> tuple[tuple[int, ...], T | tuple[int, list[MessageRow]]]:
        """A page of the list, newest first, unless ``cached(key)`` already has it.

        ``key`` is (user id, mailbox id, UIDVALIDITY, HIGHESTMODSEQ, offset, limit): every
        change moves the MODSEQ, so a cached page under a key is never stale.
        """
        def q(conn: sqlite3.Connection) -> tuple[tuple[int, ...], T | tuple[int, list[MessageRow]]]:
            key = (*mailbox_state(conn, who, name), offset, limit)
            hit = cached(key)
            return key, hit if hit is not None else page_of(conn, key[1], offset, limit)
        return await self.db.read(q)
