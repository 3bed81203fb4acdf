"""storage.Transfer over PostgreSQL: raw SQL on the tables of migrations/, nothing else of the
backend (it needs neither the mail store nor the change feed).

Dump: one REPEATABLE READ READ ONLY transaction on one connection, so every table is read from
one snapshot while nodes keep writing; rows stream through cursors. Message bytes are fetched
in groups of about BATCH_BYTES, chosen from their sizes beforehand, so memory stays bounded
by that plus the largest message. A dump never writes (not even a migration).

Load: one transaction that first locks the tables against other writers and checks they are
empty, then COPYs the rows in (binary COPY: the fastest way in), then moves the id sequences
past every copied id and sets the 'uidvalidity' counter. It commits with
``synchronous_commit=on``: durable once it returns. A failure anywhere rolls it all back.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, AsyncIterable, AsyncIterator, Callable

import asyncpg

from ..errors import InvalidInput, RmailError, TemporaryFailure
from ..storage.backend import StoreLocation
from ..storage.transfer import (
    BATCH_BYTES, BATCH_ROWS, COUNTERS, EMPTY_TABLES, TABLES, AliasRecord, Batch, Batcher, BlobRecord, CounterRecord,
    DomainRecord, Dump, ExpungedRecord, ImportedRecord, MailboxRecord, MessageRecord, QueueRecord, QuotaRecord,
    Record, SecretRecord, SubscriptionRecord, Summary, UserRecord,
)
from .database import SERVER_SETTINGS, as_connection, store_error
from .migrate import current_version, latest_version, migrate

__all__ = ["PgTransfer", "open_transfer"]

_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
#: Tables with a bigserial id, whose sequences a load moves past the copied ids.
_SERIAL = ("domains", "users", "aliases", "mailboxes", "queue")
#: Seconds a load waits for other sessions' locks on the target's tables.
LOCK_TIMEOUT = 10

_BLOB_COLS = ("b.id, b.size, b.subject, b.from_, b.to_, b.cc, b.date, b.message_id, b.in_reply_to, b.refs,"
              " b.preview, b.envelope, b.body, b.bodystructure, b.header_text, b.search_text, d.data")
_SCANS: tuple[tuple[str, str, Callable[[asyncpg.Record], Record]], ...] = (
    ("domains", "SELECT id, name FROM domains", lambda r: DomainRecord(*r)),
    ("users", "SELECT id, domain_id, local, local_key, password_hash, admin, created FROM users",
     lambda r: UserRecord(*r)),
    ("aliases", "SELECT id, domain_id, position, pattern, target_user_id FROM aliases", lambda r: AliasRecord(*r)),
    ("quotas", "SELECT user_id, bytes FROM quotas", lambda r: QuotaRecord(*r)),
    ("imported", "SELECT user_id, source, key FROM imported", lambda r: ImportedRecord(*r)),
    ("subscriptions", "SELECT user_id, name FROM subscriptions", lambda r: SubscriptionRecord(*r)),
)
_LATER_SCANS: tuple[tuple[str, str, Callable[[asyncpg.Record], Record]], ...] = (
    ("mailboxes", "SELECT id, user_id, name, special_use, noselect, uidvalidity, uidnext, highestmodseq,"
                  " recent_uid FROM mailboxes", lambda r: MailboxRecord(*r)),
    ("messages", "SELECT mailbox_id, uid, modseq, sysflags, keywords, internaldate, size, blob_id, savedate"
                  " FROM messages",
     lambda r: MessageRecord(*r)),
    ("expunged", "SELECT mailbox_id, uid, modseq FROM expunged", lambda r: ExpungedRecord(*r)),
    ("queue", "SELECT id, sender, recipient, blob_id, size, created, attempts, next_attempt, last_error,"
              " delayed_notified FROM queue", lambda r: QueueRecord(*r)),
)
# The sequence is read outside the snapshot (sequences are not transactional): it can only be
# further on, which is what a counter needs.
_COUNTERS = """
SELECT (SELECT value::bigint FROM meta WHERE key = 'uidvalidity'), (SELECT max(uidvalidity) FROM mailboxes),
       pg_sequence_last_value(pg_get_serial_sequence('mailboxes', 'id')::regclass), (SELECT max(id) FROM mailboxes)
"""


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow("SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in EMPTY_TABLES))
    assert row is not None, "a SELECT without FROM returns one row"
    return {t: int(n) for t, n in zip(EMPTY_TABLES, row)}


def _not_empty(where: str, counts: dict[str, int]) -> InvalidInput:
    held = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
    return InvalidInput(f"{where} is not empty (it holds {held}): copy only into a new, empty store")


async def _scan(conn: asyncpg.Connection, table: str, sql: str,
                make: Callable[[asyncpg.Record], Record]) -> AsyncIterator[Batch]:
    batcher = Batcher(table)
    async for row in conn.cursor(sql, prefetch=BATCH_ROWS):
        if (batch := batcher.add(make(row))) is not None:
            yield batch
    if (batch := batcher.flush()) is not None:
        yield batch


async def _blobs(conn: asyncpg.Connection) -> AsyncIterator[Batch]:
    """Blob rows with their bytes, fetched in groups of about BATCH_BYTES."""
    weights = await conn.cursor("SELECT id, size + octet_length(search_text) + octet_length(header_text)"
                                " + octet_length(body) + octet_length(envelope) + octet_length(bodystructure)"
                                " FROM blobs")
    batcher = Batcher("blobs")
    while rows := await weights.fetch(BATCH_ROWS):
        groups: list[list[str]] = [[]]
        weight = 0
        for blob_id, w in rows:
            if groups[-1] and weight + w > BATCH_BYTES:
                groups.append([])
                weight = 0
            groups[-1].append(blob_id)
            weight += w
        for ids in groups:
            for r in await conn.fetch(f"SELECT {_BLOB_COLS} FROM blobs b LEFT JOIN blob_data d ON d.id = b.id"
                                      " WHERE b.id = ANY($1::text[])", ids):
                if r[16] is None:
                    raise TemporaryFailure(f"message {r[0]} has no bytes stored (blob_data): the database is"
                                           " damaged (run.py diagnose)")
                if (batch := batcher.add(BlobRecord(*r))) is not None:
                    yield batch
    if (batch := batcher.flush()) is not None:
        yield batch


async def _batches(conn: asyncpg.Connection) -> AsyncGenerator[Batch, None]:
    for table, sql, make in _SCANS:
        async for batch in _scan(conn, table, sql, make):
            yield batch
    async for batch in _blobs(conn):
        yield batch
    for table, sql, make in _LATER_SCANS:
        async for batch in _scan(conn, table, sql, make):
            yield batch
    counters = await conn.fetchrow(_COUNTERS)
    assert counters is not None, "a SELECT of aggregates returns one row"
    uidvalidity, top_validity, mailbox_id, top_id = counters
    yield Batch("counters", (CounterRecord("uidvalidity", max(uidvalidity or 0, top_validity or 0)),
                             CounterRecord("mailbox_id", max(mailbox_id or 0, top_id or 0))))
    async for batch in _scan(conn, "secrets", "SELECT name, value FROM secrets", lambda r: SecretRecord(*r)):
        yield batch


async def _finish(conn: asyncpg.Connection, counters: dict[str, int]) -> None:
    """Counters and sequences past everything copied (the rows kept their ids)."""
    uidvalidity = counters.get("uidvalidity", 0)
    if uidvalidity > 0:
        await conn.execute("INSERT INTO meta(key, value) VALUES('uidvalidity', $1) ON CONFLICT (key)"
                           " DO UPDATE SET value = excluded.value", str(uidvalidity))
    else:
        await conn.execute("DELETE FROM meta WHERE key = 'uidvalidity'")
    for table in _SERIAL:
        top = await conn.fetchval(f"SELECT max(id) FROM {table}") or 0
        if table == "mailboxes":
            top = max(top, counters.get("mailbox_id", 0))
        if top > 0:
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), $1, true)", top)
        else:
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1, false)")


class PgTransfer:
    """storage.Transfer on one PostgreSQL database (through ``pool``)."""

    def __init__(self, pool: asyncpg.Pool, location: StoreLocation) -> None:
        self.pool = pool
        self.location = location

    def describe(self) -> str:
        return self.location.describe()

    def _failure(self, exc: BaseException, what: str) -> TemporaryFailure:
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, asyncpg.PostgresError):
            return type(store_error(exc))(f"{what} ({self.describe()}): {detail}")
        return TemporaryFailure(f"{what} ({self.describe()}): {detail}")

    @asynccontextmanager
    async def _connection(self, what: str) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool; driver errors become rmail errors naming ``what``."""
        try:
            async with self.pool.acquire() as conn:
                yield as_connection(conn)
        except RmailError:
            raise
        except _DRIVER_ERRORS as exc:
            raise self._failure(exc, what) from None

    async def _guarded(self, batches: AsyncGenerator[Batch, None]) -> AsyncGenerator[Batch, None]:
        """``batches`` with driver errors turned into rmail errors: they surface in whoever
        iterates, outside ``_connection``."""
        try:
            async for batch in batches:
                yield batch
        except RmailError:
            raise
        except _DRIVER_ERRORS as exc:
            raise self._failure(exc, "cannot read the database") from None
        finally:
            await batches.aclose()

    async def identity(self) -> str:
        async with self._connection("cannot read the database") as conn:
            try:
                cluster = str(await conn.fetchval("SELECT system_identifier FROM pg_control_system()"))
            except asyncpg.InsufficientPrivilegeError:
                cluster = self.describe().rpartition("/")[0]
            database = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
        return f"postgresql:{cluster}:{database}"

    async def _require_schema(self, conn: asyncpg.Connection) -> None:
        version, latest = await current_version(conn), latest_version()
        if version == 0:
            raise InvalidInput(f"{self.describe()} holds no rmail store")
        if version != latest:
            raise InvalidInput(f"{self.describe()} has schema version {version} and this rmail copies version"
                               f" {latest}: run this rmail's server on it once, or use the matching rmail")

    @asynccontextmanager
    async def dump(self) -> AsyncIterator[Dump]:
        async with self._connection("cannot read the database") as conn:
            await self._require_schema(conn)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                totals = await _counts(conn)
                total_bytes = int(await conn.fetchval("SELECT coalesce(sum(size), 0) FROM blobs"))
                totals.update(counters=len(COUNTERS), secrets=int(await conn.fetchval("SELECT count(*) FROM secrets")))
                stream = self._guarded(_batches(conn))
                try:
                    yield Dump(stream, totals, total_bytes)
                finally:
                    await stream.aclose()

    async def check_empty(self) -> None:
        async with self._connection("cannot read the database") as conn:
            version = await current_version(conn)
            if version == 0:
                return          # nothing of rmail's there yet
            if version > latest_version():
                raise InvalidInput(f"{self.describe()} has schema version {version}, newer than this rmail knows")
            counts = await _counts(conn)
        if any(counts.values()):
            raise _not_empty(self.describe(), counts)

    async def load(self, batches: AsyncIterable[Batch]) -> None:
        async with self._connection("cannot write the database") as conn:
            await migrate(conn, where=self.describe())
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}s'")
                # No other session writes the tables until the commit: an empty target stays so.
                await conn.execute(f"LOCK TABLE {', '.join(EMPTY_TABLES)}, meta, secrets IN EXCLUSIVE MODE")
                counts = await _counts(conn)
                if any(counts.values()):
                    raise _not_empty(self.describe(), counts)
                await conn.execute("DELETE FROM secrets")       # the source's replace the target's own
                counters: dict[str, int] = {}
                async for batch in batches:
                    await self._copy(conn, batch, counters)
                await _finish(conn, counters)

    @staticmethod
    async def _copy(conn: asyncpg.Connection, batch: Batch, counters: dict[str, int]) -> None:
        rows: Any = batch.rows
        if batch.table == "counters":
            counters.update((r.name, r.value) for r in rows)
        elif batch.table == "blobs":
            await conn.copy_records_to_table("blobs", records=[r[:-1] for r in rows],
                                             columns=BlobRecord._fields[:-1])
            await conn.copy_records_to_table("blob_data", records=[(r.id, r.data) for r in rows],
                                             columns=("id", "data"))
        else:
            await conn.copy_records_to_table(batch.table, records=rows, columns=TABLES[batch.table]._fields)

    async def summary(self) -> Summary:
        async with self.dump() as dump:
            async for _ in dump:
                pass
            return dump.summary()


@asynccontextmanager
async def open_transfer(location: StoreLocation, *, target: bool) -> AsyncIterator[PgTransfer]:
    """The database at ``location.url``, on a small pool of its own. Nothing is created or
    migrated here (a target's schema is made by ``load``).

    Raises:
        InvalidInput: the URL cannot be parsed.
        TemporaryFailure: the database cannot be reached or logged in to.
    """
    from . import CONNECT_TIMEOUT, _scrub     # the package's __init__ imports this module
    del target
    try:
        where = location.describe()
    except ValueError:
        raise InvalidInput("not a valid PostgreSQL URL (look at the host and the port)") from None
    settings = {**SERVER_SETTINGS, "application_name": "rmail store copy"}
    try:
        pool = await asyncpg.create_pool(location.url, min_size=1, max_size=2, server_settings=settings,
                                         timeout=CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else _scrub(str(exc), location)
        raise TemporaryFailure(f"cannot connect to PostgreSQL at {where}: {reason}") from None
    except ValueError:
        raise InvalidInput(f"{where} is not a valid PostgreSQL URL") from None
    try:
        yield PgTransfer(pool, location)
    finally:
        await pool.close()
