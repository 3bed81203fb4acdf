"""POST /messages/send: MIME building, delivery, Sent copy, Bcc, header injection, limits."""

from __future__ import annotations

import base64
import email
from email import policy
import time
from typing import Sequence

import pytest
from aiohttp.test_utils import TestClient

from rmail.server.core.storage.mail import Outbound
from rmail.server.runtime import ServerRuntime

from .conftest import inbox_id


async def only_message(rt: ServerRuntime, address: str, folder: str) -> tuple[bytes, frozenset[str]]:
    box = await inbox_id(rt, address, folder)
    metas = await rt.store.list_messages(box)
    assert len(metas) == 1, f"{address} {folder}: {len(metas)} messages"
    return await rt.store.read_message(metas[0].blob_id), metas[0].flags


async def test_send_delivers_and_files_in_sent(api: TestClient, runtime, alice) -> None:
    resp = await api.post("/messages/send", headers=alice, json={
        "to": ["bob@example.com"], "bcc": ["carol@example.com"], "subject": "Grüße aus Köln",
        "body": "Hällo Bob\n" + "long " * 400, "html": "<p>Hällo</p>"})
    assert resp.status == 400  # carol does not exist: an unknown local recipient is refused before delivery
    await runtime.accounts.add_user("carol@example.com", "pw-carol")
    resp = await api.post("/messages/send", headers=alice, json={
        "to": ["bob@example.com"], "bcc": ["carol@example.com"], "subject": "Grüße aus Köln",
        "body": "Hällo Bob\n" + "long " * 400, "html": "<p>Hällo</p>"})
    assert resp.status == 202
    message_id = (await resp.json())["message_id"]
    assert message_id.startswith("<") and message_id.endswith("@mail.example.com>")
    sent, sent_flags = await only_message(runtime, "alice@example.com", "Sent")
    inbox, _ = await only_message(runtime, "bob@example.com", "INBOX")
    bcc_copy, _ = await only_message(runtime, "carol@example.com", "INBOX")
    # Local copies differ from the Sent copy only by the trace fields delivery puts on top
    # (Return-Path, RFC 5321 §4.4; rmail's DKIM signatures).
    assert inbox == bcc_copy and inbox.endswith(sent)
    assert inbox.startswith(b"Return-Path: <alice@example.com>\r\n")
    assert "\\Seen" in sent_flags
    assert b"Bcc" not in sent and b"carol@" not in sent
    assert b"=?utf-8?" in sent.split(b"\r\n\r\n")[0]          # RFC 2047 subject
    assert all(len(line) <= 998 for line in sent.split(b"\r\n"))
    msg = email.message_from_bytes(sent, policy=policy.default)
    assert msg["Subject"] == "Grüße aus Köln" and msg["From"] == "alice@example.com"
    assert msg["Message-ID"] == message_id and msg["Date"] is not None and msg["To"] == "bob@example.com"
    assert msg.get_body(("plain",)).get_content().startswith("Hällo Bob")
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hällo</p>"


async def test_send_with_attachment_and_single_string_to(api: TestClient, runtime, alice) -> None:
    payload = b"%PDF-1.4 \x00\xff binary"
    resp = await api.post("/messages/send", headers=alice, json={
        "to": "bob@example.com", "cc": ["alice@example.com"], "subject": "report", "body": "see attached",
        "attachments": [{"filename": "résumé.pdf", "content_type": "application/pdf",
                         "content_base64": base64.b64encode(payload).decode()}]})
    assert resp.status == 202
    inbox, _ = await only_message(runtime, "bob@example.com", "INBOX")
    msg = email.message_from_bytes(inbox, policy=policy.default)
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["résumé.pdf"]
    assert attachments[0].get_content() == payload and msg["Cc"] == "alice@example.com"
    # The message view agrees with what was sent.
    view = await (await api.get("/folders/INBOX/messages/1", headers=alice)).json()  # alice was Cc'd
    assert view["attachments"] == [{"filename": "résumé.pdf", "content_type": "application/pdf", "size": len(payload)}]


@pytest.mark.parametrize("payload", [
    {"to": ["bob@example.com"], "subject": "hi\r\nBcc: victim@example.org", "body": "x"},
    {"to": ["bob@example.com"], "subject": "hi\nX-Injected: 1", "body": "x"},
    {"to": ["bob@example.com\r\nBcc: victim@example.org"], "subject": "hi", "body": "x"},
    {"to": ["bob@example.com"], "subject": "ok", "body": "x",
     "attachments": [{"filename": "a\r\nX-Evil: 1", "content_base64": ""}]},
    {"to": ["bob@example.com"], "subject": "ok", "body": "x",
     "attachments": [{"filename": "a", "content_type": "text/plain\r\nX-Evil: 1", "content_base64": ""}]},
])
async def test_header_injection_is_refused(api: TestClient, runtime, alice, payload: dict) -> None:
    resp = await api.post("/messages/send", headers=alice, json=payload)
    assert resp.status == 400 and "error" in await resp.json()
    bob_inbox = await inbox_id(runtime, "bob@example.com")
    assert await runtime.store.list_messages(bob_inbox) == []


@pytest.mark.parametrize("payload", [
    {"subject": "no recipients", "body": "x"},
    {"to": [], "subject": "s", "body": "x"},
    {"to": ["not an address"], "subject": "s", "body": "x"},
    {"to": ["bob@example.com"], "body": "no subject"},
    {"to": ["bob@example.com"], "subject": "no body"},
    {"to": ["bob@example.com"], "subject": "s", "body": 5},
    {"to": [5], "subject": "s", "body": "x"},
    {"to": ["bob@example.com"], "subject": "s", "body": "x", "attachments": "nope"},
    {"to": ["bob@example.com"], "subject": "s", "body": "x", "attachments": [{"filename": "a", "content_base64": "!!"}]},
    {"to": ["bob@example.com"], "subject": "s", "body": "x",
     "attachments": [{"filename": "a", "content_type": "message/rfc822", "content_base64": ""}]},
    {"to": ["bob@example.com"], "subject": "s", "body": "\ud800"},
    {"to": ["nobody@example.com"], "subject": "s", "body": "x"},
])
async def test_invalid_send_requests_are_400(api: TestClient, alice, payload: dict) -> None:
    resp = await api.post("/messages/send", headers=alice, json=payload)
    assert resp.status == 400, await resp.text()
    assert "error" in await resp.json()


async def test_too_many_recipients(api: TestClient, runtime, alice) -> None:
    many = [f"u{i}@example.com" for i in range(runtime.config.limits.recipients + 1)]
    resp = await api.post("/messages/send", headers=alice, json={"to": many, "subject": "s", "body": "x"})
    assert resp.status == 400


async def test_oversized_send_is_413(api: TestClient, runtime, alice) -> None:
    blob = base64.b64encode(b"x" * (runtime.config.limits.message_size + 10)).decode()
    resp = await api.post("/messages/send", headers=alice, json={
        "to": ["bob@example.com"], "subject": "s", "body": "x",
        "attachments": [{"filename": "big", "content_base64": blob}]})
    assert resp.status == 413 and "error" in await resp.json()


class RecordingOutbound:
    def __init__(self) -> None:
        self.queued: list[tuple[str, list[str]]] = []

    def entries_for(self, sender: str, recipients: Sequence[str]) -> Outbound:
        self.queued.append((sender, list(recipients)))
        return Outbound(sender, tuple(recipients), time.time())

    def wake(self) -> None:
        pass


async def test_remote_recipient_goes_to_the_outbound_queue(api: TestClient, runtime, alice, monkeypatch) -> None:
    outbound = RecordingOutbound()
    monkeypatch.setattr(runtime.delivery, "outbound", outbound)
    resp = await api.post("/messages/send", headers=alice, json={
        "to": ["someone@remote.example.org", "bob@example.com"], "subject": "s", "body": "x"})
    assert resp.status == 202
    assert outbound.queued == [("alice@example.com", ["someone@remote.example.org"])]
    inbox, _ = await only_message(runtime, "bob@example.com", "INBOX")
    # One copy of the bytes for both, stored in one transaction (the queue drops Return-Path
    # when relaying).
    [entry] = await runtime.backend.queue.list()
    assert entry.recipient == "someone@remote.example.org"
    assert await runtime.store.read_message(entry.blob_id) == inbox
    assert inbox.startswith(b"Return-Path: <alice@example.com>\r\n")


async def test_remote_recipient_without_outbound_is_503(api: TestClient, runtime, alice, monkeypatch) -> None:
    monkeypatch.setattr(runtime.delivery, "outbound", None)
    resp = await api.post("/messages/send", headers=alice, json={
        "to": ["someone@remote.example.org", "bob@example.com"], "subject": "s", "body": "x"})
    assert resp.status == 503 and "Retry-After" in resp.headers and "error" in await resp.json()
    # Nothing was delivered or filed: the client can retry the whole send.
    assert await runtime.store.list_messages(await inbox_id(runtime, "bob@example.com")) == []
    assert await runtime.store.list_messages(await inbox_id(runtime, "alice@example.com", "Sent")) == []


async def test_send_without_a_sent_folder_still_delivers(api: TestClient, runtime, alice) -> None:
    account = await runtime.accounts.get_user("alice@example.com")
    await runtime.store.delete_mailbox(account.id, "Sent")
    resp = await api.post("/messages/send", headers=alice, json={"to": "bob@example.com", "subject": "s", "body": "x"})
    assert resp.status == 202
    assert "no Sent folder" in (await resp.json())["warning"]
    await only_message(runtime, "bob@example.com", "INBOX")


async def test_send_reports_success_when_only_filing_in_sent_fails(api: TestClient, runtime, alice,
                                                                   monkeypatch) -> None:
    """Once delivered, a failed Sent copy must not make the client send the mail again."""
    from rmail.server.core.errors import TemporaryFailure
    real_append = runtime.store.append

    async def failing_append(mailbox_id, data, flags=(), internaldate=None):  # noqa: ANN001, ANN202
        raise TemporaryFailure("the store could not be written; try again")
    monkeypatch.setattr(runtime.store, "append", failing_append)
    resp = await api.post("/messages/send", headers=alice, json={"to": "bob@example.com", "subject": "s", "body": "x"})
    monkeypatch.setattr(runtime.store, "append", real_append)
    assert resp.status == 202
    body = await resp.json()
    assert body["message_id"] and "could not be filed in Sent" in body["warning"]
    await only_message(runtime, "bob@example.com", "INBOX")
