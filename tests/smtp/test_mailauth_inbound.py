"""Port 25 mail authentication against a live server and a loopback DNS server: SPF, DKIM,
ARC and DMARC verdicts in one Authentication-Results field, the DMARC policy (550 5.7.1, or
Junk), forged result fields removed, DNS blocklists, and no checks on authenticated mail."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path
from typing import AsyncIterator, Iterator

import aiosmtplib
import dkim
import dns.name
import pytest

from rmail.server.core.dkimkeys import DkimKeys, FileKeyStore
from rmail.server.core.mailauth.signing import Signer
from rmail.server.runtime import ServerRuntime
from tests.helpers.dns import DNSServer
from tests.helpers.server import make_config

from .conftest import PASSWORD

FORGED = (b"From: The Boss <ceo@a.test>\r\nTo: alice@b.test\r\nSubject: wire the money\r\n"
          b"Message-ID: <forged@a.test>\r\n\r\nUrgent.\r\n")


@pytest.fixture
def zone() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


@pytest.fixture
def sender_keys(tmp_path: Path) -> DkimKeys:
    """a.test's keys, as its own mail server holds them."""
    return DkimKeys(FileKeyStore(tmp_path / "a-keys"))


def publish_a(zone: DNSServer, keys: DkimKeys, dmarc: str = "v=DMARC1; p=reject") -> None:
    zone.add("a.test", "MX", "10 mail.a.test.")
    zone.add("mail.a.test", "A", "127.0.0.1")
    zone.add("a.test", "TXT", "v=spf1 mx -all")
    zone.add("mail.a.test", "TXT", "v=spf1 a -all")
    zone.add("_dmarc.a.test", "TXT", dmarc)
    for g in keys.published("a.test"):
        for k in g.keys:
            zone.add(k.dns_name, "TXT", k.dns_value)


async def start(tmp_path: Path, zone: DNSServer, **antispam) -> ServerRuntime:
    cfg = make_config(tmp_path / "b", hostname="mail.b.test", dns={"nameserver": zone.address, "timeout": 2},
                      antispam=antispam)
    rt = ServerRuntime(cfg, auth_delay=0)
    await rt.start()
    await rt.accounts.add_user("alice@b.test", PASSWORD)
    return rt


@pytest.fixture
async def b(tmp_path: Path, zone: DNSServer) -> AsyncIterator[ServerRuntime]:
    rt = await start(tmp_path, zone)
    yield rt
    await rt.stop()


def send(port: int, sender: str, data: bytes, helo: str = "mail.a.test") -> tuple[int, bytes]:
    """(reply code, reply text) of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo(helo)
        s.mail(sender)
        s.rcpt("alice@b.test")
        code, text = s.data(data)
        if code >= 400:
            raise smtplib.SMTPDataError(code, text)
        return code, text


async def stored(rt: ServerRuntime, folder: str = "INBOX") -> list[bytes]:
    account = await rt.accounts.get_user("alice@b.test")
    box = await rt.store.get_mailbox(account.id, folder)
    return [await rt.store.read_message(m.blob_id) for m in await rt.store.list_messages(box.id)]


def results_field(message: bytes) -> str:
    """Our Authentication-Results field, unfolded."""
    start = message.index(b"Authentication-Results: mail.b.test;")
    end = message.index(b"\r\n", start)
    while message[end + 2:end + 3] == b"\t":
        end = message.index(b"\r\n", end + 2)
    return " ".join(message[start:end].decode().split())


async def test_signed_aligned_mail_passes_everything(b: ServerRuntime, zone: DNSServer, sender_keys: DkimKeys) -> None:
    publish_a(zone, sender_keys)
    signed = Signer(sender_keys).sign_blocking(FORGED.replace(b"ceo@", b"boss@"), "a.test")
    code, _ = await asyncio.to_thread(send, b.port("smtp"), "boss@a.test", signed)
    assert code == 250
    [message] = await stored(b)
    ar = results_field(message)
    assert "spf=pass" in ar and "smtp.mailfrom=a.test" in ar and "smtp.helo=mail.a.test" in ar
    assert ar.count("dkim=pass header.d=a.test") == 2
    assert "header.a=rsa-sha256" in ar and "header.a=ed25519-sha256" in ar
    assert "dmarc=pass (p=reject dis=NONE)" in ar and "header.from=a.test" in ar and "arc=none" in ar
    assert message.startswith(b"Return-Path: <boss@a.test>\r\nAuthentication-Results: mail.b.test;")
    assert message.count(b"Authentication-Results:") == 1


async def test_forged_from_is_refused_under_p_reject(b: ServerRuntime, zone: DNSServer, sender_keys: DkimKeys) -> None:
    publish_a(zone, sender_keys)
    with pytest.raises(smtplib.SMTPDataError) as err:
        await asyncio.to_thread(send, b.port("smtp"), "bounce@evil.test", FORGED, "evil.test")
    assert err.value.smtp_code == 550 and err.value.smtp_error.startswith(b"5.7.1")
    assert b"DMARC policy of a.test" in err.value.smtp_error
    assert await stored(b) == [] and await stored(b, "Junk") == []


async def test_forged_from_goes_to_a_new_junk_mailbox_under_p_quarantine(
        b: ServerRuntime, zone: DNSServer, sender_keys: DkimKeys) -> None:
    publish_a(zone, sender_keys, "v=DMARC1; p=quarantine")
    account = await b.accounts.get_user("alice@b.test")
    await b.store.delete_mailbox(account.id, "Junk")          # it is created again, with \Junk
    code, _ = await asyncio.to_thread(send, b.port("smtp"), "bounce@evil.test", FORGED, "evil.test")
    assert code == 250
    assert await stored(b) == []
    [message] = await stored(b, "Junk")
    assert "dmarc=fail (p=quarantine dis=QUARANTINE)" in results_field(message)
    junk = [m for m in await b.store.list_mailboxes(account.id) if m.name == "Junk"]
    assert [m.special_use for m in junk] == ["\\Junk"]


@pytest.mark.parametrize("antispam, dmarc, folder", [
    ({"dmarc_reject": False}, "v=DMARC1; p=reject", "Junk"),
    ({"dmarc_quarantine": "inbox"}, "v=DMARC1; p=quarantine", "INBOX"),
    ({}, "v=DMARC1; p=reject; pct=0", "Junk"),                 # outside pct: one step milder
    ({}, "v=DMARC1; p=none", "INBOX"),
    ({"checks": False}, "v=DMARC1; p=reject", "INBOX"),
])
async def test_policy_is_configurable(tmp_path: Path, zone: DNSServer, sender_keys: DkimKeys,
                                      antispam: dict, dmarc: str, folder: str) -> None:
    publish_a(zone, sender_keys, dmarc)
    rt = await start(tmp_path, zone, **antispam)
    try:
        code, _ = await asyncio.to_thread(send, rt.port("smtp"), "bounce@evil.test", FORGED, "evil.test")
        assert code == 250
        [message] = await stored(rt, folder)
        assert (b"Authentication-Results: mail.b.test;" in message) == antispam.get("checks", True)
    finally:
        await rt.stop()


async def test_tampered_body_is_dkim_fail(b: ServerRuntime, zone: DNSServer, sender_keys: DkimKeys) -> None:
    publish_a(zone, sender_keys, "v=DMARC1; p=none")
    signed = Signer(sender_keys).sign_blocking(FORGED, "a.test")
    code, _ = await asyncio.to_thread(send, b.port("smtp"), "ceo@a.test", signed.replace(b"Urgent.", b"Urgent!"))
    assert code == 250
    ar = results_field((await stored(b))[0])
    assert ar.count("dkim=fail") == 2 and "body hash mismatch" in ar
    assert "spf=pass" in ar and "dmarc=pass" in ar      # SPF is aligned: DMARC passes on it alone


async def test_spoofed_results_claiming_our_name_are_removed(b: ServerRuntime, zone: DNSServer) -> None:
    spoof = (b"Authentication-Results: mail.b.test; dkim=pass header.d=bank.test\r\n"
             b"Authentication-Results: MAIL.B.TEST (trust me);\r\n\tdmarc=pass\r\n"
             b"Authentication-Results: mx.elsewhere.test; spf=pass\r\n" + FORGED)
    code, _ = await asyncio.to_thread(send, b.port("smtp"), "x@evil.test", spoof, "evil.test")
    assert code == 250
    [message] = await stored(b)
    assert message.count(b"Authentication-Results:") == 2
    assert b"bank.test" not in message and b"trust me" not in message
    assert b"Authentication-Results: mx.elsewhere.test; spf=pass" in message
    assert "dmarc=none" in results_field(message)            # a.test publishes nothing here


async def test_dns_trouble_is_temperror_and_delivers(b: ServerRuntime, zone: DNSServer, sender_keys: DkimKeys) -> None:
    publish_a(zone, sender_keys)
    zone.servfail.add(dns.name.from_text("_dmarc.a.test."))
    zone.servfail.add(dns.name.from_text("evil.test."))
    code, _ = await asyncio.to_thread(send, b.port("smtp"), "x@evil.test", FORGED, "evil.test")
    assert code == 250
    ar = results_field((await stored(b))[0])
    assert "dmarc=temperror" in ar and "spf=temperror" in ar


async def test_authenticated_mail_is_signed_not_checked(b: ServerRuntime, zone: DNSServer) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=b.port("smtp")) as client:
        await client.login("alice@b.test", PASSWORD)
        await client.sendmail("alice@b.test", ["alice@b.test"], b"From: alice@b.test\r\nSubject: self\r\n\r\nx\r\n")
    [message] = await stored(b)
    assert b"Authentication-Results" not in message
    assert message.count(b"DKIM-Signature:") == 2
    assert zone.queries[("_dmarc.b.test", "TXT")] == 0


async def test_dnsbl_listed_client_is_refused_at_mail(tmp_path: Path, zone: DNSServer) -> None:
    zone.add("1.0.0.127.bl.test", "A", "127.0.0.2")
    zone.add("1.0.0.127.bl.test", "TXT", "listed for testing")
    rt = await start(tmp_path, zone, dnsbl=["clean.test", "bl.test"])
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=rt.port("smtp")) as client:
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as err:
                await client.mail("x@evil.test")
            assert err.value.code == 554 and err.value.message.startswith("5.7.1")
            assert "bl.test" in err.value.message and "clean.test" not in err.value.message
            with pytest.raises(aiosmtplib.SMTPSenderRefused):
                await client.mail("y@evil.test")                # remembered, not asked again
        assert zone.queries[("1.0.0.127.bl.test", "A")] == 1
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=rt.port("submission")) as client:
            await client.login("alice@b.test", PASSWORD)
            await client.sendmail("alice@b.test", ["alice@b.test"], b"Subject: fine\r\n\r\nx\r\n")
    finally:
        await rt.stop()


async def test_signature_from_another_domain_does_not_align(b: ServerRuntime, zone: DNSServer, tmp_path: Path) -> None:
    other = DkimKeys(FileKeyStore(tmp_path / "other"))
    for g in other.published("relay.test"):
        for k in g.keys:
            zone.add(k.dns_name, "TXT", k.dns_value)
    zone.add("_dmarc.a.test", "TXT", "v=DMARC1; p=reject")
    signed = Signer(other).sign_blocking(FORGED, "relay.test")
    with pytest.raises(smtplib.SMTPDataError) as err:
        await asyncio.to_thread(send, b.port("smtp"), "x@relay.test", signed, "relay.test")
    assert err.value.smtp_code == 550
    # dkimpy agrees the signature itself is good: it is the alignment that fails.
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: next(
        (k.dns_value.encode() for g in other.published("relay.test") for k in g.keys
         if k.dns_name == name.decode().rstrip(".")), None))
