"""Issue 11: SMTP command lines end only at CRLF (RFC 5321 §2.3.8, CVE-2023-51764 class).

`MAIL FROM:<a@x.test>\\nRCPT TO:<alice@example.com>\\r\\n` used to get two 250 replies: a
front end that ends lines only at CRLF sees one line, rmail saw two commands. Now a bare LF
or CR in a command line gets `500 5.5.2` at once and nothing of that line up to its CRLF
runs. Bare LF inside message text cannot end DATA (tests/smtp/test_hostile.py) and is kept.
"""

from __future__ import annotations

import asyncio

import pytest

from rmail.server.runtime import ServerRuntime
from tests.smtp.conftest import inbox

from .conn_tools import close, connect_from, smtp_reply

BARE = "500 5.5.2 Bare <LF> or <CR> in a command line; commands end with <CR><LF>"


async def _session(runtime: ServerRuntime) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect_from(runtime.port("smtp"))
    assert (await smtp_reply(reader)).startswith("220 ")
    writer.write(b"EHLO client.example.net\r\n")
    assert (await smtp_reply(reader)).splitlines()[-1].startswith("250 ")
    return reader, writer


async def _replies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> list[str]:
    """The next ``n`` replies, then proof that no further reply is pending (a NOOP's 250
    comes next)."""
    replies = [await smtp_reply(reader) for _ in range(n)]
    writer.write(b"NOOP\r\n")
    assert await smtp_reply(reader) == "250 2.0.0 OK", replies
    return replies


@pytest.mark.parametrize("line", [
    b"MAIL FROM:<a@x.test>\nRCPT TO:<alice@example.com>\r\n",
    b"MAIL FROM:<a@x.test>\rRCPT TO:<alice@example.com>\r\n",
    b"MAIL FROM:<a@x.test>\n\nRCPT TO:<alice@example.com>\n\r\n",
    b"MAIL FROM:<a@x.test>\r\r\n",
], ids=["bare-LF", "bare-CR", "several-bare-LF", "CR-before-CRLF"])
async def test_bare_newline_in_a_command_line_runs_nothing(runtime: ServerRuntime, line: bytes) -> None:
    reader, writer = await _session(runtime)
    writer.write(line)
    assert await _replies(reader, writer, 1) == [BARE]
    # No transaction was started: RCPT now needs a MAIL first.
    writer.write(b"RCPT TO:<alice@example.com>\r\n")
    assert (await smtp_reply(reader)).startswith("503 5.5.1")
    await close(writer)


async def test_smuggled_transaction_is_not_delivered(runtime: ServerRuntime) -> None:
    reader, writer = await _session(runtime)
    writer.write(b"MAIL FROM:<ceo@example.com>\nRCPT TO:<alice@example.com>\nDATA\r\n"
                 b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
    first = await smtp_reply(reader)
    assert first == BARE
    # The message lines that followed are commands now, each refused; nothing is stored.
    writer.write(b"QUIT\r\n")
    rest = []
    while (reply := await smtp_reply(reader)) and not reply.startswith("221"):
        rest.append(reply)
    assert all(r.startswith("5") for r in rest), rest
    assert await inbox(runtime, "alice@example.com") == []
    await close(writer)


async def test_a_bare_lf_client_is_answered_not_left_waiting(runtime: ServerRuntime) -> None:
    reader, writer = await _session(runtime)
    writer.write(b"NOOP\n")
    assert await smtp_reply(reader) == BARE
    # The rest of that line (up to CRLF) is dropped; a clean line afterwards works.
    writer.write(b"still the same line\r\nNOOP\r\n")
    assert await smtp_reply(reader) == "250 2.0.0 OK"
    await close(writer)


async def test_crlf_pipelining_still_works(runtime: ServerRuntime) -> None:
    reader, writer = await _session(runtime)
    writer.write(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.com>\r\nRSET\r\n")
    assert [await smtp_reply(reader) for _ in range(3)] == [
        "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "250 2.0.0 OK"]
    await close(writer)
