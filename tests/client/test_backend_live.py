"""ImapSmtpBackend against a real rmail runtime on free ports (IMAP + SMTP submission).

The backend blocks, so every call runs in a thread while the server runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from dataclasses import replace

import pytest

if importlib.util.find_spec("rmail.server.runtime") is None:  # pragma: no cover - early project stage
    pytest.skip("rmail.server.runtime is not built yet", allow_module_level=True)

from rmail.client.backend import AuthenticationFailed, ImapSmtpBackend, MailError, SendFailed, UntrustedCertificate
from rmail.client.compose import Draft, build_message
from rmail.client.model import AccountSettings, SearchQuery, Security
from rmail.client.tlstrust import fingerprint_of
from tests.conftest import PASSWORD


def settings_for(rt, user: str, security: Security = Security.NONE) -> AccountSettings:  # noqa: ANN001
    return AccountSettings("127.0.0.1", rt.port("imap"), rt.port("submission"), security, user, timeout=10)


def message(subject: str, body: str = "Hello Bob.\n", sender: str = "alice@example.com", to: str = "bob@example.com") -> bytes:
    return build_message(Draft(sender=sender, to=to, subject=subject, body=body))


async def test_send_list_fetch_search_flag_move(runtime) -> None:  # noqa: ANN001
    alice = ImapSmtpBackend(settings_for(runtime, "alice@example.com"), PASSWORD)
    bob = ImapSmtpBackend(settings_for(runtime, "bob@example.com"), PASSWORD)
    try:
        await asyncio.to_thread(alice.connect)
        await asyncio.to_thread(bob.connect)
        await asyncio.to_thread(alice.send, "alice@example.com", ["bob@example.com"], message("Quarterly report", "numbers inside\n"))
        await asyncio.to_thread(alice.send, "alice@example.com", ["bob@example.com"], message("Lunch?", "pizza\n"))

        folders = await asyncio.to_thread(bob.list_folders)
        inbox = folders[0]
        assert inbox.name == "INBOX" and inbox.total == 2 and inbox.unseen == 2
        specials = {f.special_use: f.name for f in folders if f.special_use}
        assert {"\\Sent", "\\Trash", "\\Drafts"} <= set(specials)

        uids = await asyncio.to_thread(bob.folder_uids, "INBOX")
        assert len(uids) == 2
        summaries = await asyncio.to_thread(bob.fetch_summaries, "INBOX", list(reversed(uids)))
        assert [s.subject for s in summaries] == ["Lunch?", "Quarterly report"]
        assert summaries[0].sender[0].email == "alice@example.com" and not summaries[0].seen
        assert summaries[0].message_id.startswith("<")

        raw = await asyncio.to_thread(bob.fetch_message, "INBOX", uids[0])
        assert b"numbers inside" in raw
        # BODY.PEEK must not set \Seen.
        again = await asyncio.to_thread(bob.fetch_summaries, "INBOX", [uids[0]])
        assert not again[0].seen

        found = await asyncio.to_thread(bob.search, "INBOX", SearchQuery((("subject", "quarterly"),)))
        assert found == [uids[0]]
        found = await asyncio.to_thread(bob.search, "INBOX", SearchQuery((("body", "pizza"), ("from", "alice"))))
        assert found == [uids[1]]
        found = await asyncio.to_thread(bob.search, "INBOX", SearchQuery((("subject", "größe"),)))
        assert found == []

        await asyncio.to_thread(bob.store_flags, "INBOX", [uids[0]], ["\\Flagged", "\\Seen"], True)
        flagged = (await asyncio.to_thread(bob.fetch_summaries, "INBOX", [uids[0]]))[0]
        assert flagged.flagged and flagged.seen

        await asyncio.to_thread(bob.move, "INBOX", [uids[0]], specials["\\Trash"])
        assert await asyncio.to_thread(bob.folder_uids, "INBOX") == [uids[1]]
        trash = await asyncio.to_thread(bob.folder_uids, specials["\\Trash"])
        assert len(trash) == 1
        await asyncio.to_thread(bob.copy, "INBOX", [uids[1]], specials["\\Trash"])
        assert len(await asyncio.to_thread(bob.folder_uids, specials["\\Trash"])) == 2
        await asyncio.to_thread(bob.expunge, specials["\\Trash"], trash)
        assert len(await asyncio.to_thread(bob.folder_uids, specials["\\Trash"])) == 1

        await asyncio.to_thread(bob.append, specials["\\Sent"], message("Filed copy", sender="bob@example.com", to="alice@example.com"), ["\\Seen"])
        sent = await asyncio.to_thread(bob.fetch_summaries, specials["\\Sent"], await asyncio.to_thread(bob.folder_uids, specials["\\Sent"]))
        assert [s.subject for s in sent] == ["Filed copy"] and sent[0].seen

        await asyncio.to_thread(bob.create_folder, "Projects/Entwürfe")
        names = [f.name for f in await asyncio.to_thread(bob.list_folders)]
        assert "Projects/Entwürfe" in names
    finally:
        await asyncio.to_thread(alice.close)
        await asyncio.to_thread(bob.close)


async def test_wrong_password_is_authentication_failed(runtime) -> None:  # noqa: ANN001
    backend = ImapSmtpBackend(settings_for(runtime, "alice@example.com"), "not-the-password")
    with pytest.raises(AuthenticationFailed):
        await asyncio.to_thread(backend.connect)
    with pytest.raises(AuthenticationFailed):
        await asyncio.to_thread(backend.send, "alice@example.com", ["bob@example.com"], message("x"))


async def test_unknown_recipient_is_send_failed(runtime) -> None:  # noqa: ANN001
    backend = ImapSmtpBackend(settings_for(runtime, "alice@example.com"), PASSWORD)
    with pytest.raises(SendFailed):
        await asyncio.to_thread(backend.send, "alice@example.com", ["nobody@example.com"], message("x", to="nobody@example.com"))


async def test_idle_reports_new_mail(runtime) -> None:  # noqa: ANN001
    bob = ImapSmtpBackend(settings_for(runtime, "bob@example.com"), PASSWORD)
    alice = ImapSmtpBackend(settings_for(runtime, "alice@example.com"), PASSWORD)
    stop = threading.Event()
    try:
        waiting = asyncio.create_task(asyncio.to_thread(bob.idle, "INBOX", stop.is_set, 20))
        await asyncio.sleep(0.3)  # let IDLE start
        await asyncio.to_thread(alice.send, "alice@example.com", ["bob@example.com"], message("Ping"))
        assert await asyncio.wait_for(waiting, 15) is True
        # A stop request ends a quiet wait early with False.
        quiet = asyncio.create_task(asyncio.to_thread(bob.idle, "INBOX", stop.is_set, 20))
        await asyncio.sleep(0.3)
        stop.set()
        assert await asyncio.wait_for(quiet, 5) is False
    finally:
        stop.set()
        await asyncio.to_thread(bob.close)


async def test_reconnects_after_the_connection_drops(runtime) -> None:  # noqa: ANN001
    bob = ImapSmtpBackend(settings_for(runtime, "bob@example.com"), PASSWORD)
    try:
        await asyncio.to_thread(bob.connect)
        await asyncio.to_thread(bob.folder_uids, "INBOX")
        bob._imap.shutdown()  # simulate a dropped socket
        assert await asyncio.to_thread(bob.folder_uids, "INBOX") == []
    finally:
        await asyncio.to_thread(bob.close)


async def test_self_signed_certificate_is_pinned_by_fingerprint(tls_runtime, tls_files) -> None:  # noqa: ANN001
    import ssl

    cert_der = ssl.PEM_cert_to_DER_cert(tls_files[0].read_text())
    expected = fingerprint_of(cert_der)
    plain = settings_for(tls_runtime, "alice@example.com", Security.STARTTLS)

    with pytest.raises(UntrustedCertificate) as info:
        await asyncio.to_thread(ImapSmtpBackend(plain, PASSWORD).connect)
    assert info.value.fingerprint == expected and not info.value.mismatch

    pinned = ImapSmtpBackend(replace(plain, fingerprint=expected), PASSWORD)
    await asyncio.to_thread(pinned.connect)
    assert (await asyncio.to_thread(pinned.list_folders))[0].name == "INBOX"
    await asyncio.to_thread(pinned.send, "alice@example.com", ["bob@example.com"], message("Over TLS"))
    await asyncio.to_thread(pinned.close)

    implicit = replace(plain, security=Security.TLS, imap_port=tls_runtime.port("imaps"), smtp_port=tls_runtime.port("smtps"),
                       fingerprint=expected)
    backend = ImapSmtpBackend(implicit, PASSWORD)
    await asyncio.to_thread(backend.connect)
    await asyncio.to_thread(backend.send, "alice@example.com", ["bob@example.com"], message("Over implicit TLS"))
    await asyncio.to_thread(backend.close)

    wrong = ImapSmtpBackend(replace(plain, fingerprint="00" * 32), PASSWORD)
    with pytest.raises(UntrustedCertificate) as info:
        await asyncio.to_thread(wrong.connect)
    assert info.value.mismatch and info.value.fingerprint == expected

    cleartext = ImapSmtpBackend(replace(plain, security=Security.NONE), PASSWORD)
    with pytest.raises(MailError, match="STARTTLS"):
        await asyncio.to_thread(cleartext.connect)
