"""The small-message byte cache: bounded by total bytes, least recently used out first, and
what the stores serve from it is what they stored."""

from __future__ import annotations

from rmail.server.core.accounts import Accounts
from rmail.server.core.bytecache import ByteCache
from rmail.server.core.storage import MailStore


def test_evicts_least_recently_used_by_total_bytes() -> None:
    cache = ByteCache(capacity=10, entry_max=10)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.get("a") == b"1234"          # "a" is now the most recent
    cache.put("c", b"90ab")                   # 12 bytes > 10: "b" goes
    assert cache.get("b") is None
    assert cache.get("a") == b"1234" and cache.get("c") == b"90ab"
    assert cache.size == 8 and len(cache) == 2


def test_large_entries_are_never_kept() -> None:
    cache = ByteCache(capacity=100, entry_max=10)
    cache.put("big", b"x" * 11)
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
