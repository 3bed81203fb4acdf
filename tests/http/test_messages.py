"""Folders and messages: listing, pagination, reading, appending, flags, deleting, isolation."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from rmail.server.runtime import ServerRuntime

from .conftest import SAMPLE, inbox_id, sample


async def fill(rt: ServerRuntime, address: str, count: int, folder: str = "INBOX") -> list[int]:
    box = await inbox_id(rt, address, folder)
    return [await rt.store.append(box, sample(i)) for i in range(1, count + 1)]


async def test_folders_list_counts_and_special_use(api: TestClient, runtime, alice) -> None:
    await fill(runtime, "alice@example.com", 3)
    box = await inbox_id(runtime, "alice@example.com")
    await runtime.store.store_flags(box, [1], "add", ["\\Seen"])
    resp = await api.get("/folders", headers=alice)
    assert resp.status == 200
    folders = {f["name"]: f for f in (await resp.json())["folders"]}
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= set(folders)
    assert (folders["INBOX"]["messages"], folders["INBOX"]["unseen"]) == (3, 2)
    assert folders["Sent"]["special_use"] == "\\Sent" and folders["INBOX"]["special_use"] is None
    assert (await resp.json())["folders"][0]["name"] == "INBOX"


async def test_nested_and_unicode_folders(api: TestClient, runtime, alice) -> None:
    account = await runtime.accounts.get_user("alice@example.com")
    await runtime.store.create_mailbox(account.id, "Lists/rmail")
    await runtime.store.create_mailbox(account.id, "Été")
    await fill(runtime, "alice@example.com", 2, "Lists/rmail")
    folders = {f["name"]: f for f in (await (await api.get("/folders", headers=alice)).json())["folders"]}
    assert folders["Lists/rmail"]["parent"] == "Lists" and folders["Lists/rmail"]["messages"] == 2
    for path in ("/folders/Lists%2Frmail/messages", "/folders/Lists/rmail/messages"):
        resp = await api.get(path, headers=alice)
        assert resp.status == 200 and (await resp.json())["total"] == 2
    resp = await api.get("/folders/%C3%89t%C3%A9/messages", headers=alice)
    assert resp.status == 200 and (await resp.json())["total"] == 0


async def test_folder_subscribed_is_the_name_in_the_subscription_list(api: TestClient, runtime, alice) -> None:
    account = await runtime.accounts.get_user("alice@example.com")
    await runtime.store.create_mailbox(account.id, "Lists/rmail")
    await runtime.store.set_subscribed(account.id, "Lists/rmail", True)
    await runtime.store.set_subscribed(account.id, "Junk", False)
    await runtime.store.set_subscribed(account.id, "Elsewhere", True)       # not a folder: not listed
    folders = {f["name"]: f for f in (await (await api.get("/folders", headers=alice)).json())["folders"]}
    assert {n: f["subscribed"] for n, f in folders.items()} == {
        "INBOX": True, "Archive": True, "Drafts": True, "Junk": False, "Lists": False, "Lists/rmail": True,
        "Sent": True, "Trash": True}


async def test_message_list_newest_first_with_entry_fields(api: TestClient, runtime, alice) -> None:
    await fill(runtime, "alice@example.com", 3)
    resp = await api.get("/folders/INBOX/messages", headers=alice)
    body = await resp.json()
    assert (body["total"], body["offset"], body["limit"]) == (3, 0, 25)
    assert [m["uid"] for m in body["messages"]] == [3, 2, 1]
    first = body["messages"][0]
    assert set(first) >= {"uid", "flags", "size", "date", "from", "to", "subject", "preview"}
    assert first["subject"] == "café" and "carol@example.org" in first["from"]
    assert first["preview"] == "Message number 3" and first["date"] == "2024-01-01T10:00:00Z"
    assert first["flags"] == [] and first["size"] == len(sample(3))


async def test_inbox_is_case_insensitive(api: TestClient, runtime, alice) -> None:
    await fill(runtime, "alice@example.com", 1)
    assert (await (await api.get("/folders/inbox/messages", headers=alice)).json())["total"] == 1


@pytest.mark.parametrize("query, uids", [
    ("offset=0&limit=2", [5, 4]), ("offset=2&limit=2", [3, 2]), ("offset=4&limit=2", [1]),
    ("offset=5", []), ("offset=1000", []), ("limit=0", []), ("limit=500", [5, 4, 3, 2, 1]),
])
async def test_pagination_edges(api: TestClient, runtime, alice, query: str, uids: list[int]) -> None:
    await fill(runtime, "alice@example.com", 5)
    resp = await api.get(f"/folders/INBOX/messages?{query}", headers=alice)
    body = await resp.json()
    assert resp.status == 200 and body["total"] == 5
    assert [m["uid"] for m in body["messages"]] == uids


@pytest.mark.parametrize("query", ["limit=501", "limit=-1", "limit=abc", "limit=1.5", "offset=-1", "offset=x",
                                   "limit=", "limit=%2B5", "limit=1_0", "offset=99999999999", "limit=1&limit=2"])
async def test_bad_pagination_is_400(api: TestClient, alice, query: str) -> None:
    resp = await api.get(f"/folders/INBOX/messages?{query}", headers=alice)
    assert resp.status == 400 and "error" in await resp.json()


async def test_get_message_json_and_raw(api: TestClient, runtime, alice) -> None:
    await fill(runtime, "alice@example.com", 1)
    resp = await api.get("/folders/INBOX/messages/1", headers=alice)
    body = await resp.json()
    assert resp.status == 200
    assert body["uid"] == 1 and body["text"].strip() == "Message number 1" and body["html"] is None
    assert body["message_id"] == "<m1@example.org>" and body["cc"] == "" and body["attachments"] == []
    assert {"name": "Subject", "value": "café"} in body["headers"]
    for headers, query in ((dict(alice, Accept="message/rfc822"), ""), (alice, "?format=raw")):
        raw = await api.get(f"/folders/INBOX/messages/1{query}", headers=headers)
        assert raw.status == 200 and raw.content_type == "message/rfc822"
        assert await raw.read() == sample(1)


async def test_get_message_with_attachment(api: TestClient, runtime, alice) -> None:
    box = await inbox_id(runtime, "alice@example.com")
    msg = (b"From: a@example.org\r\nSubject: att\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/html\r\n\r\n<p>Hi</p>\r\n"
           b"--XX\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--XX--\r\n")
    uid = await runtime.store.append(box, msg)
    body = await (await api.get(f"/folders/INBOX/messages/{uid}", headers=alice)).json()
    assert body["html"].strip() == "<p>Hi</p>"
    assert body["attachments"] == [{"filename": "a.pdf", "content_type": "application/pdf", "size": 5}]


@pytest.mark.parametrize("path, status", [
    ("/folders/INBOX/messages/99", 404), ("/folders/INBOX/messages/0", 400), ("/folders/INBOX/messages/abc", 400),
    ("/folders/INBOX/messages/4294967296", 400), ("/folders/Nope/messages", 404),
    ("/folders/INBOX/messages/1?format=xml", 400),
])
async def test_message_lookup_errors(api: TestClient, runtime, alice, path: str, status: int) -> None:
    await fill(runtime, "alice@example.com", 1)
    resp = await api.get(path, headers=alice)
    assert resp.status == status and "error" in await resp.json()


@pytest.mark.parametrize("path", [
    "/folders/..%2F..%2Fetc%2Fpasswd/messages", "/folders/%2E%2E/messages", "/folders/INBOX%2F..%2F..%2Fbob/messages",
    "/folders/bob@example.com%2FINBOX/messages", "/folders/%2Fetc%2Fpasswd/messages", "/folders/a%00b/messages",
    "/folders/..%2Fbob%40example.com%2FINBOX/messages", "/folders/%2A/messages", "/folders/%ED%A0%80/messages",
])
async def test_traversal_and_other_users_mail_are_unreachable(api: TestClient, runtime, alice, path: str) -> None:
    await fill(runtime, "bob@example.com", 2)
    resp = await api.get(path, headers=alice)
    assert resp.status in (400, 404)
    assert "error" in await resp.json()


async def test_same_folder_name_is_per_user(api: TestClient, runtime, alice, bob) -> None:
    await fill(runtime, "bob@example.com", 2)
    assert (await (await api.get("/folders/INBOX/messages", headers=alice)).json())["total"] == 0
    assert (await (await api.get("/folders/INBOX/messages", headers=bob)).json())["total"] == 2
    assert (await api.get("/folders/INBOX/messages/1", headers=alice)).status == 404
    assert (await api.delete("/folders/INBOX/messages/1", headers=alice)).status == 404
    assert (await (await api.get("/folders/INBOX/messages", headers=bob)).json())["total"] == 2


async def test_append_is_byte_identical(api: TestClient, runtime, alice) -> None:
    resp = await api.post("/folders/Drafts/messages", data=SAMPLE, headers=dict(alice, **{"Content-Type": "message/rfc822"}))
    assert resp.status == 201
    uid = (await resp.json())["uid"]
    assert resp.headers["Location"].endswith(f"/folders/Drafts/messages/{uid}")
    box = await inbox_id(runtime, "alice@example.com", "Drafts")
    meta = (await runtime.store.get_meta(box, [uid]))[0]
    assert await runtime.store.read_message(meta.blob_id) == SAMPLE


async def test_append_refusals(api: TestClient, runtime, alice) -> None:
    raw = dict(alice, **{"Content-Type": "message/rfc822"})
    assert (await api.post("/folders/INBOX/messages", data=SAMPLE, headers=dict(alice, **{"Content-Type": "text/plain"}))).status == 415
    assert (await api.post("/folders/INBOX/messages", data=b"", headers=raw)).status == 400
    assert (await api.post("/folders/Nope/messages", data=SAMPLE, headers=raw)).status == 404
    big = b"Subject: x\r\n\r\n" + b"x" * runtime.config.limits.message_size
    resp = await api.post("/folders/INBOX/messages", data=big, headers=raw)
    assert resp.status == 413 and "error" in await resp.json()


async def test_append_oversize_chunked_body_is_413(api: TestClient, runtime, alice) -> None:
    async def chunks():
        for _ in range(runtime.config.limits.message_size // 65536 + 2):
            yield b"x" * 65536
    resp = await api.post("/folders/INBOX/messages", data=chunks(), headers=dict(alice, **{"Content-Type": "message/rfc822"}))
    assert resp.status == 413


async def test_patch_flags_replaces_the_set(api: TestClient, runtime, alice) -> None:
    await fill(runtime, "alice@example.com", 1)
    box = await inbox_id(runtime, "alice@example.com")
    await runtime.store.store_flags(box, [1], "set", ["\\Answered", "old"])
    resp = await api.patch("/folders/INBOX/messages/1/flags", json={"flags": ["\\Seen", "\\Flagged", "$label"]}, headers=alice)
    assert resp.status == 200
    assert await resp.json() == {"uid": 1, "flags": ["\\Seen", "\\Flagged", "$label"]}
    assert (await runtime.store.get_meta(box, [1]))[0].flags == {"\\Seen", "\\Flagged", "$label"}
    resp = await api.patch("/folders/INBOX/messages/1/flags", json={"flags": []}, headers=alice)
    assert (await resp.json())["flags"] == []


@pytest.mark.parametrize("body, status", [
    ({"flags": ["\\Bogus"]}, 400), ({"flags": ["\\Recent"]}, 400), ({"flags": "\\Seen"}, 400), ({}, 400),
    ({"flags": [1]}, 400), ({"flags": ["bad keyword"]}, 400), ({"flags": ["k%d" % i for i in range(101)]}, 400),
])
async def test_patch_flags_refusals(api: TestClient, runtime, alice, body: dict, status: int) -> None:
    await fill(runtime, "alice@example.com", 1)
    resp = await api.patch("/folders/INBOX/messages/1/flags", json=body, headers=alice)
    assert resp.status == status and "error" in await resp.json()


async def test_patch_flags_unknown_message_is_404(api: TestClient, alice) -> None:
    resp = await api.patch("/folders/INBOX/messages/7/flags", json={"flags": ["\\Seen"]}, headers=alice)
    assert resp.status == 404


async def test_delete_message(api: TestClient, runtime, alice) -> None:
    await fill(runtime, "alice@example.com", 2)
    resp = await api.delete("/folders/INBOX/messages/1", headers=alice)
    assert resp.status == 204
    assert (await api.delete("/folders/INBOX/messages/1", headers=alice)).status == 404
    body = await (await api.get("/folders/INBOX/messages", headers=alice)).json()
    assert [m["uid"] for m in body["messages"]] == [2]
