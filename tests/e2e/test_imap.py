"""IMAP on 143 and 993 with imaplib (SPEC Part 1 "Reading mail via IMAP", Part 3 details)."""

from __future__ import annotations

import imaplib
import time

import pytest

from rmail.e2e.clients import (capabilities, fetch_body, fetch_flags, imap, imap_login, imap_ok, message,
                               quote_mailbox, smtp_send, uid_search)
from rmail.e2e.target import Target

ALWAYS = {"IMAP4REV1", "IDLE", "SPECIAL-USE", "NAMESPACE", "UIDPLUS", "MOVE", "ID", "ENABLE", "UNSELECT", "LITERAL+"}


def test_capabilities_before_login(target: Target) -> None:
    client = imap(target, starttls=False)
    try:
        caps = capabilities(client)
        assert ALWAYS <= caps, ALWAYS - caps
        if target.tls:
            assert {"STARTTLS", "LOGINDISABLED"} <= caps
            assert not any(c.startswith("AUTH=") for c in caps)
        else:
            assert {"AUTH=PLAIN", "AUTH=LOGIN"} <= caps
    finally:
        client.shutdown()


def test_login_refused_in_clear_when_tls_is_configured(target: Target) -> None:
    if not target.tls:
        pytest.skip("TLS is not configured on the target")
    client = imap(target, starttls=False)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            client.login(target.alice.address, target.alice.password)
    finally:
        client.shutdown()


def test_login_after_starttls(target: Target) -> None:
    client = imap(target)
    try:
        caps = capabilities(client)
        assert {"AUTH=PLAIN", "AUTH=LOGIN"} <= caps and "STARTTLS" not in caps
        assert client.login(target.alice.address, target.alice.password)[0] == "OK"
    finally:
        client.logout()


def test_authenticate_plain_on_imaps(target: Target) -> None:
    protocol = "imaps" if target.tls else "imap"
    client = imap(target, protocol)
    try:
        user = target.bob
        typ, _ = client.authenticate("PLAIN", lambda _: f"\0{user.address}\0{user.password}".encode())
        assert typ == "OK"
    finally:
        client.logout()


def test_login_in_clear_without_tls(plain_target: Target) -> None:
    client = imap(plain_target)
    try:
        assert client.login(plain_target.alice.address, plain_target.alice.password)[0] == "OK"
    finally:
        client.logout()


def test_wrong_password_is_refused(target: Target) -> None:
    client = imap(target)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            client.login(target.alice.address, "not-" + target.alice.password)
    finally:
        client.shutdown()


def test_list_shows_special_use_folders(target: Target) -> None:
    client = imap_login(target, target.alice)
    try:
        lines = [line.decode() for line in imap_ok(client.list()) if line]
        assert any(line.endswith('"INBOX"') or line.endswith(" INBOX") for line in lines), lines
        uses = " ".join(lines)
        for use in ("\\Sent", "\\Drafts", "\\Trash"):
            assert use in uses, f"{use} missing from LIST: {lines}"
    finally:
        client.logout()


def test_mailbox_round_trip(target: Target) -> None:
    """CREATE, APPEND, SELECT, SEARCH, FETCH, STORE, COPY, MOVE, EXPUNGE on a fresh folder."""
    client = imap_login(target, target.alice)
    box, other = target.unique("Box"), target.unique("Other")
    try:
        imap_ok(client.create(quote_mailbox(box)))
        imap_ok(client.create(quote_mailbox(other)))
        data = [message("x@example.net", target.alice.address, f"round trip {n}") for n in range(3)]
        for d in data:
            imap_ok(client.append(quote_mailbox(box), None, None, d))
        assert imap_ok(client.select(quote_mailbox(box)))[0] == b"3"
        uids = uid_search(client, "ALL")
        assert len(uids) == 3
        assert [fetch_body(client, uid) for uid in uids] == data
        assert uid_search(client, "SUBJECT", '"round trip 1"') == [uids[1]]
        assert uid_search(client, "UNSEEN") == uids

        imap_ok(client.uid("STORE", str(uids[0]), "+FLAGS", "(\\Seen \\Flagged)"))
        assert {"\\Seen", "\\Flagged"} <= fetch_flags(client, uids[0])
        assert uid_search(client, "FLAGGED") == [uids[0]]
        assert uid_search(client, "OR", "SEEN", "SUBJECT", '"round trip 2"') == [uids[0], uids[2]]

        imap_ok(client.uid("COPY", str(uids[1]), quote_mailbox(other)))
        imap_ok(client.uid("MOVE", str(uids[2]), quote_mailbox(other)))
        assert uid_search(client, "ALL") == uids[:2]

        imap_ok(client.uid("STORE", str(uids[0]), "+FLAGS", "(\\Deleted)"))
        imap_ok(client.expunge())
        assert uid_search(client, "ALL") == [uids[1]]

        status = imap_ok(client.status(quote_mailbox(other), "(MESSAGES)"))[0].decode()
        assert "MESSAGES 2" in status, status
        imap_ok(client.close())
    finally:
        for name in (box, other):
            client.delete(quote_mailbox(name))
        client.logout()


def _read_until(client: imaplib.IMAP4, needle: bytes, timeout: float) -> bytes:
    """Read response lines until one contains ``needle``; a silent server fails the check."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {needle!r} within {timeout}s; got {seen!r}")
        client.sock.settimeout(remaining)
        try:
            seen += client.readline()
        except TimeoutError:
            raise AssertionError(f"no {needle!r} within {timeout}s; got {seen!r}") from None
    return seen


def test_idle_announces_new_mail(target: Target) -> None:
    """RFC 2177: a client in IDLE hears "* n EXISTS" when mail arrives over SMTP."""
    client = imap_login(target, target.bob)
    try:
        imap_ok(client.select("INBOX"))
        tag = client._new_tag()
        client.send(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
        subject = target.unique("idle")
        smtp_send(target, "smtp", "someone@example.net", [target.bob.address],
                  message("someone@example.net", target.bob.address, subject))
        assert b"EXISTS" in _read_until(client, b"EXISTS", 10)
        client.send(b"DONE\r\n")
        assert b"OK" in _read_until(client, tag, 10)
        assert uid_search(client, "SUBJECT", f'"{subject}"')
    finally:
        client.logout()
