"""Subscriptions are the user's own list of names (RFC 3501 §6.3.6), on both backends: any
valid name may be subscribed, CREATE/DELETE/RENAME leave the list alone, new users get their
default mailboxes subscribed, and a store from before the list existed keeps what its users
had subscribed (the migration on each backend)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.errors import InvalidInput, LimitExceeded, NotFound
from rmail.server.core.events import EventBus, MailboxesChanged
from rmail.server.core.model import DEFAULT_MAILBOXES
from rmail.server.core.sqlite.migrate import SCHEMA_VERSION
from rmail.server.core.storage import MailStore, StoreLocation, open_backend
from rmail.server.core.storage import names

from ..helpers.oldstores import postgres_before, sqlite_at
from ..helpers.stores import open_sqlite

DEFAULTS = sorted(name for name, _ in DEFAULT_MAILBOXES)


@pytest.fixture
async def alice(accounts: Accounts):
    return await accounts.add_user("alice@example.com", "pw")


async def test_new_users_have_their_default_mailboxes_subscribed(store: MailStore, alice) -> None:
    assert await store.list_subscriptions(alice.id) == DEFAULTS


async def test_any_valid_name_may_be_subscribed_and_the_list_is_its_own(store: MailStore, alice) -> None:
    await store.set_subscribed(alice.id, "Lists/rmail", True)       # no such mailbox
    await store.set_subscribed(alice.id, "Lists/rmail", True)       # twice is once
    await store.set_subscribed(alice.id, "inbox/Sub", True)         # INBOX is case-insensitive
    assert await store.list_subscriptions(alice.id) == sorted(DEFAULTS + ["INBOX/Sub", "Lists/rmail"])
    await store.set_subscribed(alice.id, "Never", False)            # not subscribed: a no-op
    await store.set_subscribed(alice.id, "Lists/rmail", False)
    assert "Lists/rmail" not in await store.list_subscriptions(alice.id)
    for bad in ("", "a//b", "x*", "y%", "a/", "x" * 600):
        with pytest.raises(InvalidInput):
            await store.set_subscribed(alice.id, bad, True)
    with pytest.raises(NotFound):
        await store.set_subscribed(999_999, "Orphan", True)


async def test_create_delete_and_rename_leave_subscriptions_alone(store: MailStore, alice) -> None:
    await store.create_mailbox(alice.id, "Work/2024")
    assert await store.list_subscriptions(alice.id) == DEFAULTS            # CREATE adds nothing
    await store.set_subscribed(alice.id, "Work/2024", True)
    await store.rename_mailbox(alice.id, "Work", "Play")                    # RFC 9051 §6.3.6
    assert "Work/2024" in await store.list_subscriptions(alice.id)
    assert "Play/2024" not in await store.list_subscriptions(alice.id)
    await store.delete_mailbox(alice.id, "Trash")                           # RFC 3501 §6.3.6
    await store.delete_mailbox(alice.id, "Play")                            # kept \Noselect
    assert await store.list_subscriptions(alice.id) == sorted(DEFAULTS + ["Work/2024"])
    await store.create_mailbox(alice.id, "Trash")
    assert "Trash" in await store.list_subscriptions(alice.id)


@pytest.mark.sqlite_only
async def test_subscribing_announces_the_mailbox_list_only_on_change(tmp_path: Path) -> None:
    bus = EventBus()
    bus.bind_loop(asyncio.get_running_loop())
    feed = bus.feed(lambda e: isinstance(e, MailboxesChanged))
    backend = await open_sqlite(tmp_path, publish=bus.publish_threadsafe)
    try:
        alice = await Accounts(backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "pw")
        await asyncio.sleep(0.05)
        feed.drain()
        for subscribed in (True, True, False, False):
            await backend.mail.set_subscribed(alice.id, "News", subscribed)
        await asyncio.sleep(0.05)
        assert feed.drain() == [MailboxesChanged(alice.id), MailboxesChanged(alice.id)]
    finally:
        await backend.close()


async def test_the_list_is_bounded(store: MailStore, alice, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = len(DEFAULTS) + 2
    monkeypatch.setattr(names, "MAX_SUBSCRIPTIONS", limit)
    for module in ("rmail.server.core.sqlite.mail", "rmail.server.core.postgres.mail"):
        monkeypatch.setattr(f"{module}.MAX_SUBSCRIPTIONS", limit)
    await store.set_subscribed(alice.id, "One", True)
    await store.set_subscribed(alice.id, "Two", True)
    with pytest.raises(LimitExceeded):
        await store.set_subscribed(alice.id, "Three", True)
    await store.set_subscribed(alice.id, "Two", True)       # already there: not a new name
    await store.set_subscribed(alice.id, "One", False)
    await store.set_subscribed(alice.id, "Three", True)


async def test_removing_a_user_removes_its_subscriptions(store: MailStore, accounts: Accounts, alice) -> None:
    await store.set_subscribed(alice.id, "News", True)
    await accounts.remove_user("alice@example.com")
    assert await store.list_subscriptions(alice.id) == []


# -- the migration: a store from before the list existed ----------------------------------------

#: (name, subscribed, noselect) rows of the old mailboxes table. What LSUB showed before the
#: migration (subscribed and selectable) is what the list holds after it.
OLD_MAILBOXES = [("INBOX", True, False), ("Sent", True, False), ("Junk", False, False),
                 ("Work", True, True), ("Work/Q1", True, False), ("Lists", False, False)]
CARRIED = ["INBOX", "Sent", "Work/Q1"]


def _sqlite_v2(data_dir: Path) -> None:
    """An rmail.db as rmail wrote it at schema version 2, with one user and OLD_MAILBOXES."""
    conn = sqlite_at(data_dir, 2)
    try:
        for i, (name, subscribed, noselect) in enumerate(OLD_MAILBOXES, 1):
            conn.execute("INSERT INTO mailboxes(id, user_id, name, subscribed, noselect, uidvalidity)"
                         " VALUES(?, 1, ?, ?, ?, ?)", (i, name, int(subscribed), int(noselect), 1000 + i))
    finally:
        conn.close()


@pytest.mark.sqlite_only
async def test_sqlite_migration_keeps_what_was_subscribed(tmp_path: Path) -> None:
    _sqlite_v2(tmp_path / "data")
    backend = await open_sqlite(tmp_path / "data")
    try:
        assert await backend.mail.list_subscriptions(1) == CARRIED
        assert [b.name for b in await backend.mail.list_mailboxes(1)] == sorted(
            n for n, _, noselect in OLD_MAILBOXES if not noselect)
        await backend.mail.set_subscribed(1, "Elsewhere", True)
    finally:
        await backend.close()
    conn = sqlite3.connect(tmp_path / "data" / "rmail.db")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = {r[1] for r in conn.execute("PRAGMA table_info(mailboxes)")}
        assert "subscribed" not in columns and {"name", "noselect"} <= columns
    finally:
        conn.close()


async def test_postgres_migration_keeps_what_was_subscribed(pg_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await postgres_before(conn, "0004_subscriptions.sql") == 3
        for i, (name, subscribed, noselect) in enumerate(OLD_MAILBOXES, 1):
            await conn.execute("INSERT INTO mailboxes(id, user_id, name, subscribed, noselect, uidvalidity)"
                               " VALUES($1, 1, $2, $3, $4, $5)", i, name, subscribed, noselect, 1000 + i)
    finally:
        await conn.close()
    backend = await open_backend(StoreLocation(tmp_path, pg_url))
    try:
        assert await backend.mail.list_subscriptions(1) == CARRIED
        assert [b.name for b in await backend.mail.list_mailboxes(1)] == sorted(
            n for n, _, noselect in OLD_MAILBOXES if not noselect)
    finally:
        await backend.close()
    conn = await asyncpg.connect(pg_url)
    try:
        assert not await conn.fetchval("SELECT EXISTS(SELECT 1 FROM information_schema.columns"
                                       " WHERE table_name = 'mailboxes' AND column_name = 'subscribed')")
    finally:
        await conn.close()
