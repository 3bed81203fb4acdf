"""The PostgreSQL mail store and REST views against a real database (tests/helpers/pg.py).

Each test gets a fresh database with the schema applied; users are plain rows. "Nodes" are
separate pools, each with its own PgDatabase and PgMailStore, as separate rmail processes have.
"""

from __future__ import annotations

import asyncio
import random
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import AsyncIterator

import asyncpg
import pytest

from rmail.server.core.errors import (AlreadyExists, AuthenticationFailed, InvalidInput, LimitExceeded, NotFound,
                                      PermissionDenied, TemporaryFailure)
from rmail.server.core.events import Event, MailboxChanged, MailboxesChanged, QueueChanged
from rmail.server.core.model import Address
from rmail.server.core.postgres import database
from rmail.server.core.postgres.body import PgStreamBody
from rmail.server.core.postgres.database import PgDatabase
from rmail.server.core.postgres.deliveries import DeliveryBatcher
from rmail.server.core.postgres.mail import PgMailStore
from rmail.server.core.postgres.migrate import migrate
from rmail.server.core.postgres.views import PgMailViews
from rmail.server.core.storage import Import, Outbound
from rmail.server.core.storage.body import CHUNK
from rmail.server.core.storage.flags import MAX_KEYWORDS

MSG = b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: Hello\r\n\r\nHi there\r\n"


def message(n: int, size: int = 0) -> bytes:
    head = (f"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: note {n}\r\n"
            f"Message-ID: <{n}@test>\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


@dataclass
class Node:
    pool: asyncpg.Pool
    db: PgDatabase
    store: PgMailStore
    views: PgMailViews
    events: list[Event] = field(default_factory=list)


@dataclass
class Env:
    node: Node
    open_node: object
    alice: int

    @property
    def store(self) -> PgMailStore:
        return self.node.store


async def _node(url: str, name: str, max_size: int = 10) -> Node:
    pool = await asyncpg.create_pool(url, server_settings=database.SERVER_SETTINGS, min_size=1, max_size=max_size)
    events: list[Event] = []
    db = PgDatabase(pool, name, publish=events.extend)
    return Node(pool, db, PgMailStore(db), PgMailViews(db), events)


async def add_user(node: Node, local: str, domain: str = "example.com") -> int:
    async def w(txn: database.PgTxn) -> int:
        domain_id = await txn.conn.fetchval(
            "INSERT INTO domains(name) VALUES($1) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
            domain)
        user_id: int = await txn.conn.fetchval(
            "INSERT INTO users(domain_id, local, local_key, password_hash, created) VALUES($1, $2, $3, $4, 0)"
            " RETURNING id", domain_id, local, local.lower(), b"x")
        await node.store.create_default_mailboxes(txn, user_id)
        return user_id
    return await node.db.write(w)


@pytest.fixture
async def env(pg_url: str) -> AsyncIterator[Env]:
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)         # every packaged migration, as a node applies them
    finally:
        await conn.close()
    nodes: list[Node] = []

    async def open_node(name: str, max_size: int = 10) -> Node:
        node = await _node(pg_url, name, max_size)
        nodes.append(node)
        return node
    first = await open_node("n1")
    alice = await add_user(first, "alice")
    first.events.clear()
    try:
        yield Env(first, open_node, alice)
    finally:
        for node in nodes:
            await node.db.close()


async def box_id(store: PgMailStore, user: int, name: str) -> int:
    return (await store.get_mailbox(user, name)).id


async def blob_rows(store: PgMailStore) -> set[str]:
    async def q(conn: asyncpg.Connection) -> set[str]:
        rows = await conn.fetch("SELECT b.id, d.id FROM blobs b FULL JOIN blob_data d ON d.id = b.id")
        assert all(r[0] == r[1] for r in rows), "blobs and blob_data out of step"
        return {r[0] for r in rows}
    return await store.db.read(q)


# -- mailboxes -------------------------------------------------------------------------------

async def test_default_mailboxes_and_lookups(env: Env) -> None:
    boxes = await env.store.list_mailboxes(env.alice)
    assert [b.name for b in boxes] == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    assert {b.name: b.special_use for b in boxes}["Sent"] == "\\Sent"
    assert len({b.uidvalidity for b in boxes}) == 6 and all(b.uidnext == 1 for b in boxes)
    inbox = await env.store.get_mailbox(env.alice, "inbox")
    assert inbox.name == "INBOX" and inbox.user_id == env.alice
    assert await env.store.list_subscriptions(env.alice) == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    with pytest.raises(NotFound):
        await env.store.get_mailbox(env.alice, "Nope")


async def test_mailbox_lifecycle_noselect_and_new_lives(env: Env) -> None:
    store, alice = env.store, env.alice
    q1 = await store.create_mailbox(alice, "Projects/2024/Q1")
    names = [b.name for b in await store.list_mailboxes(alice)]
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= set(names)
    assert env.node.events == [MailboxesChanged(alice)]
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(alice, "Projects")
    with pytest.raises(InvalidInput):
        await store.create_mailbox(alice, "Special", special_use="\\Bogus")
    await store.append(q1.id, MSG)
    year = await store.get_mailbox(alice, "Projects/2024")
    await store.rename_mailbox(alice, "Projects", "Work")
    moved = await store.get_mailbox(alice, "Work/2024/Q1")
    assert (moved.id, moved.uidvalidity, moved.uidnext) == (q1.id, q1.uidvalidity, 2)
    assert not any(b.name.startswith("Projects") for b in await store.list_mailboxes(alice))

    # With children, a deleted mailbox stays as \Noselect: a new row, the old life is over.
    await store.set_subscribed(alice, "Work/2024", False)
    await store.delete_mailbox(alice, "Work/2024")
    assert await store.list_noselect(alice) == ["Work/2024"]
    with pytest.raises(NotFound):
        await store.get_mailbox(alice, "Work/2024")
    with pytest.raises(NotFound):
        await store.status(year.id)
    with pytest.raises(InvalidInput):       # already \Noselect with children
        await store.delete_mailbox(alice, "Work/2024")
    again = await store.create_mailbox(alice, "Work/2024")
    assert again.id > year.id and again.uidvalidity > year.uidvalidity and again.uidnext == 1
    assert "Work/2024" not in await store.list_subscriptions(alice)   # no life of the name subscribes it
    assert await store.list_noselect(alice) == []

    await store.delete_mailbox(alice, "Work/2024/Q1")
    assert "Work/2024/Q1" not in [b.name for b in await store.list_mailboxes(alice)]
    with pytest.raises(PermissionDenied):
        await store.delete_mailbox(alice, "inbox")
    with pytest.raises(NotFound):
        await store.delete_mailbox(alice, "Nowhere")
    await store.set_subscribed(alice, "Nowhere", True)      # a name, not a mailbox
    assert "Nowhere" in await store.list_subscriptions(alice)
    with pytest.raises(NotFound):
        await store.set_subscribed(999_999, "Nowhere", True)
    with pytest.raises(NotFound):
        await store.create_mailbox(999_999, "Orphan")


async def test_rename_errors(env: Env) -> None:
    store, alice = env.store, env.alice
    await store.create_mailbox(alice, "A/B")
    with pytest.raises(InvalidInput):
        await store.rename_mailbox(alice, "A", "A/B/C")
    with pytest.raises(InvalidInput):
        await store.rename_mailbox(alice, "A", "inbox")
    with pytest.raises(InvalidInput):
        await store.rename_mailbox(alice, "INBOX", "INBOX/Sub")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(alice, "A/B", "Trash")
    with pytest.raises(NotFound):
        await store.rename_mailbox(alice, "Nope", "Other")
    await store.rename_mailbox(alice, "A/B", "X/Y/Z")      # missing parents are created
    assert {"X", "X/Y", "X/Y/Z", "A"} <= {b.name for b in await store.list_mailboxes(alice)}


async def test_unicode_names_rename_and_sort_by_code_point(env: Env) -> None:
    store, alice = env.store, env.alice
    for name in ("Überblick/Kind/Enkel", "a", "Z", "é"):
        await store.create_mailbox(alice, name)
    await store.rename_mailbox(alice, "Überblick", "Ärger")
    names = [b.name for b in await store.list_mailboxes(alice)]
    assert names == sorted(names) and {"Ärger", "Ärger/Kind", "Ärger/Kind/Enkel"} <= set(names)
    assert not any(n.startswith("Über") for n in names)
    await store.delete_mailbox(alice, "Ärger/Kind")
    await store.delete_mailbox(alice, "Ärger")
    assert await store.list_noselect(alice) == sorted(["Ärger", "Ärger/Kind"])


async def test_rename_inbox_moves_messages_into_a_new_mailbox(env: Env) -> None:
    store, alice = env.store, env.alice
    inbox = await box_id(store, alice, "INBOX")
    await store.append(inbox, MSG, ["\\Seen"])
    await store.append(inbox, message(2), ["$work"])
    before = (await store.status(inbox)).highestmodseq
    await store.rename_mailbox(alice, "INBOX", "Old")
    old = await store.get_mailbox(alice, "Old")
    assert old.id > inbox
    assert [(m.uid, m.flags) for m in await store.list_messages(old.id)] == [(1, {"\\Seen"}), (2, {"$work"})]
    status = await store.status(inbox)
    assert status.messages == 0 and status.uidnext == 3           # INBOX keeps its life
    changes = await store.changes_since(inbox, before)
    assert changes.expunged == (1, 2) and changes.changed == ()
    assert await store.append(inbox, MSG) == 3


async def test_uidvalidity_is_unique_across_lives_and_nodes(env: Env) -> None:
    other = await env.open_node("n2")                         # type: ignore[operator]
    bob = await add_user(env.node, "bob")
    seen = [b.uidvalidity for u in (env.alice, bob) for b in await env.store.list_mailboxes(u)]

    async def churn(store: PgMailStore, user: int, name: str) -> list[int]:
        out = []
        for _ in range(8):
            out.append((await store.create_mailbox(user, name)).uidvalidity)
            await store.delete_mailbox(user, name)
        return out
    lives = await asyncio.gather(churn(env.store, env.alice, "Tmp"), churn(other.store, env.alice, "Tmp2"),
                                 churn(other.store, bob, "Tmp"))
    for run in lives:
        assert run == sorted(run) and len(set(run)) == len(run)    # strictly increasing per name
    everything = seen + [v for run in lives for v in run]
    assert len(set(everything)) == len(everything)

    # The rule is max(now, last + 1): a value ahead of the clock is followed by its successor.
    async def ahead(txn: database.PgTxn) -> None:
        await txn.conn.execute("UPDATE meta SET value = '4000000000' WHERE key = 'uidvalidity'")
    await env.node.db.write(ahead)
    assert (await env.store.create_mailbox(env.alice, "Later")).uidvalidity == 4_000_000_001


async def test_bad_mailbox_names_are_invalid_input(env: Env) -> None:
    for name in ["", "a//b", "/a", "a/", "../etc", "x*", "y%", "a\x00b", "a\nb", "x" * 600]:
        for call in (env.store.get_mailbox(env.alice, name), env.store.create_mailbox(env.alice, name),
                     env.store.delete_mailbox(env.alice, name), env.store.rename_mailbox(env.alice, "Trash", name),
                     env.store.rename_mailbox(env.alice, name, "Other"), env.store.snapshot(env.alice, name),
                     env.store.set_subscribed(env.alice, name, True)):
            with pytest.raises(InvalidInput):
                await call


# -- delivering -------------------------------------------------------------------------------

async def test_append_and_read_back(env: Env) -> None:
    store = env.store
    inbox = await box_id(store, env.alice, "inbox")
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert await store.append(inbox, MSG, ["\\Seen", "$label"], when) == 1
    [meta] = await store.list_messages(inbox)
    assert meta.flags == {"\\Seen", "$label"} and meta.internaldate == when and meta.size == len(MSG)
    assert meta.modseq == 2
    assert await store.read_message(meta.blob_id) == MSG
    info = (await store.fetch_info(inbox, [1, 7]))
    assert list(info) == [1] and info[1].subject == "Hello" and b"carol" in info[1].envelope
    assert "hi there" in (await store.search_text(inbox, [1]))[1]
    assert await store.get_meta(inbox, [7, 1]) == [meta]
    status = await store.status(inbox)
    assert (status.messages, status.unseen, status.recent, status.uidnext, status.size) == (1, 0, 1, 2, len(MSG))
    assert env.node.events == [MailboxChanged(env.alice, inbox)]


async def test_deliver_to_several_mailboxes_with_outbound_and_events(env: Env) -> None:
    store, alice = env.store, env.alice
    bob = await add_user(env.node, "bob")
    inbox, trash, bob_inbox = (await box_id(store, alice, "INBOX"), await box_id(store, alice, "Trash"),
                               await box_id(store, bob, "INBOX"))
    await store.append(trash, MSG)
    env.node.events.clear()
    out = Outbound("alice@example.com", ("x@remote.example", "y@remote.example"), 1_700_000_000.7)
    done = await store.deliver([(trash, ["\\Flagged"]), (bob_inbox, ()), (inbox, ["\\Seen"]), (trash, ())],
                               message(1), outbound=out)
    assert done.uids == (2, 1, 1, 3) and len(done.queued) == 2 and list(done.queued) == sorted(done.queued)
    assert [m.flags for m in await store.list_messages(trash)] == [frozenset(), {"\\Flagged"}, frozenset()]
    assert (await store.status(trash)).highestmodseq == 4          # one MODSEQ per message
    metas = [m for b in (inbox, trash, bob_inbox) for m in await store.list_messages(b)]
    shared = {m.blob_id for m in metas if m.size == len(message(1))}
    assert len(shared) == 1

    async def q(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch("SELECT id, sender, recipient, blob_id, size, created, next_attempt, attempts"
                                " FROM queue ORDER BY id")
    rows = await store.db.read(q)
    assert [tuple(r) for r in rows] == [
        (done.queued[0], "alice@example.com", "x@remote.example", *shared, len(message(1)), 1_700_000_000,
         1_700_000_000, 0),
        (done.queued[1], "alice@example.com", "y@remote.example", *shared, len(message(1)), 1_700_000_000,
         1_700_000_000, 0)]
    assert set(env.node.events) == {MailboxChanged(alice, trash), MailboxChanged(bob, bob_inbox),
                                    MailboxChanged(alice, inbox), QueueChanged()}

    # Outbound only: no targets, just queue entries sharing a new blob.
    only = await store.deliver([], message(2), outbound=Outbound("a@example.com", ("z@remote.example",), 5))
    assert only.uids == () and len(only.queued) == 1
    with pytest.raises(InvalidInput):
        await store.deliver([(inbox, ())], MSG, outbound=Outbound("a@example.com", (), 5))
    with pytest.raises(InvalidInput):
        await store.deliver([], MSG)


async def test_a_failed_delivery_stores_nothing(env: Env) -> None:
    store = env.store
    inbox = await box_id(store, env.alice, "INBOX")
    gone = (await store.create_mailbox(env.alice, "Gone")).id
    await store.delete_mailbox(env.alice, "Gone")
    before = await blob_rows(store)
    with pytest.raises(NotFound):
        await store.deliver([(inbox, ()), (gone, ())], MSG, outbound=Outbound("a@example.com", ("b@x.example",), 1))
    for bad in (["\\Recent"], ["\\Bogus"], ["bad keyword"], ["(x"]):
        with pytest.raises(InvalidInput):
            await store.append(inbox, MSG, bad)
    with pytest.raises(LimitExceeded):
        await store.append(inbox, MSG, [f"k{i}" for i in range(MAX_KEYWORDS + 1)])
    assert await blob_rows(store) == before
    status = await store.status(inbox)
    assert (status.messages, status.uidnext, status.highestmodseq) == (0, 1, 1)

    async def q(conn: asyncpg.Connection) -> int:
        return await conn.fetchval("SELECT count(*) FROM queue")
    assert await store.db.read(q) == 0


async def test_import_is_recorded_and_not_recent(env: Env) -> None:
    store, alice = env.store, env.alice
    inbox = await box_id(store, alice, "INBOX")
    await store.deliver([(inbox, ())], message(1), imported=Import(alice, "mbox", "INBOX\x00abc#1"))
    assert await store.imported_keys(alice, "mbox") == {"INBOX\x00abc#1"}
    assert await store.imported_keys(alice, "maildir") == set()
    assert (await store.snapshot(alice, "INBOX")).recent_uid == 2     # not \Recent
    await store.append(inbox, message(2))                             # delivered: \Recent
    await store.deliver([(inbox, ())], message(3), imported=Import(alice, "mbox", "INBOX\x00def#1"))
    snap = await store.snapshot(alice, "INBOX")
    assert snap.recent_uid == 2 and snap.mailbox.uidnext == 4         # UID 2 is still unclaimed
    with pytest.raises(AlreadyExists):                                # imported once, and only once
        await store.deliver([(inbox, ())], message(4), imported=Import(alice, "mbox", "INBOX\x00abc#1"))
    assert (await store.status(inbox)).messages == 3


async def test_text_the_database_cannot_hold_is_cleaned(env: Env) -> None:
    inbox = await box_id(env.store, env.alice, "INBOX")
    data = b"From: a@example.org\r\nSubject: nul\x00here \xff\xfe\r\n\r\nbody\x00text\r\n"
    await env.store.append(inbox, data)
    [meta] = await env.store.list_messages(inbox)
    assert await env.store.read_message(meta.blob_id) == data
    assert "\x00" not in (await env.store.fetch_info(inbox, [1]))[1].subject


# -- flags, copy, move, expunge --------------------------------------------------------------

async def test_store_flags_modes_and_modseq(env: Env) -> None:
    store = env.store
    inbox = await box_id(store, env.alice, "INBOX")
    await store.append(inbox, MSG)
    await store.append(inbox, MSG, ["\\Flagged"])
    before = (await store.status(inbox)).highestmodseq
    env.node.events.clear()
    metas = await store.store_flags(inbox, [2, 1, 99], "add", ["\\Flagged", "todo"])
    assert [(m.uid, m.flags) for m in metas] == [(1, {"\\Flagged", "todo"}), (2, {"\\Flagged", "todo"})]
    assert {m.modseq for m in metas} == {before + 1}
    assert env.node.events == [MailboxChanged(env.alice, inbox)]
    env.node.events.clear()
    again = await store.store_flags(inbox, [1, 2], "add", ["\\flagged"])
    assert again == metas and env.node.events == []                   # no change, no new MODSEQ
    assert (await store.status(inbox)).highestmodseq == before + 1
    [m1, m2] = await store.store_flags(inbox, [1, 2], "remove", ["todo", "\\Flagged"])
    assert m1.flags == m2.flags == frozenset() and m1.modseq == before + 2
    [m1, m2] = await store.store_flags(inbox, [1, 2], "set", ["\\seen", "b", "a"])
    assert m1.flags == {"\\Seen", "a", "b"} and m1.modseq == before + 3
    [m1] = await store.store_flags(inbox, [1], "remove", ["b"])
    [m2] = await store.get_meta(inbox, [2])
    assert (m1.modseq, m2.modseq) == (before + 4, before + 3)        # only the changed row moves
    changes = await store.changes_since(inbox, before + 3)
    assert [c.uid for c in changes.changed] == [1] and changes.highestmodseq == before + 4

    with pytest.raises(InvalidInput):
        await store.store_flags(inbox, [1], "toggle", ["\\Seen"])
    with pytest.raises(InvalidInput):
        await store.store_flags(inbox, [1], "add", ["\\Recent"])
    await store.store_flags(inbox, [1], "set", [f"k{i}" for i in range(MAX_KEYWORDS)])
    with pytest.raises(LimitExceeded):
        await store.store_flags(inbox, [1], "add", ["one-more"])
    assert await store.store_flags(999_999, [1], "add", ["\\Seen"]) == []


async def test_copy_move_expunge_tombstones_and_changes(env: Env) -> None:
    store, alice = env.store, env.alice
    inbox, trash = await box_id(store, alice, "INBOX"), await box_id(store, alice, "Trash")
    for i in range(4):
        await store.append(inbox, message(i), ["\\Seen"] if i == 0 else ())
    start = (await store.status(inbox)).highestmodseq
    assert await store.copy(inbox, [1, 2, 77], trash) == [(1, 1), (2, 2)]
    assert [m.flags for m in await store.list_messages(trash)] == [{"\\Seen"}, frozenset()]
    assert (await store.status(inbox)).highestmodseq == start              # the source is unchanged
    assert await store.copy(inbox, [77], trash) == []
    assert await store.move(inbox, [2, 3], trash) == [(2, 3), (3, 4)]
    assert [m.uid for m in await store.list_messages(inbox)] == [1, 4]
    changes = await store.changes_since(inbox, start)
    assert changes.expunged == (2, 3) and changes.changed == () and changes.highestmodseq == start + 1

    await store.store_flags(inbox, [1, 4], "add", ["\\Deleted"])
    assert await store.expunge(inbox, [4, 9]) == [4]                      # only among the UIDs given
    assert await store.expunge(inbox) == [1]
    assert await store.expunge(inbox) == []
    changes = await store.changes_since(inbox, start)
    assert changes.expunged == (1, 2, 3, 4) and changes.uidnext == 5
    assert (await store.changes_since(inbox, changes.highestmodseq)).expunged == ()
    assert await store.delete_messages(trash, [4, 1, 50]) == [1, 4]
    assert [m.uid for m in await store.list_messages(trash)] == [2, 3]

    gone = (await store.create_mailbox(alice, "Gone")).id
    await store.delete_mailbox(alice, "Gone")
    with pytest.raises(NotFound):
        await store.copy(trash, [2], gone)
    with pytest.raises(NotFound):
        await store.move(trash, [2], gone)
    with pytest.raises(NotFound):
        await store.changes_since(gone, 0)
    assert [m.uid for m in await store.list_messages(trash)] == [2, 3]     # nothing moved


async def test_blobs_go_with_their_last_reference(env: Env) -> None:
    store, alice = env.store, env.alice
    inbox, trash = await box_id(store, alice, "INBOX"), await box_id(store, alice, "Trash")
    await store.append(inbox, MSG)
    shared = await store.deliver([(inbox, ())], message(2), outbound=Outbound("a@example.com", ("r@x.example",), 1))
    [m1, m2] = await store.list_messages(inbox)
    await store.copy(inbox, [1], trash)
    assert await blob_rows(store) == {m1.blob_id, m2.blob_id}
    await store.delete_messages(inbox, [1])
    assert await blob_rows(store) == {m1.blob_id, m2.blob_id}          # the copy in Trash uses it
    await store.delete_messages(trash, [1])
    assert await blob_rows(store) == {m2.blob_id}
    await store.store_flags(inbox, [2], "add", ["\\Deleted"])
    await store.expunge(inbox)
    assert await blob_rows(store) == {m2.blob_id}                      # the queue entry uses it

    async def drop_entry(txn: database.PgTxn) -> None:
        blob = await txn.conn.fetchval("DELETE FROM queue WHERE id = $1 RETURNING blob_id", shared.queued[0])
        await store.collect_blobs(txn, [blob])
    await store.db.write(drop_entry)
    assert await blob_rows(store) == set()

    # Deleting a mailbox collects what only it used.
    box = await store.create_mailbox(alice, "Box")
    await store.append(box.id, message(3))
    await store.append(box.id, message(4))
    await store.copy(box.id, [2], trash)
    await store.delete_mailbox(alice, "Box")
    assert len(await blob_rows(store)) == 1


async def test_two_nodes_dropping_the_last_two_references_leave_no_blob(env: Env) -> None:
    """Two transactions each removing one of a blob's two references must not both keep it."""
    other = await env.open_node("n2")                         # type: ignore[operator]
    bob = await add_user(env.node, "bob")
    boxes = [await box_id(env.store, env.alice, "INBOX"), await box_id(env.store, bob, "INBOX")]
    for round_ in range(10):
        await env.store.deliver([(boxes[0], ()), (boxes[1], ())], message(round_))
        uid = (await env.store.status(boxes[0])).uidnext - 1
        await asyncio.gather(env.store.delete_messages(boxes[0], [uid]), other.store.delete_messages(boxes[1], [uid]))
    assert await blob_rows(env.store) == set()


# -- reading ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [2 * 1024, 300 * 1024])
async def test_message_bodies_round_trip(env: Env, size: int) -> None:
    store = env.store
    inbox = await box_id(store, env.alice, "INBOX")
    data = message(1, size)
    await store.append(inbox, data)
    [meta] = await store.list_messages(inbox)
    assert meta.size == len(data)
    assert await store.read_message(meta.blob_id) == data
    body = await store.open_message(meta.blob_id)
    try:
        assert body.size == len(data)
        if size <= CHUNK:
            assert body.inline == data
        else:
            assert body.inline is None and isinstance(body, PgStreamBody)
        pieces = [piece async for piece in body.chunks()]
        assert b"".join(pieces) == data and all(len(p) <= CHUNK for p in pieces)
        assert len(pieces) == -(-len(data) // CHUNK)
        assert await body.read() == data
        assert await body.read(10, 20) == data[10:30]
        assert await body.read(len(data) - 5, 100) == data[-5:]
        assert b"".join([p async for p in body.chunks(CHUNK - 3, 10)]) == data[CHUNK - 3:CHUNK + 7]
    finally:
        await body.close()
    with pytest.raises(NotFound):
        await store.open_message("0" * 32)
    with pytest.raises(NotFound):
        await store.read_message("0" * 32)


async def test_a_streamed_body_whose_bytes_are_collected_fails_temporarily(env: Env) -> None:
    inbox = await box_id(env.store, env.alice, "INBOX")
    data = message(1, 2 * CHUNK + 100)
    await env.store.append(inbox, data)
    [meta] = await env.store.list_messages(inbox)
    body = await env.store.open_message(meta.blob_id)
    assert await body.read(0, 10) == data[:10]
    await env.store.delete_messages(inbox, [1])
    with pytest.raises(TemporaryFailure):
        await body.read()
    await body.close()


async def test_snapshot_columns(env: Env) -> None:
    store, alice = env.store, env.alice
    inbox = await box_id(store, alice, "INBOX")
    empty = await store.snapshot(alice, "inbox")
    assert (list(empty.uids), empty.flags, empty.recent_uid, empty.unclaimed_recent) == ([], [], 1, False)
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    await store.append(inbox, MSG, ["\\Seen", "x"], when)
    await store.append(inbox, message(2), (), when)
    await store.append(inbox, message(3), ["\\Draft"], when)
    await store.delete_messages(inbox, [2])
    snap = await store.snapshot(alice, "INBOX")
    assert isinstance(snap.uids, array) and snap.uids.typecode == "I" and list(snap.uids) == [1, 3]
    assert snap.sizes.typecode == "Q" and list(snap.sizes) == [len(MSG), len(message(3))]
    assert snap.dates.typecode == "d" and list(snap.dates) == [when.timestamp()] * 2
    assert snap.flags == [{"\\Seen", "x"}, {"\\Draft"}]
    assert snap.mailbox.uidnext == 4 and snap.mailbox.highestmodseq == 5 and snap.unclaimed_recent
    with pytest.raises(NotFound):
        await store.snapshot(alice, "Nope")
    total, page = await store.page(inbox, 0, 1)
    assert total == 2 and [m.uid for m in page] == [3]
    assert [m.uid for m in (await store.page(inbox, 1, 10))[1]] == [1]
    with pytest.raises(InvalidInput):
        await store.page(inbox, -1, 10)
    many = await store.status_many([inbox, await box_id(store, alice, "Trash")])
    assert many[inbox].messages == 2 and len(many) == 2
    with pytest.raises(NotFound):
        await store.status_many([inbox, 999_999])


async def test_recent_is_claimed_once_and_change_queries_are_shared(env: Env) -> None:
    store = env.store
    inbox = await box_id(store, env.alice, "INBOX")
    start = (await store.status(inbox)).highestmodseq
    await store.append(inbox, MSG)
    reads = 0
    real_read = store.db.read

    async def counting_read(fn):  # noqa: ANN001, ANN202 - a test double
        nonlocal reads
        reads += 1
        return await real_read(fn)
    store.db.read = counting_read  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(*(store.changes_since(inbox, start) for _ in range(30)))
    finally:
        store.db.read = real_read  # type: ignore[method-assign]
    assert reads == 1
    assert all(r == results[0] for r in results) and [m.uid for m in results[0].changed] == [1]
    assert results[0].recent_uid == 1 and results[0].uidnext == 2
    marks = await asyncio.gather(*(store.claim_recent(inbox) for _ in range(20)))
    assert sorted(marks) == [1] + [2] * 19
    assert await store.claim_recent_range(inbox) == (2, 2)
    other = await env.open_node("n2")                         # type: ignore[operator]
    await other.store.append(inbox, MSG)
    claims = await asyncio.gather(store.claim_recent_range(inbox), other.store.claim_recent_range(inbox))
    assert sorted(claims) == [(2, 3), (3, 3)]                 # across nodes the row lock decides


# -- several nodes ----------------------------------------------------------------------------

async def test_two_nodes_appending_concurrently_keep_uids_in_commit_order(env: Env) -> None:
    a = env.node
    b = await env.open_node("n2", 16)                         # type: ignore[operator]
    inbox = await box_id(a.store, env.alice, "INBOX")
    done = False
    views = 0

    async def watch() -> None:
        """Every consistent read sees UIDs 1..n with UIDNEXT n+1: a UID never becomes visible
        before a smaller one, which is what "ascending in commit order" means to a reader."""
        nonlocal views
        while not done:
            async def q(conn: asyncpg.Connection) -> tuple[int, int, list[int]]:
                box = await conn.fetchrow("SELECT uidnext, highestmodseq FROM mailboxes WHERE id = $1", inbox)
                uids = [r[0] for r in await conn.fetch("SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid",
                                                       inbox)]
                return box[0], box[1], uids
            uidnext, modseq, uids = await a.db.read(q)
            assert uids == list(range(1, len(uids) + 1)) and uidnext == len(uids) + 1 and modseq == len(uids) + 1
            views += 1
            await asyncio.sleep(0)

    async def appender(node: Node, base: int) -> list[int]:
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> int:
            async with sem:
                return await node.store.append(inbox, message(base + i))
        return await asyncio.gather(*(one(i) for i in range(200)))
    watcher = asyncio.create_task(watch())
    got_a, got_b = await asyncio.gather(appender(a, 0), appender(b, 1000))
    done = True
    await watcher
    assert views > 1
    assert sorted(got_a + got_b) == list(range(1, 401))
    metas = await a.store.list_messages(inbox)
    assert [m.uid for m in metas] == list(range(1, 401)) and len({m.blob_id for m in metas}) == 400
    status = await b.store.status(inbox)
    assert (status.messages, status.uidnext, status.highestmodseq) == (400, 401, 401)
    subjects = {i.subject for i in (await a.store.fetch_info(inbox, range(1, 401))).values()}
    assert subjects == {f"note {n}" for n in [*range(200), *range(1000, 1200)]}


def count_writes(node: Node) -> list[int]:
    """Wrap ``node.db.write``: the returned list gets, per write request, how many times its
    function ran (more than once means the transaction was retried)."""
    runs: list[int] = []
    real_write = node.db.write

    async def counting(fn):  # noqa: ANN001, ANN202 - a test double
        slot = len(runs)
        runs.append(0)

        async def counted(txn):  # noqa: ANN001, ANN202
            runs[slot] += 1
            return await fn(txn)
        return await real_write(counted)
    node.db.write = counting  # type: ignore[method-assign]
    return runs


async def test_multi_mailbox_deliveries_in_any_order_never_deadlock(env: Env) -> None:
    """Deliveries to several mailboxes lock them in ascending id order: with targets given in
    random orders from two nodes, many transactions at once, none ever has to be retried."""
    a = env.node
    b = await env.open_node("n2")                             # type: ignore[operator]
    boxes = [m.id for m in await a.store.list_mailboxes(env.alice)]
    runs = []
    for node in (a, b):
        node.store.deliveries = DeliveryBatcher(node.db, max_batch=3, committers=6)
        runs.append(count_writes(node))
    rng = random.Random(13)

    async def deliver(node: Node, i: int) -> None:
        targets = rng.sample(boxes, 4)
        await node.store.deliver([(t, ()) for t in targets], message(i))
    await asyncio.gather(*(deliver(a if i % 2 else b, i) for i in range(120)))
    assert all(n == 1 for r in runs for n in r) and sum(map(len, runs)) >= 40
    counts = await a.store.status_many(boxes)
    assert sum(s.messages for s in counts.values()) == 480
    assert all(s.uidnext == s.messages + 1 for s in counts.values())


async def test_concurrent_deliveries_share_a_commit_and_a_bad_one_fails_alone(env: Env) -> None:
    store, alice = env.store, env.alice
    inbox = await box_id(store, alice, "INBOX")
    gone = (await store.create_mailbox(alice, "Gone")).id
    await store.delete_mailbox(alice, "Gone")
    await store.deliver([(inbox, ())], message(0), imported=Import(alice, "mbox", "taken"))
    env.node.events.clear()
    runs = count_writes(env.node)

    async def one(i: int) -> int:
        if i == 7:
            await store.deliver([(gone, ())], message(i))
        if i == 13:
            await store.deliver([(inbox, ())], message(i), imported=Import(alice, "mbox", "taken"))
        return (await store.deliver([(inbox, ())], message(i))).uids[0]
    results = await asyncio.gather(*(one(i) for i in range(40)), return_exceptions=True)
    assert isinstance(results[7], NotFound) and isinstance(results[13], AlreadyExists)
    good = [r for i, r in enumerate(results) if i not in (7, 13)]
    assert sorted(good) == list(range(2, 40))        # UID 1 is the import above
    assert len(runs) < 40                             # batched: fewer transactions than deliveries
    assert (await store.status(inbox)).messages == 39
    assert await store.imported_keys(alice, "mbox") == {"taken"}
    assert set(env.node.events) == {MailboxChanged(alice, inbox)}


@pytest.mark.parametrize("committers", [1, 2])
async def test_a_delivery_submitted_as_a_committer_finishes_is_not_stranded(env: Env, committers: int) -> None:
    """One deliverer, one after the other, and two at a time: each delivery arrives just as
    the transaction before it returns, when its committer is about to stop."""
    inbox = await box_id(env.store, env.alice, "INBOX")
    env.store.deliveries = DeliveryBatcher(env.node.db, committers=committers)

    async def deliverer(base: int) -> list[int]:
        # Appends straight from one task: the next one is submitted in the very loop step
        # that learns of the previous one's commit.
        return [await env.store.append(inbox, message(base + i)) for i in range(10)]
    assert await asyncio.wait_for(deliverer(0), 20) == list(range(1, 11))
    both = await asyncio.wait_for(asyncio.gather(deliverer(100), deliverer(200)), 20)
    assert sorted(both[0] + both[1]) == list(range(11, 31))


async def test_when_the_database_fails_a_batch_fails_at_once(env: Env) -> None:
    """Not split into halves: every part would fail the same way."""
    inbox = await box_id(env.store, env.alice, "INBOX")
    env.store.deliveries = DeliveryBatcher(env.node.db, committers=1)
    runs = count_writes(env.node)
    await env.node.db.close()
    results = await asyncio.gather(*(env.store.append(inbox, message(i)) for i in range(10)),
                                   return_exceptions=True)
    assert all(isinstance(r, TemporaryFailure) for r in results) and len(runs) == 1


async def test_imports_in_one_batch_move_the_recent_mark_as_one_by_one_would(env: Env) -> None:
    store, alice = env.store, env.alice
    box = (await store.create_mailbox(alice, "Imported")).id
    store.deliveries = DeliveryBatcher(env.node.db, committers=1)
    runs = count_writes(env.node)
    kinds = ["import", "import", "new", "import"]
    results = await asyncio.gather(*(
        store.deliver([(box, ())], message(i), imported=Import(alice, "maildir", f"k{i}") if kind == "import" else None)
        for i, kind in enumerate(kinds)))
    assert len(runs) == 1 and [r.uids for r in results] == [(1,), (2,), (3,), (4,)]
    snap = await store.snapshot(alice, "Imported")
    assert snap.recent_uid == 3                       # UID 3 was delivered, so it and UID 4 stay \Recent
    assert await store.imported_keys(alice, "maildir") == {"k0", "k1", "k3"}


# -- REST views -------------------------------------------------------------------------------

async def test_views(env: Env) -> None:
    store, views, alice = env.store, env.node.views, env.alice
    who = Address("Alice", "example.com")
    await store.create_mailbox(alice, "INBOX/Sub")
    await store.create_mailbox(alice, "Aaa/Bbb")
    await store.delete_mailbox(alice, "Aaa")
    inbox = await box_id(store, alice, "INBOX")
    when = datetime(2024, 1, 2, tzinfo=timezone.utc)
    for i in range(3):
        await store.append(inbox, message(i), ["\\Seen"] if i == 0 else ["\\Flagged", "zz"], when)
    folders = await views.folders(who)
    assert [f.name for f in folders] == ["INBOX", "INBOX/Sub", "Aaa", "Aaa/Bbb", "Archive", "Drafts", "Junk",
                                         "Sent", "Trash"]
    first = folders[0]
    assert (first.messages, first.unseen, first.size, first.selectable, first.uidnext) == (
        3, 2, sum(len(message(i)) for i in range(3)), True, 4)
    assert not folders[2].selectable and folders[8].special_use == "\\Trash"

    assert await views.mailbox_id(who, "INBOX") == inbox
    with pytest.raises(NotFound):
        await views.mailbox_id(who, "Aaa")                    # \Noselect
    assert await views.special_mailbox(who, "\\Trash") == await box_id(store, alice, "Trash")
    assert await views.special_mailbox(who, "\\Important") is None

    row = await views.message(who, "INBOX", 2)
    assert (row.uid, row.mask, row.keywords, row.subject, row.internaldate) == (2, 4, "zz", "note 1",
                                                                               int(when.timestamp()))
    assert row.from_ and row.message_id == "<1@test>" and row.blob_id
    with pytest.raises(NotFound):
        await views.message(who, "INBOX", 9)

    cache: dict[tuple[int, ...], object] = {}
    key, (total, rows) = await views.page(who, "INBOX", 0, 2, cache.get)
    status = await store.status(inbox)
    assert key == (alice, inbox, status.uidvalidity, status.highestmodseq, 0, 2)
    assert total == 3 and [r.uid for r in rows] == [3, 2]
    cache[key] = "cached page"
    assert await views.page(who, "INBOX", 0, 2, cache.get) == (key, "cached page")
    await store.store_flags(inbox, [1], "add", ["\\Answered"])
    key2, (total, rows) = await views.page(who, "INBOX", 0, 2, cache.get)
    assert key2[3] > key[3] and [r.uid for r in rows] == [3, 2]

    async def remove_alice(txn: database.PgTxn) -> None:
        await txn.conn.execute("DELETE FROM users WHERE id = $1", alice)
    await env.node.db.write(remove_alice)
    for call in (views.folders(who), views.mailbox_id(who, "INBOX"), views.special_mailbox(who, "\\Trash"),
                 views.message(who, "INBOX", 1), views.page(who, "INBOX", 0, 2, cache.get)):
        with pytest.raises(AuthenticationFailed):
            await call
