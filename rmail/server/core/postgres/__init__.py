"""The PostgreSQL backend (``[store] url``): any number of rmail nodes on one database.

What is shared: everything a user or a session can see lives in the database and nowhere
else: domains, users, alias rules, quotas, mailboxes, messages with their bytes (``blob_data``,
whatever their size: no node has files another one cannot read), the outbound queue, the
shared secrets (the JWT key, DKIM keys) and the failed-login counts (throttle.py). Per node:
the config, TLS files, listeners, password checks in flight, and a random node id
(``PgDatabase.node``) that tells its change notices apart.

Invariants, on top of those of the storage contract:

- Durable: every connection runs with ``synchronous_commit=on``; a write coroutine returns
  only once its commit is flushed (PgDatabase.write).
- Write requests run in READ COMMITTED and may run again whole after a serialization failure
  or deadlock, so they have no effect outside their transaction but the events they emit.
  UIDs come from ``UPDATE mailboxes SET uidnext = uidnext + 1 ... RETURNING``, which row-locks
  the mailbox: UIDs ascend in commit order however many nodes append. Several mailboxes are
  locked in ascending id order. Reads that need one consistent view run in REPEATABLE READ.
- Change notices: a write's events go out as a NOTIFY in its own transaction (delivered only
  if it commits, after it commits); each node LISTENs on one connection of its own (feed.py)
  and publishes other nodes' events on its bus. After a lost connection it publishes
  ExternalChange, since notices sent meanwhile are gone.
- Outbound queue: a scheduler leases due entries (``FOR UPDATE SKIP LOCKED`` plus
  ``leased_until``), so each entry is tried by one node at a time; a lease held by a node that
  died runs out and the entry is tried again elsewhere.
- Schema: versioned migrations (migrate.py) under an advisory lock, so nodes starting together
  migrate once; a database newer than the code is refused.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Callable

import asyncpg

from ..dkimkeys import KeyStore
from ..errors import TemporaryFailure
from ..events import Event
from ..storage import FailureLedger, StoreLocation
from ..storage.transfer import Transfer
from .database import SERVER_SETTINGS, PgDatabase, as_connection, keep_session
from .dkimkeys import PgKeyStore
from .directory import PgDirectory
from .feed import ChangeFeed
from .migrate import latest_version, migrate
from .queuestore import PgQueueStore
from .transfer import PgTransfer
from .throttle import PgFailureLedger

if TYPE_CHECKING:
    from ..storage import Backend, Directory, MailStore, MailViews, QueueStore
    from .mail import PgMailStore
    from .views import PgMailViews

__all__ = ["DEFAULT_POOL_SIZE", "PostgresBackend", "open"]

log = logging.getLogger("rmail.store")

#: Connections per node ([store] pool_size). 20 keeps 32 concurrent deliverers busy (a commit
#: holds a connection only for its round trips) while ten nodes stay inside PostgreSQL's
#: default max_connections of 100 with room for administrators.
DEFAULT_POOL_SIZE = 20
#: Seconds to wait for the server when connecting; a node that cannot reach its database
#: should say so rather than hang.
CONNECT_TIMEOUT = 10.0

Publish = Callable[[list[Event]], None]

# Consistency checks for ``integrity_check``: each names the first offending row, or nothing.
_CHECKS: tuple[tuple[str, str], ...] = (
    ("SELECT id FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM blob_data d WHERE d.id = b.id) LIMIT 1",
     "message {} has no bytes stored (blob_data row missing)"),
    ("SELECT id FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id)"
     " AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob_id = b.id) LIMIT 1",
     "message bytes {} are referenced by no message or queue entry (leaked)"),
    ("SELECT b.id FROM mailboxes b JOIN messages m ON m.mailbox_id = b.id WHERE m.uid >= b.uidnext LIMIT 1",
     "mailbox {} holds a UID at or above its UIDNEXT"),
    ("SELECT b.id FROM mailboxes b JOIN messages m ON m.mailbox_id = b.id WHERE m.modseq > b.highestmodseq LIMIT 1",
     "mailbox {} holds a message with a MODSEQ above its HIGHESTMODSEQ"),
    ("SELECT b.id FROM mailboxes b JOIN expunged e ON e.mailbox_id = b.id"
     " JOIN messages m ON m.mailbox_id = e.mailbox_id AND m.uid = e.uid LIMIT 1",
     "mailbox {} has a UID both present and expunged"),
)


class PostgresBackend:
    """storage.Backend on one PostgreSQL database (made by ``open``)."""

    def __init__(self, location: StoreLocation, db: PgDatabase, feed: ChangeFeed, mail: PgMailStore,
                 views: PgMailViews) -> None:
        self.location = location
        self.db = db
        self.feed = feed
        self.mail = mail
        self.directory = PgDirectory(db, mail)
        self.queue = PgQueueStore(db, mail)
        self.views = views
        self.transfer: Transfer = PgTransfer(db.pool, location)
        self.login_failures: FailureLedger = PgFailureLedger(db)
        self._key_store = PgKeyStore(location)
        self.dkim_keys: KeyStore = self._key_store

    def set_publisher(self, publish: Publish) -> None:
        self.db.set_publisher(publish)

    async def ping(self) -> None:
        await self.db.ping()

    async def integrity_check(self) -> str:
        async def q(conn: asyncpg.Connection) -> str:
            if await conn.fetchval("SELECT 1") != 1:
                return "the database does not answer SELECT 1"
            version = await conn.fetchval("SELECT max(version) FROM schema_version")
            if version != latest_version():
                return f"schema version {version}, expected {latest_version()}"
            for sql, problem in _CHECKS:
                found = await conn.fetchval(sql)
                if found is not None:
                    return problem.format(found)
            return "ok"
        return await self.db.read(q)

    async def close(self) -> None:
        await asyncio.to_thread(self._key_store.close)   # blocking: it joins the key store's thread
        await self.feed.close()
        await self.db.close()


def _scrub(text: str, location: StoreLocation) -> str:
    """A driver message with the URL's password taken out, should it ever appear in one."""
    from urllib.parse import unquote, urlsplit
    password = urlsplit(location.url or "").password
    if password:
        for form in {password, unquote(password)}:
            text = text.replace(form, "***")
    return text


async def open(location: StoreLocation, *, publish: Publish | None = None, recover: bool = False,
               min_free_space: int = 0, pool_size: int = DEFAULT_POOL_SIZE) -> PostgresBackend:
    """Connect to ``location.url``, migrate the schema, start the change feed.

    ``recover`` does nothing here: there are no files to clean up, and a transaction a crash
    interrupted was rolled back by PostgreSQL. ``min_free_space`` does nothing either: the
    database's disk is not ours to measure (PostgreSQL reports a full disk as an error, which
    writes turn into StorageFull).

    Raises:
        TemporaryFailure: the database cannot be reached or logged in to (the message names the
            host, never the password). SchemaTooNew (a TemporaryFailure): the database was
            migrated by a newer rmail.
    """
    # Loaded on open, so the package's small modules (directory, feed, migrate...) import
    # without the mail store's.
    from .mail import PgMailStore
    from .views import PgMailViews

    del recover, min_free_space   # see the docstring
    url = location.url
    if not url:
        raise TemporaryFailure("the PostgreSQL backend needs [store] url")
    try:
        where = location.describe()
    except ValueError:     # urlsplit: a bad port or IPv6 literal
        raise TemporaryFailure("[store] url is not a valid PostgreSQL URL (look at the host and the port)") from None
    try:
        pool = await asyncpg.create_pool(url, min_size=min(2, pool_size), max_size=pool_size, reset=keep_session,
                                         server_settings=SERVER_SETTINGS, timeout=CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else _scrub(str(exc), location)
        raise TemporaryFailure(f"cannot connect to PostgreSQL at {where}: {reason}") from None
    except ValueError:
        # asyncpg's URL parser; its message may quote the URL, password included.
        raise TemporaryFailure(f"cannot connect to PostgreSQL at {where}: the URL is not valid") from None
    node = secrets.token_hex(8)
    db = PgDatabase(pool, node, publish)
    feed_settings = {**SERVER_SETTINGS, "application_name": "rmail feed"}
    feed = ChangeFeed(db, lambda: asyncpg.connect(url, server_settings=feed_settings, timeout=CONNECT_TIMEOUT),
                      where=where)
    try:
        try:
            async with pool.acquire() as proxy:
                version = await migrate(as_connection(proxy), where=where)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise TemporaryFailure(f"cannot migrate the schema of {where}: {_scrub(str(exc), location)}") from None
        await feed.start()
    except BaseException:
        await feed.close()
        pool.terminate()
        raise
    log.info("store: %s, schema version %d, node %s", where, version, node)
    return PostgresBackend(location, db, feed, PgMailStore(db), PgMailViews(db))


if TYPE_CHECKING:
    # Never called: mypy proves here that the classes satisfy the contract's Protocols, one
    # function each, so an error names the class and the member at fault.
    def _backend(x: PostgresBackend) -> Backend:
        return x

    def _mail(x: PgMailStore) -> MailStore:
        return x

    def _directory(x: PgDirectory) -> Directory:
        return x

    def _queue(x: PgQueueStore) -> QueueStore:
        return x

    def _views(x: PgMailViews) -> MailViews:
        return x


def key_store(location: StoreLocation) -> PgKeyStore:
    """The DKIM keys in the database at ``location.url``, on a connection of their own."""
    return PgKeyStore(location)
