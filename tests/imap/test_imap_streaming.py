"""FETCH of file-backed (large) messages: body literals are streamed from the file in chunks,
byte-identical to what an in-memory FETCH gives, including partials and flow control."""

from __future__ import annotations

import asyncio

import pytest

from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.imap import fetch as fetch_mod
from rmail.server.imap import commands
from rmail.server.imap import parser
from rmail.server.core.sqlite.blobs import BlobStore, FileBody
from rmail.server.imap import stream
from rmail.server.imap.stream import HEAD_MAX
from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

HEADER = (b"From: a@example.org\r\nTo: alice@example.com\r\nSubject: big one\r\n"
          b"X-Pad: 1\r\n\r\n")
# Not a multiple of any chunk size; lines long enough to pass INLINE_BLOB_MAX quickly.
BODY = b"".join(b"line %06d %s\r\n" % (n, b"x" * 90) for n in range(6000))
BIG = HEADER + BODY
SMALL = b"Subject: small\r\n\r\nhello\r\n"


def items(data: bytes, text: bytes) -> bytes:
    """The expected FETCH response for one message computed from its bytes in memory."""
    cmd = parser.parse_command(_frame(b"t FETCH 1 " + text))
    assert isinstance(cmd, commands.Fetch)
    plan = fetch_mod.FetchPlan(cmd.attributes)
    return fetch_mod.message_items(plan, uid=1, flags=frozenset(), recent=True, size=len(data),
                                   date=0.0, info=None, data=data)


def _frame(line: bytes):  # noqa: ANN202
    from rmail.server.imap.wire import Framer
    framer = Framer(max_line=65536, max_literal=1 << 20)
    framer.receive_data(line + b"\r\n")
    return framer.next_event()


@pytest.fixture
async def big_session(runtime: ServerRuntime):  # noqa: ANN201
    assert len(BIG) > INLINE_BLOB_MAX
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    for n, data in enumerate((BIG, SMALL), 1):
        reply = await c.cmd(b"a%d" % n, b"APPEND INBOX {%d+}\r\n%b" % (len(data), data))
        assert b"OK [APPENDUID" in reply
    await c.cmd(b"s", b"SELECT INBOX")
    yield c
    await c.close()


@pytest.mark.parametrize("text", [
    b"(BODY.PEEK[])", b"(RFC822.SIZE BODY.PEEK[] UID)", b"(BODY.PEEK[]<0.100>)",
    b"(BODY.PEEK[]<200000.100000>)", b"(BODY.PEEK[]<700000.10>)", b"(BODY.PEEK[TEXT])",
    b"(BODY.PEEK[TEXT]<5.70000>)", b"(BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
    b"(BODY.PEEK[HEADER.FIELDS (Subject)] RFC822.HEADER)", b"(BODY.PEEK[1]<0.64>)",
    b"(BODY.PEEK[HEADER.FIELDS.NOT (X-Pad)]<3.20> BODY.PEEK[]<0.1>)",
])
async def test_big_fetch_matches_in_memory_answer(big_session: RawClient, text: bytes) -> None:
    reply = await big_session.cmd(b"f", b"FETCH 1 " + text)
    assert reply == b"* 1 FETCH " + items(BIG, text) + b"\r\nf OK FETCH completed\r\n"


async def test_rfc822_streams_and_sets_seen(big_session: RawClient) -> None:
    reply = await big_session.cmd(b"f", b"FETCH 1:2 (RFC822)")
    assert reply == (b"* 1 FETCH (RFC822 {%d}\r\n%b FLAGS (\\Seen \\Recent))\r\n"
                     b"* 2 FETCH (RFC822 {%d}\r\n%b FLAGS (\\Seen \\Recent))\r\n"
                     b"f OK FETCH completed\r\n" % (len(BIG), BIG, len(SMALL), SMALL))
    reply = await big_session.cmd(b"g", b"FETCH 1 (RFC822.TEXT)")
    assert reply == b"* 1 FETCH (RFC822.TEXT {%d}\r\n%b)\r\ng OK FETCH completed\r\n" % (
        len(BODY), BODY)


async def test_slow_reader_gets_every_byte(big_session: RawClient) -> None:
    """Flow control: a client that reads slowly still gets the exact literal, and the
    session keeps answering afterwards."""
    await big_session.send(b"f FETCH 1 (BODY.PEEK[])\r\n")
    await asyncio.sleep(0.2)   # let the server fill the socket buffers and wait on drain
    reply = await big_session.until_tagged(b"f")
    assert reply == b"* 1 FETCH (BODY[] {%d}\r\n%b)\r\nf OK FETCH completed\r\n" % (
        len(BIG), BIG)
    assert await big_session.cmd(b"n", b"NOOP") == b"n OK NOOP completed\r\n"


async def test_message_file_reads_in_chunks(tmp_path) -> None:  # noqa: ANN001
    blobs = BlobStore(tmp_path / "blobs")
    f = await FileBody.open(blobs, blobs.write(BIG))
    written: list[bytes] = []

    class Out:
        def write(self, data: bytes) -> None:
            written.append(data)

        async def drain(self) -> None:
            pass

    try:
        assert f.size == len(BIG)
        assert await stream.head(f) == BIG[:HEAD_MAX]
        await stream.send(f, Out(), 10, len(BIG) - 20)
    finally:
        await f.close()
    assert b"".join(written) == BIG[10:-10]
    assert len(written) > 1   # chunks, not one read of the whole file
    assert max(map(len, written)) < len(BIG)


def test_header_longer_than_head_falls_back() -> None:
    cmd = parser.parse_command(_frame(b"t FETCH 1 (BODY.PEEK[TEXT])"))
    plan = fetch_mod.FetchPlan(cmd.attributes)
    assert plan.streamable and plan.needs_head
    head = b"X: " + b"y" * (HEAD_MAX - 3)
    assert fetch_mod.file_items(plan, uid=1, flags=frozenset(), recent=False, size=10 ** 6,
                                date=0.0, info=None, file_size=10 ** 6, head=head) is None
    assert not fetch_mod.FetchPlan(parser.parse_command(
        _frame(b"t FETCH 1 (BODY.PEEK[1])")).attributes).streamable


async def test_whole_reads_only_when_a_part_is_asked(big_session: RawClient,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = stream.read_all

    async def counting(body) -> bytes:  # noqa: ANN001 - a MessageBody
        calls.append(body.size)
        return await original(body)

    monkeypatch.setattr(stream, "read_all", counting)
    await big_session.cmd(b"f", b"FETCH 1 (BODY.PEEK[] BODY.PEEK[TEXT]<0.10> RFC822.HEADER)")
    assert calls == []
    await big_session.cmd(b"g", b"FETCH 1 (BODY.PEEK[1])")
    assert calls == [len(BIG)]
