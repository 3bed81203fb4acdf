"""The SQLite mail store: mailboxes and messages over SQLite metadata plus immutable blob files.

Write path (DESIGN.md): blob to a temp file → fsync → rename (worker thread) → the row in the
next group commit, which fsyncs the blob directories and then commits with synchronous=FULL →
only then does the coroutine return. Reads run on reader threads over WAL snapshots.

Every message write bumps the mailbox's HIGHESTMODSEQ and stamps the rows it touches with it;
expunges leave tombstones, so ``changes_since(modseq)`` tells a session exactly what happened.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import secrets
import sqlite3
import time
from array import array
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from .. import mime
from ..lru import BLOB_ID_CACHE_BYTES, BLOB_ID_COST, INFO_CACHE_BYTES, SizedLRU, info_size, read_through
from ..errors import AlreadyExists, InvalidInput, LimitExceeded, NotFound, PermissionDenied, TemporaryFailure
from ..events import MailboxChanged, MailboxesChanged, QueueChanged
from ..model import DEFAULT_MAILBOXES, Mailbox, MailboxChanges, MailboxStatus, MessageInfo, MessageMeta
from ..singleflight import SingleFlight
from ..space import FreeSpace
from ..storage.body import BytesBody, MessageBody
from ..storage.flags import DELETED, SEEN, columns_to_flags, flags_to_columns, stored_flags
from ..storage.mail import Delivered, Import, MailboxSnapshot, NewMessage, Outbound
from ..storage.names import MAX_SUBSCRIPTIONS, normalize_mailbox_name
from .blobs import BlobStore, FileBody
from .changelog import MAX_ENTRIES as LOG_ENTRIES, ChangeLogs, MailboxLog
from .database import Database, WriteTxn, write_error

log = logging.getLogger("rmail.store")
T = TypeVar("T")

IO_THREADS = 8
#: Messages up to this size are parsed on the event loop (about 0.3 ms for 2 KiB; see prepare).
INLINE_PARSE_MAX = 32 * 1024
#: Messages up to this size are kept in the database (table blob_data), larger ones as files.
#: Creating, flushing and unlinking a file per message costs filesystem journal commits that
#: the WAL append of a small row does not: measured under load, a file with its flush took
#: ~4 ms against ~0.5 ms for a committed row, and unlinks were a fifth of the writer's time.
INLINE_BLOB_MAX = 128 * 1024

_MAILBOX_COLS = "id, user_id, name, special_use, uidvalidity, uidnext, highestmodseq"
_META_COLS = "uid, modseq, sysflags, keywords, internaldate, size, blob_id, savedate"


@dataclass(frozen=True, slots=True)
class StagedBlob:
    """A parsed message whose bytes are ready to be committed with ``insert_blob``."""

    id: str
    size: int
    parsed: mime.ParsedMessage
    inline: bytes | None      #: the bytes, when they go into the database; None: a file


def _meta(row: Sequence[Any]) -> MessageMeta:
    uid, modseq, mask, keywords, internaldate, size, blob_id, savedate = row
    return MessageMeta(uid, modseq, columns_to_flags(mask, keywords),
                       datetime.fromtimestamp(internaldate, timezone.utc), size, blob_id,
                       datetime.fromtimestamp(savedate, timezone.utc))


def _changed_rows(conn: sqlite3.Connection, mailbox_id: int, modseq: int,
                  limit: int) -> tuple[list[Any], list[Any]]:
    """Rows (``_META_COLS``) changed after ``modseq`` and (uid, modseq) of expunges after it,
    at most ``limit`` of each (-1: all), in no order. No ORDER BY: sorting by UID would make
    SQLite walk the whole mailbox in UID order instead of the (mailbox_id, modseq) index."""
    rows = conn.execute(f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = ? AND modseq > ? LIMIT ?",
                        (mailbox_id, modseq, limit)).fetchall()
    expunged = conn.execute("SELECT uid, modseq FROM expunged WHERE mailbox_id = ? AND modseq > ? LIMIT ?",
                            (mailbox_id, modseq, limit)).fetchall()
    return rows, expunged


def _mailbox(row: Sequence[Any]) -> Mailbox:
    return Mailbox(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


#: UIDs per ``IN (...)`` list, under SQLite's limit on bound parameters.
CHUNK = 500
#: At most this many changed (or expunged) rows are read on the loop by ``changes_since``;
#: more go to a reader thread.
SMALL_CHANGES = 64
#: Reads of at most this many UIDs by key run on the loop (``Database.read_small``).
SMALL_KEYS = 32
#: A user's mailbox or subscription list of at most this many names is read on the loop.
SMALL_ROWS = 256


def _chunks(seq: Sequence[T], n: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class SqliteMailStore:
    """storage.MailStore over rmail.db and blobs/. All methods are coroutines and never block
    the loop; ``recover``, ``reusable_bytes`` and ``blob_ids`` are the backend's own (blocking)."""

    def __init__(self, db: Database, blobs: BlobStore, data_dir: Path, *, min_free_space: int = 0) -> None:
        self.db = db
        self.blobs = blobs
        #: Writes that add mail need this much free space (config limits.min_free_space).
        self.space = FreeSpace(data_dir, min_free_space, reusable=self.reusable_bytes)
        # Single-flight reads: (commit count when issued, the pending result).
        self._changes: SingleFlight[tuple[int, int], MailboxChanges] = SingleFlight(lambda: self.db.commits)
        #: Recent changes of the mailboxes sessions watch (changelog.py).
        self._logs = ChangeLogs()
        #: Logs being brought up to date by a read on a reader thread: mailbox id -> its end.
        self._refreshing: dict[int, asyncio.Future[None]] = {}
        #: \Recent claims not written yet: mailbox id -> first unclaimed UID (claim_recent_range).
        self._claimed: dict[int, int] = {}
        #: Bytes of small messages read lately (immutable by blob id, core/lru.py): FETCH of a hot message
        #: needs no reader-thread round trip.
        self._hot: SizedLRU[str, bytes] = SizedLRU()
        #: Parsed fields of messages fetched lately, by (mailbox id, UID) (core/lru.py).
        self._infos: SizedLRU[tuple[int, int], MessageInfo] = SizedLRU(INFO_CACHE_BYTES)
        #: Blob ids of messages fetched lately, by (mailbox id, UID).
        self._blob_ids: SizedLRU[tuple[int, int], str] = SizedLRU(BLOB_ID_CACHE_BYTES)
        # Parsing and writing blobs in parallel with the writer's commits.
        self._io = concurrent.futures.ThreadPoolExecutor(IO_THREADS, thread_name_prefix="rmail-io")

    @property
    def on_commit(self) -> Callable[[float], None] | None:
        return self.db.on_commit

    @on_commit.setter
    def on_commit(self, hook: Callable[[float], None] | None) -> None:
        self.db.on_commit = hook

    def close(self) -> None:
        self._io.shutdown(wait=True)

    # -- recovery --------------------------------------------------------------------------

    def recover(self) -> int:
        """Remove temp files and blob files no committed row references (crash leftovers)."""
        removed = self.blobs.clear_tmp()

        def referenced(conn: sqlite3.Connection) -> set[str]:
            return {r[0] for r in conn.execute("SELECT id FROM blobs")}

        known = self.db.read_sync(referenced)
        for blob_id in list(self.blobs.all_ids()):
            if blob_id not in known:
                self.blobs.remove(blob_id)
                removed += 1
        # Rows that lost every reference (a crash between commit and unlink) go too.
        def sweep(txn: WriteTxn) -> list[str]:
            ids = [r[0] for r in txn.conn.execute(
                "SELECT id FROM blobs WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = blobs.id)"
                " AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob_id = blobs.id)")]
            for blob_id in ids:
                txn.conn.execute("DELETE FROM blob_data WHERE id = ?", (blob_id,))
                txn.conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
                txn.after_commit.append(functools.partial(self.blobs.remove, blob_id))
            return ids
        return removed + len(self.db.write_sync(sweep))

    # -- mailboxes -------------------------------------------------------------------------

    @staticmethod
    def _next_uidvalidity(conn: sqlite3.Connection) -> int:
        """Strictly increasing across re-creations, so a re-created name never reuses one."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
        value = max(int(time.time()), int(row[0]) + 1 if row else 0) & 0xFFFFFFFF or 1
        conn.execute("INSERT INTO meta(key, value) VALUES('uidvalidity', ?)"
                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(value),))
        return value

    @staticmethod
    def _next_mailbox_id(conn: sqlite3.Connection) -> int:
        """Never reused (SQLite would hand out the highest id again after its row is deleted):
        an id names one life of a mailbox, so whatever still refers to an old life (a session,
        an in-flight write) finds it gone instead of meeting a later mailbox of that name."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'mailbox_id'").fetchone()
        top = int(conn.execute("SELECT coalesce(max(id), 0) FROM mailboxes").fetchone()[0])
        value = max(top, int(row[0]) if row else 0) + 1
        conn.execute("INSERT INTO meta(key, value) VALUES('mailbox_id', ?)"
                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(value),))
        return value

    def _insert_mailbox(self, conn: sqlite3.Connection, user_id: int, name: str, *,
                        special_use: str | None = None, noselect: bool = False) -> int:
        """Start a new life of a mailbox: a fresh id and UIDVALIDITY, UIDs and MODSEQs from 1,
        no expunge records. Returns its id."""
        mailbox_id = self._next_mailbox_id(conn)
        conn.execute("INSERT INTO mailboxes(id, user_id, name, special_use, noselect, uidvalidity)"
                     " VALUES(?,?,?,?,?,?)", (mailbox_id, user_id, name, special_use, int(noselect),
                                              self._next_uidvalidity(conn)))
        return mailbox_id

    @staticmethod
    def _end_life(conn: sqlite3.Connection, mailbox_id: int) -> None:
        """Remove a mailbox row with its expunge records (its messages must be gone already).
        Its name's subscription, if any, stays (RFC 3501 §6.3.6)."""
        conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
        conn.execute("DELETE FROM expunged WHERE mailbox_id = ?", (mailbox_id,))

    def create_default_mailboxes(self, txn: WriteTxn, user_id: int) -> None:
        """Called inside the transaction that creates a user (the directory's add_user): the
        default mailboxes, each subscribed (clients that show only subscribed folders)."""
        for name, special in DEFAULT_MAILBOXES:
            self._insert_mailbox(txn.conn, user_id, name, special_use=special.value if special else None)
            txn.conn.execute("INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES(?, ?)", (user_id, name))

    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        """Selectable mailboxes of a user, by name."""
        def q(conn: sqlite3.Connection, limit: int = -1) -> list[Mailbox] | None:
            rows = conn.execute(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE user_id = ? AND noselect = 0"
                                " ORDER BY name LIMIT ?", (user_id, limit)).fetchall()
            return None if len(rows) == limit else [_mailbox(r) for r in rows]
        return await self._few_or_all(q)

    async def _few_or_all(self, q: Callable[..., list[T] | None]) -> list[T]:
        """``q(conn, limit)`` (one statement over an index range, None when it hit the
        limit) on the loop for at most SMALL_ROWS rows, else ``q(conn)`` on a reader thread."""
        few = await self.db.read_small(lambda conn: q(conn, SMALL_ROWS + 1), single=True)
        if few is not None:
            return few
        every = await self.db.read(q, single=True)
        assert every is not None          # no limit
        return every

    async def list_noselect(self, user_id: int) -> list[str]:
        """Names kept only because they have children (LIST shows them \\Noselect)."""
        def q(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute(
                "SELECT name FROM mailboxes WHERE user_id = ? AND noselect = 1 ORDER BY name", (user_id,))]
        return await self.db.read(q, single=True)

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox:
        name = normalize_mailbox_name(name)

        def q(conn: sqlite3.Connection) -> Mailbox:
            row = conn.execute(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE user_id = ? AND name = ?"
                               " AND noselect = 0", (user_id, name)).fetchone()
            if row is None:
                raise NotFound(f"no mailbox named {name}")
            return _mailbox(row)
        return await self.db.read_small(q, single=True)

    async def create_mailbox(self, user_id: int, name: str, special_use: str | None = None) -> Mailbox:
        """Create a mailbox and any missing parents (RFC 3501 §6.3.3)."""
        name = normalize_mailbox_name(name)
        if special_use is not None and special_use not in {n for _, s in DEFAULT_MAILBOXES if s for n in [s.value]}:
            raise InvalidInput(f"unknown special-use attribute {special_use}")

        def w(txn: WriteTxn) -> Mailbox:
            conn = txn.conn
            parts = name.split("/")
            for depth in range(1, len(parts) + 1):
                path = "/".join(parts[:depth])
                row = conn.execute("SELECT id, noselect FROM mailboxes WHERE user_id = ? AND name = ?",
                                   (user_id, path)).fetchone()
                last = depth == len(parts)
                if row is None:
                    self._insert_mailbox(conn, user_id, path, special_use=special_use if last else None)
                elif last and row[1]:
                    # Re-creating over a \Noselect placeholder starts a new life of the name.
                    self._end_life(conn, row[0])
                    self._insert_mailbox(conn, user_id, path, special_use=special_use)
                elif last:
                    raise AlreadyExists(f"mailbox {name} already exists")
            txn.emit(MailboxesChanged(user_id))
            row = conn.execute(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE user_id = ? AND name = ?",
                               (user_id, name)).fetchone()
            return _mailbox(row)
        return await self.db.write(w)

    async def delete_mailbox(self, user_id: int, name: str) -> None:
        """RFC 3501 §6.3.4: INBOX cannot go; a mailbox with children becomes \\Noselect."""
        name = normalize_mailbox_name(name)
        if name == "INBOX":
            raise PermissionDenied("INBOX cannot be deleted")

        def w(txn: WriteTxn) -> None:
            conn = txn.conn
            row = conn.execute("SELECT id, noselect FROM mailboxes WHERE user_id = ? AND name = ?",
                               (user_id, name)).fetchone()
            if row is None:
                raise NotFound(f"no mailbox named {name}")
            mailbox_id, noselect = row
            has_children = conn.execute(
                "SELECT 1 FROM mailboxes WHERE user_id = ? AND substr(name, 1, ?) = ? LIMIT 1",
                (user_id, len(name) + 1, name + "/")).fetchone() is not None
            if noselect and has_children:
                raise InvalidInput(f"{name} has children and is already \\Noselect")
            rows = self._expunge_rows(txn, mailbox_id, None, tombstones=False)
            # This life of the mailbox ends here, expunge records included. A name kept for
            # its children is a new row: nothing of the old life can reach a later one.
            self._end_life(conn, mailbox_id)
            if has_children:
                self._insert_mailbox(conn, user_id, name, noselect=True)
            self.collect_blobs(txn, (blob_id for _, blob_id in rows))
            txn.emit(MailboxChanged(user_id, mailbox_id))
            txn.emit(MailboxesChanged(user_id))
        await self.db.write(w)

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        """RFC 3501 §6.3.5: children move along; renaming INBOX moves its messages instead."""
        old, new = normalize_mailbox_name(old), normalize_mailbox_name(new)
        if new == "INBOX" or new.startswith("INBOX/") and old == "INBOX":
            raise InvalidInput("cannot rename to INBOX or below INBOX itself")
        if new == old or new.startswith(old + "/"):
            raise InvalidInput("cannot rename a mailbox into itself")

        def w(txn: WriteTxn) -> None:
            conn = txn.conn
            row = conn.execute("SELECT id FROM mailboxes WHERE user_id = ? AND name = ? AND noselect = 0",
                               (user_id, old)).fetchone()
            if row is None:
                raise NotFound(f"no mailbox named {old}")
            if conn.execute("SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, new)).fetchone():
                raise AlreadyExists(f"mailbox {new} already exists")
            self._create_parents(conn, user_id, new)
            if old == "INBOX":
                dst = self._insert_mailbox(conn, user_id, new)
                uids = [r[0] for r in conn.execute("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (row[0],))]
                self._copy_rows(txn, row[0], uids, dst, keep_savedate=True)  # RENAME saves nothing anew
                self._expunge_rows(txn, row[0], uids, tombstones=True)  # blobs stay: now in `new`
                txn.emit(MailboxChanged(user_id, row[0]))
            else:
                # Keep UIDVALIDITY: the messages keep their UIDs (RFC 3501 allows either).
                conn.execute("UPDATE mailboxes SET name = ? || substr(name, ?) WHERE user_id = ?"
                             " AND (name = ? OR substr(name, 1, ?) = ?)",
                             (new, len(old) + 1, user_id, old, len(old) + 1, old + "/"))
            txn.emit(MailboxesChanged(user_id))
        await self.db.write(w)

    def _create_parents(self, conn: sqlite3.Connection, user_id: int, name: str) -> None:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            path = "/".join(parts[:depth])
            if conn.execute("SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, path)).fetchone() is None:
                self._insert_mailbox(conn, user_id, path)

    async def list_subscriptions(self, user_id: int) -> list[str]:
        """The user's subscription list, by name (names, not mailboxes)."""
        def q(conn: sqlite3.Connection, limit: int = -1) -> list[str] | None:
            rows = conn.execute("SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name LIMIT ?",
                                (user_id, limit)).fetchall()
            return None if len(rows) == limit else [r[0] for r in rows]
        return await self._few_or_all(q)

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        """Add or remove a name of the subscription list; the name need not exist."""
        name = normalize_mailbox_name(name)

        def w(txn: WriteTxn) -> None:
            conn = txn.conn
            if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
                raise NotFound("no such user")
            if not subscribed:
                changed = conn.execute("DELETE FROM subscriptions WHERE user_id = ? AND name = ?",
                                       (user_id, name)).rowcount
            elif conn.execute("SELECT 1 FROM subscriptions WHERE user_id = ? AND name = ?",
                              (user_id, name)).fetchone() is not None:
                changed = 0
            elif conn.execute("SELECT count(*) FROM subscriptions WHERE user_id = ?",
                              (user_id,)).fetchone()[0] >= MAX_SUBSCRIPTIONS:
                raise LimitExceeded(f"at most {MAX_SUBSCRIPTIONS} subscriptions per user")
            else:
                changed = conn.execute("INSERT INTO subscriptions(user_id, name) VALUES(?, ?)",
                                       (user_id, name)).rowcount
            if changed:
                txn.emit(MailboxesChanged(user_id))
        await self.db.write(w)

    async def status(self, mailbox_id: int) -> MailboxStatus:
        def q(conn: sqlite3.Connection) -> MailboxStatus:
            return self._status(conn, mailbox_id)
        return await self.db.read(q)

    async def status_many(self, mailbox_ids: Sequence[int]) -> dict[int, MailboxStatus]:
        def q(conn: sqlite3.Connection) -> dict[int, MailboxStatus]:
            return {mid: self._status(conn, mid) for mid in mailbox_ids}
        return await self.db.read(q)

    def _status(self, conn: sqlite3.Connection, mailbox_id: int) -> MailboxStatus:
        box = conn.execute("SELECT uidnext, uidvalidity, highestmodseq, recent_uid FROM mailboxes WHERE id = ?",
                           (mailbox_id,)).fetchone()
        if box is None:
            raise NotFound("mailbox no longer exists")
        uidnext, uidvalidity, modseq, recent_uid = box
        recent_uid = self._recent_mark(mailbox_id, recent_uid)
        total, unseen, recent, size = conn.execute(
            "SELECT count(*), coalesce(sum((sysflags & ?) = 0), 0), coalesce(sum(uid >= ?), 0),"
            " coalesce(sum(size), 0) FROM messages WHERE mailbox_id = ?",
            (SEEN, recent_uid, mailbox_id)).fetchone()
        return MailboxStatus(total, unseen, recent, uidnext, uidvalidity, modseq, size)

    # -- messages: reading -----------------------------------------------------------------

    async def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        """Every message of a mailbox in UID order (SELECT builds its view from this)."""
        def q(conn: sqlite3.Connection) -> list[MessageMeta]:
            rows = conn.execute(f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,))
            return [_meta(r) for r in rows]
        return await self.db.read(q, single=True)

    async def snapshot(self, user_id: int, name: str) -> MailboxSnapshot:
        """A mailbox and all its messages as columns, from one read (what SELECT needs).

        Columns rather than one object per message: building 10,000 MessageMeta values was
        most of SELECT's time, and a session keeps exactly these columns anyway.

        Raises:
            NotFound: no selectable mailbox of that name.
        """
        name = normalize_mailbox_name(name)

        def q(conn: sqlite3.Connection) -> MailboxSnapshot:
            row = conn.execute(f"SELECT {_MAILBOX_COLS}, recent_uid FROM mailboxes WHERE user_id = ? AND name = ?"
                               " AND noselect = 0", (user_id, name)).fetchone()
            if row is None:
                raise NotFound(f"no mailbox named {name}")
            rows = conn.execute("SELECT uid, sysflags, keywords, size, internaldate, modseq, savedate FROM messages"
                                " WHERE mailbox_id = ? ORDER BY uid", (row[0],)).fetchall()
            if rows:
                uids, masks, keywords, sizes, dates, modseqs, savedates = zip(*rows)
            else:
                uids = masks = keywords = sizes = dates = modseqs = savedates = ()
            return MailboxSnapshot(_mailbox(row), self._recent_mark(row[0], row[7]), array("I", uids),
                                   list(map(columns_to_flags, masks, keywords)), array("Q", sizes), array("d", dates),
                                   array("Q", modseqs), array("d", savedates))
        return await self.db.read(q)

    async def get_meta(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageMeta]:
        def q(conn: sqlite3.Connection) -> list[MessageMeta]:
            out: list[MessageMeta] = []
            for chunk in _chunks(list(uids)):
                marks = ",".join("?" * len(chunk))
                out += [_meta(r) for r in conn.execute(
                    f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = ? AND uid IN ({marks})", (mailbox_id, *chunk))]
            out.sort(key=lambda m: m.uid)
            return out
        if len(uids) <= SMALL_KEYS:
            return await self.db.read_small(q, single=True)
        return await self.db.read(q, single=len(uids) <= CHUNK)

    async def message_blobs(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        """From memory for messages asked for lately (core/lru.py), else from `get_meta`."""
        async def read(keys: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
            metas = await self.get_meta(mailbox_id, [uid for _, uid in keys])
            return {(mailbox_id, m.uid): m.blob_id for m in metas}
        found = await read_through(self._blob_ids, ((mailbox_id, uid) for uid in uids), read,
                                   lambda blob_id: BLOB_ID_COST)
        return {uid: blob_id for (_, uid), blob_id in found.items()}

    async def page(self, mailbox_id: int, offset: int, limit: int) -> tuple[int, list[MessageMeta]]:
        """Newest first (highest UID first), for the REST list; returns (total, page)."""
        def q(conn: sqlite3.Connection) -> tuple[int, list[MessageMeta]]:
            total = conn.execute("SELECT count(*) FROM messages WHERE mailbox_id = ?", (mailbox_id,)).fetchone()[0]
            rows = conn.execute(f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = ? ORDER BY uid DESC"
                                " LIMIT ? OFFSET ?", (mailbox_id, limit, offset))
            return total, [_meta(r) for r in rows]
        return await self.db.read(q)

    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        """Messages added or re-flagged after ``modseq`` and UIDs expunged after it.

        Asked by every session on a mailbox after each change there: answered from the
        mailbox's change log (changelog.py) when ``modseq`` is within it; else read, on the
        loop (``read_small``) when a few rows, past that on a reader thread, where concurrent
        identical calls share one query (core/singleflight.py).
        """
        changelog = await self._fresh_log(mailbox_id)
        found = changelog.since(modseq)
        if found is not None:
            return MailboxChanges(changelog.high, changelog.uidnext, found[0], found[1],
                                  self._recent_mark(mailbox_id, changelog.recent_uid))

        def q(conn: sqlite3.Connection, limit: int = -1) -> MailboxChanges | None:
            box = conn.execute("SELECT highestmodseq, uidnext, recent_uid FROM mailboxes WHERE id = ?",
                               (mailbox_id,)).fetchone()
            if box is None:
                raise NotFound("mailbox no longer exists")
            recent_uid = self._recent_mark(mailbox_id, box[2])
            if box[0] <= modseq:
                return MailboxChanges(box[0], box[1], (), (), recent_uid)
            rows, expunged = _changed_rows(conn, mailbox_id, modseq, limit)
            if limit >= 0 and (len(rows) == limit or len(expunged) == limit):
                return None
            rows.sort()
            return MailboxChanges(box[0], box[1], tuple(map(_meta, rows)), tuple(sorted(r[0] for r in expunged)),
                                  recent_uid)

        few = await self.db.read_small(lambda conn: q(conn, SMALL_CHANGES + 1))
        if few is not None:
            return few
        return await self._changes.run((mailbox_id, modseq), lambda: self.db.read(q))  # type: ignore[arg-type]

    async def _fresh_log(self, mailbox_id: int) -> MailboxLog:
        """The mailbox's change log, brought up to date with every commit made before this call:
        one read of what changed after the log (on the loop when a few rows, else on a reader
        thread, which concurrent callers wait for instead of reading again). A mailbox without
        a log gets an empty one from its current HIGHESTMODSEQ.

        Raises: NotFound (the mailbox is gone).
        """
        need = self.db.commits
        while True:
            changelog = self._logs.get(mailbox_id)
            if changelog is not None and changelog.commits >= need:
                return changelog
            pending = self._refreshing.get(mailbox_id)
            if pending is None:
                break
            await asyncio.shield(pending)       # then look again: it may have read too early
        done = asyncio.get_running_loop().create_future()
        self._refreshing[mailbox_id] = done
        try:
            return await self._refresh_log(mailbox_id, changelog)
        finally:
            del self._refreshing[mailbox_id]
            done.set_result(None)

    async def _refresh_log(self, mailbox_id: int, changelog: MailboxLog | None) -> MailboxLog:
        commits = self.db.commits
        since = changelog.high if changelog is not None else None

        def q(conn: sqlite3.Connection, limit: int) -> tuple[Any, list[Any], list[Any]]:
            box = conn.execute("SELECT highestmodseq, uidnext, recent_uid, uidvalidity FROM mailboxes WHERE id = ?",
                               (mailbox_id,)).fetchone()
            if box is None:
                raise NotFound("mailbox no longer exists")
            if since is None or box[0] <= since:
                return box, [], []
            rows, expunged = _changed_rows(conn, mailbox_id, since, limit)
            return box, rows, expunged
        try:
            box, rows, expunged = await self.db.read_small(lambda conn: q(conn, SMALL_CHANGES + 1))
            if len(rows) > SMALL_CHANGES or len(expunged) > SMALL_CHANGES:
                box, rows, expunged = await self.db.read(lambda conn: q(conn, LOG_ENTRIES + 1))
        except NotFound:
            self._logs.drop(mailbox_id)
            raise
        high, uidnext, recent_uid, uidvalidity = box
        if (changelog is None or changelog.uidvalidity != uidvalidity or high < changelog.high
                or len(rows) > LOG_ENTRIES or len(expunged) > LOG_ENTRIES):
            # New, changed too much at once, or (never expected: ids are not reused) another
            # life of the mailbox: start afresh from where it is now.
            changelog = MailboxLog(uidvalidity, high, uidnext, recent_uid, commits)
            self._logs.start(mailbox_id, changelog)
            return changelog
        changelog.add(high, uidnext, recent_uid, commits, map(_meta, rows), expunged)
        return changelog

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        """UIDs expunged after ``modseq`` (QRESYNC), ascending; the records live as long as
        the mailbox (``_end_life`` alone removes them)."""
        def q(conn: sqlite3.Connection) -> list[int]:
            if conn.execute("SELECT 1 FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone() is None:
                raise NotFound("mailbox no longer exists")
            return sorted(r[0] for r in conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?", (mailbox_id, modseq)))
        return await self.db.read(q)

    async def fetch_info(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageInfo]:
        """Parsed fields (ENVELOPE, BODYSTRUCTURE, headers...) for FETCH and the REST API;
        those fetched lately from memory (core/lru.py)."""
        async def read(keys: list[tuple[int, int]]) -> dict[tuple[int, int], MessageInfo]:
            found = await self._read_infos(mailbox_id, [uid for _, uid in keys])
            return {(mailbox_id, uid): info for uid, info in found.items()}
        found = await read_through(self._infos, ((mailbox_id, uid) for uid in uids), read, info_size)
        return {uid: info for (_, uid), info in found.items()}

    async def _read_infos(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageInfo]:
        def q(conn: sqlite3.Connection) -> dict[int, MessageInfo]:
            out: dict[int, MessageInfo] = {}
            for chunk in _chunks(list(uids)):
                marks = ",".join("?" * len(chunk))
                for r in conn.execute(
                        "SELECT m.uid, b.envelope, b.bodystructure, b.body, b.header_text, b.subject, b.from_,"
                        " b.to_, b.cc, b.date, b.message_id, b.in_reply_to, b.refs, b.preview"
                        f" FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid IN ({marks})",
                        (mailbox_id, *chunk)):
                    date = datetime.fromtimestamp(r[9], timezone.utc) if r[9] is not None else None
                    out[r[0]] = MessageInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], date,
                                            r[10], r[11], r[12], r[13])
            return out
        if len(uids) <= SMALL_KEYS:
            return await self.db.read_small(q, single=True)
        return await self.db.read(q, single=len(uids) <= CHUNK)

    async def search_text(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        """Casefolded decoded body text (SEARCH BODY/TEXT), precomputed at delivery."""
        def q(conn: sqlite3.Connection) -> dict[int, str]:
            out: dict[int, str] = {}
            for chunk in _chunks(list(uids)):
                marks = ",".join("?" * len(chunk))
                out.update(conn.execute(
                    f"SELECT m.uid, b.search_text FROM messages m JOIN blobs b ON b.id = m.blob_id"
                    f" WHERE m.mailbox_id = ? AND m.uid IN ({marks})", (mailbox_id, *chunk)).fetchall())
            return out
        return await self.db.read(q, single=len(uids) <= CHUNK)

    async def _read_inline(self, blob_id: str) -> bytes | None:
        """The bytes of a message kept in the database (at most INLINE_BLOB_MAX), or None
        when they live in a file. Files are immutable once committed."""
        cached = self._hot.get(blob_id)
        if cached is not None:
            return cached

        def q(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT data FROM blob_data WHERE id = ?", (blob_id,)).fetchone()
            return row[0] if row else None
        data = await self.db.read_small(q, single=True)
        if data is not None:
            self._hot.put(blob_id, data, len(data))
        return data

    async def open_message(self, blob_id: str) -> MessageBody:
        """From the database when small, else the open file (streamed on worker threads)."""
        data = await self._read_inline(blob_id)
        if data is not None:
            return BytesBody(data)
        return await FileBody.open(self.blobs, blob_id)

    async def read_message(self, blob_id: str) -> bytes:
        """The raw bytes of a message (off the loop): from the database or its file."""
        data = await self._read_inline(blob_id)
        if data is not None:
            return data
        try:
            return await asyncio.get_running_loop().run_in_executor(self._io, self.blobs.read, blob_id)
        except (FileNotFoundError, ValueError):
            raise NotFound("message no longer exists") from None

    async def imported_keys(self, user_id: int, source: str) -> set[str]:
        def q(conn: sqlite3.Connection) -> set[str]:
            return {r[0] for r in conn.execute("SELECT key FROM imported WHERE user_id = ? AND source = ?",
                                               (user_id, source))}
        return await self.db.read(q)

    def reusable_bytes(self) -> int:
        """Bytes of free pages inside rmail.db, which new rows reuse without growing the file
        (blocking; 0 when the store cannot be read)."""
        def q(conn: sqlite3.Connection) -> int:
            free_pages = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            return free_pages * int(conn.execute("PRAGMA page_size").fetchone()[0])
        try:
            return self.db.read_sync(q)
        except TemporaryFailure:
            return 0

    async def integrity_check(self) -> str:
        """SQLite's quick_check of rmail.db: "ok" or the first problem found."""
        return await self.db.read(lambda conn: conn.execute("PRAGMA quick_check").fetchone()[0])

    def blob_ids(self) -> set[str]:
        """Every blob that has bytes stored, in the database or as a file (for checks)."""
        inline = self.db.read_sync(lambda conn: {r[0] for r in conn.execute("SELECT id FROM blob_data")})
        return inline | set(self.blobs.all_ids())

    async def claim_recent(self, mailbox_id: int) -> int:
        """RFC 3501 §2.3.2: \\Recent goes to one session only. Returns the first UID this
        session sees as recent; later sessions get UIDs from the new mark on."""
        return (await self.claim_recent_range(mailbox_id))[0]

    async def claim_recent_range(self, mailbox_id: int) -> tuple[int, int]:
        """Claim every unclaimed UID as \\Recent for the calling session: returns the claimed
        UIDs as a range ``[first, end)``, which may reach past what the session has read so
        far (a message committed in between is this session's too, once it learns of it).

        A claim holds in memory at once (this process is the only server on the file) and is
        written behind, without waiting for its commit. \\Recent is advisory: a crash that
        loses a claim shows those messages as \\Recent once more, to a session of the restarted
        server (the claiming one died with the old). Waiting for a durable write here made any
        command after another session's APPEND wait for a commit.
        """
        def marks(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute("SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if row is None:
                raise NotFound("mailbox no longer exists")
            return int(row[0]), int(row[1])

        recent_uid, uidnext = await self.db.read_small(marks, single=True)
        # From here to the memory update nothing awaits: two sessions never take one UID.
        first = self._recent_mark(mailbox_id, recent_uid)
        if uidnext <= first:
            return first, first
        self._claimed[mailbox_id] = uidnext

        def w(txn: WriteTxn) -> None:
            txn.conn.execute("UPDATE mailboxes SET recent_uid = max(recent_uid, ?) WHERE id = ?", (uidnext, mailbox_id))

        def written(done: asyncio.Future[None]) -> None:
            if self._claimed.get(mailbox_id) == uidnext:
                del self._claimed[mailbox_id]     # the file has it (or, on a failure, forgets it)
            if not done.cancelled() and done.exception() is not None:
                log.info("store: \\Recent claim of mailbox %d not saved: %s", mailbox_id, done.exception())
        asyncio.wrap_future(self.db.submit(w)).add_done_callback(written)
        return first, uidnext

    def _recent_mark(self, mailbox_id: int, stored: int) -> int:
        """The first UID no session has claimed: the stored mark, or a claim not yet written."""
        return max(stored, self._claimed.get(mailbox_id, 0))

    # -- messages: writing -----------------------------------------------------------------

    async def prepare(self, data: bytes) -> StagedBlob:
        """Parse ``data`` and stage its bytes. The caller then commits a row with
        ``insert_blob`` (whose commit makes the bytes durable first) or calls ``discard``;
        a crash in between leaves at most a file that start-up recovery removes.

        A small message is parsed on the loop: the parse is pure Python, so a thread would
        not run it in parallel, only add a hand-over of the GIL per message (measured: the
        loop thread then waits for the GIL behind the parsing threads). Large ones are parsed
        on an I/O thread so the loop never stalls for long, and written to a file there.
        """
        if len(data) <= INLINE_BLOB_MAX:
            parsed = (mime.parse_message(data) if len(data) <= INLINE_PARSE_MAX else
                      await asyncio.get_running_loop().run_in_executor(self._io, mime.parse_message, data))
            return StagedBlob(secrets.token_hex(16), len(data), parsed, data)

        def work() -> StagedBlob:
            parsed = mime.parse_message(data)
            try:
                return StagedBlob(self.blobs.write(data), len(data), parsed, None)
            except OSError as exc:
                log.error("store: cannot write a message file: %s", exc)
                raise write_error(exc) from None
        return await asyncio.get_running_loop().run_in_executor(self._io, work)

    async def discard(self, staged: StagedBlob) -> None:
        """Forget a staged blob whose row was never committed."""
        if staged.inline is None:
            await asyncio.get_running_loop().run_in_executor(self._io, self.blobs.remove, staged.id)

    def insert_blob(self, txn: WriteTxn, staged: StagedBlob) -> None:
        p = staged.parsed
        date = int(p.date.timestamp()) if p.date is not None else None
        txn.conn.execute(
            "INSERT INTO blobs(id, size, envelope, bodystructure, body, header_text, search_text, subject, from_,"
            " to_, cc, date, message_id, in_reply_to, refs, preview) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (staged.id, staged.size, p.envelope, p.bodystructure, p.body, p.header_text, p.search_text, p.subject,
             p.from_, p.to, p.cc, date, p.message_id, p.in_reply_to, p.references, p.preview))
        if staged.inline is not None:
            txn.conn.execute("INSERT INTO blob_data(id, data) VALUES(?, ?)", (staged.id, staged.inline))
        else:
            txn.new_files.append(staged.id)
            txn.on_rollback.append(lambda: self.blobs.remove(staged.id))

    @staticmethod
    def _next_uid(conn: sqlite3.Connection, mailbox_id: int) -> tuple[int, int]:
        """Allocate one UID and one MODSEQ in a mailbox (caller is inside the write txn)."""
        row = conn.execute("UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
                           " WHERE id = ? AND noselect = 0 RETURNING uidnext - 1, highestmodseq, user_id",
                           (mailbox_id,)).fetchone()
        if row is None:
            raise NotFound("mailbox no longer exists")
        return row[0], row[1]

    @staticmethod
    def _bump_modseq(conn: sqlite3.Connection, mailbox_id: int) -> tuple[int, int]:
        row = conn.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?"
                           " RETURNING highestmodseq, user_id", (mailbox_id,)).fetchone()
        if row is None:
            raise NotFound("mailbox no longer exists")
        return row[0], row[1]

    async def append(self, mailbox_id: int, data: bytes, flags: Iterable[str] = (),
                     internaldate: datetime | None = None) -> int:
        """Store a message durably in one mailbox; returns its UID."""
        return (await self.deliver([(mailbox_id, tuple(flags))], data, internaldate)).uids[0]

    async def append_many(self, mailbox_id: int, messages: Sequence[NewMessage]) -> list[int]:
        """Several messages into one mailbox in one write transaction (storage.MailStore.
        append_many): each blob is staged first, the rows commit together or not at all."""
        if not messages:
            raise InvalidInput("nothing to append")
        columns = [flags_to_columns(m.flags) for m in messages]
        await self.space.require(sum(len(m.data) for m in messages))
        staged: list[StagedBlob] = []
        try:
            for m in messages:
                staged.append(await self.prepare(m.data))
        except asyncio.CancelledError:
            raise  # files no row references: start-up recovery removes them
        except BaseException:
            for blob in staged:
                await self.discard(blob)
            raise

        def w(txn: WriteTxn) -> list[int]:
            conn = txn.conn
            saved = int(time.time())   # the moment of saving (RFC 8514 §3), taken in the transaction
            uids = []
            for m, blob, (mask, keywords) in zip(messages, staged, columns):
                self.insert_blob(txn, blob)
                uid, modseq = self._next_uid(conn, mailbox_id)
                conn.execute(
                    "INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, internaldate, size, blob_id,"
                    " savedate) VALUES(?,?,?,?,?,?,?,?,?)",
                    (mailbox_id, uid, modseq, mask, keywords,
                     saved if m.internaldate is None else int(m.internaldate.timestamp()), len(m.data), blob.id, saved))
                uids.append(uid)
            txn.emit(MailboxChanged(self._owner(conn, mailbox_id), mailbox_id))
            return uids
        try:
            return await self.db.write(w)
        except asyncio.CancelledError:
            raise  # as in deliver: the write's own rollback or start-up recovery cleans up
        except BaseException:
            for blob in staged:
                await self.discard(blob)
            raise

    async def deliver(self, targets: Sequence[tuple[int, Iterable[str]]], data: bytes,
                      internaldate: datetime | None = None, *, outbound: Outbound | None = None,
                      imported: Import | None = None) -> Delivered:
        """Store one message in several mailboxes (one blob, one row each), plus outbound
        queue entries and an import record, in one transaction (storage.MailStore.deliver):
        all of it commits or none of it, so a failure never leaves local copies behind an
        error that makes the sender retry.

        Raises:
            StorageFull: below the free-space reserve, or the disk filled up.
            NotFound: a target mailbox no longer exists (nothing is stored).
        """
        columns = [flags_to_columns(flags) for _, flags in targets]
        if outbound is not None and not outbound.recipients:
            raise InvalidInput("no recipients to queue")
        given = int(internaldate.timestamp()) if internaldate is not None else None
        await self.space.require(len(data))
        staged = await self.prepare(data)

        def w(txn: WriteTxn) -> Delivered:
            self.insert_blob(txn, staged)
            conn = txn.conn
            saved = int(time.time())   # the moment of saving (RFC 8514 §3)
            when = saved if given is None else given
            uids = []
            for (mailbox_id, _), (mask, keywords) in zip(targets, columns):
                uid, modseq = self._next_uid(conn, mailbox_id)
                conn.execute(
                    "INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, internaldate, size, blob_id,"
                    " savedate) VALUES(?,?,?,?,?,?,?,?,?)",
                    (mailbox_id, uid, modseq, mask, keywords, when, len(data), staged.id, saved))
                uids.append(uid)
                txn.emit(MailboxChanged(self._owner(conn, mailbox_id), mailbox_id))
            queued: list[int] = []
            if outbound is not None:
                for rcpt in outbound.recipients:
                    cur = conn.execute("INSERT INTO queue(sender, recipient, blob_id, size, created, next_attempt)"
                                       " VALUES(?,?,?,?,?,?)", (outbound.sender, rcpt, staged.id, len(data),
                                                                int(outbound.created), int(outbound.created)))
                    assert cur.lastrowid is not None      # set by every INSERT
                    queued.append(cur.lastrowid)
                txn.emit(QueueChanged())
            if imported is not None:
                conn.execute("INSERT INTO imported(user_id, source, key) VALUES(?,?,?)",
                             (imported.user_id, imported.source, imported.key))
                # Not \Recent: move the recent mark past the message, unless an earlier one
                # (delivered meanwhile) is still unclaimed by any session.
                for mailbox_id, _ in targets:
                    conn.execute("UPDATE mailboxes SET recent_uid = uidnext WHERE id = ? AND recent_uid = uidnext - 1",
                                 (mailbox_id,))
            return Delivered(tuple(uids), tuple(queued))
        try:
            return await self.db.write(w)
        except asyncio.CancelledError:
            # The write may be under way and commit: its own rollback removes a file it does
            # not commit, and start-up recovery one it never ran for.
            raise
        except BaseException:
            await self.discard(staged)
            raise

    @staticmethod
    def _owner(conn: sqlite3.Connection, mailbox_id: int) -> int:
        return int(conn.execute("SELECT user_id FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()[0])

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str,
                          flags: Iterable[str], *, unchanged_since: int | None = None) -> list[MessageMeta]:
        """STORE: ``mode`` is "set", "add" or "remove". Returns the messages as they are now
        (only those that exist). Rows whose flags do not change keep their MODSEQ; with
        ``unchanged_since``, rows whose MODSEQ is above it are skipped and not returned
        (checked inside the write transaction, so no other writer comes in between)."""
        if mode not in ("set", "add", "remove"):
            raise InvalidInput("flag mode must be set, add or remove")
        mask, keywords = flags_to_columns(flags)
        kw = frozenset(keywords.split()) if keywords else frozenset()

        def w(txn: WriteTxn) -> list[MessageMeta]:
            conn = txn.conn
            out: list[MessageMeta] = []
            modseq = None
            for chunk in _chunks(list(uids)):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
                                    (mailbox_id, *chunk)).fetchall()
                # One UPDATE per resulting set of flags, not per row: each statement is a
                # round of the writer thread through the GIL.
                updates: dict[tuple[int, str], list[int]] = {}
                for row in rows:
                    if unchanged_since is not None and row[1] > unchanged_since:
                        continue                   # RFC 7162 §3.1.3: changed since; MODIFIED
                    new = stored_flags(mode, row[2], row[3], mask, kw)
                    if new is None:
                        out.append(_meta(row))     # unchanged: keeps its MODSEQ
                        continue
                    if modseq is None:
                        modseq, user_id = self._bump_modseq(conn, mailbox_id)
                        txn.emit(MailboxChanged(user_id, mailbox_id))
                    updates.setdefault(new, []).append(row[0])
                    out.append(_meta((row[0], modseq, new[0], new[1], row[4], row[5], row[6], row[7])))
                for (new_mask, kw_text), changed in updates.items():
                    conn.execute(f"UPDATE messages SET sysflags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ?"
                                 f" AND uid IN ({','.join('?' * len(changed))})",
                                 (new_mask, kw_text, modseq, mailbox_id, *changed))
            out.sort(key=lambda m: m.uid)
            return out
        return await self.db.write(w)

    def _copy_rows(self, txn: WriteTxn, src: int, uids: Sequence[int], dst: int, *,
                   keep_savedate: bool = False) -> list[tuple[int, int]]:
        """Copies get the moment of the copy as their save date (RFC 8514 §3: COPY and MOVE
        save anew), unless ``keep_savedate`` (INBOX's RENAME)."""
        conn = txn.conn
        now = int(time.time())
        pairs: list[tuple[int, int]] = []
        for chunk in _chunks(list(uids)):
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT uid, sysflags, keywords, internaldate, size, blob_id, savedate FROM messages"
                                f" WHERE mailbox_id = ? AND uid IN ({marks}) ORDER BY uid", (src, *chunk)).fetchall()
            for uid, mask, keywords, internaldate, size, blob_id, savedate in rows:
                new_uid, modseq = self._next_uid(conn, dst)
                conn.execute("INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, internaldate, size,"
                             " blob_id, savedate) VALUES(?,?,?,?,?,?,?,?,?)",
                             (dst, new_uid, modseq, mask, keywords, internaldate, size, blob_id,
                              savedate if keep_savedate else now))
                pairs.append((uid, new_uid))
        if pairs:
            txn.emit(MailboxChanged(self._owner(conn, dst), dst))
        return pairs

    async def copy(self, src: int, uids: Sequence[int], dst: int) -> list[tuple[int, int]]:
        """COPY (RFC 3501 §6.4.7): the blob is shared, flags kept. Returns (src_uid, dst_uid).

        Raises:
            StorageFull: below the free-space reserve (MOVE and deletions are not refused).
        """
        await self.space.require()

        def w(txn: WriteTxn) -> list[tuple[int, int]]:
            return self._copy_rows(txn, src, uids, dst)
        return await self.db.write(w)

    async def move(self, src: int, uids: Sequence[int], dst: int) -> list[tuple[int, int]]:
        """MOVE (RFC 6851): copy and expunge atomically."""
        def w(txn: WriteTxn) -> list[tuple[int, int]]:
            pairs = self._copy_rows(txn, src, uids, dst)
            self._expunge_rows(txn, src, [p[0] for p in pairs], tombstones=True)
            return pairs
        return await self.db.write(w)

    def _expunge_rows(self, txn: WriteTxn, mailbox_id: int, uids: Sequence[int] | None, *,
                      tombstones: bool, only_deleted: bool = False) -> list[tuple[int, str]]:
        """Delete message rows; returns their (uid, blob id) pairs (for ``collect_blobs``)."""
        conn = txn.conn
        cond = " AND (sysflags & ?) != 0" if only_deleted else ""
        extra: tuple[int, ...] = (DELETED,) if only_deleted else ()
        if uids is None:
            rows = conn.execute(f"SELECT uid, blob_id FROM messages WHERE mailbox_id = ?{cond}",
                                (mailbox_id, *extra)).fetchall()
        else:
            rows = []
            for chunk in _chunks(list(uids)):
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(f"SELECT uid, blob_id FROM messages WHERE mailbox_id = ? AND uid IN ({marks}){cond}",
                                     (mailbox_id, *chunk, *extra)).fetchall()
        if not rows:
            return []
        modseq, user_id = self._bump_modseq(conn, mailbox_id)
        # Statements over a chunk each, not one per row: every statement is a round of the
        # writer thread through the GIL.
        for chunk in _chunks([r[0] for r in rows], CHUNK * 3 // 5):    # 3 parameters per row
            conn.execute(f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))})",
                         (mailbox_id, *chunk))
            if tombstones:
                conn.execute("INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES"
                             + ",".join(["(?,?,?)"] * len(chunk)),
                             [v for uid in chunk for v in (mailbox_id, uid, modseq)])
        txn.emit(MailboxChanged(user_id, mailbox_id))
        return [(r[0], r[1]) for r in rows]

    def collect_blobs(self, txn: WriteTxn, blob_ids: Iterable[str]) -> None:
        """Drop blob rows nothing references any more; unlink their files after commit."""
        conn = txn.conn
        for chunk in _chunks(sorted(set(blob_ids)), CHUNK // 2):       # each id twice
            marks = ",".join("?" * len(chunk))
            used = {r[0] for r in conn.execute(f"SELECT blob_id FROM messages WHERE blob_id IN ({marks})"
                                               f" UNION SELECT blob_id FROM queue WHERE blob_id IN ({marks})",
                                               (*chunk, *chunk))}
            unused = [blob_id for blob_id in chunk if blob_id not in used]
            if not unused:
                continue
            marks = ",".join("?" * len(unused))
            inline = {r[0] for r in conn.execute(f"DELETE FROM blob_data WHERE id IN ({marks}) RETURNING id", unused)}
            for blob_id in unused:
                if blob_id not in inline:
                    self._unlink_after_commit(txn, blob_id)
            conn.execute(f"DELETE FROM blobs WHERE id IN ({marks})", unused)

    def _unlink_after_commit(self, txn: WriteTxn, blob_id: str) -> None:
        """Unlinking is slow (a journal update) and nothing waits on it: an I/O thread does it.
        A crash before it happens leaves a file that start-up recovery removes."""
        txn.after_commit.append(lambda: self._io.submit(self.blobs.remove, blob_id))

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """EXPUNGE / UID EXPUNGE: remove messages flagged \\Deleted (limited to ``uids`` if
        given). Returns the expunged UIDs in ascending order."""
        def w(txn: WriteTxn) -> list[int]:
            rows = self._expunge_rows(txn, mailbox_id, uids, tombstones=True, only_deleted=True)
            self.collect_blobs(txn, (blob_id for _, blob_id in rows))
            return sorted(uid for uid, _ in rows)
        return await self.db.write(w)

    async def delete_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        """Remove messages whatever their flags (REST DELETE). Returns the removed UIDs."""
        def w(txn: WriteTxn) -> list[int]:
            rows = self._expunge_rows(txn, mailbox_id, uids, tombstones=True)
            self.collect_blobs(txn, (blob_id for _, blob_id in rows))
            return sorted(uid for uid, _ in rows)
        return await self.db.write(w)
