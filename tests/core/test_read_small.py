"""SQLite's small reads on the event loop's thread (Database.read_small): where they run, that
they never wait for a lock, and that changes_since sends a large answer to a reader thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest

from tests.helpers.stores import open_sqlite

MSG = b"Subject: hi\r\n\r\nbody\r\n"


class PoolReads:
    """Counts the reads a Database sends to its reader threads while in the ``with``."""

    def __init__(self, db: Any) -> None:
        self.db, self.reads = db, 0

    def __enter__(self) -> PoolReads:
        real = self.real = self.db.read

        async def counting(fn: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return await real(fn, **kwargs)
        self.db.read = counting
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.read = self.real


def thread_of(conn: sqlite3.Connection) -> int:
    conn.execute("SELECT 1").fetchone()
    return threading.get_ident()


async def test_a_small_read_runs_on_the_loop_thread_and_sees_the_last_commit(tmp_path) -> None:  # noqa: ANN001
    backend = await open_sqlite(tmp_path)
    try:
        db = backend.mail.db  # type: ignore[attr-defined]
        assert await db.read_small(thread_of) == threading.get_ident()
        assert await db.read(thread_of) != threading.get_ident()
        await db.write(lambda txn: txn.conn.execute("INSERT INTO domains(name) VALUES('example.com')"))
        names = await db.read_small(lambda conn: [r[0] for r in conn.execute("SELECT name FROM domains")],
                                    single=True)
        assert names == ["example.com"]
    finally:
        await backend.close()


async def test_a_small_read_from_another_thread_goes_to_the_pool(tmp_path) -> None:  # noqa: ANN001
    backend = await open_sqlite(tmp_path)
    try:
        db = backend.mail.db  # type: ignore[attr-defined]
        loop_thread = await db.read_small(thread_of)
        other = await asyncio.to_thread(asyncio.run, db.read_small(thread_of))
        assert other not in (loop_thread, None)
    finally:
        await backend.close()


async def test_a_busy_database_sends_the_small_read_to_the_pool(tmp_path) -> None:  # noqa: ANN001
    """The loop's connection has no busy timeout: SQLITE_BUSY (a checkpoint, a recovery, another
    process's exclusive lock) sends the read to a reader thread, which may wait for the lock."""
    backend = await open_sqlite(tmp_path)
    try:
        db = backend.mail.db  # type: ignore[attr-defined]
        loop_thread = threading.get_ident()
        tries: list[int] = []

        def busy_here(conn: sqlite3.Connection) -> int:
            tries.append(threading.get_ident())
            if threading.get_ident() == loop_thread:
                exc = sqlite3.OperationalError("database is locked")
                exc.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
                raise exc
            return thread_of(conn)
        assert await db.read_small(busy_here) != loop_thread
        assert tries[0] == loop_thread and len(tries) == 2
        # Any other SQLite error is the store's failure, reported as a temporary one.
        from rmail.server.core.errors import TemporaryFailure

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT * FROM no_such_table")
        with pytest.raises(TemporaryFailure):
            await db.read_small(broken)
        assert await db.read_small(thread_of) == loop_thread     # and the connection serves on
    finally:
        await backend.close()


@pytest.mark.parametrize("changes", [3, 200])
async def test_changes_since_reads_a_few_changes_on_the_loop_and_many_on_a_reader(tmp_path, changes: int) -> None:  # noqa: ANN001
    from tests.helpers.stores import accounts_of
    backend = await open_sqlite(tmp_path)
    try:
        alice = await accounts_of(backend).add_user("alice@example.com", "pw")
        store = backend.mail
        inbox = await store.get_mailbox(alice.id, "INBOX")
        start = (await store.status(inbox.id)).highestmodseq
        for _ in range(changes):
            await store.append(inbox.id, MSG)
        await store.store_flags(inbox.id, list(range(1, changes + 1, 2)), "add", ["\\Deleted"])
        await store.expunge(inbox.id)
        with PoolReads(store.db) as pool:  # type: ignore[attr-defined]
            found = await store.changes_since(inbox.id, start)
        assert pool.reads == (0 if changes == 3 else 1)
        assert [m.uid for m in found.changed] == list(range(2, changes + 1, 2))
        assert list(found.expunged) == list(range(1, changes + 1, 2))
        assert found.uidnext == changes + 1
    finally:
        await backend.close()


@pytest.mark.parametrize("room", [2, 256])
async def test_mailbox_and_subscription_lists_past_the_loop_limit_come_whole_from_a_reader(
        tmp_path, room: int, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from tests.helpers.stores import accounts_of
    monkeypatch.setattr("rmail.server.core.sqlite.mail.SMALL_ROWS", room)
    backend = await open_sqlite(tmp_path)
    try:
        alice = await accounts_of(backend).add_user("alice@example.com", "pw")
        store = backend.mail
        for name in ("a", "b", "c"):
            await store.create_mailbox(alice.id, name)
            await store.set_subscribed(alice.id, name, True)
        with PoolReads(store.db) as pool:  # type: ignore[attr-defined]
            names = [b.name for b in await store.list_mailboxes(alice.id)]
            subscribed = await store.list_subscriptions(alice.id)
        assert names == sorted(names) and {"INBOX", "a", "b", "c"} <= set(names)
        assert subscribed == sorted(subscribed) and {"a", "b", "c"} <= set(subscribed)
        assert pool.reads == (2 if room == 2 else 0)
    finally:
        await backend.close()
