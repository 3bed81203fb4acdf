"""SQLite access: one writer thread with group commit, a pool of reader threads.

Why a single writer: SQLite allows one writer at a time anyway, and committing many requests in
one transaction turns N fsyncs into one (group commit). A request is a function run inside the
batch transaction under its own SAVEPOINT, so one failing request never spoils the others.
Readers use their own WAL connections and never block the writer. Reads that touch a handful
of rows by key (``read_small``) run on the event loop's own connection: such a read costs tens
of microseconds, less than the hop to a reader thread and back, and under load that hop also
queues for the GIL behind every other thread (milliseconds). That connection never waits for
a lock: a busy database sends the read to the pool instead.

The writer outlives every error: SQLITE_FULL and I/O errors may roll the whole transaction
back under the savepoints; then the requests of that batch already run fail with a temporary
error (``StorageFull`` when the disk is full), the rest run again in a fresh transaction, and
the connection is reset. Every caller gets an answer; nothing waits forever.

Files: rmail.db is created 0600 before SQLite opens it; SQLite gives the -wal and -shm files
it creates the database file's mode (os_unix.c, ``findCreateFileMode``), and ones left by an
older version are narrowed when the store opens.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import os
import queue
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ..errors import RmailError, StorageFull, TemporaryFailure
from ..events import Event, ExternalChange
from .migrate import migrate

log = logging.getLogger("rmail.store")
T = TypeVar("T")

#: Requests committed together at most; bounds the latency of the first one in a batch.
MAX_BATCH = 256
#: How often the idle writer looks for commits made by another process (the CLI).
EXTERNAL_POLL_SECONDS = 0.5
#: Wait this long for another process's write lock before failing the request.
BUSY_TIMEOUT_MS = 10000


@dataclass
class WriteTxn:
    """Handed to a write request: the connection plus what to do once committed."""

    conn: sqlite3.Connection
    events: list[Event] = field(default_factory=list)
    new_files: list[str] = field(default_factory=list)   #: blob ids to flush before COMMIT
    after_commit: list[Callable[[], object]] = field(default_factory=list)   #: results ignored
    on_rollback: list[Callable[[], object]] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)


@dataclass
class _Request:
    fn: Callable[[WriteTxn], Any]
    future: concurrent.futures.Future[Any]


_STOP = object()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is fsynced at every commit, so a commit survives power loss.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    # FAST, not ON (the default of Debian's SQLite build): ON writes zeros over every page a
    # DELETE frees, so expunging N bytes of mail first needs N more bytes of WAL; on a full
    # disk a user could not free space. Freed pages stay in the 0600 file until new mail
    # reuses them.
    conn.execute("PRAGMA secure_delete=FAST")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


#: The database and the files SQLite keeps beside it in WAL mode.
DB_SUFFIXES = ("", "-wal", "-shm")


def make_private(path: Path) -> None:
    """Create the database file 0600 if it is missing and narrow it and its -wal/-shm files
    to 0600 if they exist with wider modes (they hold password hashes and small messages).

    Pre-creating the file rather than changing the umask around ``sqlite3.connect``: the umask
    is per process, and another thread could create a file meanwhile. A file owned by someone
    else is left alone (chmod would fail; an administrator chose that setup).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in DB_SUFFIXES:
        name = path.with_name(path.name + suffix)
        try:
            st = os.stat(name)
            if st.st_mode & 0o077 and st.st_uid == os.geteuid():
                os.chmod(name, stat.S_IMODE(st.st_mode) & 0o600)
        except FileNotFoundError:
            continue


class Database:
    """The rmail.db file: schema, the writer thread and reader connections."""

    def __init__(self, path: Path, schema: str, *, publish: Callable[[list[Event]], None] | None = None,
                 flush: Callable[[list[str]], None] = lambda files: None, readers: int = 4) -> None:
        self.path = path
        self._flush = flush
        self._publish = publish or (lambda events: None)
        try:
            make_private(path)
        except OSError as exc:
            raise TemporaryFailure(f"cannot open the store {path}: {exc.strerror}") from None
        try:
            setup = connect(path)
            try:
                setup.executescript(schema)
                migrate(setup)
            finally:
                setup.close()
        except sqlite3.Error as exc:
            raise TemporaryFailure(f"cannot open the store {path}: {exc}") from None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._local = threading.local()
        #: Every reader thread's connection, closed with the store (thread-locals outlive
        #: their pool: the files would stay open, and a filesystem could not be unmounted).
        self._reader_conns: list[sqlite3.Connection] = []
        #: Reader connections in a read right now. Reads also run on threads outside the reader
        #: pool (asyncio.to_thread: the free-space probe, admin work), which close() cannot wait
        #: for; closing a connection another thread is using crashes the process.
        self._reading: set[int] = set()
        self._reader_lock = threading.Lock()
        self._readers = concurrent.futures.ThreadPoolExecutor(readers, thread_name_prefix="rmail-read")
        #: ``read_small``'s connection and the thread (the event loop's) that owns it.
        self._small: sqlite3.Connection | None = None
        self._small_thread: int | None = None
        self._writer_conn = connect(path)
        self._data_version = self._current_data_version()
        self._checked = time.monotonic()
        #: Commits so far: our batches, and other processes' commits once noticed. Bumped before
        #: their events are published, so a reader that saw an event also sees the count move
        #: (the store's single-flight reads and change logs rely on it).
        self.commits = 0
        #: Called on the writer thread with the seconds each durable commit took (blob fsyncs
        #: plus COMMIT): the store-latency histogram of GET /metrics. Must be cheap and not raise.
        self.on_commit: Callable[[float], None] | None = None
        self._closed = False
        self._writer = threading.Thread(target=self._run_writer, name="rmail-writer", daemon=True)
        self._writer.start()

    def set_publisher(self, publish: Callable[[list[Event]], None]) -> None:
        self._publish = publish

    # -- reads -----------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path, readonly=True)
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def read_sync(self, fn: Callable[[sqlite3.Connection], T], single: bool = False) -> T:
        """Run ``fn`` on this thread's read connection, in one read transaction.

        ``single``: ``fn`` runs one statement, which is its own snapshot in autocommit mode,
        so the BEGIN/COMMIT round is left out (about a third of a point read's cost).
        """
        try:
            conn = self._reader()
            with self._in_use(conn):
                return _in_snapshot(conn, fn, single)
        except sqlite3.Error as exc:
            raise _read_failed(exc) from exc

    @contextlib.contextmanager
    def _in_use(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Mark ``conn`` as in a read: close() runs on another thread and leaves such a
        connection alone (closing one another thread is using crashes the process)."""
        with self._reader_lock:
            if self._closed:
                raise TemporaryFailure("the store is closed")
            self._reading.add(id(conn))
        try:
            yield
        finally:
            with self._reader_lock:
                self._reading.discard(id(conn))

    async def read(self, fn: Callable[[sqlite3.Connection], T], *, single: bool = False) -> T:
        """Run ``fn`` on a reader thread (a consistent snapshot; ``single``: see read_sync)."""
        if self._closed:
            raise TemporaryFailure("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, fn, single)

    async def read_small(self, fn: Callable[[sqlite3.Connection], T], *, single: bool = False) -> T:
        """Run ``fn`` right here, on the event loop's thread, for a read of a few rows found by
        key (an index lookup, a bounded LIMIT): it must never scan a table. On another thread
        than the first caller's, or while the database is locked (a checkpoint, a recovery),
        it goes to a reader thread like ``read``; a read on this thread never waits."""
        if self._closed:
            raise TemporaryFailure("the store is closed")
        conn = self._small
        if conn is None and self._small_thread is None:
            conn = self._open_small()
        if conn is None or self._small_thread != threading.get_ident():
            return await self.read(fn, single=single)
        with self._in_use(conn):
            try:
                return _in_snapshot(conn, fn, single)
            except sqlite3.Error as exc:
                if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise _read_failed(exc) from exc
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
        return await self.read(fn, single=single)

    def _open_small(self) -> sqlite3.Connection | None:
        self._small_thread = threading.get_ident()
        try:
            conn = connect(self.path, readonly=True)
            conn.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error as exc:
            log.error("store: cannot open a read connection: %s", exc)
            return None
        with self._reader_lock:
            self._reader_conns.append(conn)
        self._small = conn
        return conn

    # -- writes ----------------------------------------------------------------------------

    async def ping(self) -> None:
        """One trivial read through the reader pool: the health check's "does the store answer"."""
        await self.read(lambda conn: conn.execute("SELECT 1").fetchone())

    def submit(self, fn: Callable[[WriteTxn], T]) -> concurrent.futures.Future[T]:
        if self._closed:
            raise TemporaryFailure("the store is closed")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Request(fn, fut))
        return fut

    async def write(self, fn: Callable[[WriteTxn], T]) -> T:
        """Run ``fn`` in the next group commit; returns once it is durably committed."""
        return await asyncio.wrap_future(self.submit(fn))

    def write_sync(self, fn: Callable[[WriteTxn], T]) -> T:
        return self.submit(fn).result()

    def _run_writer(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=EXTERNAL_POLL_SECONDS)
            except queue.Empty:
                self._check_external()
                continue
            if item is _STOP:
                break
            batch = [item]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self._commit_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - the writer must outlive any failure
                # A bug or an error while handling an error: whatever it was, the callers of
                # this batch get an answer, the connection is reset and the writer goes on.
                log.exception("store: write batch failed")
                for req in batch:
                    _fail(req.future, write_error(exc))
                self._reset()
            if stop:
                break
        self._writer_conn.close()

    def _commit_batch(self, batch: list[_Request]) -> None:
        if time.monotonic() - self._checked >= EXTERNAL_POLL_SECONDS:
            self._check_external()
        # A request the caller gave up on before it started is not run at all.
        todo = [req for req in batch if req.future.set_running_or_notify_cancel()]
        while todo:
            todo = self._commit_some(todo)

    def _commit_some(self, batch: list[_Request]) -> list[_Request]:
        """Run ``batch`` in one transaction and commit it.

        Returns the requests not yet run when SQLite rolled the whole transaction back under
        them (SQLITE_FULL and I/O errors can do that, taking every savepoint with it): the
        requests already run in it fail, the rest go into a fresh transaction.
        """
        conn = self._writer_conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.error("store: cannot begin a write: %s", exc)
            self._reset()
            for req in batch:
                _fail(req.future, write_error(exc, "the store is busy; try again"))
            return []
        results: list[tuple[_Request, WriteTxn | None, Any, BaseException | None]] = []
        for i, req in enumerate(batch):
            txn = WriteTxn(conn)
            try:
                conn.execute("SAVEPOINT req")
                value = req.fn(txn)
                conn.execute("RELEASE req")
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                kept = self._undo_request(conn)
                for undo in txn.on_rollback:
                    _quietly(undo)
                if isinstance(exc, (sqlite3.Error, OSError)):
                    log.error("store: write failed: %s", exc)
                    exc = write_error(exc)
                elif not isinstance(exc, RmailError):
                    log.exception("store: write request failed")
                if not kept:
                    log.error("store: the transaction was rolled back; %d earlier request(s) of the batch fail",
                              len(results))
                    self._fail_results(results, exc if isinstance(exc, TemporaryFailure) else None)
                    _fail(req.future, exc)
                    return batch[i + 1:]
                results.append((req, None, None, exc))
            else:
                results.append((req, txn, value, None))
        try:
            began = time.perf_counter()
            # Blobs first: a committed row must never point at a file that is not on disk.
            self._flush([f for _, t, _, _ in results if t is not None for f in t.new_files])
            conn.execute("COMMIT")
            self.commits += 1
            on_commit = self.on_commit
            if on_commit is not None:
                _quietly(lambda: on_commit(time.perf_counter() - began))
        except (sqlite3.Error, OSError) as exc:
            log.error("store: commit failed: %s", exc)
            self._reset()
            self._fail_results(results, write_error(exc, "could not save; try again"))
            return []
        events: list[Event] = []
        for _, committed, _, err in results:
            if err is None and committed is not None:
                for done in committed.after_commit:
                    _quietly(done)
                events.extend(committed.events)
        # Publish before resolving the callers: both hops go through the loop's queue in this
        # order, so a caller that acknowledges (REST 2xx, IMAP OK) never races ahead of the
        # notice other sessions get; a client's next command already sees the change.
        if events:
            _quietly(lambda: self._publish(events))
        for req, _, value, err in results:
            if err is not None:
                _fail(req.future, err)
            elif not req.future.done():
                req.future.set_result(value)
        return []

    @staticmethod
    def _undo_request(conn: sqlite3.Connection) -> bool:
        """Roll back the current request's savepoint; False when the whole transaction is
        gone already (SQLite rolled it back itself) or cannot be kept."""
        if not conn.in_transaction:
            return False
        try:
            conn.execute("ROLLBACK TO req")
            conn.execute("RELEASE req")
            return True
        except sqlite3.Error as exc:
            log.error("store: cannot roll back a request: %s", exc)
            return False

    def _fail_results(self, results: list[tuple[_Request, WriteTxn | None, Any, BaseException | None]],
                      error: TemporaryFailure | None) -> None:
        """The transaction is gone: undo the requests run in it and fail them all."""
        self._reset()
        for req, txn, _, err in results:
            if txn is not None:
                for undo in txn.on_rollback:
                    _quietly(undo)
            _fail(req.future, err or error or TemporaryFailure("could not save; try again"))

    def _reset(self) -> None:
        """Leave the writer connection outside any transaction, whatever happened; if even
        that fails, open a new connection, so the next batch starts clean."""
        conn = self._writer_conn
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return
        except sqlite3.Error as exc:
            log.error("store: rollback failed (%s); reopening the write connection", exc)
        try:
            fresh = connect(self.path)
        except sqlite3.Error as exc:
            log.error("store: cannot reopen the write connection: %s", exc)
            return
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        self._writer_conn = fresh

    def _current_data_version(self) -> int:
        return int(self._writer_conn.execute("PRAGMA data_version").fetchone()[0])

    def _check_external(self) -> None:
        """data_version moves only for commits by *other* connections: the CLI, say (our own
        commits leave it alone, so it is read once per poll, never after a commit)."""
        self._checked = time.monotonic()
        try:
            version = self._current_data_version()
        except sqlite3.Error:
            return
        if version != self._data_version:
            self._data_version = version
            self.commits += 1
            self._publish([ExternalChange()])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join()
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            # A connection still in a read (on a thread outside the pool) is left to its thread:
            # it is dropped with that thread's locals once the read ends.
            conns = [c for c in self._reader_conns if id(c) not in self._reading]
            self._reader_conns = []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _read_failed(exc: sqlite3.Error) -> TemporaryFailure:
    """A broken or locked database reaches users as a temporary failure, not a bug."""
    log.error("store: read failed: %s", exc)
    return TemporaryFailure("the store could not be read; try again")


def _in_snapshot(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], single: bool) -> T:
    """``fn`` in one read transaction; ``single``: ``fn`` runs one statement, its own snapshot
    in autocommit mode, so BEGIN/COMMIT are left out."""
    if single:
        return fn(conn)
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")


def _is_full(exc: BaseException) -> bool:
    """SQLITE_FULL (the database or its disk is full) or ENOSPC/EDQUOT from a blob write."""
    if isinstance(exc, sqlite3.Error):
        # Extended result codes keep the primary code in their low byte.
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_error(exc: BaseException, default: str = "the store could not be written; try again") -> TemporaryFailure:
    """What a caller is told when its write failed for a reason that is not its own."""
    if isinstance(exc, TemporaryFailure):
        return exc
    if _is_full(exc):
        return StorageFull("the server's disk is full; try again later")
    return TemporaryFailure(default)


def _fail(future: concurrent.futures.Future[Any], exc: BaseException) -> None:
    """Fail a caller's future unless it is already settled (never raises)."""
    if not future.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            future.set_exception(exc)


def _quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - cleanup must not break a commit
        log.exception("store: cleanup step failed")
