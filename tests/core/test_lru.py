"""The stores' caches of immutable values (core/lru.py): bounded by total size, least recently
used out first, and what the stores serve from them is what they stored."""

from __future__ import annotations

from rmail.server.core.accounts import Accounts
from rmail.server.core.lru import SizedLRU
from rmail.server.core.storage import MailStore


def test_evicts_least_recently_used_by_total_bytes() -> None:
    cache: SizedLRU[str, bytes] = SizedLRU(capacity=10, entry_max=10)
    cache.put("a", b"1234", 4)
    cache.put("b", b"5678", 4)
    assert cache.get("a") == b"1234"          # "a" is now the most recent
    cache.put("c", b"90ab", 4)                # 12 bytes > 10: "b" goes
    assert cache.get("b") is None
    assert cache.get("a") == b"1234" and cache.get("c") == b"90ab"
    assert cache.size == 8 and len(cache) == 2


def test_large_entries_are_never_kept() -> None:
    cache: SizedLRU[str, bytes] = SizedLRU(capacity=100, entry_max=10)
    cache.put("big", b"x" * 11, 11)
    assert cache.get("big") is None and cache.size == 0
    assert (cache.hits, cache.misses) == (0, 1)


async def test_stores_serve_each_message_its_own_bytes_again(store: MailStore, accounts: Accounts) -> None:
    alice = await accounts.add_user("alice@example.com", "pw")
    inbox = await store.get_mailbox(alice.id, "INBOX")
    messages = [f"Subject: hot {n}\r\n\r\nbody {n}\r\n".encode() for n in range(3)]
    for data in messages:
        await store.append(inbox.id, data)
    metas = await store.list_messages(inbox.id)
    for _ in range(2):                        # the second round comes from the cache
        for meta, data in zip(metas, messages):
            assert await store.read_message(meta.blob_id) == data
            body = await store.open_message(meta.blob_id)
            assert body.size == len(data) and await body.read() == data


async def test_parsed_fields_served_again_belong_to_their_message(store: MailStore, accounts: Accounts) -> None:
    """Two mailboxes with the same UIDs: each (mailbox, UID) gets its own message's fields,
    from the store and then from the cache; an expunged message is still found in the cache
    only by whoever already asked for it (never reused: UIDs ascend, ids are never reused)."""
    alice = await accounts.add_user("alice@example.com", "pw")
    inbox = await store.get_mailbox(alice.id, "INBOX")
    other = await store.create_mailbox(alice.id, "Other")
    for box, word in ((inbox, "inbox"), (other, "other")):
        for n in (1, 2):
            await store.append(box.id, f"Subject: {word} {n}\r\n\r\nx\r\n".encode())
    for _ in range(2):
        for box, word in ((inbox, "inbox"), (other, "other")):
            infos = await store.fetch_info(box.id, [1, 2, 3])
            assert sorted(infos) == [1, 2]
            assert [infos[n].subject for n in (1, 2)] == [f"{word} 1", f"{word} 2"]
    await store.delete_mailbox(alice.id, "Other")
    again = await store.create_mailbox(alice.id, "Other")
    assert again.id != other.id
    await store.append(again.id, b"Subject: new life\r\n\r\nx\r\n")
    assert (await store.fetch_info(again.id, [1]))[1].subject == "new life"


async def test_message_blobs_name_each_message_its_bytes(store: MailStore, accounts: Accounts) -> None:
    """``message_blobs`` (FETCH's way to a message's bytes) agrees with ``get_meta``, from the
    store and again from memory, and leaves out UIDs that never existed."""
    alice = await accounts.add_user("alice@example.com", "pw")
    inbox = await store.get_mailbox(alice.id, "INBOX")
    for n in (1, 2, 3):
        await store.append(inbox.id, f"Subject: {n}\r\n\r\nx\r\n".encode())
    expected = {m.uid: m.blob_id for m in await store.get_meta(inbox.id, [1, 2, 3])}
    assert len(set(expected.values())) == 3
    for _ in range(2):
        assert await store.message_blobs(inbox.id, [1, 2, 3, 9]) == expected
