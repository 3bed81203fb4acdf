"""Two rmail instances and one loopback DNS server: A (a.test) relays to B (b.test) through
[relay]; A's DNS records are exactly what ``run.py dns a.test`` prints. At B the mail shows
dkim=pass, spf=pass, dmarc=pass, and dkimpy verifies the signature on its own; forged,
tampered and spoofed mail gets what it deserves."""

from __future__ import annotations

import asyncio
import os
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import AsyncIterator

import aiosmtplib
import dkim
import pytest

from rmail.server.core.dns import Resolver
from rmail.server.runtime import ServerRuntime
from tests.helpers.dns import DNSServer
from tests.helpers.server import make_config

from .conftest import PASSWORD
from .sink import eventually

ROOT = Path(__file__).resolve().parents[2]


def run_dns(data_dir: Path, hostname: str, domain: str) -> str:
    """``python run.py dns DOMAIN`` as an administrator runs it, against the instance's data dir."""
    config = data_dir.parent / f"{hostname}.toml"
    config.write_text(f'data_dir = "{data_dir}"\nhostname = "{hostname}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMAIL_")}
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "dns", domain, "--config", str(config)],
                            capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


class Pair:
    def __init__(self, a: ServerRuntime, b: ServerRuntime, zone: DNSServer) -> None:
        self.a, self.b, self.zone = a, b, zone

    async def b_folder(self, folder: str = "INBOX") -> list[bytes]:
        account = await self.b.accounts.get_user("bob@b.test")
        box = await self.b.store.get_mailbox(account.id, folder)
        return [await self.b.store.read_message(m.blob_id) for m in await self.b.store.list_messages(box.id)]

    def straight_to_b(self, sender: str, data: bytes, helo: str) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", self.b.port("smtp"), timeout=30) as s:
            s.ehlo(helo)
            s.mail(sender)
            s.rcpt("bob@b.test")
            return s.data(data)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    with DNSServer() as zone:
        dns_cfg = {"nameserver": zone.address, "timeout": 2}
        b = ServerRuntime(make_config(tmp_path / "b" / "data", hostname="mail.b.test", dns=dns_cfg), auth_delay=0)
        await b.start()
        try:
            await b.accounts.add_user("bob@b.test", PASSWORD)
            a_cfg = make_config(tmp_path / "a" / "data", hostname="mail.a.test", dns=dns_cfg,
                                relay={"host": "127.0.0.1", "port": b.port("smtp"), "tls": "none"})
            a = ServerRuntime(a_cfg, auth_delay=0)
            await a.start()
            try:
                await a.accounts.add_user("alice@a.test", PASSWORD)
                zone.load_zone(await asyncio.to_thread(run_dns, a_cfg.data_dir, "mail.a.test", "a.test"))
                # What the zone text says must be added by hand: the server's own address.
                zone.add("mail.a.test", "A", "127.0.0.1")
                yield Pair(a, b, zone)
            finally:
                await a.stop()
        finally:
            await b.stop()


def results_field(message: bytes) -> str:
    start = message.index(b"Authentication-Results: mail.b.test;")
    end = message.index(b"\r\n", start)
    while message[end + 2:end + 3] == b"\t":
        end = message.index(b"\r\n", end + 2)
    return " ".join(message[start:end].decode().split())


MAIL = (b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: across\r\nMessage-ID: <x1@a.test>\r\n"
        b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
        b"Authentication-Results: mail.b.test; dkim=pass header.d=bank.test\r\n\r\nHello Bob.\r\n")


async def test_relayed_mail_passes_and_verifies_with_dkimpy(pair: Pair) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=pair.a.port("submission")) as client:
        await client.login("alice@a.test", PASSWORD)
        await client.sendmail("alice@a.test", ["bob@b.test"], MAIL)
    await eventually(lambda: pair.b.counters.delivered >= 1, timeout=20)
    [message] = await pair.b_folder()
    ar = results_field(message)
    assert "spf=pass" in ar and "smtp.mailfrom=a.test" in ar and "smtp.helo=mail.a.test" in ar
    assert ar.count("dkim=pass header.d=a.test") == 2 and "dmarc=pass" in ar and "header.from=a.test" in ar
    # The spoofed field claiming B's authserv-id did not survive; B's own is the only one.
    assert b"bank.test" not in message and message.count(b"Authentication-Results:") == 1
    assert message.startswith(b"Return-Path: <alice@a.test>\r\nAuthentication-Results: mail.b.test;")

    resolver = Resolver(("127.0.0.1", pair.zone.port), timeout=2)

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        records = resolver.txt_sync(name.decode().rstrip("."))
        return records[0] if records else None
    checker = dkim.DKIM(message)
    assert [await asyncio.to_thread(checker.verify, i, dnsfunc) for i in range(2)] == [True, True]
    assert checker.domain == b"a.test"


async def test_forged_from_is_refused_then_quarantined(pair: Pair) -> None:
    forged = (b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: send money\r\n\r\nNow.\r\n")
    code, reply = await asyncio.to_thread(pair.straight_to_b, "x@evil.test", forged, "evil.test")
    assert code == 550 and reply.startswith(b"5.7.1")            # run.py dns publishes p=reject
    assert await pair.b_folder() == []

    pair.zone.remove("_dmarc.a.test", "TXT")
    pair.zone.add("_dmarc.a.test", "TXT", "v=DMARC1; p=quarantine")
    assert pair.b.dns.cache is not None
    pair.b.dns.cache.flush()        # B cached the old policy for its TTL, as a resolver does
    code, _ = await asyncio.to_thread(pair.straight_to_b, "x@evil.test", forged, "evil.test")
    assert code == 250
    assert await pair.b_folder() == []
    [junk] = await pair.b_folder("Junk")
    assert "dmarc=fail (p=quarantine dis=QUARANTINE)" in results_field(junk)


async def test_tampered_body_is_dkim_fail(pair: Pair) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=pair.a.port("submission")) as client:
        await client.login("alice@a.test", PASSWORD)
        await client.sendmail("alice@a.test", ["bob@b.test"], MAIL)
    await eventually(lambda: pair.b.counters.delivered >= 1, timeout=20)
    [original] = await pair.b_folder()
    signed = original[original.index(b"DKIM-Signature:"):]         # as A sent it
    tampered = signed.replace(b"Hello Bob.", b"Hello Bob, pay me.")
    code, _ = await asyncio.to_thread(pair.straight_to_b, "alice@a.test", tampered, "mail.a.test")
    assert code == 250
    ar = results_field((await pair.b_folder())[1])
    assert ar.count("dkim=fail") == 2 and "dkim=pass" not in ar
    assert "spf=pass" in ar       # sent from A's address: SPF (aligned) still passes
