"""Port 25: local delivery only, aliases, no open relay, byte-exact storage, SIZE, UTF-8."""

from __future__ import annotations

import asyncio
import smtplib

import aiosmtplib
import pytest

from rmail.server.runtime import ServerRuntime

from .conftest import inbox, strip_received

MESSAGE = (b"From: carol@example.net\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\n"
           b"line one\r\n.leading dot\r\n..two dots\r\n\r\nend\r\n")


def _send(port: int, sender: str, rcpts: list[str], data: bytes, **kw) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.example.net")
        return s.sendmail(sender, rcpts, data, **kw)


async def test_local_delivery_is_byte_exact_plus_received(runtime: ServerRuntime) -> None:
    await asyncio.to_thread(_send, runtime.port("smtp"), "carol@example.net", ["alice@example.com"], MESSAGE)
    [stored] = await inbox(runtime, "alice@example.com")
    assert strip_received(stored) == MESSAGE
    head = stored[:len(stored) - len(MESSAGE)]
    assert b"from client.example.net ([127.0.0.1])" in head
    assert b"by mail.example.com (rmail) with ESMTP id " in head
    assert b"for <alice@example.com>;" in head
    assert head.count(b"Received:") == 1


async def test_unknown_local_user_is_550_511(runtime: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", local_hostname="client.example.net", port=runtime.port("smtp")) as client:
        await client.ehlo()
        await client.mail("carol@example.net")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as err:
            await client.rcpt("nobody@example.com")
        assert err.value.code == 550 and err.value.message.startswith("5.1.1")


async def test_alias_catches_unknown_local_part(runtime: ServerRuntime) -> None:
    await runtime.aliases.add("example.com", "sales-.*", "alice")
    await asyncio.to_thread(_send, runtime.port("smtp"), "carol@example.net", ["sales-east@example.com"], MESSAGE)
    [stored] = await inbox(runtime, "alice@example.com")
    assert strip_received(stored) == MESSAGE
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await asyncio.to_thread(_send, runtime.port("smtp"), "c@example.net", ["support@example.com"], MESSAGE)


async def test_no_open_relay_on_25(runtime: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", local_hostname="client.example.net", port=runtime.port("smtp")) as client:
        await client.ehlo()
        await client.mail("alice@example.com")  # even a local sender address does not unlock relaying
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as err:
            await client.rcpt("someone@elsewhere.org")
        assert err.value.code == 554 and err.value.message.startswith("5.7.1")
    assert await runtime.queue.list() == []


async def test_several_recipients_one_copy_each(runtime: ServerRuntime) -> None:
    await runtime.aliases.add("example.com", "team", "bob")
    refused = await asyncio.to_thread(
        _send, runtime.port("smtp"), "carol@example.net",
        ["alice@example.com", "bob@example.com", "team@example.com", "ALICE@example.com"], MESSAGE)
    assert refused == {}
    assert len(await inbox(runtime, "alice@example.com")) == 1
    bob = await inbox(runtime, "bob@example.com")
    assert len(bob) == 1
    assert b"\tfor <" not in bob[0].split(b"\r\n\r\n")[0]  # several recipients: none named


async def test_null_sender_accepted_for_bounces(runtime: ServerRuntime) -> None:
    await asyncio.to_thread(_send, runtime.port("smtp"), "", ["alice@example.com"], MESSAGE)
    assert len(await inbox(runtime, "alice@example.com")) == 1


async def test_ehlo_advertises_extensions(runtime: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", local_hostname="client.example.net", port=runtime.port("smtp")) as client:
        await client.ehlo()
        ext = client.esmtp_extensions
        assert ext["size"] == str(runtime.config.limits.message_size)
        for name in ("8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes", "auth"):
            assert name in ext, name
        assert "starttls" not in ext   # TLS not configured on this runtime


async def test_size_declared_over_limit_is_552(tmp_path) -> None:
    from tests.helpers.server import make_config
    cfg = make_config(tmp_path / "d", limits={"message_size": 2000})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", "pw")
        async with aiosmtplib.SMTP(hostname="127.0.0.1", local_hostname="client.example.net", port=rt.port("smtp")) as client:
            await client.ehlo()
            assert client.esmtp_extensions["size"] == "2000"
            code, text = await client.execute_command(b"MAIL", b"FROM:<c@example.net>", b"SIZE=5000")
            assert code == 552 and text.startswith("5.3.4")
            # Oversized DATA without a SIZE declaration: read to the end, then 552.
            await client.mail("c@example.net")
            await client.rcpt("alice@example.com")
            with pytest.raises(aiosmtplib.SMTPDataError) as err:
                await client.data(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 40)
            assert err.value.code == 552 and err.value.message.startswith("5.3.4")
            # The session is still in sync and usable.
            await client.mail("c@example.net")
            await client.rcpt("alice@example.com")
            await client.data(b"Subject: small\r\n\r\nok\r\n")
        assert len(await inbox(rt, "alice@example.com")) == 1


async def test_smtputf8_and_8bit_are_stored_exactly(runtime: ServerRuntime) -> None:
    await runtime.aliases.add("example.com", "jörg", "alice")
    body = "From: jörg@exämple.net\r\nSubject: Grüße\r\n\r\nÄpfel und Birnen\r\n".encode()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", local_hostname="client.example.net", port=runtime.port("smtp")) as client:
        await client.ehlo()
        await client.sendmail("jörg@exämple.net", ["jörg@example.com"], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [stored] = await inbox(runtime, "alice@example.com")
    assert strip_received(stored) == body
    assert b"with UTF8SMTP id" in stored


async def test_helo_without_ehlo_still_works(runtime: ServerRuntime) -> None:
    def go() -> None:
        with smtplib.SMTP("127.0.0.1", runtime.port("smtp")) as s:
            assert s.helo("old.example.net")[0] == 250
            s.sendmail("c@example.net", ["bob@example.com"], MESSAGE)
    await asyncio.to_thread(go)
    [stored] = await inbox(runtime, "bob@example.com")
    assert b"with SMTP id" in stored


async def test_replies_carry_enhanced_codes(raw, runtime: ServerRuntime) -> None:
    s = await raw(runtime.port("smtp"))
    assert (await s.cmd("RCPT TO:<alice@example.com>"))[0].startswith("503 5.5.1")
    await s.cmd("EHLO client.example.net")
    assert (await s.cmd("RCPT TO:<alice@example.com>"))[0].startswith("503 5.5.1")
    assert (await s.cmd("NOOP"))[0] == "250 2.0.0 OK"
    assert (await s.cmd("MAIL FROM:<not an address>"))[0][:9] in ("553 5.1.3", "501 5.1.3")
    assert (await s.cmd("RSET"))[0] == "250 2.0.0 OK"
    assert (await s.cmd("QUIT"))[0].startswith("221 2.0.0")


async def test_new_user_and_alias_are_seen_at_once(runtime: ServerRuntime) -> None:
    """The recipient cache must not hide directory changes (made here or by the CLI)."""
    async def rcpt(address: str) -> int:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("smtp")) as client:
            await client.mail("carol@example.net")
            try:
                return (await client.rcpt(address)).code
            except aiosmtplib.SMTPRecipientRefused as exc:
                return exc.code
    assert await rcpt("alice@example.com") == 250
    assert await rcpt("zoe@example.com") == 550
    await runtime.accounts.add_user("zoe@example.com", "pw")
    await asyncio.sleep(0.05)
    assert await rcpt("zoe@example.com") == 250
    await runtime.aliases.add("example.com", "al", "alice")
    await asyncio.sleep(0.05)
    assert await rcpt("al@example.com") == 250
    await runtime.accounts.remove_user("alice@example.com")
    await asyncio.sleep(0.05)
    assert await rcpt("alice@example.com") == 550
