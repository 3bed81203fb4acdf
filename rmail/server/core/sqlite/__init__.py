"""The embedded backend: rmail.db (SQLite, WAL, ``synchronous=FULL``) plus ``blobs/`` in the
data dir (DESIGN.md, "The storage contract").

Invariants on top of the contract's:
- One process writes at a time through one writer thread (group commit, a SAVEPOINT per
  request); readers use their own WAL connections. Another process's commits (the CLI while
  the server runs) are noticed through ``PRAGMA data_version`` and published as ExternalChange.
- Messages up to 128 KiB live in the database (durable with their row); larger ones are
  immutable files, flushed before the commit that references them. Start-up recovery (the
  server only: it holds the data-dir lock) removes files no row references.
- Nothing outside this package imports sqlite3 for the store.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from typing import TYPE_CHECKING, Callable

from ..dkimkeys import FileKeyStore, KeyStore
from ..events import Event
from ..storage.backend import StoreLocation
from .blobs import BlobStore
from .database import Database
from .directory import SqliteDirectory
from .mail import SqliteMailStore
from .queuestore import SqliteQueueStore
from .transfer import SqliteTransfer
from .throttle import MemoryFailureLedger
from .views import SqliteMailViews

if TYPE_CHECKING:
    from ..storage import Backend, Directory, MailStore, MailViews, QueueStore

__all__ = ["SqliteBackend", "open"]

log = logging.getLogger("rmail.store")


def schema() -> str:
    return resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


class SqliteBackend:
    """storage.Backend over one data dir."""

    def __init__(self, location: StoreLocation, *, publish: Callable[[list[Event]], None] | None = None,
                 min_free_space: int = 0) -> None:
        data_dir = location.data_dir
        self.location = location
        self.blobs = BlobStore(data_dir / "blobs")
        self.db = Database(data_dir / "rmail.db", schema(), publish=publish, flush=self.blobs.flush)
        self.mail = SqliteMailStore(self.db, self.blobs, data_dir, min_free_space=min_free_space)
        self.directory = SqliteDirectory(self.db, self.mail, data_dir / "keys")
        self.queue = SqliteQueueStore(self.db, self.mail)
        self.views = SqliteMailViews(self.db)
        self.transfer = SqliteTransfer(data_dir)
        self.login_failures = MemoryFailureLedger()   # one process serves this store: nothing to share
        self.dkim_keys: KeyStore = FileKeyStore(data_dir / "keys" / "dkim")

    def set_publisher(self, publish: Callable[[list[Event]], None]) -> None:
        self.db.set_publisher(publish)

    async def ping(self) -> None:
        await self.db.ping()

    async def integrity_check(self) -> str:
        return await self.mail.integrity_check()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        self.db.close()
        self.mail.close()


async def open(location: StoreLocation, *, publish: Callable[[list[Event]], None] | None = None,
               recover: bool = False, min_free_space: int = 0) -> SqliteBackend:
    """Open (creating or migrating) the store in ``location.data_dir``. Only the server
    recovers (it holds the data-dir lock): recovery in a second process could remove a blob
    the server is about to commit."""
    backend = await asyncio.to_thread(SqliteBackend, location, publish=publish, min_free_space=min_free_space)
    if recover:
        removed = await asyncio.to_thread(backend.mail.recover)
        if removed:
            log.info("store: recovery removed %d unreferenced blob file(s)", removed)
        released = await asyncio.to_thread(backend.queue.release_all)
        if released:
            log.info("store: recovery released %d outbound queue lease(s) of a previous run", released)
    return backend


if TYPE_CHECKING:
    # Never called: mypy proves here that the classes satisfy the contract's Protocols, one
    # function each, so an error names the class and the member at fault.
    def _backend(x: SqliteBackend) -> Backend:
        return x

    def _mail(x: SqliteMailStore) -> MailStore:
        return x

    def _directory(x: SqliteDirectory) -> Directory:
        return x

    def _queue(x: SqliteQueueStore) -> QueueStore:
        return x

    def _views(x: SqliteMailViews) -> MailViews:
        return x


def key_store(location: StoreLocation) -> FileKeyStore:
    """The embedded store's DKIM keys: files under data_dir/keys/dkim."""
    return FileKeyStore(location.data_dir / "keys" / "dkim")
