"""One mailbox, three protocols: what one changes, the others see (same UIDs, bytes, flags)."""

from __future__ import annotations

import imaplib
import time
from typing import Callable

from rmail.e2e.clients import Api, fetch_body, fetch_flags, folder_path, imap_login, imap_ok, message, smtp_send, \
    uid_search
from rmail.e2e.target import Backend, Target

#: How long an IMAP session may take to learn of a change made over REST (RFC 3501 §6.1.2:
#: NOOP is how a client polls; the server reports what it has learnt by then).
SETTLE = 5.0


def eventually(client: imaplib.IMAP4, check: Callable[[], bool]) -> bool:
    """NOOP until ``check()`` holds or SETTLE seconds pass."""
    deadline = time.monotonic() + SETTLE
    while True:
        imap_ok(client.noop())
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_smtp_mail_is_the_same_over_imap_and_rest(target: Target, backend: Backend) -> None:
    subject = target.unique("cross")
    data = message("someone@example.net", target.alice.address, subject)
    smtp_send(target, "smtp", "someone@example.net", [target.alice.address], data)
    [(uid, stored)] = backend.wait_for_message(target.alice.address, subject)

    client = imap_login(target, target.alice)
    api = Api(target)
    api.login(target.alice)
    try:
        imap_ok(client.select("INBOX"))
        assert uid_search(client, "SUBJECT", f'"{subject}"') == [uid]
        assert fetch_body(client, uid) == stored
        rest = api.request("GET", folder_path("INBOX", "messages", str(uid)), headers={"Accept": "message/rfc822"})
        assert rest.status == 200 and rest.body == stored

        # IMAP → REST
        imap_ok(client.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)"))
        assert "\\Flagged" in api.request("GET", folder_path("INBOX", "messages", str(uid))).json()["flags"]
        # REST → IMAP (a NOOP lets the session see the change)
        assert api.request("PATCH", folder_path("INBOX", "messages", str(uid), "flags"),
                           {"flags": ["\\Seen", "\\Answered"]}).status == 200
        want = {"\\Seen", "\\Answered"}
        assert eventually(client, lambda: fetch_flags(client, uid) - {"\\Recent"} == want), fetch_flags(client, uid)
        # REST delete → gone for IMAP
        assert api.request("DELETE", folder_path("INBOX", "messages", str(uid))).status == 204
        assert eventually(client, lambda: uid_search(client, "SUBJECT", f'"{subject}"') == [])
    finally:
        client.logout()


def test_rest_append_is_imap_uid(target: Target) -> None:
    box = target.unique("Cross")
    raw = message("carol@example.org", target.bob.address, target.unique("append"))
    client = imap_login(target, target.bob)
    api = Api(target)
    api.login(target.bob)
    try:
        imap_ok(client.create(f'"{box}"'))
        created = api.request("POST", folder_path(box, "messages"), raw=raw, headers={"Content-Type": "message/rfc822"})
        assert created.status == 201
        uid = created.json()["uid"]
        imap_ok(client.select(f'"{box}"'))
        assert uid_search(client, "ALL") == [uid]
        assert fetch_body(client, uid) == raw
        folders = {f["name"]: f for f in api.request("GET", "/folders").json()["folders"]}
        assert folders[box]["messages"] == 1 and folders[box]["unseen"] == 1
        imap_ok(client.close())
    finally:
        client.delete(f'"{box}"')
        client.logout()
