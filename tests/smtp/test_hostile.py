"""Regression tests for known attacks and limits: smuggling, STARTTLS injection, long lines,
recipient floods, bad-command floods, connection caps; plus registry events and graceful stop."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from rmail.server.core.events import ConnectionClosed, ConnectionOpened, ConnectionUpdated
from rmail.server.runtime import ServerRuntime
from tests.helpers.stores import open_sqlite
from tests.helpers.server import make_config

from .conftest import PASSWORD, RawSession, inbox, strip_received


async def _transaction(s: RawSession, rcpt: str = "alice@example.com") -> None:
    assert (await s.cmd("EHLO client.example.net"))[-1].startswith("250 ")
    assert (await s.cmd("MAIL FROM:<carol@example.net>"))[0].startswith("250")
    assert (await s.cmd(f"RCPT TO:<{rcpt}>"))[0].startswith("250")
    assert (await s.cmd("DATA"))[0].startswith("354")


# Fake end-of-data sequences from the SMTP smuggling research (CVE-2023-51764/5/6) and
# aiosmtpd's test_smtpsmuggling.py; only CRLF.CRLF may end DATA.
SMUGGLERS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\r.\r"]


@pytest.mark.parametrize("fake_end", SMUGGLERS, ids=[repr(s) for s in SMUGGLERS])
async def test_bare_lf_or_cr_never_end_data(raw, runtime: ServerRuntime, fake_end: bytes) -> None:
    s = await raw(runtime.port("smtp"))
    await _transaction(s)
    smuggled = (b"Subject: outer\r\n\r\nhello" + fake_end +
                b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
                b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
    await s.send(smuggled)
    # The smuggled "DATA" section is all body; the real end follows.
    await s.send(b"QUIT\r\n")
    replies = [await s.reply(), await s.reply()]
    # Only DATA's final reply and the reply to the line after it (the session sees
    # "QUIT" as message text, so nothing else arrives until we end DATA properly).
    assert replies[0][0].startswith("250 2.0.0"), replies
    assert replies[1][0].startswith("221"), replies
    [stored] = await inbox(runtime, "alice@example.com")
    assert b"Subject: smuggled" in stored and b"RCPT TO:<bob@example.com>" in stored
    assert await inbox(runtime, "bob@example.com") == []


async def test_dot_stuffing_is_undone_exactly(raw, runtime: ServerRuntime) -> None:
    s = await raw(runtime.port("smtp"))
    await _transaction(s)
    await s.send(b"Subject: dots\r\n\r\n..\r\n...x\r\n.y\r\n\r\n.\r\n")
    assert (await s.reply())[0].startswith("250")
    [stored] = await inbox(runtime, "alice@example.com")
    assert strip_received(stored) == b"Subject: dots\r\n\r\n.\r\n..x\r\ny\r\n\r\n"


async def test_commands_pipelined_after_starttls_are_discarded(
        tls_runtime: ServerRuntime, client_tls_context: ssl.SSLContext) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_runtime.port("submission"))
    s = RawSession(reader, writer)
    try:
        assert (await s.reply())[0].startswith("220")
        await s.cmd("EHLO client.example.com")
        # The injection: cleartext commands sent in the same packet as STARTTLS (RFC 3207 §4.2).
        await s.send(b"STARTTLS\r\nHELP\r\nMAIL FROM:<alice@example.com>\r\n")
        assert (await s.reply())[0].startswith("220")
        await writer.start_tls(client_tls_context, server_hostname="localhost")
        ehlo = await s.cmd("EHLO client.example.com")
        assert ehlo[0].startswith("250-mail.example.com"), ehlo   # not HELP's or MAIL's reply
        assert any("AUTH" in line for line in ehlo)
        assert (await s.cmd("NOOP")) == ["250 2.0.0 OK"]
        # MAIL was not carried over either: a transaction needs a MAIL now.
        assert (await s.cmd("RCPT TO:<bob@example.com>"))[0].startswith("503")
    finally:
        await s.close()


async def test_overlong_command_lines_get_500(raw, runtime: ServerRuntime) -> None:
    s = await raw(runtime.port("smtp"))
    await s.cmd("EHLO client.example.net")
    assert (await s.cmd("NOOP " + "x" * 700))[0].startswith("500 5.5.2")          # over 512 octets
    assert (await s.cmd("MAIL FROM:<" + "a" * 5000 + "@example.net>"))[0].startswith("500 5.5.2")  # over the buffer
    assert (await s.cmd("NOOP")) == ["250 2.0.0 OK"]                                # still in sync


async def test_overlong_data_line_is_refused_after_data(raw, runtime: ServerRuntime) -> None:
    s = await raw(runtime.port("smtp"))
    await _transaction(s)
    await s.send(b"Subject: long\r\n\r\n" + b"z" * 5000 + b"\r\nafter\r\n.\r\n")
    assert (await s.reply())[0].startswith("500 5.5.2")
    assert (await s.cmd("NOOP")) == ["250 2.0.0 OK"]
    assert await inbox(runtime, "alice@example.com") == []


async def test_too_many_recipients(raw, tmp_path: Path) -> None:
    async with ServerRuntime(make_config(tmp_path / "d", limits={"recipients": 3}), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        s = await raw(rt.port("smtp"))
        await s.cmd("EHLO client.example.net")
        await s.cmd("MAIL FROM:<carol@example.net>")
        for _ in range(3):
            assert (await s.cmd("RCPT TO:<alice@example.com>"))[0].startswith("250")
        assert (await s.cmd("RCPT TO:<alice@example.com>"))[0].startswith("452 4.5.3")
        assert (await s.cmd("DATA"))[0].startswith("354")
        await s.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert (await s.reply())[0].startswith("250")
        assert len(await inbox(rt, "alice@example.com")) == 1


async def test_unknown_commands_end_the_session(raw, runtime: ServerRuntime) -> None:
    s = await raw(runtime.port("smtp"))
    for _ in range(4):
        assert (await s.cmd("GET / HTTP/1.0"))[0].startswith("500 5.5.2")
    assert (await s.cmd("GET / HTTP/1.0"))[0].startswith("502 5.5.1")
    assert await s.closed()


async def test_repeated_errors_end_the_session(raw, runtime: ServerRuntime) -> None:
    s = await raw(runtime.port("smtp"))
    await s.cmd("EHLO client.example.net")
    replies = []
    for _ in range(20):
        replies.append((await s.cmd("RCPT TO:<alice@example.com>"))[0])   # 503: no MAIL yet
    assert all(r.startswith("503 5.5.1") for r in replies)
    assert (await s.reply())[0].startswith("421 4.7.0")
    assert await s.closed()


async def test_connections_per_address_are_capped(raw, tmp_path: Path) -> None:
    async with ServerRuntime(make_config(tmp_path / "d", limits={"connections_per_ip": 2}), auth_delay=0) as rt:
        a = await raw(rt.port("smtp"))
        b = await raw(rt.port("submission"))
        reader, writer = await asyncio.open_connection("127.0.0.1", rt.port("smtp"))
        third = RawSession(reader, writer)
        refused = await third.reply()
        assert refused[0].startswith("421 4.7.0") and "too many connections" in refused[0]
        assert await third.closed()
        await third.close()
        await a.cmd("QUIT")
        await a.closed()
        await asyncio.sleep(0.05)
        c = await raw(rt.port("smtp"))   # a slot is free again
        assert (await c.cmd("NOOP")) == ["250 2.0.0 OK"]
        assert (await b.cmd("NOOP")) == ["250 2.0.0 OK"]


async def test_connections_appear_on_the_bus(raw, runtime: ServerRuntime) -> None:
    feed = runtime.bus.feed(lambda e: isinstance(e, (ConnectionOpened, ConnectionUpdated, ConnectionClosed)))
    s = await raw(runtime.port("submission"))
    await s.cmd("EHLO client.example.com")
    import base64
    token = base64.b64encode(f"\0alice@example.com\0{PASSWORD}".encode()).decode()
    assert (await s.cmd(f"AUTH PLAIN {token}"))[0].startswith("235")
    [info] = runtime.connections.snapshot()
    assert (info.protocol, info.peer, info.user, info.tls) == ("submission", "127.0.0.1", "alice@example.com", False)
    assert info.bytes_in > 0 and info.bytes_out > 0
    await s.cmd("QUIT")
    await s.closed()
    await asyncio.sleep(0.05)
    events = feed.drain()
    assert isinstance(events[0], ConnectionOpened) and events[0].protocol == "submission"
    assert any(isinstance(e, ConnectionUpdated) and e.user == "alice@example.com" for e in events)
    assert isinstance(events[-1], ConnectionClosed)
    assert len(runtime.connections) == 0


async def test_graceful_stop_finishes_data_in_flight(tmp_path: Path) -> None:
    rt = ServerRuntime(make_config(tmp_path / "d"), auth_delay=0)
    await rt.start()
    try:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        s = await RawSession.open(rt.port("smtp"))
        idle = await RawSession.open(rt.port("smtp"))
        await _transaction(s)
        await s.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        stopping = asyncio.create_task(rt.stop())
        await asyncio.sleep(0.1)
        assert not stopping.done()          # waits for the transaction in DATA
        # No new connections meanwhile.
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", rt.port("smtp"))
        await s.send(b"second half\r\n.\r\n")
        assert (await s.reply())[0].startswith("250 2.0.0")
        assert (await idle.reply())[0].startswith("421 4.3.2")   # told we are going away
        await asyncio.wait_for(stopping, 10)
        await s.close()
        await idle.close()
    finally:
        await rt.stop()
    from rmail.server.core.storage import MailStore
    from rmail.server.core.accounts import Accounts
    store_backend = await open_sqlite(tmp_path / "d")
    store = store_backend.mail
    try:
        account = await Accounts(store_backend.directory, bcrypt_rounds=4).get_user("alice@example.com")
        box = await store.get_mailbox(account.id, "INBOX")
        [meta] = await store.list_messages(box.id)
        assert strip_received(await store.read_message(meta.blob_id)) == \
            b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"
    finally:
        await store_backend.close()
