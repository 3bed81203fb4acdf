"""The API over real HTTP: the curl examples of SPEC Part 1, and cross-protocol checks with IMAP."""

from __future__ import annotations

import imaplib
import json
import subprocess
from typing import Iterator

import pytest

from ..conftest import PASSWORD
from ..helpers.clients import require_client
from .conftest import SAMPLE
from .live import LiveServer, start_live, stop_live


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_live(tmp_path_factory.mktemp("live") / "data")
    yield server
    stop_live(server)


def curl(*args: str) -> tuple[int, bytes]:
    """Run curl; returns (HTTP status, body)."""
    exe = require_client("curl")
    out = subprocess.run([exe, "-s", "-S", "--max-time", "30", "-w", "\n%{http_code}", *args],
                         capture_output=True, check=True, timeout=60).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


def test_curl_examples_from_the_spec(live: LiveServer) -> None:
    base = live.base_url
    status, body = curl("-X", "POST", f"{base}/auth/login", "-H", "Content-Type: application/json",
                        "-d", json.dumps({"username": "alice", "password": PASSWORD, "domain": "example.com"}))
    assert status == 200
    token = json.loads(body)["token"]
    auth = ["-H", f"Authorization: Bearer {token}"]
    status, body = curl(f"{base}/folders", *auth)
    assert status == 200 and "INBOX" in [f["name"] for f in json.loads(body)["folders"]]
    status, body = curl("-X", "POST", f"{base}/messages/send", *auth, "-H", "Content-Type: application/json",
                        "-d", '{"to":["bob@example.com", "alice@example.com"],"subject":"Hello","body":"Test"}')
    assert status == 202 and json.loads(body)["message_id"]
    status, body = curl(f"{base}/folders/INBOX/messages?offset=0&limit=25", *auth)
    listing = json.loads(body)
    assert status == 200 and listing["total"] >= 1
    uid = listing["messages"][0]["uid"]
    status, body = curl(f"{base}/folders/INBOX/messages/{uid}", *auth)
    assert status == 200 and json.loads(body)["subject"] == "Hello"
    status, body = curl("-X", "PATCH", f"{base}/folders/INBOX/messages/{uid}/flags", *auth,
                        "-H", "Content-Type: application/json", "-d", '{"flags":["\\\\Seen","\\\\Flagged"]}')
    assert status == 200 and json.loads(body)["flags"] == ["\\Seen", "\\Flagged"]
    status, _ = curl("-X", "DELETE", f"{base}/folders/INBOX/messages/{uid}", *auth)
    assert status == 204
    admin = ["-H", f"Authorization: Bearer {live.token('bob@example.com')}"]
    status, body = curl("-X", "POST", f"{base}/aliases", *admin, "-H", "Content-Type: application/json",
                        "-d", '{"pattern":"sales-.*","target":"alice"}')
    assert status == 201, body
    status, _ = curl("-X", "DELETE", f"{base}/aliases/sales-.*", *admin)
    assert status == 204
    status, _ = curl("-X", "POST", f"{base}/aliases", *auth, "-H", "Content-Type: application/json",
                     "-d", '{"pattern":"x","target":"alice"}')
    assert status == 403


def test_curl_raw_append_and_download(live: LiveServer, tmp_path) -> None:
    base = live.base_url
    auth = ["-H", f"Authorization: Bearer {live.token('alice@example.com')}"]
    eml = tmp_path / "m.eml"
    eml.write_bytes(SAMPLE)
    status, body = curl("-X", "POST", f"{base}/folders/Drafts/messages", *auth,
                        "-H", "Content-Type: message/rfc822", "--data-binary", f"@{eml}")
    assert status == 201
    uid = json.loads(body)["uid"]
    status, raw = curl(f"{base}/folders/Drafts/messages/{uid}", *auth, "-H", "Accept: message/rfc822")
    assert status == 200 and raw == SAMPLE
    status, raw = curl(f"{base}/folders/Drafts/messages/{uid}?format=raw", *auth)
    assert raw == SAMPLE


def test_curl_preflight_and_errors(live: LiveServer) -> None:
    exe = require_client("curl")
    out = subprocess.run([exe, "-s", "-i", "-X", "OPTIONS", f"{live.base_url}/folders",
                          "-H", "Origin: https://webmail.example", "-H", "Access-Control-Request-Method: GET"],
                         capture_output=True, check=True, timeout=60).stdout.decode()
    assert out.startswith("HTTP/1.1 204") and "access-control-allow-origin: *" in out.lower()
    status, body = curl(f"{live.base_url}/folders")
    assert status == 401 and "error" in json.loads(body)
    status, body = curl(f"{live.base_url}/folders", "-H", "Authorization: Bearer not.a.token")
    assert status == 401
    status, body = curl(f"{live.base_url}/nope")
    assert status == 404 and "error" in json.loads(body)


def imap_port(live: LiveServer) -> int:
    for listener in live.runtime.listeners:
        if listener.protocol == "imap":
            return listener.port
    pytest.skip("the IMAP server (rmail.server.imap) is not built yet")


def test_sent_message_is_byte_identical_over_imap(live: LiveServer) -> None:
    port = imap_port(live)
    import urllib.request
    req = urllib.request.Request(f"{live.base_url}/messages/send", method="POST", headers={
        "Authorization": f"Bearer {live.token('alice@example.com')}", "Content-Type": "application/json"},
        data=json.dumps({"to": ["bob@example.com"], "subject": "über IMAP", "body": "Grüße"}).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        message_id = json.load(resp)["message_id"]

    def fetch(user: str, folder: str) -> bytes:
        imap = imaplib.IMAP4("127.0.0.1", port)
        try:
            imap.login(user, PASSWORD)
            imap.select(folder, readonly=True)
            _, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
            uid = data[0].split()[-1]
            _, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            return fetched[0][1]
        finally:
            imap.logout()

    # The recipient's copy is the Sent copy under the trace fields local delivery adds on top
    # (Return-Path, RFC 5321 §4.4, and rmail's DKIM signatures); nothing else differs.
    sent, received = fetch("alice@example.com", "Sent"), fetch("bob@example.com", "INBOX")
    assert received.startswith(b"Return-Path: <alice@example.com>\r\n") and received.endswith(sent)


def test_flags_cross_between_imap_and_api(live: LiveServer) -> None:
    port = imap_port(live)
    import urllib.request
    token = live.token("alice@example.com")

    async def seed() -> int:
        account = await live.runtime.accounts.get_user("alice@example.com")
        box = await live.runtime.store.create_mailbox(account.id, "Cross")
        return await live.runtime.store.append(box.id, SAMPLE)
    uid = live.run(seed())

    def api_flags() -> list[str]:
        req = urllib.request.Request(f"{live.base_url}/folders/Cross/messages/{uid}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)["flags"]

    imap = imaplib.IMAP4("127.0.0.1", port)
    try:
        imap.login("alice@example.com", PASSWORD)
        imap.select("Cross")
        imap.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")
        assert "\\Flagged" in api_flags()
        req = urllib.request.Request(f"{live.base_url}/folders/Cross/messages/{uid}/flags", method="PATCH",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                                     data=json.dumps({"flags": ["\\Seen", "$Work"]}).encode())
        urllib.request.urlopen(req, timeout=30).close()
        imap.noop()
        _, data = imap.uid("FETCH", str(uid), "(FLAGS)")
        flags = data[0].decode()
        assert "\\Seen" in flags and "$Work" in flags and "\\Flagged" not in flags
    finally:
        imap.logout()
