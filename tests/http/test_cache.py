"""The response caches never serve stale or foreign content."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from rmail.server.http.cache import ByteLRU

from .conftest import inbox_id, sample


async def listing(api: TestClient, headers: dict[str, str], folder: str = "INBOX") -> dict:
    resp = await api.get(f"/folders/{folder}/messages", headers=headers)
    assert resp.status == 200
    return await resp.json()


async def test_list_follows_changes_made_outside_the_api(api: TestClient, runtime, alice) -> None:
    box = await inbox_id(runtime, "alice@example.com")
    await runtime.store.append(box, sample(1))
    assert (await listing(api, alice))["messages"][0]["flags"] == []
    await runtime.store.store_flags(box, [1], "add", ["\\Seen"])          # as IMAP STORE does
    assert (await listing(api, alice))["messages"][0]["flags"] == ["\\Seen"]
    await runtime.store.append(box, sample(2))
    assert [m["uid"] for m in (await listing(api, alice))["messages"]] == [2, 1]
    await runtime.store.delete_messages(box, [2])
    assert [m["uid"] for m in (await listing(api, alice))["messages"]] == [1]


async def test_recreated_mailbox_ids_never_hit_an_old_page(api: TestClient, runtime, alice, bob) -> None:
    alice_acc = await runtime.accounts.get_user("alice@example.com")
    bob_acc = await runtime.accounts.get_user("bob@example.com")
    box = await runtime.store.create_mailbox(alice_acc.id, "Secret")
    await runtime.store.append(box.id, sample(1))
    assert (await listing(api, alice, "Secret"))["total"] == 1
    await runtime.store.delete_mailbox(alice_acc.id, "Secret")
    # SQLite may hand the freed row id to the next mailbox; its MODSEQ restarts as well.
    other = await runtime.store.create_mailbox(bob_acc.id, "Secret")
    await runtime.store.append(other.id, sample(9))
    body = await listing(api, bob, "Secret")
    assert body["total"] == 1 and body["messages"][0]["preview"] == "Message number 9"
    assert (await api.get("/folders/Secret/messages", headers=alice)).status == 404


def test_byte_lru_is_bounded() -> None:
    cache: ByteLRU[bytes] = ByteLRU(max_bytes=100, max_entry=60)
    cache.put("a", b"x" * 50, 50)
    cache.put("b", b"x" * 50, 50)
    assert cache.get("a") is not None          # a is now most recent
    cache.put("c", b"x" * 50, 50)              # evicts b
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    cache.put("big", b"x" * 70, 70)            # over max_entry: never kept
    assert cache.get("big") is None and len(cache) == 2
