"""Save dates (RFC 8514 §3) on both backends: APPEND, delivery, import, COPY and MOVE save a
message at that moment whatever its INTERNALDATE; RENAME keeps them (INBOX's too); they reach
the SELECT snapshot and the change feed; and a store from before rmail kept them gets each
message's INTERNALDATE as its save date, everything else unchanged (the migration on each
backend)."""

from __future__ import annotations

import sqlite3
import types
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.postgres import mail as pg_mail
from rmail.server.core.sqlite import mail as sqlite_mail
from rmail.server.core.sqlite.migrate import SCHEMA_VERSION
from rmail.server.core.storage import Import, MailStore, StoreLocation, open_backend
from rmail.server.core.storage.mail import NewMessage

from ..helpers.oldstores import postgres_before, sqlite_at
from ..helpers.stores import open_sqlite

MSG = b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: Hello\r\n\r\nHi there\r\n"
#: The INTERNALDATE clients give: long before any save date below.
GIVEN = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
T0 = 1_700_000_000


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class Clock:
    """The stores' wall clock (their module's ``time``), set by the test."""

    def __init__(self, now: int) -> None:
        self.now = now

    def time(self) -> float:
        return float(self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(T0)
    fake = types.SimpleNamespace(time=c.time)
    for module in (sqlite_mail, pg_mail):
        monkeypatch.setattr(module, "time", fake)
    return c


@pytest.fixture
async def alice(accounts: Accounts):
    return await accounts.add_user("alice@example.com", "pw")


async def test_append_and_delivery_save_now(store: MailStore, alice, clock: Clock) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    await store.append(inbox.id, MSG, (), GIVEN)                 # an old INTERNALDATE: saved now
    clock.now = T0 + 10
    await store.append(inbox.id, MSG)                            # no date: both are now
    clock.now = T0 + 20
    await store.append_many(inbox.id, [NewMessage(MSG, (), GIVEN), NewMessage(MSG)])
    clock.now = T0 + 30
    await store.deliver([(inbox.id, ())], MSG)
    clock.now = T0 + 40
    await store.deliver([(inbox.id, ())], MSG, GIVEN, imported=Import(alice.id, "mbox", "k1"))
    metas = await store.list_messages(inbox.id)
    assert [(m.internaldate, m.savedate) for m in metas] == [
        (GIVEN, at(T0)), (at(T0 + 10), at(T0 + 10)), (GIVEN, at(T0 + 20)), (at(T0 + 20), at(T0 + 20)),
        (at(T0 + 30), at(T0 + 30)), (GIVEN, at(T0 + 40))]
    snap = await store.snapshot(alice.id, "INBOX")
    assert list(snap.savedates) == [m.savedate.timestamp() for m in metas]
    changes = await store.changes_since(inbox.id, 0)
    assert [m.savedate for m in changes.changed] == [m.savedate for m in metas]
    assert [m.savedate for m in await store.get_meta(inbox.id, [2, 6])] == [at(T0 + 10), at(T0 + 40)]


async def test_copy_and_move_save_anew_and_flag_changes_keep_it(store: MailStore, alice, clock: Clock) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    work = await store.create_mailbox(alice.id, "Work")
    await store.append(inbox.id, MSG, ("\\Seen",), GIVEN)
    await store.append(inbox.id, MSG, (), GIVEN)
    clock.now = T0 + 100
    assert await store.copy(inbox.id, [1], work.id) == [(1, 1)]
    clock.now = T0 + 200
    assert await store.move(inbox.id, [2], work.id) == [(2, 2)]
    clock.now = T0 + 300
    [flagged] = await store.store_flags(work.id, [1], "add", ["\\Flagged"])
    assert flagged.savedate == at(T0 + 100)
    [original] = await store.list_messages(inbox.id)
    assert original.savedate == at(T0)                           # the source keeps its own
    copies = await store.list_messages(work.id)
    assert [(m.internaldate, m.savedate) for m in copies] == [(GIVEN, at(T0 + 100)), (GIVEN, at(T0 + 200))]
    assert list((await store.snapshot(alice.id, "Work")).savedates) == [T0 + 100, T0 + 200]


async def test_rename_keeps_save_dates(store: MailStore, alice, clock: Clock) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    work = await store.create_mailbox(alice.id, "Work")
    await store.append(work.id, MSG, (), GIVEN)
    await store.append(inbox.id, MSG, (), GIVEN)
    clock.now = T0 + 500
    await store.rename_mailbox(alice.id, "Work", "Archive/Work")
    await store.rename_mailbox(alice.id, "INBOX", "Old")         # INBOX's messages move, saved as they were
    for name in ("Archive/Work", "Old"):
        box = await store.get_mailbox(alice.id, name)
        assert [m.savedate for m in await store.list_messages(box.id)] == [at(T0)]
    assert await store.list_messages(inbox.id) == []


# -- the migration: a store from before save dates --------------------------------------------

OLD_ROWS = [(1, 5, 1, "$a", 1_600_000_000), (2, 6, 0, "", 1_650_000_000)]   # uid, modseq, mask, keywords, date


def _sqlite_v3(data_dir: Path) -> None:
    """An rmail.db as rmail wrote it at schema version 3: one user, INBOX with OLD_ROWS."""
    conn = sqlite_at(data_dir, 3)
    try:
        conn.execute("INSERT INTO mailboxes(id, user_id, name, uidvalidity, uidnext, highestmodseq)"
                     " VALUES(1, 1, 'INBOX', 1000, 3, 6)")
        conn.execute("INSERT INTO blobs(id, size, subject, from_, to_, cc, message_id, in_reply_to, refs,"
                     " preview, envelope, body, bodystructure, header_text, search_text)"
                     " VALUES('b1', ?, 'Hello', '', '', '', '', '', '', '', x'', x'', x'', '', '')", (len(MSG),))
        conn.execute("INSERT INTO blob_data(id, data) VALUES('b1', ?)", (MSG,))
        for uid, modseq, mask, keywords, date in OLD_ROWS:
            conn.execute("INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, internaldate, size,"
                         " blob_id) VALUES(1, ?, ?, ?, ?, ?, ?, 'b1')", (uid, modseq, mask, keywords, date, len(MSG)))
    finally:
        conn.close()


async def _check_migrated(store: MailStore) -> None:
    metas = await store.list_messages(1)
    assert [(m.uid, m.modseq, sorted(m.flags), m.internaldate, m.size, m.blob_id) for m in metas] == [
        (1, 5, ["$a", "\\Seen"], at(1_600_000_000), len(MSG), "b1"),
        (2, 6, [], at(1_650_000_000), len(MSG), "b1")]
    assert [m.savedate for m in metas] == [m.internaldate for m in metas]
    assert await store.read_message("b1") == MSG


@pytest.mark.sqlite_only
async def test_sqlite_migration_fills_save_dates_from_internaldate(tmp_path: Path) -> None:
    _sqlite_v3(tmp_path / "data")
    backend = await open_sqlite(tmp_path / "data")
    try:
        await _check_migrated(backend.mail)
        inbox = await backend.mail.get_mailbox(1, "INBOX")
        assert await backend.mail.append(inbox.id, MSG) == 3     # and the store goes on as before
    finally:
        await backend.close()
    conn = sqlite3.connect(tmp_path / "data" / "rmail.db")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    finally:
        conn.close()


async def test_postgres_migration_fills_save_dates_from_internaldate(pg_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await postgres_before(conn, "0005_savedate.sql") == 4
        await conn.execute("INSERT INTO mailboxes(id, user_id, name, uidvalidity, uidnext, highestmodseq)"
                           " VALUES(1, 1, 'INBOX', 1000, 3, 6)")
        await conn.execute("INSERT INTO blobs(id, size, subject, from_, to_, cc, message_id, in_reply_to, refs,"
                           " preview, envelope, body, bodystructure, header_text, search_text)"
                           " VALUES('b1', $1, 'Hello', '', '', '', '', '', '', '', '', '', '', '', '')", len(MSG))
        await conn.execute("INSERT INTO blob_data(id, data) VALUES('b1', $1)", MSG)
        for uid, modseq, mask, keywords, date in OLD_ROWS:
            await conn.execute("INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, internaldate,"
                               " size, blob_id) VALUES(1, $1, $2, $3, $4, $5, $6, 'b1')",
                               uid, modseq, mask, keywords, date, len(MSG))
    finally:
        await conn.close()
    backend = await open_backend(StoreLocation(tmp_path, pg_url))
    try:
        await _check_migrated(backend.mail)
    finally:
        await backend.close()
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT max(version) FROM schema_version") == 5
        assert await conn.fetchval("SELECT is_nullable FROM information_schema.columns"
                                   " WHERE table_name = 'messages' AND column_name = 'savedate'") == "NO"
    finally:
        await conn.close()
