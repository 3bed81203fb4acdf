"""The outbound queue on PostgreSQL: leases hand each due entry to one node at a time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from rmail.server.core.errors import NotFound
from rmail.server.core.events import Event, QueueChanged
from rmail.server.core.postgres import PostgresBackend
from rmail.server.core.postgres.database import PgDatabase

from .nodes import Opener, insert_blob, pg_open  # noqa: F401 - pg_open is a fixture

T0 = 1_700_000_000.0


async def add_entries(db: PgDatabase, blob_id: str, due: list[float], *, created: float = T0) -> list[int]:
    """Queue rows as a delivery leaves them, one per due time, sharing ``blob_id``."""
    await insert_blob(db, blob_id)

    async def w(txn) -> list[int]:  # noqa: ANN001
        return [await txn.conn.fetchval(
            "INSERT INTO queue(sender, recipient, blob_id, size, created, next_attempt)"
            " VALUES('a@example.com', $1, $2, 20, $3, $4) RETURNING id",
            f"r{i}@remote.example", blob_id, int(created), int(t)) for i, t in enumerate(due)]
    return await db.write(w)


@pytest.fixture
async def node(pg_open: Opener) -> PostgresBackend:
    return await pg_open()


async def test_list_get_age_summary(node: PostgresBackend) -> None:
    q = node.queue
    assert await q.list() == [] and await q.age_summary(T0) == (0, 0, None)
    ids = await add_entries(node.db, "b1", [T0 + 50, T0 + 10, T0 + 30])
    later = await add_entries(node.db, "b2", [T0 + 5], created=T0 + 100)
    assert [e.id for e in await q.list()] == ids + later
    by_due = await q.list(by_next_attempt=True, limit=3)
    assert [e.next_attempt.timestamp() for e in by_due] == [T0 + 5, T0 + 10, T0 + 30]
    one = await q.get(ids[1])
    assert (one.sender, one.recipient, one.blob_id, one.size, one.attempts, one.last_error) == \
        ("a@example.com", "r1@remote.example", "b1", 20, 0, "")
    assert one.created == datetime.fromtimestamp(T0, timezone.utc) and not one.delayed_notified
    with pytest.raises(NotFound):
        await q.get(ids[0] + 100)
    # created < older_than, compared exactly for a fractional bound.
    assert await q.age_summary(T0 + 100) == (4, 3, T0)
    assert await q.age_summary(T0 + 100.5) == (4, 4, T0)
    assert await q.age_summary(T0) == (4, 0, T0)


async def test_lease_due_order_limit_and_exclusion(node: PostgresBackend) -> None:
    q = node.queue
    ids = await add_entries(node.db, "b", [T0 + 30, T0 + 10, T0 + 20, T0 + 100])
    assert await q.lease_due(T0 + 5, 10, 60) == []
    first = await q.lease_due(T0 + 50, 2, 60)
    assert [e.id for e in first] == [ids[1], ids[2]]            # earliest due first
    rest = await q.lease_due(T0 + 50, 10, 60)
    assert [e.id for e in rest] == [ids[0]]                     # leased ones are not handed out again
    assert await q.lease_due(T0 + 50, 10, 60) == []
    assert await q.lease_due(T0 + 50, 0, 60) == []


async def test_expired_lease_is_handed_out_again(node: PostgresBackend) -> None:
    q = node.queue
    [entry_id] = await add_entries(node.db, "b", [T0])
    assert [e.id for e in await q.lease_due(T0, 5, 60)] == [entry_id]
    assert await q.lease_due(T0 + 59.5, 5, 60) == []
    assert [e.id for e in await q.lease_due(T0 + 60, 5, 60)] == [entry_id]


async def test_next_due_counts_leases(node: PostgresBackend) -> None:
    q = node.queue
    assert await q.next_due(T0) is None
    a, b = await add_entries(node.db, "b", [T0 + 10, T0 + 20])
    assert await q.next_due(T0) == T0 + 10
    await q.lease_due(T0 + 10, 1, 300)                          # a held until T0 + 310
    assert await q.next_due(T0 + 10) == T0 + 20
    await q.lease_due(T0 + 20, 1, 30)                           # b held until T0 + 50
    assert await q.next_due(T0 + 20) == T0 + 50
    await q.reschedule(b, attempts=1, next_attempt=T0 + 400, last_error="4.0.0 later", delayed_notified=False)
    assert await q.next_due(T0 + 20) == T0 + 310


async def test_reschedule_releases_and_records(pg_open: Opener) -> None:
    events: list[Event] = []
    node = await pg_open(events)
    q = node.queue
    [entry_id] = await add_entries(node.db, "b", [T0])
    await q.lease_due(T0, 1, 3600)
    events.clear()
    await q.reschedule(entry_id, attempts=3, next_attempt=T0 + 120.7, last_error="451 try later",
                       delayed_notified=True)
    assert events == [QueueChanged()]
    entry = await q.get(entry_id)
    assert (entry.attempts, entry.next_attempt.timestamp(), entry.last_error, entry.delayed_notified) == \
        (3, T0 + 120, "451 try later", True)
    # Released: due again at its new time, although the lease would have run an hour.
    assert [e.id for e in await q.lease_due(T0 + 120, 1, 3600)] == [entry_id]
    events.clear()
    await q.reschedule(entry_id + 1, attempts=1, next_attempt=T0, last_error="", delayed_notified=False)
    assert events == []                                          # a missing entry is no error


async def test_retry_keeps_a_running_lease(node: PostgresBackend) -> None:
    q = node.queue
    [entry_id] = await add_entries(node.db, "b", [T0 + 1000])
    await q.retry(entry_id, T0)
    assert [e.id for e in await q.lease_due(T0, 1, 60)] == [entry_id]
    await q.retry(entry_id, T0 + 1)
    assert await q.lease_due(T0 + 1, 1, 60) == []               # still being tried
    with pytest.raises(NotFound):
        await q.retry(entry_id + 1, T0)


async def test_delete_collects_bytes_with_the_last_entry(node: PostgresBackend) -> None:
    q = node.queue
    a, b = await add_entries(node.db, "shared", [T0, T0])

    async def blobs() -> list[str]:
        return [r[0] for r in await node.db.read(lambda c: c.fetch("SELECT id FROM blob_data ORDER BY id"))]
    await q.delete(a)
    assert await blobs() == ["shared"]
    with pytest.raises(NotFound):
        await q.delete(a)
    await q.delete(a, missing_ok=True)
    await q.delete(b)
    assert await blobs() == [] and await q.list() == []
    assert await node.integrity_check() == "ok"


async def test_two_nodes_lease_each_entry_once(pg_open: Opener) -> None:
    a, b = await pg_open(), await pg_open()
    ids = await add_entries(a.db, "b", [T0 + i % 7 for i in range(60)])

    async def drain(node: PostgresBackend) -> list[int]:
        got: list[int] = []
        while batch := await node.queue.lease_due(T0 + 10, 4, 600):
            got += [e.id for e in batch]
            await asyncio.sleep(0)
        return got
    results = await asyncio.gather(*(drain(n) for n in (a, b, a, b)))
    leased = [i for r in results for i in r]
    assert sorted(leased) == sorted(ids)                         # every entry, none twice
    # Node a "dies": its leases run out and node b gets those entries once more.
    again = await b.queue.lease_due(T0 + 10 + 600, 100, 600)
    assert sorted(e.id for e in again) == sorted(ids)
