"""SQLite access: one writer thread with group commit, a pool of reader threads.

Why a single writer: SQLite allows one writer at a time anyway, and committing many requests in
one transaction turns N fsyncs into one (group commit). A request is a function run inside the
batch transaction under its own SAVEPOINT, so one failing request never spoils the others.
Readers use their own WAL connections and never block the writer or the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from .errors import RmailError, TemporaryFailure
from .events import Event, ExternalChange

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
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    on_rollback: list[Callable[[], None]] = field(default_factory=list)

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
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


class Database:
    """The rmail.db file: schema, the writer thread and reader connections."""

    def __init__(self, path: Path, schema: str, *, publish: Callable[[list[Event]], None] | None = None,
                 flush: Callable[[list[str]], None] = lambda files: None, readers: int = 4) -> None:
        self.path = path
        self._flush = flush
        self._publish = publish or (lambda events: None)
        try:
            setup = connect(path)
            setup.executescript(schema)
            setup.close()
        except sqlite3.Error as exc:
            raise TemporaryFailure(f"cannot open the store {path}: {exc}") from None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._local = threading.local()
        self._readers = concurrent.futures.ThreadPoolExecutor(readers, thread_name_prefix="rmail-read")
        self._writer_conn = connect(path)
        self._data_version = self._current_data_version()
        self._checked = time.monotonic()
        #: Batches committed so far. Bumped before their events are published, so a reader that
        #: saw an event also sees the count move (the store's single-flight reads rely on it).
        self.commits = 0
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
        return conn

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on this thread's read connection, in one read transaction."""
        try:
            conn = self._reader()
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A broken or locked database must reach users as a temporary failure, not a bug.
            log.error("store: read failed: %s", exc)
            raise TemporaryFailure("the store could not be read; try again") from exc

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a reader thread (a consistent snapshot)."""
        if self._closed:
            raise TemporaryFailure("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, fn)

    # -- writes ----------------------------------------------------------------------------

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
            self._commit_batch(batch)
            if stop:
                break
        self._writer_conn.close()

    def _commit_batch(self, batch: list[_Request]) -> None:
        conn = self._writer_conn
        if time.monotonic() - self._checked >= EXTERNAL_POLL_SECONDS:
            self._check_external()
        results: list[tuple[_Request, WriteTxn | None, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.error("store: cannot begin a write: %s", exc)
            for req in batch:
                req.future.set_exception(TemporaryFailure("the store is busy; try again"))
            return
        for req in batch:
            txn = WriteTxn(conn)
            conn.execute("SAVEPOINT req")
            try:
                value = req.fn(txn)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                conn.execute("ROLLBACK TO req")
                conn.execute("RELEASE req")
                for undo in txn.on_rollback:
                    _quietly(undo)
                if isinstance(exc, sqlite3.Error):
                    log.error("store: write failed: %s", exc)
                    exc = TemporaryFailure("the store could not be written; try again")
                elif not isinstance(exc, RmailError):
                    log.exception("store: write request failed")
                results.append((req, None, None, exc))
            else:
                conn.execute("RELEASE req")
                results.append((req, txn, value, None))
        try:
            # Blobs first: a committed row must never point at a file that is not on disk.
            self._flush([f for _, t, _, _ in results if t is not None for f in t.new_files])
            conn.execute("COMMIT")
            self.commits += 1
        except (sqlite3.Error, OSError) as exc:
            log.error("store: commit failed: %s", exc)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for req, txn, _, err in results:
                if txn is not None:
                    for undo in txn.on_rollback:
                        _quietly(undo)
                req.future.set_exception(err or TemporaryFailure("could not save; try again"))
            return
        events: list[Event] = []
        for _, txn, _, err in results:
            if err is None and txn is not None:
                for done in txn.after_commit:
                    _quietly(done)
                events.extend(txn.events)
        # Publish before resolving the callers: both hops go through the loop's queue in this
        # order, so a caller that acknowledges (REST 2xx, IMAP OK) never races ahead of the
        # notice other sessions get; a client's next command already sees the change.
        if events:
            self._publish(events)
        for req, _, value, err in results:
            if err is not None:
                req.future.set_exception(err)
            else:
                req.future.set_result(value)

    def _current_data_version(self) -> int:
        return self._writer_conn.execute("PRAGMA data_version").fetchone()[0]

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
            self._publish([ExternalChange()])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join()
        self._readers.shutdown(wait=True)


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - cleanup must not break a commit
        log.exception("store: cleanup step failed")
