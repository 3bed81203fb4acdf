"""Issue 11: literals announced before login cannot make rmail hold memory.

Before the fix each of 40 connections announcing `a LOGIN {25165000}` got `+ Ready` and the
server grew by about 1 GiB in 4 s. Now a literal over ``limits.preauth_literal`` (8 KiB) is
refused before any continuation, a LITERAL+ one ends the connection, and whatever the client
sends anyway is dropped as it arrives.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD

from .conn_tools import ServeProcess, close, connect_from, read_line

#: What each flooding connection pushes after its refused announcement (a client that
#: ignores the NO). Old code buffered all of it; now it is dropped line by line.
PUSH = 2 * 1024 * 1024
CONNECTIONS = 40


async def _announce(port: int, source: str, line: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await connect_from(port, source)
    assert (await read_line(reader)).startswith(b"* OK")
    writer.write(line)
    await writer.drain()
    return reader, writer, await read_line(reader)


async def test_big_literal_before_login_is_refused_before_any_continuation(runtime: ServerRuntime) -> None:
    port = runtime.port("imap")
    conns = await asyncio.gather(*(_announce(port, "127.0.0.1", b"a LOGIN {25165000}\r\n")
                                   for _ in range(CONNECTIONS)))
    assert {reply for _, _, reply in conns} == {b"a NO [TOOBIG] literal too large\r\n"}
    # The session is still usable: a literal within the pre-login cap gets its "+".
    reader, writer, _ = conns[0]
    writer.write(b"b LOGIN {17}\r\n")
    assert await read_line(reader) == b"+ Ready for literal data\r\n"
    writer.write(b"alice@example.com {15}\r\n")
    assert await read_line(reader) == b"+ Ready for literal data\r\n"
    writer.write(PASSWORD.encode() + b"\r\n")
    assert (await read_line(reader)).startswith(b"b OK")
    # After login the message-size cap applies again (APPEND of a 100 KiB message).
    writer.write(b"c APPEND INBOX {100000}\r\n")
    assert await read_line(reader) == b"+ Ready for literal data\r\n"
    for _, w, _ in conns:
        await close(w)


async def test_literal_plus_over_the_cap_before_login_ends_the_connection(runtime: ServerRuntime) -> None:
    reader, writer, reply = await _announce(runtime.port("imap"), "127.0.0.1", b"a LOGIN {25165000+}\r\n")
    assert reply == b"a NO [TOOBIG] literal too large\r\n"
    assert await read_line(reader) == b"* BYE literal too large before login\r\n"
    assert await read_line(reader) == b""
    await close(writer)


async def test_long_line_before_login_is_refused_and_dropped(runtime: ServerRuntime) -> None:
    reader, writer = await connect_from(runtime.port("imap"))
    await read_line(reader)
    writer.write(b"a LOGIN " + b"x" * 70000 + b" y\r\nb NOOP\r\n")
    assert await read_line(reader) == b"a BAD line too long\r\n"
    assert await read_line(reader) == b"b OK NOOP completed\r\n"
    await close(writer)


@pytest.mark.timeout(120)
async def test_literal_flood_does_not_grow_the_server(tmp_path: Path) -> None:
    """40 unauthenticated connections announce 24 MiB literals and push 2 MiB each anyway:
    no "+" is sent and the server's resident memory stays within a small bound."""
    server = ServeProcess.start(tmp_path)
    try:
        port = server.ports["imap"]
        # Warm up: the first connections and logins allocate what every session shares.
        for _ in range(3):
            _, w, _ = await _announce(port, "127.0.0.1", b"a LOGIN {25165000}\r\n")
            await close(w)
        await asyncio.sleep(0.5)
        before = server.rss()
        conns = await asyncio.gather(*(_announce(port, f"127.0.0.{2 + i % 21}", b"a LOGIN {25165000}\r\n")
                                       for i in range(CONNECTIONS)))
        assert all(reply == b"a NO [TOOBIG] literal too large\r\n" for _, _, reply in conns)
        chunk = b"x" * 65536                        # one endless line: over the line cap
        for _ in range(PUSH // len(chunk)):
            for _, writer, _ in conns:
                writer.write(chunk)
            await asyncio.gather(*(w.drain() for _, w, _ in conns))
        # Everything pushed has been read and dropped once a command behind it is answered.
        for reader, writer, _ in conns:
            writer.write(b"\r\nz NOOP\r\n")
        for reader, _, _ in conns:
            assert await read_line(reader, 30) == b"* BAD line too long\r\n"
            assert await read_line(reader, 30) == b"z OK NOOP completed\r\n"
        grown = server.rss() - before
        print(f"\nliteral flood: {CONNECTIONS} connections x {PUSH >> 20} MiB pushed; "
              f"server RSS grew by {grown / 1024 / 1024:.1f} MiB")
        # Buffered, the pushed bytes alone would be 80 MiB (and the announced literals 960 MiB);
        # what remains is receive buffers' high-water mark (at most ~0.5 MiB a connection).
        assert grown < 32 * 1024 * 1024
        for _, w, _ in conns:
            await close(w)
    finally:
        server.stop()
