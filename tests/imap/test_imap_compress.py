"""COMPRESS=DEFLATE (RFC 4978) through real sockets, with zlib on the client side.

imaplib has no COMPRESS, so `ZClient` below is the client: raw DEFLATE (window bits -15) both
ways, a sync flush after each command it sends. Covered: the command's replies (OK, NO
[COMPRESSIONACTIVE], BAD, the states it is allowed in), commands pipelined behind COMPRESS,
IDLE updates that arrive while the client waits, TLS below compression, a large FETCH that
still streams chunk by chunk, and decompression bombs meeting the same line and literal
limits as cleartext while the server holds no more than those limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
import zlib
from pathlib import Path

import pytest

from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.imap import start
from rmail.server.imap.connection import INFLATE_STEP
from rmail.server.imap.deflate import Deflater, Inflater, PIECE
from rmail.server.imap.wire import Framer
from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.server import make_config

from .conftest import RawClient


class ZClient:
    """The compressed half of an IMAP client: what RawClient does, through DEFLATE."""

    def __init__(self, raw: RawClient, *, level: int = 6) -> None:
        self.reader, self.writer = raw.reader, raw.writer
        self.z = zlib.compressobj(level, zlib.DEFLATED, -15)
        self.unz = zlib.decompressobj(-15)
        self.buf = b""
        self.wire_in = 0          # compressed octets received

    async def send(self, data: bytes) -> None:
        self.writer.write(self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH))
        await self.writer.drain()

    async def send_compressed(self, chunks) -> None:  # noqa: ANN001 - an iterable of bytes
        """Stream cleartext chunks through the compressor (a bomb never exists in full)."""
        for chunk in chunks:
            out = self.z.compress(chunk)
            if out:
                self.writer.write(out)
                await self.writer.drain()
        self.writer.write(self.z.flush(zlib.Z_SYNC_FLUSH))
        await self.writer.drain()

    async def _fill(self, timeout: float) -> None:
        data = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
        if not data:
            raise ConnectionError(f"closed; buffered {self.buf[:200]!r}")
        self.wire_in += len(data)
        self.buf += self.unz.decompress(data)

    async def line(self, timeout: float = 10) -> bytes:
        while b"\n" not in self.buf:
            await self._fill(timeout)
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    async def exactly(self, n: int, timeout: float = 10) -> bytes:
        while len(self.buf) < n:
            await self._fill(timeout)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    async def until_tagged(self, tag: bytes, timeout: float = 10) -> bytes:
        out = b""
        while True:
            line = await self.line(timeout)
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                out += await self.exactly(int(m.group(1)), timeout)
                continue
            if line.startswith(tag + b" "):
                return out

    async def cmd(self, tag: bytes, text: bytes) -> bytes:
        await self.send(tag + b" " + text + b"\r\n")
        return await self.until_tagged(tag)


async def compressed(port: int, *, tls: ssl.SSLContext | None = None) -> tuple[RawClient, ZClient]:
    raw = await RawClient.connect(port, tls=tls)
    await raw.login()
    assert await raw.cmd(b"z", b"COMPRESS DEFLATE") == b"z OK DEFLATE active\r\n"
    return raw, ZClient(raw)


async def test_compress_replies(runtime: ServerRuntime) -> None:
    port = runtime.port("imap")
    raw = await RawClient.connect(port)
    await raw.line()
    # RFC 4978 §5: command-auth; before login it is not allowed (and not advertised).
    assert await raw.cmd(b"a1", b"COMPRESS DEFLATE") == \
        b"a1 BAD COMPRESS not allowed in the not authenticated state\r\n"
    await raw.login(greeting=False)
    assert await raw.cmd(b"a2", b"COMPRESS LZW") == \
        b"a2 BAD unknown compression mechanism (only DEFLATE)\r\n"
    assert await raw.cmd(b"a3", b"COMPRESS") == b"a3 BAD expected SP\r\n"
    # Still uncompressed after the refusals; then on.
    assert await raw.cmd(b"a4", b"compress deflate") == b"a4 OK DEFLATE active\r\n"
    z = ZClient(raw)
    assert await z.cmd(b"a5", b"NOOP") == b"a5 OK NOOP completed\r\n"
    assert await z.cmd(b"a6", b"COMPRESS DEFLATE") == \
        b"a6 NO [COMPRESSIONACTIVE] DEFLATE compression is already active\r\n"
    assert (await z.cmd(b"a7", b"SELECT INBOX")).endswith(b"a7 OK [READ-WRITE] SELECT completed\r\n")
    reply = await z.cmd(b"a8", b"APPEND INBOX {5+}\r\nhello")
    assert reply.startswith(b"* 1 EXISTS\r\n* 1 RECENT\r\na8 OK [APPENDUID ")
    assert await z.cmd(b"a9", b"FETCH 1 BODY.PEEK[]") == \
        b"* 1 FETCH (BODY[] {5}\r\nhello)\r\na9 OK FETCH completed\r\n"
    await z.send(b"b1 LOGOUT\r\n")
    assert await z.until_tagged(b"b1") == b"* BYE rmail logging out\r\nb1 OK LOGOUT completed\r\n"
    assert await raw.reader.read() == b""
    await raw.close()


async def test_commands_pipelined_behind_compress(runtime: ServerRuntime) -> None:
    """RFC 4978 §3: the client compresses from the first command after COMPRESS. Bytes
    that arrive with the COMPRESS line are inflated, not read as cleartext."""
    raw = await RawClient.connect(runtime.port("imap"))
    await raw.login()
    z = ZClient(raw)
    raw.writer.write(b"c1 COMPRESS DEFLATE\r\n" + z.z.compress(b"c2 NOOP\r\nc3 CAPABILITY\r\n")
                     + z.z.flush(zlib.Z_SYNC_FLUSH))
    assert await raw.line() == b"c1 OK DEFLATE active\r\n"
    assert await z.until_tagged(b"c2") == b"c2 OK NOOP completed\r\n"
    assert (await z.until_tagged(b"c3")).startswith(b"* CAPABILITY IMAP4rev1 ")
    await raw.close()


async def test_idle_updates_are_flushed(runtime: ServerRuntime) -> None:
    """Responses nobody drains (IDLE's news) are still flushed at the end of their burst."""
    port = runtime.port("imap")
    raw, z = await compressed(port)
    await z.cmd(b"i1", b"SELECT INBOX")
    await z.send(b"i2 IDLE\r\n")
    assert await z.line() == b"+ idling\r\n"
    other = await RawClient.connect(port)
    await other.login()
    await other.cmd(b"o1", b"APPEND INBOX {5+}\r\nhello")
    assert await z.line() == b"* 1 EXISTS\r\n"
    assert await z.line() == b"* 1 RECENT\r\n"
    await z.send(b"DONE\r\n")
    assert await z.until_tagged(b"i2") == b"i2 OK IDLE terminated\r\n"
    await other.close()
    await raw.close()


async def test_compress_over_tls(tls_runtime: ServerRuntime, client_tls_context: ssl.SSLContext) -> None:
    """RFC 4978 §3: compression sits above TLS (here implicit TLS on 993)."""
    raw = await RawClient.connect(tls_runtime.port("imaps"), tls=client_tls_context)
    await raw.login()
    assert await raw.cmd(b"t1", b"COMPRESS DEFLATE") == b"t1 OK DEFLATE active\r\n"
    z = ZClient(raw)
    assert await z.cmd(b"t2", b"NOOP") == b"t2 OK NOOP completed\r\n"
    await raw.close()


async def test_large_fetch_streams_through_the_compressor(runtime: ServerRuntime,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A file-backed message is still sent chunk by chunk: the compressor never holds more
    than one streamed chunk, the bytes arrive intact, and the event loop is never held long."""
    body = b"".join(b"%08d %s\r\n" % (n, bytes([65 + n % 26]) * (n % 97)) for n in range(60000))
    message = b"Subject: large\r\n\r\n" + body
    assert len(message) > 10 * INLINE_BLOB_MAX
    account = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(account.id, "INBOX")
    await runtime.store.append(inbox.id, message)
    most_queued = 0
    push = Deflater.push

    def counting_push(self: Deflater, data: bytes) -> None:
        nonlocal most_queued
        push(self, data)
        most_queued = max(most_queued, self.pending)
    monkeypatch.setattr(Deflater, "push", counting_push)

    raw, z = await compressed(runtime.port("imap"))
    await z.cmd(b"f1", b"SELECT INBOX")
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - t)
    tick = asyncio.create_task(ticker())
    reply = await z.cmd(b"f2", b"FETCH 1 (BODY.PEEK[])")
    stop.set()
    await tick
    head = b"* 1 FETCH (BODY[] {%d}\r\n" % len(message)
    assert reply == head + message + b")\r\nf2 OK FETCH completed\r\n"
    assert z.wire_in < len(message) // 2                 # it was compressed
    assert most_queued <= 256 * 1024 + 4096              # one stored chunk, never the message
    # The compressor gives the loop back between pieces: no gap near the time it takes to
    # compress the whole message (about 100 ms here), allowing for a busy shared machine.
    assert max(lags) < 0.1, max(lags)
    await raw.close()


@pytest.fixture
async def small_server(tmp_path: Path):  # noqa: ANN201
    """A server whose literal cap is 64 KiB, with a user, and its live connections."""
    cfg = make_config(tmp_path / "data", limits={"message_size": 65536})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        async with contextlib.AsyncExitStack() as stack:
            server = await start(rt, stack, ports=(0, 0))
            yield server


def zeros(total: int, chunk: int = 1 << 20):  # noqa: ANN201
    for _ in range(total // chunk):
        yield b"a" * chunk


@pytest.fixture
def framer_high_water(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The most bytes any framer held (its buffer, literal and parts) after taking data."""
    seen = [0]
    receive = Framer.receive_data

    def watch(self: Framer, data: bytes) -> None:
        receive(self, data)
        seen[0] = max(seen[0], self.buffered)
    monkeypatch.setattr(Framer, "receive_data", watch)
    return seen


async def test_bomb_line_meets_the_line_limit(small_server, framer_high_water: list[int]) -> None:  # noqa: ANN001
    """256 MiB of one line in about 250 KiB of DEFLATE: refused as "line too long" like
    cleartext, while the server holds at most the line cap plus one inflate step."""
    raw, z = await compressed(small_server.ports["imap"])
    started = time.monotonic()
    await z.send(b"x1 NOOP ")
    await z.send_compressed(zeros(256 << 20))
    await z.send(b"\r\n")
    assert await z.line(timeout=60) == b"x1 BAD line too long\r\n"
    assert await z.cmd(b"x2", b"NOOP") == b"x2 OK NOOP completed\r\n"
    assert framer_high_water[0] <= 64 * 1024 + INFLATE_STEP + 2 <= 192 * 1024
    assert time.monotonic() - started < 30
    await raw.close()


async def test_bomb_literal_meets_the_literal_limit(small_server, framer_high_water: list[int]) -> None:  # noqa: ANN001
    """A LITERAL+ literal of 64 MiB over a 64 KiB cap: counted off and dropped, NO [TOOBIG],
    the session goes on; a synchronizing one is refused before any "+"."""
    raw, z = await compressed(small_server.ports["imap"])
    await z.send(b"y1 APPEND INBOX {%d+}\r\n" % (64 << 20))
    await z.send_compressed(zeros(64 << 20))
    await z.send(b"\r\n")
    assert await z.line(timeout=60) == b"y1 NO [TOOBIG] literal too large\r\n"
    assert await z.cmd(b"y2", b"APPEND INBOX {70000}") == b"y2 NO [TOOBIG] literal too large\r\n"
    assert await z.cmd(b"y3", b"NOOP") == b"y3 OK NOOP completed\r\n"
    assert framer_high_water[0] <= INFLATE_STEP + 1024 <= 128 * 1024
    await raw.close()


async def test_corrupt_stream_closes_the_connection(runtime: ServerRuntime) -> None:
    raw, z = await compressed(runtime.port("imap"))
    raw.writer.write(b"\xff" * 64)                       # not a DEFLATE block
    await raw.writer.drain()
    with pytest.raises(ConnectionError):
        for _ in range(3):
            await z.line()
    await raw.close()


# -- the codec alone -------------------------------------------------------------------------

def test_deflater_pieces_and_flush() -> None:
    d = Deflater()
    data = bytes(range(256)) * 1024                     # 256 KiB, poorly compressible
    d.push(data)
    d.push(b"tail")
    out = b""
    steps = 0
    while d.pending:
        out += d.step()
        steps += 1
    out += d.flush()
    assert steps == -(-(len(data) + 4) // PIECE)
    assert zlib.decompressobj(-15).decompress(out) == data + b"tail"


def test_inflater_gives_bounded_steps() -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = z.compress(b"\0" * (8 << 20)) + z.flush(zlib.Z_SYNC_FLUSH)
    inf = Inflater()
    inf.receive(bomb)
    total = 0
    while inf.pending:
        got = inf.inflate(4096)
        assert len(got) <= 4096
        total += len(got)
    assert total == 8 << 20


# -- properties: compression changes nothing the framer sees ----------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rmail.server.imap.wire import NEED_DATA, WireError  # noqa: E402

_LINES = st.lists(st.one_of(
    st.sampled_from([b"a NOOP\r\n", b"b APPEND INBOX {5+}\r\nhello\r\n", b"c LOGOUT\r\n"]),
    st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"),
), max_size=12)


def _frames(feed: list[bytes], *, step: int | None) -> tuple[list[object], int]:
    """Frames (and errors) a framer gives for `feed`: cleartext when `step` is None, else
    DEFLATE inflated `step` octets at a time as the connection does; with the most the
    framer held."""
    framer = Framer(max_line=100, max_literal=64, max_command=400)
    inflater = Inflater()
    out: list[object] = []
    most = 0
    for chunk in feed:
        if step is None:
            framer.receive_data(chunk)
        else:
            inflater.receive(chunk)
        while True:
            try:
                ev = framer.next_event()
            except WireError as exc:
                out.append(("error", exc.tag, exc.text))
                continue
            most = max(most, framer.buffered)
            if ev is not NEED_DATA:
                out.append(ev)
                continue
            if step is not None and inflater.pending:
                framer.receive_data(inflater.inflate(step))
                most = max(most, framer.buffered)
                continue
            break
    return out, most


@settings(max_examples=100, deadline=None)
@given(lines=_LINES, cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=20),
       step=st.integers(min_value=1, max_value=200))
def test_any_chunking_of_the_compressed_stream_gives_the_cleartext_frames(
        lines: list[bytes], cuts: list[int], step: int) -> None:
    clear = b"".join(lines)
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    wire = b"".join(z.compress(line) + z.flush(zlib.Z_SYNC_FLUSH) for line in lines)
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(wire[pos:pos + cut])
        pos += cut
    chunks.append(wire[pos:])
    expected, _ = _frames([clear], step=None)
    got, most = _frames(chunks, step=step)
    assert got == expected
    assert most <= 100 + 2 + 400 + step        # the framer's caps plus one step, at most
