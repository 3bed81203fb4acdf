"""storage.Transfer for the embedded store: rmail.db, blobs/ and the secrets in keys/.

Dump: one read transaction on a read-only connection of its own, driven on one thread of its
own (the server's writer keeps committing meanwhile: WAL). Message bytes come from blob_data or
from their files; a file is immutable and flushed before its row commits, so one the snapshot
names can be gone only because its message was deleted after the snapshot. Such a message is
left out of the dump as if that delete had been expunged right after the snapshot (its mailbox
gets a new HIGHESTMODSEQ and an expunge record), so the dump stays a state IMAP sessions can
follow; so is an outbound entry whose bytes went (it was sent or given up meanwhile).
``Dump.notes`` says how many. Bytes missing while their row still exists mean a damaged
store: the dump fails.

Load: one write transaction (BEGIN IMMEDIATE) on a connection of its own, with files for
messages over INLINE_BLOB_MAX (like the store: written, renamed into place, flushed before
COMMIT) and the rest in blob_data. A failure rolls back and removes the files written; the
secret files are renamed into place only after COMMIT.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import sqlite3
import urllib.parse
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Generator, Iterator, TypeVar

from ..errors import InvalidInput, RmailError, StorageFull, TemporaryFailure
from ..storage.backend import StoreLocation
from ..storage.transfer import (
    COUNTERS, EMPTY_TABLES, AliasRecord, Batch, Batcher, BlobRecord, CounterRecord, DomainRecord, Dump,
    ExpungedRecord, ImportedRecord, MailboxRecord, MessageRecord, QueueRecord, QuotaRecord, Record, SecretRecord,
    SubscriptionRecord, Summary, UserRecord,
)
from .blobs import BlobStore, fsync_dir
from .database import BUSY_TIMEOUT_MS, connect, make_private
from .mail import INLINE_BLOB_MAX
from .migrate import SCHEMA_VERSION, migrate
from .secrets import _NAME as SECRET_NAME

__all__ = ["SqliteTransfer", "open_transfer"]

T = TypeVar("T")

_FILE_ID = re.compile(r"^[0-9a-f]{32}$")
#: What an embedded store's data dir holds; a target directory with anything else in it is
#: someone else's directory, not a place to create a store in.
_DATA_DIR_ENTRIES = frozenset({"rmail.db", "rmail.db-wal", "rmail.db-shm", "rmail.db-journal", "rmail.lock",
                               "keys", "blobs", "restored-config"})

_SELECT: dict[str, str] = {
    "domains": "SELECT id, name FROM domains",
    "users": "SELECT id, domain_id, local, local_key, password_hash, admin, created FROM users",
    "aliases": "SELECT id, domain_id, position, pattern, target_user_id FROM aliases",
    "quotas": "SELECT user_id, bytes FROM quotas",
    "imported": "SELECT user_id, source, key FROM imported",
    "subscriptions": "SELECT user_id, name FROM subscriptions",
    "blobs": "SELECT b.id, b.size, b.subject, b.from_, b.to_, b.cc, b.date, b.message_id, b.in_reply_to, b.refs,"
             " b.preview, b.envelope, b.body, b.bodystructure, b.header_text, b.search_text, d.data"
             " FROM blobs b LEFT JOIN blob_data d ON d.id = b.id",
    "mailboxes": "SELECT id, user_id, name, special_use, noselect, uidvalidity, uidnext, highestmodseq,"
                 " recent_uid FROM mailboxes",
    "messages": "SELECT mailbox_id, uid, modseq, sysflags, keywords, internaldate, size, blob_id, savedate"
                 " FROM messages",
    "expunged": "SELECT mailbox_id, uid, modseq FROM expunged",
    "queue": "SELECT id, sender, recipient, blob_id, size, created, attempts, next_attempt, last_error,"
             " delayed_notified FROM queue",
}
_COUNTERS = ("SELECT (SELECT value FROM meta WHERE key = 'uidvalidity'), (SELECT max(uidvalidity) FROM mailboxes),"
             " (SELECT value FROM meta WHERE key = 'mailbox_id'), (SELECT max(id) FROM mailboxes)")


def _bytes(value: Any) -> bytes:
    """A BLOB column as bytes (a row written by hand or by an old version may hold text)."""
    return value.encode() if isinstance(value, str) else bytes(value)


def _connect_ro(path: Path) -> sqlite3.Connection:
    # mode=ro: a source is never written to, not even to create a missing file.
    conn = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True, isolation_level=None,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only=ON")
    return conn


def _store_error(exc: BaseException, what: str) -> RmailError:
    if isinstance(exc, RmailError):
        return exc
    if isinstance(exc, (OSError, sqlite3.OperationalError)) and (
            getattr(exc, "errno", None) == 28 or "database or disk is full" in str(exc)):
        return StorageFull(f"{what}: the disk is full")
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return TemporaryFailure(f"{what}: {detail}")


def read_secrets(keys_dir: Path) -> list[SecretRecord]:
    """The store's secrets: ``keys/NAME.key`` files holding hex (sqlite/secrets.py). Other
    files there (TLS keys, the dkim/ tree) are not the store's and are left out."""
    out: list[SecretRecord] = []
    if not keys_dir.is_dir():
        return out
    for path in sorted(keys_dir.glob("*.key")):
        name = path.name[:-len(".key")]
        if not SECRET_NAME.match(name) or not path.is_file() or path.is_symlink():
            continue
        try:
            value = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except (UnicodeDecodeError, ValueError):
            continue
        if value:
            out.append(SecretRecord(name, value))
    return out


class _Snapshot:
    """The dump's rows, read on the calling thread from one read transaction."""

    def __init__(self, data_dir: Path, notes: list[str]) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / "rmail.db"
        self.blobs = data_dir / "blobs"
        self.notes = notes
        self.conn = _connect_ro(self.db_path)
        try:
            self._begin(data_dir)
        except BaseException:
            self.conn.close()
            raise

    def _begin(self, data_dir: Path) -> None:
        self.conn.execute("BEGIN")
        version = self.conn.execute("PRAGMA user_version").fetchone()[0] or 1
        if version > SCHEMA_VERSION:
            raise InvalidInput(f"{self.db_path} has schema version {version}, newer than this rmail knows"
                               f" ({SCHEMA_VERSION}); upgrade rmail")
        if version < SCHEMA_VERSION:
            # A source is opened read-only, so it cannot be migrated here.
            raise InvalidInput(f"{self.db_path} has schema version {version} and this rmail copies version"
                               f" {SCHEMA_VERSION}: run this rmail's server on it once, or use the matching rmail")
        # The first read pins the snapshot: everything below sees the store as of here.
        self.totals = {t: self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in EMPTY_TABLES}
        self.total_bytes = self.conn.execute("SELECT coalesce(sum(size), 0) FROM blobs").fetchone()[0]
        self.secrets = read_secrets(data_dir / "keys")
        self.totals.update(counters=len(COUNTERS), secrets=len(self.secrets))

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("COMMIT")
        self.conn.close()

    def _scan(self, table: str, make: Callable[[Any], Record | None]) -> Iterator[Batch]:
        batcher = Batcher(table)
        for row in self.conn.execute(_SELECT[table]):
            record = make(row)
            if record is not None and (batch := batcher.add(record)) is not None:
                yield batch
        if (batch := batcher.flush()) is not None:
            yield batch

    def _file(self, blob_id: str) -> bytes | None:
        """A message file's bytes, or None when its message was deleted after the snapshot.

        Raises:
            TemporaryFailure: the file is missing but its row is still there (damaged store).
        """
        path = self.blobs / blob_id[:2] / blob_id
        if _FILE_ID.match(blob_id):
            try:
                return path.read_bytes()
            except FileNotFoundError:
                pass
        # Deletes commit before their files are unlinked: a fresh snapshot tells the two apart.
        fresh = _connect_ro(self.db_path)
        try:
            still = fresh.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        finally:
            fresh.close()
        if still:
            raise TemporaryFailure(f"the bytes of message {blob_id} are missing ({path}): the store is damaged"
                                   " (run.py diagnose)")
        return None

    def batches(self) -> Generator[Batch, None, None]:
        def user(r: Any) -> UserRecord:
            return UserRecord(r[0], r[1], r[2], r[3], _bytes(r[4]), bool(r[5]), r[6])

        yield from self._scan("domains", lambda r: DomainRecord(*r))
        yield from self._scan("users", user)
        yield from self._scan("aliases", lambda r: AliasRecord(*r))
        yield from self._scan("quotas", lambda r: QuotaRecord(*r))
        yield from self._scan("imported", lambda r: ImportedRecord(*r))
        yield from self._scan("subscriptions", lambda r: SubscriptionRecord(*r))

        gone: set[str] = set()

        def blob(r: Any) -> BlobRecord | None:
            data = _bytes(r[16]) if r[16] is not None else self._file(r[0])
            if data is None:
                gone.add(r[0])
                return None
            return BlobRecord._make((*r[:11], _bytes(r[11]), _bytes(r[12]), _bytes(r[13]), r[14], r[15], data))
        yield from self._scan("blobs", blob)

        # Messages whose bytes were deleted meanwhile: expunged at a new MODSEQ of their mailbox.
        vanished: dict[int, list[int]] = {}
        ids = sorted(gone)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for mailbox_id, uid in self.conn.execute(
                    f"SELECT mailbox_id, uid FROM messages WHERE blob_id IN ({','.join('?' * len(chunk))})", chunk):
                vanished.setdefault(mailbox_id, []).append(uid)
        bumped: dict[int, int] = {}

        def mailbox(r: Any) -> MailboxRecord:
            modseq = r[7] + 1 if r[0] in vanished else r[7]
            if r[0] in vanished:
                bumped[r[0]] = modseq
            return MailboxRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], modseq, r[8])
        yield from self._scan("mailboxes", mailbox)
        yield from self._scan("messages", lambda r: None if r[7] in gone else MessageRecord(*r))
        batcher = Batcher("expunged")
        for mailbox_id, uids in vanished.items():
            for uid in uids:
                if (batch := batcher.add(ExpungedRecord(mailbox_id, uid, bumped[mailbox_id]))) is not None:
                    yield batch
        for batch in self._scan("expunged", lambda r: ExpungedRecord(*r)):
            yield batch
        if (batch := batcher.flush()) is not None:
            yield batch
        sent: list[int] = []        # queue entries done with (and gone) since the snapshot

        def entry(r: Any) -> QueueRecord | None:
            if r[3] in gone:
                sent.append(r[0])
                return None
            return QueueRecord._make((*r[:9], bool(r[9])))
        yield from self._scan("queue", entry)
        if vanished:
            n = sum(len(u) for u in vanished.values())
            self.notes.append(f"{n} message(s) deleted on the source during the copy are left out (as expunged)")
        if sent:
            self.notes.append(f"{len(sent)} outbound entries finished on the source during the copy are left out")

        uidvalidity, top_validity, mailbox_id, top_id = self.conn.execute(_COUNTERS).fetchone()
        yield Batch("counters", (
            CounterRecord("uidvalidity", max(int(uidvalidity or 0), top_validity or 0)),
            CounterRecord("mailbox_id", max(int(mailbox_id or 0), top_id or 0))))
        if self.secrets:
            yield Batch("secrets", tuple(self.secrets))


class _Loader:
    """The target's one write transaction (on the calling thread)."""

    def __init__(self, data_dir: Path) -> None:
        from . import schema        # the package's __init__ imports this module
        self.data_dir = data_dir
        self.keys = data_dir / "keys"
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.keys.mkdir(exist_ok=True, mode=0o700)
        self.blobs = BlobStore(data_dir / "blobs")
        self.files: list[str] = []
        self.secrets: list[SecretRecord] = []
        self.staged: list[Path] = []
        db_path = data_dir / "rmail.db"
        make_private(db_path)
        self.conn = connect(db_path)
        try:
            self.conn.executescript(schema())
            migrate(self.conn)
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.conn.close()
            raise
        self.open = True

    def add(self, batch: Batch) -> None:
        conn, rows = self.conn, batch.rows
        if batch.table == "blobs":
            for r in rows:
                assert isinstance(r, BlobRecord)
                conn.execute("INSERT INTO blobs(id, size, subject, from_, to_, cc, date, message_id, in_reply_to, refs,"
                             " preview, envelope, body, bodystructure, header_text, search_text)"
                             " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", r[:16])
                # A database's blob id that cannot name a file keeps its bytes in blob_data
                # whatever their size (the store reads blob_data first).
                if len(r.data) <= INLINE_BLOB_MAX or not _FILE_ID.match(r.id):
                    conn.execute("INSERT INTO blob_data(id, data) VALUES(?, ?)", (r.id, r.data))
                else:
                    self._write_file(r.id, r.data)
        elif batch.table == "counters":
            for r in rows:
                assert isinstance(r, CounterRecord)
                if r.value > 0:
                    conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE"
                                 " SET value = excluded.value", (r.name, str(r.value)))
                else:
                    conn.execute("DELETE FROM meta WHERE key = ?", (r.name,))
        elif batch.table == "secrets":
            for r in rows:
                assert isinstance(r, SecretRecord)
                if not SECRET_NAME.match(r.name):
                    raise InvalidInput(f"the secret {r.name!r} cannot be kept as a file in {self.keys}")
                self.secrets.append(r)
        else:
            fields = type(rows[0])._fields
            conn.executemany(f"INSERT INTO {batch.table}({', '.join(fields)}) VALUES({','.join('?' * len(fields))})",
                             rows)

    def _write_file(self, blob_id: str, data: bytes) -> None:
        self.blobs.write_as(blob_id, data)
        self.files.append(blob_id)

    def _stage_secret(self, record: SecretRecord) -> Path:
        tmp = self.keys / f".{record.name}.key.copy"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.staged.append(tmp)
        with os.fdopen(fd, "w") as f:
            f.write(record.value.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def commit(self) -> None:
        """Message files, then the secrets' new files, are flushed before COMMIT; the secrets
        replace the target's own only once the rows are committed."""
        self.blobs.flush(self.files)
        staged = [(self._stage_secret(r), r.name) for r in self.secrets]
        self.conn.execute("COMMIT")
        self.open = False
        keep = {name for _, name in staged}
        for old in read_secrets(self.keys):
            if old.name not in keep:
                (self.keys / f"{old.name}.key").unlink(missing_ok=True)
        for tmp, name in staged:
            os.rename(tmp, self.keys / f"{name}.key")
        self.staged.clear()
        # The names too: the secrets', and a new data dir's own entries (rmail.db, blobs/...).
        for directory in (self.keys, self.blobs.root, self.data_dir, self.data_dir.parent):
            fsync_dir(directory)

    def close(self) -> None:
        """Roll back whatever was not committed, with its files."""
        if self.open:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            for blob_id in self.files:
                self.blobs.remove(blob_id)
            self.open = False
        for tmp in self.staged:
            tmp.unlink(missing_ok=True)
        self.conn.close()


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in EMPTY_TABLES}


def _not_empty(where: str, counts: dict[str, int]) -> InvalidInput:
    held = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
    return InvalidInput(f"{where} is not empty (it holds {held}): copy only into a new, empty store")


class SqliteTransfer:
    """storage.Transfer over the embedded store in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / "rmail.db"

    def describe(self) -> str:
        return str(self.data_dir)

    async def _run(self, pool: concurrent.futures.Executor | None, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except (OSError, sqlite3.Error) as exc:
            raise _store_error(exc, what) from None

    async def identity(self) -> str:
        def ident() -> str:
            try:
                st = os.stat(self.data_dir)
            except FileNotFoundError:
                return f"sqlite:{self.data_dir.resolve()}"
            return f"sqlite:{st.st_dev}:{st.st_ino}"
        return await asyncio.to_thread(ident)

    @asynccontextmanager
    async def dump(self) -> AsyncIterator[Dump]:
        # One thread of its own: the read transaction lives on one connection, used by one thread.
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rmail-dump")
        what = f"cannot read the store in {self.data_dir}"
        snap: _Snapshot | None = None
        try:
            notes: list[str] = []
            snap = await self._run(pool, what, _Snapshot, self.data_dir, notes)
            rows = snap.batches()
            done = object()

            async def batches() -> AsyncGenerator[Batch, None]:
                while (batch := await self._run(pool, what, next, rows, done)) is not done:
                    assert isinstance(batch, Batch)
                    yield batch
            stream = batches()
            try:
                yield Dump(stream, dict(snap.totals), snap.total_bytes, notes)
            finally:
                await stream.aclose()
                await self._run(pool, what, rows.close)
        finally:
            if snap is not None:
                await asyncio.get_running_loop().run_in_executor(pool, snap.close)
            pool.shutdown(wait=False)

    def _check_dir(self) -> None:
        """Raises InvalidInput for a target directory that holds things other than a store."""
        if not self.data_dir.exists():
            return
        if not self.data_dir.is_dir():
            raise InvalidInput(f"{self.data_dir} is not a directory")
        foreign = sorted(e.name for e in self.data_dir.iterdir() if e.name not in _DATA_DIR_ENTRIES)
        if foreign:
            raise InvalidInput(f"{self.data_dir} holds files that are not an rmail store (such as {foreign[0]});"
                               " copy into a new or empty directory")

    async def check_empty(self) -> None:
        def check() -> None:
            self._check_dir()
            if not self.db_path.is_file():
                return
            conn = _connect_ro(self.db_path)
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not set(EMPTY_TABLES) <= tables:
                    return      # created but never given its schema: nothing in it
                counts = _counts(conn)
            finally:
                conn.close()
            if any(counts.values()):
                raise _not_empty(self.describe(), counts)
        await self._run(None, f"cannot read {self.db_path}", check)

    async def load(self, batches: AsyncIterable[Batch]) -> None:
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rmail-load")
        what = f"cannot write the store in {self.data_dir}"
        loader: _Loader | None = None
        try:
            def start() -> _Loader:
                self._check_dir()
                made = _Loader(self.data_dir)
                try:
                    counts = _counts(made.conn)
                    if any(counts.values()):
                        raise _not_empty(self.describe(), counts)
                except BaseException:
                    made.close()
                    raise
                return made
            loader = await self._run(pool, what, start)
            async for batch in batches:
                await self._run(pool, what, loader.add, batch)
            await self._run(pool, what, loader.commit)
        finally:
            if loader is not None:
                # Not cancellable half-way: the rollback and file removal must finish.
                await asyncio.shield(asyncio.get_running_loop().run_in_executor(pool, loader.close))
            pool.shutdown(wait=False)

    async def summary(self) -> Summary:
        async with self.dump() as dump:
            async for _ in dump:
                pass
            return dump.summary()


@asynccontextmanager
async def open_transfer(location: StoreLocation, *, target: bool) -> AsyncIterator[SqliteTransfer]:
    """The embedded store in ``location.data_dir``. Raises InvalidInput for a source that
    holds no store (a source is never created)."""
    data_dir = location.data_dir
    if not target and not await asyncio.to_thread((data_dir / "rmail.db").is_file):
        raise InvalidInput(f"no rmail store in {data_dir}")
    yield SqliteTransfer(data_dir)
