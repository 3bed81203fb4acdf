"""The mail store: mailboxes, messages, flags, copy/move/expunge, MODSEQ and durability rules."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from rmail.server.core.events import EventBus, MailboxChanged
from rmail.server.core.storage import MailStore, normalize_mailbox_name
from tests.helpers.stores import open_sqlite, stored_blobs

MSG = b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: Hello\r\n\r\nHi there\r\n"


@pytest.fixture
async def alice(accounts: Accounts):
    return await accounts.add_user("alice@example.com", "pw")


async def test_append_and_read_back(store: MailStore, alice) -> None:
    inbox = await store.get_mailbox(alice.id, "inbox")
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    uid = await store.append(inbox.id, MSG, ["\\Seen", "$label"], when)
    assert uid == 1
    [meta] = await store.list_messages(inbox.id)
    assert meta.flags == {"\\Seen", "$label"} and meta.internaldate == when and meta.size == len(MSG)
    assert await store.read_message(meta.blob_id) == MSG
    info = (await store.fetch_info(inbox.id, [1]))[1]
    assert info.subject == "Hello" and b"carol" in info.envelope
    status = await store.status(inbox.id)
    assert (status.messages, status.unseen, status.uidnext) == (1, 0, 2)


async def test_uids_ascend_and_are_never_reused(store: MailStore, alice) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    uids = [await store.append(inbox.id, MSG) for _ in range(3)]
    assert uids == [1, 2, 3]
    await store.store_flags(inbox.id, [3], "add", ["\\Deleted"])
    assert await store.expunge(inbox.id) == [3]
    assert await store.append(inbox.id, MSG) == 4


async def test_concurrent_appends_get_distinct_uids(store: MailStore, alice) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    uids = await asyncio.gather(*(store.append(inbox.id, MSG + str(i).encode()) for i in range(50)))
    assert sorted(uids) == list(range(1, 51))


async def test_flags_modes_and_modseq(store: MailStore, alice) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    await store.append(inbox.id, MSG)
    before = (await store.status(inbox.id)).highestmodseq
    [m] = await store.store_flags(inbox.id, [1], "add", ["\\Flagged", "todo"])
    assert m.flags == {"\\Flagged", "todo"} and m.modseq > before
    [m2] = await store.store_flags(inbox.id, [1], "add", ["\\Flagged"])
    assert m2.modseq == m.modseq  # no change, no new MODSEQ
    [m3] = await store.store_flags(inbox.id, [1], "remove", ["todo"])
    assert m3.flags == {"\\Flagged"}
    [m4] = await store.store_flags(inbox.id, [1], "set", ["\\seen"])
    assert m4.flags == {"\\Seen"}
    changes = await store.changes_since(inbox.id, before)
    assert [c.uid for c in changes.changed] == [1] and changes.expunged == ()
    with pytest.raises(InvalidInput):
        await store.store_flags(inbox.id, [1], "add", ["\\Recent"])
    with pytest.raises(InvalidInput):
        await store.store_flags(inbox.id, [1], "add", ["\\Bogus"])
    with pytest.raises(InvalidInput):
        await store.store_flags(inbox.id, [1], "add", ["bad keyword"])


async def test_copy_shares_blob_and_move_expunges(backend, store: MailStore, alice) -> None:  # noqa: ANN001
    inbox = await store.get_mailbox(alice.id, "INBOX")
    trash = await store.get_mailbox(alice.id, "Trash")
    await store.append(inbox.id, MSG, ["\\Seen"])
    await store.append(inbox.id, MSG + b"2")
    assert await store.copy(inbox.id, [1, 2], trash.id) == [(1, 1), (2, 2)]
    assert len(await stored_blobs(backend)) == 2
    assert (await store.list_messages(trash.id))[0].flags == {"\\Seen"}
    assert await store.move(inbox.id, [2], trash.id) == [(2, 3)]
    assert [m.uid for m in await store.list_messages(inbox.id)] == [1]
    changes = await store.changes_since(inbox.id, 0)
    assert changes.expunged == (2,)
    # Removing every reference removes the file.
    await store.delete_messages(trash.id, [1, 2, 3])
    await store.delete_messages(inbox.id, [1])
    assert await stored_blobs(backend) == set()


async def test_mailbox_lifecycle(store: MailStore, alice) -> None:
    box = await store.create_mailbox(alice.id, "Projects/2024/Q1")
    names = [b.name for b in await store.list_mailboxes(alice.id)]
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= set(names)
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(alice.id, "Projects")
    await store.append(box.id, MSG)
    await store.rename_mailbox(alice.id, "Projects", "Work")
    assert (await store.get_mailbox(alice.id, "Work/2024/Q1")).id == box.id
    # A mailbox with children becomes \Noselect when deleted; its name can be created again.
    await store.delete_mailbox(alice.id, "Work/2024")
    assert "Work/2024" in await store.list_noselect(alice.id)
    with pytest.raises(NotFound):
        await store.get_mailbox(alice.id, "Work/2024")
    again = await store.create_mailbox(alice.id, "Work/2024")
    assert again.uidvalidity > box.uidvalidity
    with pytest.raises(PermissionDenied):
        await store.delete_mailbox(alice.id, "INBOX")


async def test_rename_inbox_moves_messages(store: MailStore, alice) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    await store.append(inbox.id, MSG)
    await store.rename_mailbox(alice.id, "INBOX", "Old")
    assert (await store.status(inbox.id)).messages == 0
    assert (await store.status((await store.get_mailbox(alice.id, "Old")).id)).messages == 1


@pytest.mark.parametrize("name", ["", "a//b", "/a", "a/", "../etc", "a/../b", "x*", "y%", "a\x00b", "a\nb"])
def test_bad_mailbox_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_mailbox_name(name)


def test_inbox_is_case_insensitive() -> None:
    assert normalize_mailbox_name("inbox") == "INBOX"
    assert normalize_mailbox_name("Inbox/Sub") == "INBOX/Sub"
    assert normalize_mailbox_name("Inboxes") == "Inboxes"


@pytest.mark.sqlite_only
async def test_mailbox_names_never_touch_the_filesystem(store: MailStore, alice, tmp_path) -> None:
    await store.create_mailbox(alice.id, "..x/etc")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert before == sorted(["blobs", "rmail.db", "rmail.db-wal", "rmail.db-shm"])


async def test_recent_is_claimed_once(store: MailStore, alice) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    await store.append(inbox.id, MSG)
    assert await store.claim_recent(inbox.id) == 1
    assert await store.claim_recent(inbox.id) == 2


async def test_events_published_after_commit(tmp_path) -> None:
    bus = EventBus()
    bus.bind_loop(asyncio.get_running_loop())
    feed = bus.feed()
    store_backend = await open_sqlite(tmp_path, publish=bus.publish_threadsafe)
    store = store_backend.mail
    try:
        accounts = Accounts(store_backend.directory, bcrypt_rounds=4)
        alice = await accounts.add_user("alice@example.com", "pw")
        inbox = await store.get_mailbox(alice.id, "INBOX")
        await store.append(inbox.id, MSG)
        await asyncio.wait_for(feed.wait(), 2)
        await asyncio.sleep(0.05)
        events = feed.drain()
        assert MailboxChanged(alice.id, inbox.id) in events
    finally:
        await store_backend.close()


async def test_cli_process_changes_are_noticed(tmp_path) -> None:
    """A commit from another connection (the CLI) raises ExternalChange within a second."""
    from rmail.server.core.events import ExternalChange
    bus = EventBus()
    bus.bind_loop(asyncio.get_running_loop())
    feed = bus.feed(lambda e: isinstance(e, ExternalChange))
    server_backend = await open_sqlite(tmp_path, publish=bus.publish_threadsafe)
    server = server_backend.mail
    other_backend = await open_sqlite(tmp_path)
    other = other_backend.mail
    try:
        await Accounts(other_backend.directory, bcrypt_rounds=4).add_user("x@example.com", "pw")
        await asyncio.wait_for(feed.wait(), 2)
        assert feed.drain()
    finally:
        await other_backend.close()
        await server_backend.close()


async def test_recovery_removes_orphans_only(tmp_path) -> None:
    store_backend = await open_sqlite(tmp_path)
    store = store_backend.mail
    alice = await Accounts(store_backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "pw")
    inbox = await store.get_mailbox(alice.id, "INBOX")
    await store.append(inbox.id, MSG)
    orphan = store.blobs.write(b"never committed")
    await store_backend.close()
    store_backend = await open_sqlite(tmp_path, recover=True)
    store = store_backend.mail
    try:
        ids = store.blob_ids()
        assert orphan not in ids and len(ids) == 1
        [meta] = await store.list_messages(inbox.id)
        assert await store.read_message(meta.blob_id) == MSG
    finally:
        await store_backend.close()


@pytest.mark.sqlite_only
async def test_large_messages_live_in_files(store: MailStore, alice) -> None:
    from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
    inbox = await store.get_mailbox(alice.id, "INBOX")
    trash = await store.get_mailbox(alice.id, "Trash")
    big = MSG + b"x" * (INLINE_BLOB_MAX + 1) + b"\r\n"
    await store.append(inbox.id, big)
    [meta] = await store.list_messages(inbox.id)
    assert set(store.blobs.all_ids()) == {meta.blob_id}          # a file, not a row
    assert await store.read_message(meta.blob_id) == big
    await store.copy(inbox.id, [1], trash.id)
    await store.delete_messages(inbox.id, [1])
    assert set(store.blobs.all_ids()) == {meta.blob_id}          # still used by the copy
    await store.delete_messages(trash.id, [1])
    for _ in range(200):  # the unlink runs on an I/O thread after the commit
        if not store.blob_ids():
            break
        await asyncio.sleep(0.01)
    assert store.blob_ids() == set()


@pytest.mark.sqlite_only
async def test_concurrent_sessions_share_change_queries_and_one_wins_recent(store: MailStore, alice,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite reads a few changes on the loop itself; with no room for that, the pool is used.
    monkeypatch.setattr("rmail.server.core.sqlite.mail.SMALL_CHANGES", 0)
    inbox = await store.get_mailbox(alice.id, "INBOX")
    start = (await store.status(inbox.id)).highestmodseq
    await store.append(inbox.id, MSG)
    reads = 0
    real_read = store.db.read

    async def counting_read(fn):
        nonlocal reads
        reads += 1
        return await real_read(fn)
    store.db.read = counting_read  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(*(store.changes_since(inbox.id, start) for _ in range(50)))
    finally:
        store.db.read = real_read  # type: ignore[method-assign]
    assert reads == 1
    assert all(r == results[0] for r in results) and [m.uid for m in results[0].changed] == [1]
    assert results[0].recent_uid == 1 and results[0].uidnext == 2
    marks = await asyncio.gather(*(store.claim_recent(inbox.id) for _ in range(20)))
    assert sorted(marks) == [1] + [2] * 19   # exactly one session sees UID 1 as \Recent


@pytest.mark.sqlite_only
async def test_a_recent_claim_holds_before_its_write_commits_and_is_saved_after(tmp_path) -> None:  # noqa: ANN001
    """SQLite claims \\Recent in memory and writes behind: a second session gets nothing even
    while the writer is busy, STATUS counts the claim, and the claim outlives a clean restart."""
    import threading
    from tests.helpers.stores import accounts_of
    backend = await open_sqlite(tmp_path)
    alice = await accounts_of(backend).add_user("alice@example.com", "pw")
    store = backend.mail
    inbox = await store.get_mailbox(alice.id, "INBOX")
    await store.append(inbox.id, MSG)
    gate = threading.Event()
    held = store.db.submit(lambda txn: gate.wait(30))            # the writer is busy
    try:
        # (The timeout only turns a claim stuck behind the writer into a failure.)
        assert await asyncio.wait_for(store.claim_recent_range(inbox.id), 10) == (1, 2)
        assert await store.claim_recent_range(inbox.id) == (2, 2)
        assert (await store.status(inbox.id)).recent == 0
        assert (await store.changes_since(inbox.id, 0)).recent_uid == 2
    finally:
        gate.set()
    await asyncio.wrap_future(held)
    await backend.close()
    backend = await open_sqlite(tmp_path)
    try:
        assert await backend.mail.claim_recent_range(inbox.id) == (2, 2)
    finally:
        await backend.close()


@pytest.mark.sqlite_only
async def test_a_change_committed_while_a_shared_query_runs_is_not_missed(store: MailStore, alice,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller told of a change must not join a change query that read its snapshot earlier."""
    import threading
    monkeypatch.setattr("rmail.server.core.sqlite.mail.SMALL_CHANGES", 0)
    inbox = await store.get_mailbox(alice.id, "INBOX")
    start = (await store.status(inbox.id)).highestmodseq
    gate = threading.Event()
    real_read = store.db.read
    calls = 0

    async def first_read_pins_an_old_snapshot(fn):
        nonlocal calls
        calls += 1
        if calls > 1:
            return await real_read(fn)

        def pinned(conn):
            conn.execute("SELECT count(*) FROM mailboxes").fetchone()   # the snapshot starts here
            gate.wait(5)
            return fn(conn)
        return await real_read(pinned)
    store.db.read = first_read_pins_an_old_snapshot  # type: ignore[method-assign]
    try:
        first = asyncio.ensure_future(store.changes_since(inbox.id, start))
        await asyncio.sleep(0.1)                       # in flight, snapshot taken
        await store.append(inbox.id, MSG)              # committed after that snapshot
        second = await store.changes_since(inbox.id, start)
        gate.set()
        assert (await first).changed == ()             # the old snapshot, as expected
        assert [m.uid for m in second.changed] == [1]  # but the second caller sees the change
    finally:
        gate.set()
        store.db.read = real_read  # type: ignore[method-assign]


async def test_queue_leases_are_exclusive_and_released_at_recovery(tmp_path) -> None:  # noqa: ANN001
    from rmail.server.core.queue import enqueue
    backend = await open_sqlite(tmp_path)
    try:
        ids = await enqueue(backend.mail, "a@example.com", ["x@remote.example", "y@remote.example"], b"S: x\r\n\r\nb\r\n", 100)
        first = await backend.queue.lease_due(200, 10, 60)
        assert sorted(e.id for e in first) == sorted(ids)
        assert await backend.queue.lease_due(200, 10, 60) == []          # held
        assert await backend.queue.next_due(200) == 260                   # when the leases end
        again = await backend.queue.lease_due(261, 10, 60)               # expired: handed out again
        assert sorted(e.id for e in again) == sorted(ids)
        await backend.queue.reschedule(ids[0], attempts=1, next_attempt=300, last_error="4.0.0 later",
                                       delayed_notified=False)
        assert [e.id for e in await backend.queue.lease_due(300, 10, 60)] == [ids[0]]   # released
    finally:
        await backend.close()
    backend = await open_sqlite(tmp_path, recover=True)    # the server starting after a crash
    try:
        assert sorted(e.id for e in await backend.queue.lease_due(1000, 10, 60)) == sorted(ids)
    finally:
        await backend.close()


async def test_snapshot_carries_each_messages_modseq(store: MailStore, alice) -> None:
    """SELECT learns every message's MODSEQ from its one read (CONDSTORE's FETCH MODSEQ)."""
    inbox = await store.get_mailbox(alice.id, "INBOX")
    for _ in range(3):
        await store.append(inbox.id, MSG)
    await store.store_flags(inbox.id, [2], "add", ["\\Seen"])
    snap = await store.snapshot(alice.id, "INBOX")
    metas = await store.list_messages(inbox.id)
    assert list(snap.modseqs) == [m.modseq for m in metas]
    assert max(snap.modseqs) == snap.mailbox.highestmodseq


async def test_store_unchanged_since_is_checked_in_the_write(store: MailStore, alice) -> None:
    """RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE is left alone and left out."""
    inbox = await store.get_mailbox(alice.id, "INBOX")
    for _ in range(3):
        await store.append(inbox.id, MSG)
    [m2] = await store.store_flags(inbox.id, [2], "add", ["\\Flagged"])
    mark = m2.modseq - 1                  # 1 and 3 are older than the mark, 2 is newer
    done = await store.store_flags(inbox.id, [1, 2, 3], "add", ["\\Seen"], unchanged_since=mark)
    assert [m.uid for m in done] == [1, 3] and all(m.modseq > m2.modseq for m in done)
    flags = {m.uid: m.flags for m in await store.list_messages(inbox.id)}
    assert flags == {1: {"\\Seen"}, 2: {"\\Flagged"}, 3: {"\\Seen"}}
    # UNCHANGEDSINCE 0 always fails; equal to the MODSEQ passes (and a no-op keeps it).
    assert await store.store_flags(inbox.id, [1], "add", ["\\Seen"], unchanged_since=0) == []
    [same] = await store.store_flags(inbox.id, [1], "add", ["\\Seen"], unchanged_since=done[0].modseq)
    assert same.modseq == done[0].modseq


async def test_expunged_since_and_highestmodseq_only_grow(store: MailStore, alice) -> None:
    """Expunge records answer VANISHED (EARLIER) for any earlier MODSEQ of the mailbox's
    life; HIGHESTMODSEQ never goes down, whatever the operation."""
    inbox = await store.get_mailbox(alice.id, "INBOX")
    archive = await store.get_mailbox(alice.id, "Archive")
    seen = [(await store.status(inbox.id)).highestmodseq]

    async def step() -> None:
        now = (await store.status(inbox.id)).highestmodseq
        assert now > seen[-1]
        seen.append(now)
    for _ in range(5):
        await store.append(inbox.id, MSG)
        await step()
    start = seen[-1]
    await store.store_flags(inbox.id, [1, 2], "add", ["\\Deleted"])
    await step()
    assert await store.expunge(inbox.id) == [1, 2]
    await step()
    after_first = seen[-1]
    await store.move(inbox.id, [4], archive.id)
    await step()
    await store.delete_messages(inbox.id, [5])
    await step()
    assert await store.expunged_since(inbox.id, 0) == [1, 2, 4, 5]
    assert await store.expunged_since(inbox.id, start) == [1, 2, 4, 5]
    assert await store.expunged_since(inbox.id, after_first) == [4, 5]
    assert await store.expunged_since(inbox.id, seen[-1]) == []
    # A STORE that changes nothing does not move HIGHESTMODSEQ (and certainly not down).
    await store.store_flags(inbox.id, [3], "add", [])
    assert (await store.status(inbox.id)).highestmodseq == seen[-1]
    await store.delete_mailbox(alice.id, "Archive")
    with pytest.raises(NotFound):
        await store.expunged_since(archive.id, 0)
