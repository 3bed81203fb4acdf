"""Moving a whole store to another backend (``run.py store copy``): the contract's part for it.

A source ``dump()``s everything from one consistent snapshot as typed batches, table by table
in dependency order (``TABLES``); an empty target ``load()``s them in one transaction and
returns once they are durable; ``summary()`` on each side says whether they hold the same.

Ids are copied as they are (no backend assigns new ones on load): every ordering the stores
break ties with (a domain's first user is its postmaster, alias rules of one position, the
queue's order) stays the same, ``queue retry ID`` keeps naming the same entry, and no id map
for millions of rows is needed. Each loader afterwards moves its own id counters past every
copied id (``counters`` carries the source's, so a mailbox id or a UIDVALIDITY handed out and
since deleted on the source is never handed out again by the target).

The summary, per table: the row count and a checksum that does not depend on row order, so
each backend may scan in its cheapest order and none has to sort by a collation the other
lacks. A row's canonical form is its table name and its fields in the order of its record
type (``encode_row``: type-tagged, length-prefixed); the table's checksum is the sum, modulo
2**256, of the SHA-256 of each row's form (a multiset hash). A blob row carries the message
bytes themselves, so they are covered. The overall digest is the SHA-256 of every table's
line. This detects copying errors; it is not meant to resist someone forging rows.
"""

from __future__ import annotations

import hashlib
import importlib
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterable, AsyncIterator, NamedTuple, Protocol, Union

from .backend import StoreLocation

__all__ = [
    "AliasRecord", "BATCH_BYTES", "BATCH_ROWS", "Batch", "Batcher", "BlobRecord", "COUNTERS", "CounterRecord",
    "DomainRecord", "Dump", "EMPTY_TABLES", "ExpungedRecord", "ImportedRecord", "MailboxRecord", "MessageRecord",
    "QueueRecord", "QuotaRecord", "Record", "SecretRecord", "SubscriptionRecord", "Summary", "TABLES", "TableSum",
    "Tally", "Transfer",
    "UserRecord", "encode_row", "open_transfer", "row_hash",
]


# -- records: one type per table, fields in canonical order -------------------------------------

class DomainRecord(NamedTuple):
    id: int
    name: str


class UserRecord(NamedTuple):
    id: int
    domain_id: int
    local: str
    local_key: str
    password_hash: bytes
    admin: bool
    created: int


class AliasRecord(NamedTuple):
    id: int
    domain_id: int
    position: int
    pattern: str
    target_user_id: int


class QuotaRecord(NamedTuple):
    user_id: int
    bytes: int


class ImportedRecord(NamedTuple):
    user_id: int
    source: str
    key: str


class SubscriptionRecord(NamedTuple):
    """A name in a user's subscription list (it need not name a mailbox)."""

    user_id: int
    name: str


class BlobRecord(NamedTuple):
    """A message's bytes (``data``) with the metadata parsed from them at delivery."""

    id: str
    size: int
    subject: str
    from_: str
    to_: str
    cc: str
    date: int | None
    message_id: str
    in_reply_to: str
    refs: str
    preview: str
    envelope: bytes
    body: bytes
    bodystructure: bytes
    header_text: str
    search_text: str
    data: bytes


class MailboxRecord(NamedTuple):
    id: int
    user_id: int
    name: str
    special_use: str | None
    noselect: bool
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    recent_uid: int


class MessageRecord(NamedTuple):
    mailbox_id: int
    uid: int
    modseq: int
    sysflags: int
    keywords: str
    internaldate: int
    size: int
    blob_id: str
    savedate: int                    #: RFC 8514 §3, unix seconds


class ExpungedRecord(NamedTuple):
    mailbox_id: int
    uid: int
    modseq: int


class QueueRecord(NamedTuple):
    """An outbound entry; a lease is not copied (whoever held it is not the target's)."""

    id: int
    sender: str
    recipient: str
    blob_id: str
    size: int
    created: int
    attempts: int
    next_attempt: int
    last_error: str
    delayed_notified: bool


class CounterRecord(NamedTuple):
    """The highest value a counter has handed out (``COUNTERS``; 0: none yet), never less
    than the highest copied id or UIDVALIDITY."""

    name: str
    value: int


class SecretRecord(NamedTuple):
    name: str
    value: bytes


Record = Union[DomainRecord, UserRecord, AliasRecord, QuotaRecord, ImportedRecord, SubscriptionRecord, BlobRecord,
               MailboxRecord, MessageRecord, ExpungedRecord, QueueRecord, CounterRecord, SecretRecord]

#: Table → record type, in load (dependency) order. Blobs come before mailboxes: a dump that
#: meets message bytes deleted after its snapshot (files of the embedded store) still has the
#: mailbox rows ahead of it to record that expunge in.
TABLES: dict[str, type[Record]] = {
    "domains": DomainRecord, "users": UserRecord, "aliases": AliasRecord, "quotas": QuotaRecord,
    "imported": ImportedRecord, "subscriptions": SubscriptionRecord, "blobs": BlobRecord, "mailboxes": MailboxRecord, "messages": MessageRecord,
    "expunged": ExpungedRecord, "queue": QueueRecord, "counters": CounterRecord, "secrets": SecretRecord,
}
#: CounterRecord names: the last UIDVALIDITY handed out and the last mailbox id.
COUNTERS = ("uidvalidity", "mailbox_id")
#: A target with a row in any of these is not empty (secrets and counters are replaced).
EMPTY_TABLES = ("domains", "users", "aliases", "quotas", "imported", "subscriptions", "blobs", "mailboxes", "messages",
                "expunged", "queue")

#: Rows per batch at most, and bytes (message bytes plus text) per batch at most: memory stays
#: bounded by this plus the largest single message, however large the store.
BATCH_ROWS = 1000
BATCH_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows of one table; ``rows`` all have that table's record type."""

    table: str
    rows: tuple[Record, ...]

    @property
    def data_bytes(self) -> int:
        """Message bytes carried (for progress)."""
        return sum(len(r.data) for r in self.rows if isinstance(r, BlobRecord))


def _weight(record: Record) -> int:
    return 64 + sum(len(v) for v in record if isinstance(v, (str, bytes)))


class Batcher:
    """Collects one table's records into batches of at most BATCH_ROWS rows / BATCH_BYTES."""

    def __init__(self, table: str) -> None:
        self.table = table
        self._rows: list[Record] = []
        self._bytes = 0

    def add(self, record: Record) -> Batch | None:
        """Adds ``record``; returns a full batch to hand on, or None."""
        self._rows.append(record)
        self._bytes += _weight(record)
        if len(self._rows) >= BATCH_ROWS or self._bytes >= BATCH_BYTES:
            return self.flush()
        return None

    def flush(self) -> Batch | None:
        """The rows collected so far, or None when there are none."""
        if not self._rows:
            return None
        batch = Batch(self.table, tuple(self._rows))
        self._rows, self._bytes = [], 0
        return batch


# -- the canonical form and the summary ---------------------------------------------------------

def _field(value: object) -> tuple[bytes, bytes]:
    """A field's canonical form as (tag and length, raw bytes): kept apart so that a message's
    bytes are hashed where they are, not copied into a new string."""
    if value is None:
        return b"N", b""
    if isinstance(value, bool):
        return (b"T" if value else b"F"), b""
    if isinstance(value, int):
        return b"I%d;" % value, b""
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        return b"S%d:" % len(raw), raw
    if isinstance(value, bytes):
        return b"B%d:" % len(value), value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def encode_row(table: str, record: Record) -> bytes:
    """The canonical form of one row. Types are part of it: a backend must hand out the
    record's declared types (a bool, not 0 or 1; bytes, not a memoryview).

    Raises:
        TypeError: a field of a type records never have (a backend bug).
    """
    return table.encode() + b"\0" + b"".join(b"".join(_field(v)) for v in record)


def row_hash(table: str, record: Record) -> bytes:
    """SHA-256 of ``encode_row(table, record)``, computed without building it."""
    h = hashlib.sha256(table.encode() + b"\0")
    for value in record:
        head, raw = _field(value)
        h.update(head)
        h.update(raw)
    return h.digest()


@dataclass(frozen=True, slots=True)
class TableSum:
    count: int
    checksum: int          #: sum of the rows' SHA-256 modulo 2**256


@dataclass(frozen=True, slots=True)
class Summary:
    """Per-table counts and checksums of a store's content, and one digest over all of them."""

    tables: dict[str, TableSum]

    @property
    def counts(self) -> dict[str, int]:
        return {name: s.count for name, s in self.tables.items()}

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name, s in self.tables.items():
            h.update(f"{name} {s.count} {s.checksum:064x}\n".encode())
        return h.hexdigest()

    def differences(self, other: Summary) -> list[str]:
        """What differs, one phrase per table (empty when the summaries are equal)."""
        out = []
        for name in self.tables:
            mine, theirs = self.tables[name], other.tables.get(name, TableSum(0, 0))
            if mine.count != theirs.count:
                out.append(f"{name}: {mine.count} rows against {theirs.count}")
            elif mine.checksum != theirs.checksum:
                out.append(f"{name}: the same number of rows, different content")
        return out


class Tally:
    """Builds a Summary from batches as they pass."""

    def __init__(self) -> None:
        self._sums = {name: [0, 0] for name in TABLES}

    def add(self, batch: Batch) -> None:
        entry = self._sums[batch.table]
        for record in batch.rows:
            entry[0] += 1
            entry[1] = (entry[1] + int.from_bytes(row_hash(batch.table, record))) % 2 ** 256

    def summary(self) -> Summary:
        return Summary({name: TableSum(c, s) for name, (c, s) in self._sums.items()})


# -- a dump and a transfer endpoint -------------------------------------------------------------

@dataclass
class Dump:
    """A store's content from one snapshot, as it streams by (``async for batch in dump``).

    ``totals`` (rows per table) and ``total_bytes`` (message bytes) are the snapshot's, for
    progress; ``summary()`` covers the batches handed out so far, so once the stream is
    exhausted it is the summary of exactly what was dumped. ``notes`` says what a reader
    should know about the copy (messages deleted on the source while it ran).
    """

    batches: AsyncIterator[Batch]
    totals: dict[str, int]
    total_bytes: int
    notes: list[str] = field(default_factory=list)
    _tally: Tally = field(default_factory=Tally)

    async def __aiter__(self) -> AsyncIterator[Batch]:
        async for batch in self.batches:
            self._tally.add(batch)
            yield batch

    def summary(self) -> Summary:
        return self._tally.summary()


class Transfer(Protocol):
    """One store as a source or a target of ``store copy``. Every method raises only rmail
    errors: TemporaryFailure (StorageFull) for the store's own failures, InvalidInput for a
    store that cannot take part (not empty, newer schema, no store there)."""

    def describe(self) -> str:
        """The store for messages (a data dir, or a URL without its password)."""
        ...

    async def identity(self) -> str:
        """Equal for two handles on the same store, however they were reached (a directory
        through another path, a database through another host name)."""
        ...

    def dump(self) -> AbstractAsyncContextManager[Dump]:
        """Everything in the store from one consistent snapshot, read while other processes
        keep writing (which the dump does not see). Never writes to the store."""
        ...

    async def check_empty(self) -> None:
        """Raises: InvalidInput naming what the store holds, unless it is empty (nothing in
        ``EMPTY_TABLES``); a store not yet created is empty."""
        ...

    async def load(self, batches: AsyncIterable[Batch]) -> None:
        """Copy ``batches`` (a dump, in its order) into this empty store in one transaction,
        creating the store if needed; returns once the copy is durable. The store's secrets
        become the dump's; its counters are moved past every copied id. On any error nothing
        is left behind (the store is as empty as before).

        Raises:
            InvalidInput: the store is not empty (checked again inside the transaction).
        """
        ...

    async def summary(self) -> Summary:
        """The summary of the store's content now (one snapshot)."""
        ...


def open_transfer(location: StoreLocation, *, target: bool) -> AbstractAsyncContextManager[Transfer]:
    """``async with open_transfer(location, target=...) as t``: the store at ``location``
    opened only for copying (no change feed, no scheduler). A source is never written to: an
    embedded store is opened read-only, and a database is not migrated.

    Raises:
        InvalidInput: a source that holds no store, or a URL that cannot be parsed.
        TemporaryFailure: the store cannot be reached.
    """
    name = "rmail.server.core.postgres.transfer" if location.url else "rmail.server.core.sqlite.transfer"

    @asynccontextmanager
    async def opened() -> AsyncIterator[Transfer]:
        module = importlib.import_module(name)
        async with module.open_transfer(location, target=target) as transfer:
            yield transfer
    return opened()
