"""MailStore.append_many (IMAP MULTIAPPEND): several messages into one mailbox, one
transaction, all or nothing; on every backend."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.errors import InvalidInput, NotFound
from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.core.storage import MailStore
from rmail.server.core.storage.mail import NewMessage

MSG = b"From: Carol <carol@example.org>\r\nSubject: Hello %d\r\n\r\nHi there\r\n"


@pytest.fixture
async def alice(accounts: Accounts):
    return await accounts.add_user("alice@example.com", "pw")


async def test_messages_in_order_with_flags_and_dates(store: MailStore, alice) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    await store.append(inbox.id, MSG % 0)
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    big = MSG % 3 + b"x" * (INLINE_BLOB_MAX + 10) + b"\r\n"   # a file-backed one among them
    uids = await store.append_many(inbox.id, [
        NewMessage(MSG % 1, ("\\Seen", "$work"), when),
        NewMessage(MSG % 2),
        NewMessage(big, ("\\Flagged",)),
    ])
    assert uids == [2, 3, 4]
    metas = await store.list_messages(inbox.id)
    assert [m.uid for m in metas] == [1, 2, 3, 4]
    assert metas[1].flags == {"\\Seen", "$work"} and metas[1].internaldate == when
    assert metas[3].flags == {"\\Flagged"} and metas[3].size == len(big)
    assert [await store.read_message(m.blob_id) for m in metas[1:]] == [MSG % 1, MSG % 2, big]
    infos = await store.fetch_info(inbox.id, uids)
    assert [infos[u].subject for u in uids] == ["Hello 1", "Hello 2", "Hello 3"]
    status = await store.status(inbox.id)
    assert (status.messages, status.unseen, status.uidnext) == (4, 3, 5)


async def test_uids_are_consecutive_beside_concurrent_appends(store: MailStore, alice) -> None:
    """One transaction: no other append takes a UID in the middle of the batch."""
    inbox = await store.get_mailbox(alice.id, "INBOX")
    batch = [NewMessage(MSG % i) for i in range(10)]
    results = await asyncio.gather(
        *(store.append(inbox.id, MSG % (100 + i)) for i in range(10)),
        store.append_many(inbox.id, batch),
        *(store.append(inbox.id, MSG % (200 + i)) for i in range(10)))
    many = results[10]
    assert isinstance(many, list)
    assert many == list(range(many[0], many[0] + 10))
    assert len(await store.list_messages(inbox.id)) == 30


async def test_nothing_stored_when_refused(store: MailStore, alice) -> None:
    inbox = await store.get_mailbox(alice.id, "INBOX")
    with pytest.raises(InvalidInput):
        await store.append_many(inbox.id, [])
    with pytest.raises(InvalidInput):   # a bad flag in the last message: none is stored
        await store.append_many(inbox.id, [NewMessage(MSG % 1), NewMessage(MSG % 2, ("\\Bogus",))])
    await store.create_mailbox(alice.id, "Gone")
    gone = await store.get_mailbox(alice.id, "Gone")
    await store.delete_mailbox(alice.id, "Gone")
    with pytest.raises(NotFound):
        await store.append_many(gone.id, [NewMessage(MSG % 1)])
    assert await store.list_messages(inbox.id) == []
    assert (await store.status(inbox.id)).uidnext == 1


@pytest.mark.sqlite_only
async def test_a_failed_write_leaves_no_row_and_no_file(store: MailStore, alice, monkeypatch) -> None:  # noqa: ANN001
    """The second message's row fails after the first one's blob and row were written in the
    same transaction: the rollback takes both, and the staged files are removed."""
    inbox = await store.get_mailbox(alice.id, "INBOX")
    big = b"x" * (INLINE_BLOB_MAX + 10)
    original = store.insert_blob  # type: ignore[attr-defined]
    calls = []

    def failing(txn, staged):  # noqa: ANN001
        calls.append(staged.id)
        if len(calls) == 2:
            raise RuntimeError("disk went away")
        original(txn, staged)
    monkeypatch.setattr(store, "insert_blob", failing)
    with pytest.raises(RuntimeError):
        await store.append_many(inbox.id, [NewMessage(MSG % 1 + big), NewMessage(MSG % 2 + big)])
    monkeypatch.undo()
    assert await store.list_messages(inbox.id) == []
    for _ in range(200):  # files are removed on an I/O thread
        if not store.blob_ids():  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    assert store.blob_ids() == set()  # type: ignore[attr-defined]
    assert await store.append(inbox.id, MSG % 3) == 1   # no UID was used up
