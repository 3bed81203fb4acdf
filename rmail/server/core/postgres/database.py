"""PostgreSQL access: an asyncpg pool, read transactions on consistent snapshots, write
transactions that retry on serialization failures and deadlocks, and events after commit.

Durability: every connection runs with ``synchronous_commit=on`` whatever the server's
default, so a write coroutine returns only once PostgreSQL has flushed the commit.

Events: a write request collects events with ``txn.emit``; they go out in the same
transaction as a NOTIFY (delivered to other nodes only if it commits), and to this process's
bus once the commit returned. The change feed (feed.py) publishes other nodes' notices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..errors import RmailError, StorageFull, TemporaryFailure
from ..events import Event
from .notices import CHANNEL, encode

log = logging.getLogger("rmail.store")
T = TypeVar("T")

#: Attempts of one write request before the caller is told to try again.
WRITE_ATTEMPTS = 8
#: SQLSTATEs worth retrying the whole transaction for.
_RETRY_STATES = frozenset({"40001", "40P01"})      # serialization_failure, deadlock_detected
_FULL_STATES = frozenset({"53100", "53200", "53300"})   # disk_full, out_of_memory, too_many_connections
#: Every connection of the pool: durable commits, UTC, and no statement left hanging forever.
SERVER_SETTINGS = {"synchronous_commit": "on", "timezone": "UTC", "application_name": "rmail"}


@dataclass
class PgTxn:
    """Handed to a write request: the connection (inside the transaction) plus its events."""

    conn: asyncpg.Connection
    events: list[Event] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)


def as_connection(proxy: PoolConnectionProxy) -> asyncpg.Connection:
    """A pooled connection as the Connection it stands for. asyncpg's pool proxy forwards
    every Connection method and passes ``isinstance(proxy, asyncpg.Connection)``; only the
    stubs type the two apart, so request functions take an ``asyncpg.Connection`` either way."""
    return cast(asyncpg.Connection, proxy)


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release. asyncpg's default runs a reset statement (advisory locks,
    cursors, LISTEN, settings) on every release: a round trip per request. rmail leaves none of
    that behind on pooled connections (the feed listens on its own connection, the migration
    lock is released explicitly, cursors live in transactions), so only a transaction left
    open by a cancelled request is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def store_error(exc: BaseException, default: str = "the store could not be written; try again") -> TemporaryFailure:
    """What a caller is told when the database failed it for a reason not its own."""
    if isinstance(exc, TemporaryFailure):
        return exc
    state = getattr(exc, "sqlstate", None)
    if state == "53100":
        return StorageFull("the database's disk is full; try again later")
    return TemporaryFailure(default)


class PgDatabase:
    """One pool per node. ``commits`` counts commits seen by this node, its own and (through
    the feed) other nodes': single-flight reads join only a query issued since the last one."""

    def __init__(self, pool: asyncpg.Pool, node: str, publish: Callable[[list[Event]], None] | None = None) -> None:
        self.pool = pool
        self.node = node
        self._publish = publish or (lambda events: None)
        self.commits = 0
        self.on_commit: Callable[[float], None] | None = None
        self._closed = False

    def set_publisher(self, publish: Callable[[list[Event]], None]) -> None:
        self._publish = publish

    def publish(self, events: list[Event]) -> None:
        """Publish events on this node's bus (the feed calls it for other nodes' commits)."""
        self.commits += 1
        try:
            self._publish(events)
        except Exception:  # noqa: BLE001 - a subscriber bug must not break a commit
            log.exception("store: publishing events failed")

    async def read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *, single: bool = False) -> T:
        """Run ``fn`` in a read-only REPEATABLE READ transaction (one consistent snapshot).

        ``single``: ``fn`` runs exactly one statement, which is a consistent snapshot by
        itself; it then runs outside an explicit transaction, saving the BEGIN and COMMIT
        round trips (the hot lookups: a recipient, a login, a mailbox by name).
        """
        if self._closed:
            raise TemporaryFailure("the store is closed")
        try:
            async with self.pool.acquire() as proxy:
                conn = as_connection(proxy)
                if single:
                    return await fn(conn)
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    return await fn(conn)
        except RmailError:
            raise
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.error("store: read failed: %s", exc)
            raise TemporaryFailure("the store could not be read; try again") from exc

    async def write(self, fn: Callable[[PgTxn], Awaitable[T]]) -> T:
        """Run ``fn`` in a READ COMMITTED transaction and commit it; returns once durable.
        ``fn`` may run more than once (a serialization failure or deadlock retries it whole),
        so it must have no effect outside the transaction but its events."""
        if self._closed:
            raise TemporaryFailure("the store is closed")
        for attempt in range(WRITE_ATTEMPTS):
            try:
                async with self.pool.acquire() as proxy:
                    conn = as_connection(proxy)
                    txn = PgTxn(conn)
                    began = time.perf_counter()
                    async with conn.transaction():
                        value = await fn(txn)
                        payload = encode(txn.events, self.node)
                        if payload is not None:
                            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                    if self.on_commit is not None:
                        try:
                            self.on_commit(time.perf_counter() - began)
                        except Exception:  # noqa: BLE001 - metrics must not break a commit
                            pass
            except RmailError:
                raise
            except asyncpg.PostgresError as exc:
                if getattr(exc, "sqlstate", None) in _RETRY_STATES and attempt + 1 < WRITE_ATTEMPTS:
                    await asyncio.sleep(0.002 * (2 ** attempt))
                    continue
                log.error("store: write failed: %s", exc)
                raise store_error(exc) from exc
            except (OSError, asyncpg.InterfaceError) as exc:
                log.error("store: write failed: %s", exc)
                raise store_error(exc) from exc
            for done in txn.after_commit:
                try:
                    done()
                except Exception:  # noqa: BLE001 - cleanup must not break a commit
                    log.exception("store: after-commit step failed")
            if txn.events:
                self.publish(txn.events)
            else:
                self.commits += 1
            return value
        raise TemporaryFailure("the store is busy; try again")   # not reached

    async def ping(self) -> None:
        await self.read(lambda conn: conn.fetchval("SELECT 1"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.pool.close()
