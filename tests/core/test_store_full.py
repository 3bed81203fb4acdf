"""SQLITE_FULL never kills the writer: the affected batch fails with StorageFull, every caller
gets an answer, and writes succeed again as soon as there is room.

``PRAGMA max_page_count`` on the writer's connection makes SQLite report SQLITE_FULL exactly as
a full disk does: the whole transaction is rolled back under the request's savepoint (the
case that used to end in "no such savepoint" and a dead writer thread).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.sqlite.database import WriteTxn
from rmail.server.core.errors import NotFound, StorageFull, TemporaryFailure
from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.core.storage import MailStore

#: SQLite's own failure modes (SQLITE_FULL, the writer thread's batches).
pytestmark = pytest.mark.sqlite_only

#: Generous: a healthy writer answers in milliseconds; a dead one never does.
ANSWER = 30.0


def msg(i: int, size: int = 20_000) -> bytes:
    return b"Subject: m%d\r\n\r\n" % i + b"x" * size + b"\r\n"


def limit_pages(store: MailStore, extra: int | None) -> None:
    """Cap rmail.db at its current size plus ``extra`` pages (None: lift the cap)."""
    def w(txn: WriteTxn) -> None:
        pages = txn.conn.execute("PRAGMA page_count").fetchone()[0]
        txn.conn.execute(f"PRAGMA max_page_count={pages + extra if extra is not None else 2**31 - 2}")
    store.db.write_sync(w)


async def answer(coro):
    return await asyncio.wait_for(coro, ANSWER)


@pytest.fixture
async def inbox(store: MailStore, accounts: Accounts) -> int:
    alice = await accounts.add_user("alice@example.com", "pw")
    return (await store.get_mailbox(alice.id, "INBOX")).id


async def fill(store: MailStore, inbox: int, size: int = 20_000) -> tuple[list[int], int]:
    """Append until the store is full; returns (UIDs stored, refusals seen)."""
    stored: list[int] = []
    for i in range(200):
        try:
            stored.append(await answer(store.append(inbox, msg(i, size))))
        except StorageFull:
            return stored, 1
    raise AssertionError("the page cap never filled the store")


async def test_writer_survives_sqlite_full_and_recovers(store: MailStore, inbox: int) -> None:
    limit_pages(store, 40)
    stored, refused = await fill(store, inbox)
    assert refused and stored, "some messages fit, then the store was full"
    # The writer is alive: more adds are refused with a temporary error, not left hanging ...
    for i in range(3):
        with pytest.raises(StorageFull) as exc:
            await answer(store.append(inbox, msg(1000 + i)))
        assert isinstance(exc.value, TemporaryFailure)
    # ... writes that need no new pages still work (users can flag and expunge) ...
    await answer(store.store_flags(inbox, stored[:2], "add", ["\\Deleted"]))
    assert await answer(store.expunge(inbox)) == stored[:2]
    # ... and once there is room, mail flows again.
    limit_pages(store, None)
    uid = await answer(store.append(inbox, msg(2000)))
    assert uid > stored[-1]
    listed = [m.uid for m in await store.list_messages(inbox)]
    assert listed == stored[2:] + [uid], "every acknowledged message is there, no refused one"
    assert await store.integrity_check() == "ok"


async def test_large_message_files_of_refused_writes_are_removed(store: MailStore, inbox: int) -> None:
    big = INLINE_BLOB_MAX + 1000
    limit_pages(store, 60)
    stored, _ = await fill(store, inbox, size=30_000)
    with pytest.raises(StorageFull):
        # Its bytes go to a file, but the metadata row does not fit: the file must go too.
        for i in range(50):
            await answer(store.append(inbox, msg(5000 + i, big)))
    referenced = {m.blob_id for m in await store.list_messages(inbox)}
    assert store.blob_ids() <= referenced


async def test_a_batch_hit_by_sqlite_full_fails_whole_and_the_rest_runs(store: MailStore, inbox: int) -> None:
    """Requests committed together: SQLite rolls the whole transaction back when one of them
    hits SQLITE_FULL, so the ones before it fail too (nobody is told "stored" for a rolled-back
    row), and the ones after it run in a fresh transaction."""
    first = await store.append(inbox, msg(0))
    limit_pages(store, 3)
    started, gate = threading.Event(), threading.Event()

    def hold(txn: WriteTxn) -> str:
        started.set()
        gate.wait(ANSWER)
        return "held"

    def flag(txn: WriteTxn) -> int:
        return txn.conn.execute("UPDATE messages SET sysflags = 1 WHERE mailbox_id = ? AND uid = ?",
                                (inbox, first)).rowcount

    def grow(txn: WriteTxn) -> None:
        txn.conn.execute("CREATE TABLE filler(x BLOB)")
        txn.conn.execute("INSERT INTO filler VALUES(zeroblob(1000000))")

    def after(txn: WriteTxn) -> int:
        return txn.conn.execute("SELECT count(*) FROM messages").fetchone()[0]

    held = store.db.submit(hold)
    assert started.wait(ANSWER)
    # The writer is inside `hold`; these three queue up and are taken as one batch.
    before, full, rest = store.db.submit(flag), store.db.submit(grow), store.db.submit(after)
    gate.set()
    assert held.result(ANSWER) == "held"
    with pytest.raises(StorageFull):
        full.result(ANSWER)
    with pytest.raises(TemporaryFailure):
        before.result(ANSWER)        # rolled back with the batch
    assert rest.result(ANSWER) == 1  # ran anew, after the rollback
    [meta] = await store.list_messages(inbox)
    assert meta.flags == frozenset(), "the failed batch left nothing behind"
    limit_pages(store, None)
    assert store.db.submit(flag).result(ANSWER) == 1


async def test_no_caller_waits_forever_whatever_a_request_does(store: MailStore, inbox: int) -> None:
    """A request that breaks the transaction itself (here: it commits it) fails alone; the
    writer resets the connection and goes on."""
    def rogue(txn: WriteTxn) -> None:
        txn.conn.execute("COMMIT")

    with pytest.raises(TemporaryFailure):
        await answer(store.db.write(rogue))
    assert await answer(store.append(inbox, msg(1))) == 1
    with pytest.raises(NotFound):
        await answer(store.append(inbox + 999, msg(2)))
    assert await answer(store.append(inbox, msg(3))) == 2
