"""Issue 11: a client that trickles bytes cannot keep a connection open before login.

The login deadline runs from connect and no received byte extends it (an idle timer that each
byte restarts is what slowloris defeats). The API bounds the time to a complete request head
and the idle time between requests. Deadlines here are configured short; the assertions count
what happened, with time bounds far above the configured deadlines.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.server import make_config

from .conn_tools import close, connect_from, read_line, smtp_reply

DEADLINE = 1          # seconds: the configured deadline under test
DRIP = 0.1            # seconds between two trickled bytes
#: A connection still open after this many drips has outlived the deadline many times over.
MAX_DRIPS = 200


@pytest.fixture
async def short(tmp_path: Path) -> AsyncIterator[ServerRuntime]:
    limits = {"login_timeout": DEADLINE, "smtp_session_timeout": DEADLINE,
              "api_header_timeout": DEADLINE, "api_keepalive_timeout": 2 * DEADLINE}
    async with ServerRuntime(make_config(tmp_path / "data", limits=limits), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        yield rt


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` a byte at a time until the server closes; (bytes sent, what it said)."""
    said = bytearray()

    async def collect() -> None:
        while chunk := await reader.read(4096):
            said.extend(chunk)

    collector = asyncio.create_task(collect())
    sent = 0
    try:
        while not collector.done() and sent < MAX_DRIPS:
            writer.write(data[sent % len(data):sent % len(data) + 1])
            sent += 1
            await asyncio.sleep(DRIP)
        await asyncio.wait_for(collector, 10)
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await collector
    return sent, bytes(said)


async def test_imap_trickle_before_login_meets_the_deadline(short: ServerRuntime) -> None:
    reader, writer = await connect_from(short.port("imap"))
    sent, said = await _trickle(reader, writer, b"a NOOP\r\n")
    assert said.endswith(b"* BYE login timeout; log in sooner after connecting\r\n"), said
    # Bytes kept arriving every 0.1 s, yet the 1 s deadline held (counted, not timed).
    assert sent < MAX_DRIPS
    assert said.count(b"a OK NOOP") >= 1
    await close(writer)


async def test_imap_deadline_ends_at_login(short: ServerRuntime) -> None:
    reader, writer = await connect_from(short.port("imap"))
    await read_line(reader)
    writer.write(b"a LOGIN alice@example.com " + PASSWORD.encode() + b"\r\n")
    assert (await read_line(reader)).startswith(b"a OK")
    await asyncio.sleep(DEADLINE * 2)          # past the login deadline: nothing happens
    writer.write(b"b NOOP\r\n")
    assert await read_line(reader) == b"b OK NOOP completed\r\n"
    await close(writer)


async def test_submission_trickle_before_auth_gets_421(short: ServerRuntime) -> None:
    reader, writer = await connect_from(short.port("submission"))
    sent, said = await _trickle(reader, writer, b"NOOP\r\n")
    assert said.rstrip().endswith(b"421 4.4.2 Not authenticated in time; closing connection"), said
    assert sent < MAX_DRIPS


async def test_submission_deadline_ends_at_auth(short: ServerRuntime) -> None:
    reader, writer = await connect_from(short.port("submission"))
    await smtp_reply(reader)
    token = base64.b64encode(f"\0alice@example.com\0{PASSWORD}".encode()).decode()
    for command in ("EHLO client.example.com", f"AUTH PLAIN {token}"):
        writer.write(command.encode() + b"\r\n")
        reply = await smtp_reply(reader)
    assert reply.startswith("235"), reply
    await asyncio.sleep(DEADLINE * 2)
    writer.write(b"NOOP\r\n")
    assert await smtp_reply(reader) == "250 2.0.0 OK"
    await close(writer)


async def test_port_25_session_has_an_overall_cap(short: ServerRuntime) -> None:
    reader, writer = await connect_from(short.port("smtp"))
    sent, said = await _trickle(reader, writer, b"NOOP\r\n")
    assert said.rstrip().endswith(b"421 4.4.2 Session time limit reached; closing connection"), said
    assert sent < MAX_DRIPS


async def test_api_request_head_trickle_gets_408(short: ServerRuntime) -> None:
    reader, writer = await connect_from(short.port("api"))
    head = b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\n" + b"X-Pad: " + b"a" * 500 + b"\r\n\r\n"
    sent, said = await _trickle(reader, writer, head)
    assert said.startswith(b"HTTP/1.1 408 Request Timeout"), said[:200]
    assert b'{"error": "request header timeout"}' in said
    assert sent < len(head)


async def test_api_silent_connection_is_closed(short: ServerRuntime) -> None:
    reader, writer = await connect_from(short.port("api"))
    said = await asyncio.wait_for(reader.read(), DEADLINE * 20)
    assert said.startswith(b"HTTP/1.1 408"), said        # no head within the deadline
    await close(writer)


async def test_api_idle_keepalive_is_closed_and_busy_one_is_not(short: ServerRuntime) -> None:
    reader, writer = await connect_from(short.port("api"))
    request = b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n"
    # Requests more often than the deadline keep the connection in use.
    for _ in range(4):
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        length = next(int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                      if k.lower() == b"content-length")
        await reader.readexactly(length)
        await asyncio.sleep(DEADLINE / 2)
    # Then idle past the keep-alive timeout: closed without a reply (nothing was asked).
    assert await asyncio.wait_for(reader.read(), DEADLINE * 20) == b""
    await close(writer)
