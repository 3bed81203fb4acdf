"""The mail store on PostgreSQL: mailboxes, messages, flags, MODSEQs and expunge records.

Same semantics as the SQLite store (core/store.py), for several nodes writing at once:

- Whatever allocates UIDs or MODSEQs in a mailbox, or removes its messages, first holds the
  mailbox's row lock (``UPDATE … RETURNING`` or ``SELECT … FOR NO KEY UPDATE``) until commit, so
  UIDs and MODSEQs ascend in commit order. Several mailboxes are locked in ascending id order
  so that two writers never wait for each other in a cycle.
- Creating, deleting and renaming mailboxes hold the owner's ``users`` row (FOR NO KEY UPDATE):
  two nodes changing one user's hierarchy take turns instead of racing on names. A new life of
  a mailbox gets a fresh id (bigserial) and a UIDVALIDITY from the meta row 'uidvalidity',
  updated under its row lock, so no two nodes ever hand out the same one.
- Message bytes (``blob_data``) and metadata (``blobs``) are shared by every copy and queue
  entry; they go with the last reference (``collect_blobs``).
- Deliveries are parsed here and committed by deliveries.py, which stores the deliveries
  arriving together in one transaction (group commit) and each in one statement.
- A write request may run more than once (PgDatabase retries deadlocks and serialization
  failures whole): nothing here has an effect outside its transaction but its events.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from array import array
from datetime import datetime, timezone
from typing import Any, Callable, Final, Iterable, Sequence

import asyncpg

from .. import mime
from ..lru import BLOB_ID_CACHE_BYTES, BLOB_ID_COST, INFO_CACHE_BYTES, SizedLRU, info_size, read_through
from ..errors import AlreadyExists, InvalidInput, LimitExceeded, NotFound, PermissionDenied
from ..events import MailboxChanged, MailboxesChanged
from ..model import DEFAULT_MAILBOXES, Mailbox, MailboxChanges, MailboxStatus, MessageInfo, MessageMeta
from ..space import SpaceState
from ..singleflight import SingleFlight
from ..storage.body import BytesBody, MessageBody
from ..storage.flags import DELETED, SEEN, columns_to_flags, flags_to_columns, stored_flags
from ..storage.mail import Delivered, Import, MailboxSnapshot, NewMessage, Outbound, SpaceGuard
from ..storage.names import MAX_SUBSCRIPTIONS, normalize_mailbox_name
from .body import open_body
from .deliveries import DeliveryBatcher, StagedDelivery, insert
from .database import PgDatabase, PgTxn

__all__ = ["NoSpaceGuard", "PgMailStore"]

#: Messages up to this size are parsed on the event loop (as in the SQLite store: about
#: 0.3 ms for 2 KiB, less than handing the GIL to a thread and back); larger ones on a thread.
INLINE_PARSE_MAX: Final = 32 * 1024
SPECIAL_USES: Final = frozenset(special.value for _, special in DEFAULT_MAILBOXES if special is not None)

_MAILBOX_COLS = "id, user_id, name, special_use, uidvalidity, uidnext, highestmodseq"
_META_COLS = "uid, modseq, sysflags, keywords, internaldate, size, blob_id, savedate"

# A new life of a mailbox: UIDVALIDITY is max(now, last + 1) (32 bits, never 0), strictly
# increasing across re-creations; the upsert holds the meta row's lock until commit.
_INSERT_MAILBOX = f"""
WITH v AS (
    INSERT INTO meta(key, value) VALUES ('uidvalidity', $1::bigint::text)
    ON CONFLICT (key) DO UPDATE
       SET value = coalesce(nullif(greatest($1::bigint, meta.value::bigint + 1) & 4294967295, 0), 1)::text
    RETURNING value::bigint AS uidvalidity)
INSERT INTO mailboxes(user_id, name, special_use, noselect, uidvalidity)
SELECT $2, $3, $4, $5, v.uidvalidity FROM v
RETURNING {_MAILBOX_COLS}"""

# The end of a life: its messages (without expunge records: nobody can select it any more),
# its expunge records and its row (its name's subscription stays). Returns the blobs it used.
_END_LIFE = """
WITH gone AS (DELETE FROM messages WHERE mailbox_id = $1 RETURNING blob_id),
stones AS (DELETE FROM expunged WHERE mailbox_id = $1),
box AS (DELETE FROM mailboxes WHERE id = $1)
SELECT ARRAY(SELECT DISTINCT blob_id FROM gone)"""

# Copy messages of $1 (the UIDs in $2, or all when the filter says so) into $3: one UID and
# one MODSEQ each, in UID order, flags kept, bytes shared, the save date $4 (NULL: kept, as
# INBOX's RENAME does). The new UID is NULL when $3 is gone or \Noselect. Both mailboxes are
# locked by the caller.
_COPY = """
WITH src AS (
    SELECT uid, sysflags, keywords, internaldate, size, blob_id, savedate, row_number() OVER (ORDER BY uid) AS nth
      FROM messages WHERE mailbox_id = $1 {filter}),
box AS (
    UPDATE mailboxes b SET uidnext = b.uidnext + n.c, highestmodseq = b.highestmodseq + n.c
      FROM (SELECT count(*) AS c FROM src) n
     WHERE b.id = $3 AND NOT b.noselect AND n.c > 0
    RETURNING b.uidnext - n.c AS uid0, b.highestmodseq - n.c AS modseq0),
ins AS (
    INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, internaldate, size, blob_id, savedate)
    SELECT $3, box.uid0 + src.nth - 1, box.modseq0 + src.nth, src.sysflags, src.keywords, src.internaldate,
           src.size, src.blob_id, coalesce($4::bigint, src.savedate)
      FROM src CROSS JOIN box)
SELECT src.uid, box.uid0 + src.nth - 1 FROM src LEFT JOIN box ON true ORDER BY src.uid"""
_COPY_SOME = _COPY.format(filter="AND uid = ANY($2::bigint[])")
_COPY_ALL = _COPY.format(filter="AND $2::bigint[] IS NULL")

# Remove messages of $1 (UIDs in $2, or all; only \Deleted ones when the filter says so) with
# one new MODSEQ for all of them, stamped on their expunge records. The mailbox is locked by
# the caller; nothing changes (not even the MODSEQ) when no message matches.
_EXPUNGE = """
WITH gone AS (
    DELETE FROM messages WHERE mailbox_id = $1 {filter} RETURNING uid, blob_id),
box AS (
    UPDATE mailboxes SET highestmodseq = highestmodseq + 1
     WHERE id = $1 AND EXISTS (SELECT 1 FROM gone) RETURNING highestmodseq, user_id),
stones AS (
    INSERT INTO expunged(mailbox_id, uid, modseq) SELECT $1, gone.uid, box.highestmodseq FROM gone CROSS JOIN box
    ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq)
SELECT gone.uid, gone.blob_id, box.user_id FROM gone CROSS JOIN box ORDER BY gone.uid"""
_EXPUNGE_QUERIES = {
    (True, False): _EXPUNGE.format(filter="AND uid = ANY($2::bigint[])"),
    (True, True): _EXPUNGE.format(filter=f"AND uid = ANY($2::bigint[]) AND sysflags & {DELETED} <> 0"),
    (False, False): _EXPUNGE.format(filter="AND $2::bigint[] IS NULL"),
    (False, True): _EXPUNGE.format(filter=f"AND $2::bigint[] IS NULL AND sysflags & {DELETED} <> 0"),
}


class NoSpaceGuard:
    """The database's disk is not ours to measure: no state, and nothing is refused here (a
    full disk surfaces as StorageFull from the database itself)."""

    @property
    def state(self) -> SpaceState | None:
        return None

    async def refresh(self) -> SpaceState | None:
        return None

    async def require(self, incoming: int = 0) -> None:
        return None


def _meta(row: Sequence[Any] | asyncpg.Record) -> MessageMeta:
    uid, modseq, mask, keywords, internaldate, size, blob_id, savedate = row
    return MessageMeta(uid, modseq, columns_to_flags(mask, keywords),
                       datetime.fromtimestamp(internaldate, timezone.utc), size, blob_id,
                       datetime.fromtimestamp(savedate, timezone.utc))


def _mailbox(row: Sequence[Any] | asyncpg.Record) -> Mailbox:
    return Mailbox(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def _text(value: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates (SQLite keeps NULs): drop or
    replace them rather than refuse a message over its parsed metadata."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _key_to_db(key: str) -> str:
    """Import keys separate their parts with NUL (core/mailmove.py), which PostgreSQL text
    cannot hold: escape it (and the escape character) reversibly."""
    return key.replace("\\", "\\\\").replace("\x00", "\\0")


def _key_from_db(text: str) -> str:
    return _KEY_ESCAPE.sub(lambda m: "\x00" if m.group(1) == "0" else m.group(1), text)


_KEY_ESCAPE = re.compile(r"\\(.)", re.S)


def _uid_list(uids: Iterable[int]) -> list[int]:
    return [int(u) for u in uids]


async def _lock_user(conn: asyncpg.Connection, user_id: int, missing: str) -> None:
    """Hold the owner's row while its hierarchy changes (see the module docstring)."""
    if await conn.fetchval("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id) is None:
        raise NotFound(missing)


async def _lock_boxes(conn: asyncpg.Connection, ids: Iterable[int]) -> dict[int, tuple[int, bool]]:
    """Lock mailbox rows in ascending id order; returns id → (owner, noselect) of those that exist."""
    rows = await conn.fetch("SELECT id, user_id, noselect FROM mailboxes WHERE id = ANY($1::bigint[])"
                            " ORDER BY id FOR NO KEY UPDATE", sorted(set(ids)))
    return {r[0]: (r[1], r[2]) for r in rows}


async def _insert_mailbox(conn: asyncpg.Connection, user_id: int, name: str, *, special_use: str | None = None,
                          noselect: bool = False) -> Mailbox:
    """Start a new life of a mailbox: a fresh id and UIDVALIDITY, UIDs and MODSEQs from 1."""
    now = int(time.time()) & 0xFFFFFFFF or 1
    row = await conn.fetchrow(_INSERT_MAILBOX, now, user_id, name, special_use, noselect)
    assert row is not None, "INSERT ... RETURNING returns the row it inserted"
    return _mailbox(row)


async def _end_life(conn: asyncpg.Connection, mailbox_id: int) -> list[str]:
    """Remove a mailbox with its messages and expunge records; returns its blobs."""
    row = await conn.fetchrow(_END_LIFE, mailbox_id)
    if row is None:
        raise NotFound("mailbox no longer exists")
    return list(row[0])


async def _copy_rows(conn: asyncpg.Connection, src: int, uids: Sequence[int] | None, dst: int, *,
                     keep_savedate: bool = False) -> list[tuple[int, int]]:
    """(source UID, new UID) pairs; both mailboxes must be locked. The copies are saved now
    (RFC 8514 §3: COPY and MOVE save anew) unless ``keep_savedate`` (INBOX's RENAME).
    Raises NotFound when there is something to copy but ``dst`` is gone."""
    rows = await conn.fetch(_COPY_ALL if uids is None else _COPY_SOME, src, uids, dst,
                            None if keep_savedate else int(time.time()))
    if rows and rows[0][1] is None:
        raise NotFound("mailbox no longer exists")
    return [(r[0], r[1]) for r in rows]


async def _expunge_rows(txn: PgTxn, mailbox_id: int, uids: Sequence[int] | None, *,
                        only_deleted: bool = False) -> list[tuple[int, str]]:
    """Remove messages with expunge records; the mailbox must be locked. (UID, blob id) pairs."""
    rows = await txn.conn.fetch(_EXPUNGE_QUERIES[(uids is not None, only_deleted)], mailbox_id, uids)
    if rows:
        txn.emit(MailboxChanged(rows[0][2], mailbox_id))
    return [(r[0], r[1]) for r in rows]


class PgMailStore:
    """``storage.MailStore`` on PostgreSQL. Every method is a coroutine; nothing blocks the loop."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self.space: SpaceGuard = NoSpaceGuard()
        self.deliveries = DeliveryBatcher(db)
        # Single-flight reads, keyed like the SQLite store's: (commit count when issued, result).
        self._changes: SingleFlight[tuple[int, int], MailboxChanges] = SingleFlight(lambda: self.db.commits)
        self._claims: SingleFlight[int, tuple[int, int]] = SingleFlight(lambda: self.db.commits)
        #: Bytes of small messages read lately (immutable by blob id, core/lru.py): FETCH of a hot message
        #: needs no database round trip.
        self._hot: SizedLRU[str, bytes] = SizedLRU()
        #: Parsed fields of messages fetched lately, by (mailbox id, UID) (core/lru.py).
        self._infos: SizedLRU[tuple[int, int], MessageInfo] = SizedLRU(INFO_CACHE_BYTES)
        #: Blob ids of messages fetched lately, by (mailbox id, UID).
        self._blob_ids: SizedLRU[tuple[int, int], str] = SizedLRU(BLOB_ID_CACHE_BYTES)

    @property
    def on_commit(self) -> Callable[[float], None] | None:
        return self.db.on_commit

    @on_commit.setter
    def on_commit(self, hook: Callable[[float], None] | None) -> None:
        self.db.on_commit = hook

    # -- backend-internal helpers (the directory and the queue store call them) -----------

    async def create_default_mailboxes(self, txn: PgTxn, user_id: int) -> None:
        """Backend-internal: the default mailboxes of a new user, inside the write
        transaction that creates the user (directory.add_user), each subscribed (clients that
        show only subscribed folders)."""
        for name, special in DEFAULT_MAILBOXES:
            await _insert_mailbox(txn.conn, user_id, name, special_use=special.value if special else None)
        await txn.conn.execute("INSERT INTO subscriptions(user_id, name) SELECT $1, unnest($2::text[])"
                               " ON CONFLICT DO NOTHING", user_id, [name for name, _ in DEFAULT_MAILBOXES])

    async def collect_blobs(self, txn: PgTxn, blob_ids: Iterable[str]) -> None:
        """Backend-internal: remove the blobs among ``blob_ids`` that no message and no queue
        entry references any more, inside a write transaction that has already deleted its
        own references (expunge, remove_user, queue delete).

        The blob rows are locked first, then the references counted in a new statement (a
        fresh snapshot): of two transactions dropping the last two references at once, the
        one that locks second sees the other's deletion and removes the blob, so none is
        left behind. A copy adding a reference holds a key-share lock on the blob row, which
        the lock here waits for."""
        ids = sorted(set(blob_ids))
        if not ids:
            return
        conn = txn.conn
        await conn.execute('SELECT 1 FROM blobs WHERE id = ANY($1::text[]) ORDER BY id COLLATE "C" FOR UPDATE', ids)
        await conn.execute(
            "DELETE FROM blobs b WHERE b.id = ANY($1::text[])"
            " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id)"
            " AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob_id = b.id)", ids)   # blob_data cascades

    # -- mailboxes ---------------------------------------------------------------------------

    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        async def q(conn: asyncpg.Connection) -> list[Mailbox]:
            rows = await conn.fetch(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE user_id = $1 AND NOT noselect"
                                    ' ORDER BY name COLLATE "C"', user_id)
            return [_mailbox(r) for r in rows]
        return await self.db.read(q)

    async def list_noselect(self, user_id: int) -> list[str]:
        async def q(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch('SELECT name FROM mailboxes WHERE user_id = $1 AND noselect ORDER BY name COLLATE "C"',
                                    user_id)
            return [r[0] for r in rows]
        return await self.db.read(q)

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox:
        name = normalize_mailbox_name(name)

        async def q(conn: asyncpg.Connection) -> Mailbox:
            row = await conn.fetchrow(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE user_id = $1 AND name = $2"
                                      " AND NOT noselect", user_id, name)
            if row is None:
                raise NotFound(f"no mailbox named {name}")
            return _mailbox(row)
        return await self.db.read(q, single=True)

    async def create_mailbox(self, user_id: int, name: str, special_use: str | None = None) -> Mailbox:
        name = normalize_mailbox_name(name)
        if special_use is not None and special_use not in SPECIAL_USES:
            raise InvalidInput(f"unknown special-use attribute {special_use[:40]}")
        parts = name.split("/")
        paths = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]

        async def w(txn: PgTxn) -> Mailbox:
            conn = txn.conn
            await _lock_user(conn, user_id, "no such user")
            existing = {r[0]: (r[1], r[2]) for r in await conn.fetch(
                "SELECT name, id, noselect FROM mailboxes WHERE user_id = $1 AND name = ANY($2::text[])",
                user_id, paths)}
            created: Mailbox | None = None
            for path in paths:
                last = path == name
                found = existing.get(path)
                if found is None:
                    created = await _insert_mailbox(conn, user_id, path, special_use=special_use if last else None)
                elif last and found[1]:
                    # Re-creating over a \Noselect placeholder starts a new life of the name.
                    await _end_life(conn, found[0])
                    created = await _insert_mailbox(conn, user_id, path, special_use=special_use)
                elif last:
                    raise AlreadyExists(f"mailbox {name} already exists")
            assert created is not None
            txn.emit(MailboxesChanged(user_id))
            return created
        return await self.db.write(w)

    async def delete_mailbox(self, user_id: int, name: str) -> None:
        name = normalize_mailbox_name(name)
        if name == "INBOX":
            raise PermissionDenied("INBOX cannot be deleted")

        async def w(txn: PgTxn) -> None:
            conn = txn.conn
            await _lock_user(conn, user_id, f"no mailbox named {name}")
            row = await conn.fetchrow("SELECT id, noselect FROM mailboxes WHERE user_id = $1 AND name = $2 FOR UPDATE",
                                      user_id, name)
            if row is None:
                raise NotFound(f"no mailbox named {name}")
            mailbox_id, noselect = row
            has_children = await conn.fetchval(
                "SELECT EXISTS(SELECT 1 FROM mailboxes WHERE user_id = $1 AND starts_with(name, $2))",
                user_id, name + "/")
            if noselect and has_children:
                raise InvalidInput(f"{name} has children and is already \\Noselect")
            # This life ends here, expunge records included. A name kept for its children is a
            # new row: nothing of the old life can reach a later one.
            blob_ids = await _end_life(conn, mailbox_id)
            if has_children:
                await _insert_mailbox(conn, user_id, name, noselect=True)
            await self.collect_blobs(txn, blob_ids)
            txn.emit(MailboxChanged(user_id, mailbox_id))
            txn.emit(MailboxesChanged(user_id))
        await self.db.write(w)

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        old, new = normalize_mailbox_name(old), normalize_mailbox_name(new)
        if new == "INBOX" or new.startswith("INBOX/") and old == "INBOX":
            raise InvalidInput("cannot rename to INBOX or below INBOX itself")
        if new == old or new.startswith(old + "/"):
            raise InvalidInput("cannot rename a mailbox into itself")

        async def w(txn: PgTxn) -> None:
            conn = txn.conn
            await _lock_user(conn, user_id, f"no mailbox named {old}")
            src = await conn.fetchval("SELECT id FROM mailboxes WHERE user_id = $1 AND name = $2 AND NOT noselect",
                                      user_id, old)
            if src is None:
                raise NotFound(f"no mailbox named {old}")
            if await conn.fetchval("SELECT 1 FROM mailboxes WHERE user_id = $1 AND name = $2", user_id, new):
                raise AlreadyExists(f"mailbox {new} already exists")
            await self._create_parents(conn, user_id, new)
            if old == "INBOX":
                # INBOX stays (RFC 3501 §6.3.5): its messages move into a new mailbox.
                dst = (await _insert_mailbox(conn, user_id, new)).id
                await _lock_boxes(conn, (src, dst))
                pairs = await _copy_rows(conn, src, None, dst, keep_savedate=True)  # RENAME saves nothing anew
                if pairs:
                    txn.emit(MailboxChanged(user_id, dst))
                    await _expunge_rows(txn, src, [p[0] for p in pairs])   # the blobs stay: now in `new`
                txn.emit(MailboxChanged(user_id, src))
            else:
                # Children move along and everything keeps its UIDVALIDITY (RFC 3501 allows either).
                # Their rows are locked in ascending id order first, as deliveries lock them.
                moving = await conn.fetch("SELECT id FROM mailboxes WHERE user_id = $1"
                                          " AND (name = $2 OR starts_with(name, $3)) ORDER BY id FOR NO KEY UPDATE",
                                          user_id, old, old + "/")
                await conn.execute("UPDATE mailboxes SET name = $2 || substr(name, $3) WHERE id = ANY($1::bigint[])",
                                   [r[0] for r in moving], new, len(old) + 1)
            txn.emit(MailboxesChanged(user_id))
        await self.db.write(w)

    @staticmethod
    async def _create_parents(conn: asyncpg.Connection, user_id: int, name: str) -> None:
        parts = name.split("/")
        paths = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
        if not paths:
            return
        existing = {r[0] for r in await conn.fetch(
            "SELECT name FROM mailboxes WHERE user_id = $1 AND name = ANY($2::text[])", user_id, paths)}
        for path in paths:
            if path not in existing:
                await _insert_mailbox(conn, user_id, path)

    async def list_subscriptions(self, user_id: int) -> list[str]:
        async def q(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch('SELECT name FROM subscriptions WHERE user_id = $1 ORDER BY name COLLATE "C"',
                                    user_id)
            return [r[0] for r in rows]
        return await self.db.read(q)

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        name = normalize_mailbox_name(name)

        async def w(txn: PgTxn) -> None:
            conn = txn.conn
            # The owner's row lock makes the count below and the insert one step across nodes.
            await _lock_user(conn, user_id, "no such user")
            if not subscribed:
                changed = await conn.fetchval("DELETE FROM subscriptions WHERE user_id = $1 AND name = $2"
                                              " RETURNING true", user_id, name)
            elif await conn.fetchval("SELECT EXISTS(SELECT 1 FROM subscriptions WHERE user_id = $1 AND name = $2)",
                                     user_id, name):
                changed = False
            elif await conn.fetchval("SELECT count(*) FROM subscriptions WHERE user_id = $1",
                                     user_id) >= MAX_SUBSCRIPTIONS:
                raise LimitExceeded(f"at most {MAX_SUBSCRIPTIONS} subscriptions per user")
            else:
                changed = await conn.fetchval("INSERT INTO subscriptions(user_id, name) VALUES($1, $2)"
                                              " RETURNING true", user_id, name)
            if changed:
                txn.emit(MailboxesChanged(user_id))
        await self.db.write(w)

    async def status(self, mailbox_id: int) -> MailboxStatus:
        return (await self.status_many([mailbox_id]))[mailbox_id]

    async def status_many(self, mailbox_ids: Sequence[int]) -> dict[int, MailboxStatus]:
        ids = sorted({int(i) for i in mailbox_ids})
        if not ids:
            return {}

        async def q(conn: asyncpg.Connection) -> dict[int, MailboxStatus]:
            rows = await conn.fetch(
                "SELECT b.id, count(m.uid), count(m.uid) FILTER (WHERE m.sysflags & $2 = 0),"
                " count(m.uid) FILTER (WHERE m.uid >= b.recent_uid), b.uidnext, b.uidvalidity, b.highestmodseq,"
                " coalesce(sum(m.size), 0)::bigint"
                " FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id WHERE b.id = ANY($1::bigint[])"
                " GROUP BY b.id", ids, SEEN)
            if len(rows) != len(ids):
                raise NotFound("mailbox no longer exists")
            return {r[0]: MailboxStatus(*r[1:]) for r in rows}
        return await self.db.read(q)

    # -- messages: reading -------------------------------------------------------------------

    async def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        async def q(conn: asyncpg.Connection) -> list[MessageMeta]:
            rows = await conn.fetch(f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = $1 ORDER BY uid", mailbox_id)
            return [_meta(r) for r in rows]
        return await self.db.read(q)

    async def snapshot(self, user_id: int, name: str) -> MailboxSnapshot:
        name = normalize_mailbox_name(name)

        async def q(conn: asyncpg.Connection) -> MailboxSnapshot:
            row = await conn.fetchrow(f"SELECT {_MAILBOX_COLS}, recent_uid FROM mailboxes WHERE user_id = $1"
                                      " AND name = $2 AND NOT noselect", user_id, name)
            if row is None:
                raise NotFound(f"no mailbox named {name}")
            rows = await conn.fetch("SELECT uid, sysflags, keywords, size, internaldate, modseq, savedate FROM messages"
                                    " WHERE mailbox_id = $1 ORDER BY uid", row[0])
            if rows:
                uids, masks, keywords, sizes, dates, modseqs, savedates = zip(*rows)
            else:
                uids = masks = keywords = sizes = dates = modseqs = savedates = ()
            return MailboxSnapshot(_mailbox(row), row[7], array("I", uids),
                                   list(map(columns_to_flags, masks, keywords)), array("Q", sizes),
                                   array("d", dates), array("Q", modseqs), array("d", savedates))
        return await self.db.read(q)

    async def get_meta(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageMeta]:
        wanted = _uid_list(uids)

        async def q(conn: asyncpg.Connection) -> list[MessageMeta]:
            rows = await conn.fetch(f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = $1"
                                    " AND uid = ANY($2::bigint[]) ORDER BY uid", mailbox_id, wanted)
            return [_meta(r) for r in rows]
        return await self.db.read(q)

    async def message_blobs(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        """From memory for messages asked for lately (core/lru.py), else from `get_meta`."""
        async def read(keys: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
            metas = await self.get_meta(mailbox_id, [uid for _, uid in keys])
            return {(mailbox_id, m.uid): m.blob_id for m in metas}
        found = await read_through(self._blob_ids, ((mailbox_id, uid) for uid in uids), read,
                                   lambda blob_id: BLOB_ID_COST)
        return {uid: blob_id for (_, uid), blob_id in found.items()}

    async def page(self, mailbox_id: int, offset: int, limit: int) -> tuple[int, list[MessageMeta]]:
        if offset < 0 or limit < 0:
            raise InvalidInput("offset and limit must not be negative")

        async def q(conn: asyncpg.Connection) -> tuple[int, list[MessageMeta]]:
            total = await conn.fetchval("SELECT count(*) FROM messages WHERE mailbox_id = $1", mailbox_id)
            rows = await conn.fetch(f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = $1 ORDER BY uid DESC"
                                    " LIMIT $2 OFFSET $3", mailbox_id, limit, offset)
            return total, [_meta(r) for r in rows]
        return await self.db.read(q)

    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        """Concurrent identical calls share one query (core/singleflight.py; ``db.commits``
        counts other nodes' commits too, as the feed reports them)."""
        async def q(conn: asyncpg.Connection) -> MailboxChanges:
            box = await conn.fetchrow("SELECT highestmodseq, uidnext, recent_uid FROM mailboxes WHERE id = $1",
                                      mailbox_id)
            if box is None:
                raise NotFound("mailbox no longer exists")
            if box[0] <= modseq:
                return MailboxChanges(box[0], box[1], (), (), box[2])
            changed = tuple(_meta(r) for r in await conn.fetch(
                f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
                mailbox_id, modseq))
            expunged = tuple(r[0] for r in await conn.fetch(
                "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid", mailbox_id, modseq))
            return MailboxChanges(box[0], box[1], changed, expunged, box[2])
        return await self._changes.run((mailbox_id, modseq), lambda: self.db.read(q))

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        """UIDs expunged after ``modseq`` (QRESYNC), ascending; the records live as long as
        the mailbox (``_END_LIFE`` alone removes them)."""
        async def q(conn: asyncpg.Connection) -> list[int]:
            if await conn.fetchval("SELECT 1 FROM mailboxes WHERE id = $1", mailbox_id) is None:
                raise NotFound("mailbox no longer exists")
            return [r[0] for r in await conn.fetch(
                "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid", mailbox_id, modseq)]
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
        wanted = _uid_list(uids)

        async def q(conn: asyncpg.Connection) -> dict[int, MessageInfo]:
            rows = await conn.fetch(
                "SELECT m.uid, b.envelope, b.bodystructure, b.body, b.header_text, b.subject, b.from_, b.to_, b.cc,"
                " b.date, b.message_id, b.in_reply_to, b.refs, b.preview"
                " FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[])",
                mailbox_id, wanted)
            out: dict[int, MessageInfo] = {}
            for r in rows:
                date = datetime.fromtimestamp(r[9], timezone.utc) if r[9] is not None else None
                out[r[0]] = MessageInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], date,
                                        r[10], r[11], r[12], r[13])
            return out
        return await self.db.read(q)

    async def search_text(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        wanted = _uid_list(uids)

        async def q(conn: asyncpg.Connection) -> dict[int, str]:
            rows = await conn.fetch("SELECT m.uid, b.search_text FROM messages m JOIN blobs b ON b.id = m.blob_id"
                                    " WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[])", mailbox_id, wanted)
            return {r[0]: r[1] for r in rows}
        return await self.db.read(q)

    async def open_message(self, blob_id: str) -> MessageBody:
        cached = self._hot.get(blob_id)
        if cached is not None:
            return BytesBody(cached)
        body = await open_body(self.db, blob_id)
        if isinstance(body, BytesBody) and body.inline is not None:
            self._hot.put(blob_id, body.inline, len(body.inline))
        return body

    async def read_message(self, blob_id: str) -> bytes:
        cached = self._hot.get(blob_id)
        if cached is not None:
            return cached

        async def q(conn: asyncpg.Connection) -> bytes | None:
            data: bytes | None = await conn.fetchval("SELECT data FROM blob_data WHERE id = $1", blob_id)
            return data
        data = await self.db.read(q, single=True)
        if data is None:
            raise NotFound("message no longer exists")
        self._hot.put(blob_id, data, len(data))
        return data

    async def claim_recent(self, mailbox_id: int) -> int:
        return (await self.claim_recent_range(mailbox_id))[0]

    async def claim_recent_range(self, mailbox_id: int) -> tuple[int, int]:
        """Sessions that ask while another one's claim on the same mailbox is under way (on
        this node) wait for it and get an empty range at its new mark: that claim took
        everything there was. Across nodes the row lock decides."""
        async def marks(conn: asyncpg.Connection, lock: str = "") -> tuple[int, int]:
            row = await conn.fetchrow(f"SELECT recent_uid, uidnext FROM mailboxes WHERE id = $1 {lock}", mailbox_id)
            if row is None:
                raise NotFound("mailbox no longer exists")
            return row[0], row[1]

        async def claim() -> tuple[int, int]:
            # Most SELECTs find nothing new to claim: answer from a read, skip the write.
            recent_uid, uidnext = await self.db.read(marks)
            if recent_uid == uidnext:
                return recent_uid, uidnext

            async def w(txn: PgTxn) -> tuple[int, int]:
                recent_uid, uidnext = await marks(txn.conn, "FOR NO KEY UPDATE")
                if uidnext != recent_uid:
                    await txn.conn.execute("UPDATE mailboxes SET recent_uid = $2 WHERE id = $1", mailbox_id, uidnext)
                return recent_uid, uidnext
            return await self.db.write(w)

        # Joining a claim under way: it took everything there was; an empty range at its end.
        return await self._claims.run(mailbox_id, claim, lambda taken: (taken[1], taken[1]))

    async def imported_keys(self, user_id: int, source: str) -> set[str]:
        async def q(conn: asyncpg.Connection) -> set[str]:
            rows = await conn.fetch("SELECT key FROM imported WHERE user_id = $1 AND source = $2", user_id, source)
            return {_key_from_db(r[0]) for r in rows}
        return await self.db.read(q)

    # -- messages: writing -------------------------------------------------------------------

    async def append(self, mailbox_id: int, data: bytes, flags: Iterable[str] = (),
                     internaldate: datetime | None = None) -> int:
        return (await self.deliver([(mailbox_id, flags)], data, internaldate)).uids[0]

    async def append_many(self, mailbox_id: int, messages: Sequence[NewMessage]) -> list[int]:
        """All the messages in one transaction of their own (one statement, as a batch of
        deliveries is), not through the batcher: a batcher failure is split per delivery,
        while these must fail together (storage.MailStore.append_many)."""
        if not messages:
            raise InvalidInput("nothing to append")
        await self.space.require(sum(len(m.data) for m in messages))
        staged = [await self._staged(m.data, ((int(mailbox_id), *flags_to_columns(m.flags)),),
                                     m.internaldate, None, None) for m in messages]
        results = await self.db.write(lambda txn: insert(txn, staged))
        return [r.uids[0] for r in results]

    async def deliver(self, targets: Sequence[tuple[int, Iterable[str]]], data: bytes,
                      internaldate: datetime | None = None, *, outbound: Outbound | None = None,
                      imported: Import | None = None) -> Delivered:
        """Parsed here, committed by the batcher: concurrent deliveries of this node share a
        transaction and a commit (deliveries.py says why), each still all-or-nothing."""
        columns = tuple((int(box), *flags_to_columns(flags)) for box, flags in targets)
        if outbound is not None and not outbound.recipients:
            raise InvalidInput("no recipients to queue")
        if not columns and outbound is None:
            raise InvalidInput("a delivery needs a mailbox or an outbound recipient")
        await self.space.require(len(data))
        staged = await self._staged(data, columns, internaldate, imported, outbound)
        return await self.deliveries.submit(staged)

    @staticmethod
    async def _staged(data: bytes, columns: tuple[tuple[int, int, str], ...],
                      internaldate: datetime | None, imported: Import | None,
                      outbound: Outbound | None) -> StagedDelivery:
        """One message parsed into the delivery statement's values (deliveries.py)."""
        saved = int(time.time())   # the moment of saving (RFC 8514 §3), an import's too
        when = saved if internaldate is None else int(internaldate.timestamp())
        p = (mime.parse_message(data) if len(data) <= INLINE_PARSE_MAX
             else await asyncio.to_thread(mime.parse_message, data))
        fields = (_text(p.subject), _text(p.from_), _text(p.to), _text(p.cc),
                  int(p.date.timestamp()) if p.date is not None else None, _text(p.message_id),
                  _text(p.in_reply_to), _text(p.references), _text(p.preview), p.envelope, p.body, p.bodystructure,
                  _text(p.header_text), _text(p.search_text))
        return StagedDelivery(
            secrets.token_hex(16), data, fields, when, saved, columns,
            (imported.user_id, imported.source, _key_to_db(imported.key)) if imported is not None else None,
            (outbound.sender, tuple(outbound.recipients), int(outbound.created)) if outbound is not None else None)

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str,
                          flags: Iterable[str], *, unchanged_since: int | None = None) -> list[MessageMeta]:
        if mode not in ("set", "add", "remove"):
            raise InvalidInput("flag mode must be set, add or remove")
        mask, keywords = flags_to_columns(flags)
        kw = frozenset(keywords.split()) if keywords else frozenset()
        wanted = _uid_list(uids)

        async def w(txn: PgTxn) -> list[MessageMeta]:
            conn = txn.conn
            # The lock first, the rows after it: a concurrent STORE on them has committed by
            # then, so "add" and "remove" start from its result rather than overwrite it.
            box = await conn.fetchrow("SELECT highestmodseq, user_id FROM mailboxes WHERE id = $1 FOR NO KEY UPDATE",
                                      mailbox_id)
            if box is None:
                return []
            rows = await conn.fetch(f"SELECT {_META_COLS} FROM messages WHERE mailbox_id = $1"
                                    " AND uid = ANY($2::bigint[]) ORDER BY uid", mailbox_id, wanted)
            modseq = box[0] + 1
            out: list[MessageMeta] = []
            changed: tuple[list[int], list[int], list[str]] = ([], [], [])
            for row in rows:
                if unchanged_since is not None and row[1] > unchanged_since:
                    continue                   # RFC 7162 §3.1.3: changed since; MODIFIED
                new = stored_flags(mode, row[2], row[3], mask, kw)
                if new is None:
                    out.append(_meta(row))     # unchanged: keeps its MODSEQ
                    continue
                new_mask, kw_text = new
                changed[0].append(row[0])
                changed[1].append(new_mask)
                changed[2].append(kw_text)
                out.append(_meta((row[0], modseq, new_mask, kw_text, row[4], row[5], row[6], row[7])))
            if changed[0]:
                await conn.execute(
                    "WITH box AS (UPDATE mailboxes SET highestmodseq = $2 WHERE id = $1)"
                    " UPDATE messages m SET sysflags = c.mask, keywords = c.kw, modseq = $2"
                    " FROM unnest($3::bigint[], $4::integer[], $5::text[]) AS c(uid, mask, kw)"
                    " WHERE m.mailbox_id = $1 AND m.uid = c.uid", mailbox_id, modseq, *changed)
                txn.emit(MailboxChanged(box[1], mailbox_id))
            return out
        return await self.db.write(w)

    async def copy(self, src: int, uids: Sequence[int], dst: int) -> list[tuple[int, int]]:
        await self.space.require()
        wanted = _uid_list(uids)

        async def w(txn: PgTxn) -> list[tuple[int, int]]:
            # The source is locked too: an expunge there either finished (its rows are gone
            # here) or waits, and then sees the copies' references to the blobs.
            locked = await _lock_boxes(txn.conn, (src, dst))
            pairs = await _copy_rows(txn.conn, src, wanted, dst)
            if pairs:
                txn.emit(MailboxChanged(locked[dst][0], dst))
            return pairs
        return await self.db.write(w)

    async def move(self, src: int, uids: Sequence[int], dst: int) -> list[tuple[int, int]]:
        wanted = _uid_list(uids)

        async def w(txn: PgTxn) -> list[tuple[int, int]]:
            locked = await _lock_boxes(txn.conn, (src, dst))
            pairs = await _copy_rows(txn.conn, src, wanted, dst)
            if pairs:
                txn.emit(MailboxChanged(locked[dst][0], dst))
                await _expunge_rows(txn, src, [p[0] for p in pairs])   # the blobs stay: now in dst
            return pairs
        return await self.db.write(w)

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        wanted = None if uids is None else _uid_list(uids)

        async def w(txn: PgTxn) -> list[int]:
            await _lock_boxes(txn.conn, (mailbox_id,))
            rows = await _expunge_rows(txn, mailbox_id, wanted, only_deleted=True)
            await self.collect_blobs(txn, (blob_id for _, blob_id in rows))
            return [uid for uid, _ in rows]
        return await self.db.write(w)

    async def delete_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        wanted = _uid_list(uids)

        async def w(txn: PgTxn) -> list[int]:
            await _lock_boxes(txn.conn, (mailbox_id,))
            rows = await _expunge_rows(txn, mailbox_id, wanted)
            await self.collect_blobs(txn, (blob_id for _, blob_id in rows))
            return [uid for uid, _ in rows]
        return await self.db.write(w)
