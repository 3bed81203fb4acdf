"""Bulk DATA reading (``_SMTPReader.read_data`` and its pure helpers) against aiosmtpd 1.4.6's
line-by-line ``smtp_DATA``: same end line, same dot-unstuffing, same 500/552 verdicts, same
bytes left for the next command."""

from __future__ import annotations

import asyncio
import enum
import re
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.smtp.data import DataStatus, find_data_end, first_long_line, judge_data, unstuff
from rmail.server.smtp.session import _SMTPReader

from .test_hostile import SMUGGLERS


# -- a reference: aiosmtpd 1.4.6 smtp_DATA's reading loop, transcribed ------------------------

class _State(enum.Enum):
    NOMINAL = enum.auto()
    TOO_LONG = enum.auto()
    TOO_MUCH = enum.auto()


_REFERENCE_STATUS = {_State.NOMINAL: DataStatus.OK, _State.TOO_LONG: DataStatus.TOO_LONG,
                     _State.TOO_MUCH: DataStatus.TOO_MUCH}


async def reference_data(reader: asyncio.StreamReader, limit: int | None,
                         line_length_limit: int) -> tuple[DataStatus, bytes]:
    """aiosmtpd's loop (smtp.py, ``smtp_DATA``) with ``self`` taken out; returns the status and
    ``original_content`` (empty unless OK)."""
    data: list[bytearray] = []
    num_bytes = 0
    line_fragments: list[bytes] = []
    state = _State.NOMINAL
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as e:
            if state == _State.NOMINAL:
                state = _State.TOO_LONG
            data *= 0
            line = await reader.read(e.consumed)
        if not line_fragments and line == b".\r\n":
            break
        num_bytes += len(line)
        if state == _State.NOMINAL and limit and num_bytes > limit:
            state = _State.TOO_MUCH
            data *= 0
        line_fragments.append(line)
        if line.endswith(b"\r\n"):
            if state == _State.NOMINAL:
                joined = b"".join(line_fragments)
                if len(joined) > line_length_limit:
                    state = _State.TOO_LONG
                    data *= 0
                else:
                    data.append(bytearray(joined))
            line_fragments *= 0
    if state != _State.NOMINAL:
        return _REFERENCE_STATUS[state], b""
    for text in data:
        if text.startswith(b"."):
            del text[0]
    return DataStatus.OK, b"".join(data)


# -- running a reader over chunked input, without sockets ------------------------------------

async def _feed(reader: asyncio.StreamReader, chunks: list[bytes]) -> None:
    for chunk in chunks:
        reader.feed_data(chunk)
        await asyncio.sleep(0)          # let the reading coroutine see each chunk on its own
    reader.feed_eof()


async def _run(read, reader: asyncio.StreamReader, chunks: list[bytes]):
    feeder = asyncio.create_task(_feed(reader, chunks))
    try:
        result = await read(reader)
    finally:
        await feeder
    return result, bytes(reader._buffer)      # what the next command would read


def bulk(wire: bytes, chunks: list[bytes], size_limit: int | None, line_limit: int):
    """(status, original_content, rest) from rmail's reader fed ``chunks``."""
    async def go():
        reader = _SMTPReader(limit=line_limit)

        async def read(r: _SMTPReader) -> tuple[DataStatus, bytes]:
            status, raw = await r.read_data(size_limit, line_limit)
            return status, unstuff(raw)

        (status, content), rest = await _run(read, reader, chunks)
        return status, content, rest
    return asyncio.run(go())


def reference(wire: bytes, size_limit: int | None, line_limit: int):
    """(status, original_content, rest) from aiosmtpd's algorithm fed the same bytes."""
    async def go():
        # aiosmtpd's reader: StreamReader(limit=line_length_limit)
        reader = asyncio.StreamReader(limit=line_limit)
        (status, content), rest = await _run(
            lambda r: reference_data(r, size_limit, line_limit), reader, [wire])
        return status, content, rest
    return asyncio.run(go())


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


# -- pure helpers ---------------------------------------------------------------------------

@pytest.mark.parametrize("data, start, line_start, end", [
    (b".\r\n", 0, True, 0),                              # empty message: end right after 354
    (b".\r\nQUIT\r\n", 0, True, 0),
    (b".\r\n", 0, False, -1),                           # a tail that begins mid-line
    (b"x\r\n.\r\n", 0, True, 3),
    (b"x\r\n.\r\nQUIT\r\n", 0, True, 3),
    (b"..\r\n.\r\n", 0, True, 4),                        # a stuffed "." line is not the end
    (b"x.\r\n", 0, True, -1),
    (b"x\r\n..\r\n", 0, True, -1),
    (b"x\r\n.\r", 0, True, -1),                          # not arrived yet
    (b"x\r\n.\r\n", 1, True, 3),                         # search resumed after a partial scan
    (b"ab\r\n.\r\n", 3, True, -1),                       # ... but not past where it starts
    (b"\r\n.\r\n", 0, False, 2),
])
def test_find_data_end(data: bytes, start: int, line_start: bool, end: int) -> None:
    assert find_data_end(data, start, line_start=line_start) == end


@pytest.mark.parametrize("fake_end", SMUGGLERS)
def test_bare_lf_or_cr_is_never_the_end(fake_end: bytes) -> None:
    assert find_data_end(b"hello" + fake_end + b"more") == -1


@pytest.mark.parametrize("start", [b".\n", b".\r", b".\r\r\n", b".\n\r\n", b" .\r\n"])
def test_only_dot_crlf_ends_an_empty_message(start: bytes) -> None:
    assert find_data_end(start + b"more") == -1


@pytest.mark.parametrize("body, out", [
    (b"", b""),
    (b"..\r\n", b".\r\n"),                     # dot-stuffing at the very start
    (b".x\r\n", b"x\r\n"),
    (b"a\r\n..\r\n...x\r\n.y\r\n", b"a\r\n.\r\n..x\r\ny\r\n"),   # after CRLF
    (b"a.\r\nb..\r\n", b"a.\r\nb..\r\n"),      # dots inside a line stay
    (b"a\n.b\r.c\r\n", b"a\n.b\r.c\r\n"),      # a bare LF or CR does not start a line
    (b"\r\n.\r\n.\r\n", b"\r\n\r\n\r\n"),
])
def test_unstuff(body: bytes, out: bytes) -> None:
    assert unstuff(body) == out


@pytest.mark.parametrize("data, max_len, offset", [
    (b"", 10, -1),
    (b"12345678\r\n", 10, -1),                  # exactly max_len with its CRLF
    (b"123456789\r\n", 10, 0),                  # one over
    (b"ab\r\n" * 10, 4, -1),
    (b"ab\r\n" * 10 + b"abc\r\n", 4, 40),       # a long line at the very end
    (b"ab\r\n" * 10 + b"abc\r\n", 5, -1),
    (b"a\r\nb\rc\nd\r\ne\r\n", 6, 3),           # bare CR/LF are inside a line: "b\rc\nd" + CRLF
    (b"a\r\nb\rc\nd\r\ne\r\n", 7, -1),
    (b"x" * 30 + b"\r\n", 10, 0),
])
def test_first_long_line(data: bytes, max_len: int, offset: int) -> None:
    assert first_long_line(data, max_len) == offset


def test_first_long_line_stops_at_end() -> None:
    data = b"ab\r\n" * 3 + b"x" * 50 + b"\r\n"
    assert first_long_line(data, 10, 12) == -1
    assert first_long_line(data, 10) == 12


@pytest.mark.parametrize("data, size_limit, status", [
    (b"x" * 8 + b"\r\n", 10, DataStatus.OK),              # exactly the limit
    (b"x" * 9 + b"\r\n", 10, DataStatus.TOO_MUCH),        # limit + 1
    (b"x" * 8 + b"\r\n", None, DataStatus.OK),
    (b"x" * 8 + b"\r\n", 0, DataStatus.OK),               # 0: no limit, as in aiosmtpd
    # A line the reader overruns (over read_limit + 2) is TOO_LONG before it counts ...
    (b"ab\r\n" + b"y" * 30 + b"\r\n", 10, DataStatus.TOO_LONG),
    # ... one within read_limit + 2 crosses the size limit first ...
    (b"ab\r\n" + b"y" * 20 + b"\r\n", 10, DataStatus.TOO_MUCH),
    # ... and a long line before the crossing one decides.
    (b"y" * 19 + b"\r\n" + b"ab\r\n" * 5, 25, DataStatus.TOO_LONG),
    (b"y" * 19 + b"\r\n" + b"ab\r\n" * 5, None, DataStatus.TOO_LONG),
])
def test_judge_data(data: bytes, size_limit: int | None, status: DataStatus) -> None:
    line_limit = read_limit = 20
    assert judge_data(data, size_limit, line_limit, read_limit) is status


# -- the reader, chunk by chunk --------------------------------------------------------------

CASES = [
    b".\r\nQUIT\r\n",                                  # empty message
    b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    b"..\r\n...x\r\n.y\r\n\r\n.\r\nNOOP\r\n",          # stuffed lines, start and after CRLF
    b"a\r\n.\r\n.\r\n",                                # the second "." is the next command
    b"z" * 5000 + b"\r\nafter\r\n.\r\nNOOP\r\n",      # long line (500 after the end)
    b"ok\r\n" + b"z" * 1002 + b"\r\n.\r\n",            # long line at the very end
    b"x" * 999 + b"\r\n.\r\n",                         # longest allowed line (1001 with CRLF)
    b"x" * 1000 + b"\r\n.\r\n",                        # one over
] + [b"hello" + fake + b"MAIL FROM:<a@b>\r\n.\r\nQUIT\r\n" for fake in SMUGGLERS]


@pytest.mark.parametrize("wire", CASES)
@pytest.mark.parametrize("size_limit", [None, 30, 1001, 2000])
def test_one_byte_chunks_match_aiosmtpd(wire: bytes, size_limit: int | None) -> None:
    expected = reference(wire, size_limit, 1001)
    assert bulk(wire, one_byte_chunks(wire), size_limit, 1001) == expected
    assert bulk(wire, [wire], size_limit, 1001) == expected


def test_exact_size_limit_and_one_over() -> None:
    body = b"x" * 98 + b"\r\n"
    assert bulk(body + b".\r\n", [body + b".\r\n"], 100, 1001) == (DataStatus.OK, body, b"")
    body = b"x" * 99 + b"\r\n"
    assert bulk(body + b".\r\n", one_byte_chunks(body + b".\r\n"), 100, 1001) == (DataStatus.TOO_MUCH, b"", b"")


def test_oversize_data_is_discarded_while_reading() -> None:
    """1.2 MB against a 1000-byte limit: the reader keeps a tail, not the excess."""
    chunk = (b"y" * 598 + b"\r\n") * 10

    async def go():
        reader = _SMTPReader(limit=1001)
        task = asyncio.create_task(reader.read_data(1000, 1001))
        for _ in range(200):
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        reader.feed_data(b".\r\nQUIT\r\n")
        return await task, bytes(reader._buffer)

    tracemalloc.start()
    try:
        (status, raw), rest = asyncio.run(go())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (status, raw, rest) == (DataStatus.TOO_MUCH, b"", b"QUIT\r\n")
    assert peak < 200_000, peak


def test_connection_closed_mid_data() -> None:
    async def go():
        reader = _SMTPReader(limit=1001)
        reader.feed_data(b"Subject: cut\r\n\r\npart")
        reader.feed_eof()
        await reader.read_data(None, 1001)
    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(go())


# -- property: any body, stuffed and chunked anyhow, stores what aiosmtpd would store ---------

_LINE = st.binary(max_size=40).map(lambda b: re.sub(rb"\r\n", b"\n", b))   # no CRLF inside
_TEXT = st.lists(st.sampled_from([b".", b"\r", b"\n", b"x", b"ab", b"\r\n", b".\r\n"]), max_size=30)


def _stuff(lines: list[bytes]) -> bytes:
    """A client's transparency procedure (RFC 5321 §4.5.2) on CRLF-delimited lines."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


def _chunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_LINE, max_size=12), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       size_limit=st.none() | st.integers(0, 200), line_limit=st.integers(8, 40))
def test_stuffed_bodies_match_aiosmtpd(lines: list[bytes], cuts: list[int], size_limit: int | None,
                                       line_limit: int) -> None:
    wire = _stuff(lines) + b".\r\nQUIT\r\n"
    expected = reference(wire, size_limit, line_limit)
    assert bulk(wire, _chunk(wire, cuts), size_limit, line_limit) == expected
    if expected[0] is DataStatus.OK:
        assert expected[1] == b"".join(line + b"\r\n" for line in lines)   # the stuffing undone


@settings(max_examples=300, deadline=None)
@given(parts=_TEXT, cuts=st.lists(st.integers(0, 10_000), max_size=12),
       size_limit=st.none() | st.integers(0, 60), line_limit=st.integers(4, 16))
def test_hostile_bytes_match_aiosmtpd(parts: list[bytes], cuts: list[int], size_limit: int | None,
                                      line_limit: int) -> None:
    """Unstuffed bytes, bare CR/LF and fake ends: the same end, verdict and leftover."""
    wire = b"".join(parts) + b"\r\n.\r\nQUIT\r\n"
    assert bulk(wire, _chunk(wire, cuts), size_limit, line_limit) == reference(wire, size_limit, line_limit)
