"""DATA framing (RFC 5321 §4.1.1.4, §4.5.2), pure: no sockets, so it is table-tested and
fuzzed against aiosmtpd's own line-by-line algorithm (tests/smtp/test_data_reader.py).

The session's reader scans its buffer with these instead of reading a line at a time: the end
is found with one ``find`` per arrival, dot-stuffing is undone with one ``replace`` and long
lines are found by ``rfind`` jumps, so a 100 KiB body costs no per-line Python work.
"""

from __future__ import annotations

import enum


class DataStatus(enum.Enum):
    """How a DATA section ended, as aiosmtpd 1.4.6 decides it (its ``_DataState``)."""

    #: Within both limits: the message is handed to the DATA hook.
    OK = enum.auto()
    #: A line was longer than ``line_length_limit``: 500 after the end line (RFC 5321 §4.5.3.1.6).
    TOO_LONG = enum.auto()
    #: More than ``data_size_limit`` bytes: 552 after the end line (RFC 5321 §4.5.3.1.10).
    TOO_MUCH = enum.auto()


#: RFC 5321 §4.1.1.4: the mail data ends with a line holding only ".", so CRLF "." CRLF.
_DATA_END = b"\r\n.\r\n"


def find_data_end(data: bytes | bytearray, start: int = 0, *, line_start: bool = True) -> int:
    """The offset of the line "." that ends ``data``, or -1 while it has not arrived.

    ``data`` is what follows the 354 reply (``line_start``), or a tail of it that may begin
    mid-line. Only CRLF delimits lines: a bare CR or LF never ends DATA (SMTP smuggling).
    The body is ``data[:end]`` (still dot-stuffed); what follows the end line is ``data[end + 3:]``.
    """
    if line_start and start == 0 and data.startswith(b".\r\n"):
        return 0                     # an empty message: the end line right after 354
    end = data.find(_DATA_END, start)
    return end + 2 if end >= 0 else -1


def unstuff(body: bytes) -> bytes:
    """Undo dot-stuffing (RFC 5321 §4.5.2): a line starting with "." loses that dot."""
    out = body.replace(b"\r\n.", b"\r\n")   # no overlaps: "\r\n." cannot overlap itself
    return out[1:] if body.startswith(b".") else out


def first_long_line(data: bytes | bytearray, max_len: int, end: int | None = None) -> int:
    """The offset of the first line in ``data[:end]`` longer than ``max_len`` with its CRLF, or -1.

    ``data[:end]`` must end at a line end. Each step jumps to the last CRLF within ``max_len``
    bytes of a line's start, so the lines are checked a window (not a line) at a time.
    """
    end = len(data) if end is None else end
    start = 0
    while end - start > max_len:
        crlf = data.rfind(b"\r\n", start, start + max_len)
        if crlf < 0:
            return start
        start = crlf + 2
    return -1


def judge_data(data: bytes | bytearray, size_limit: int | None, line_limit: int, read_limit: int) -> DataStatus:
    """aiosmtpd's verdict on the body ``data`` (complete lines, or, past the size limit, at
    least ``size_limit + read_limit + 3`` bytes of it).

    aiosmtpd reads lines with a StreamReader limited to ``read_limit`` and keeps the first
    verdict it meets: a line over ``read_limit + 2`` bytes is TOO_LONG before its bytes count;
    otherwise the line that crosses ``size_limit`` is TOO_MUCH, and a line over ``line_limit``
    is TOO_LONG.
    """
    if not size_limit or len(data) <= size_limit:
        return DataStatus.TOO_LONG if first_long_line(data, line_limit) >= 0 else DataStatus.OK
    # The line holding byte ``size_limit`` crosses the limit; every line before it is complete.
    crlf = data.rfind(b"\r\n", 0, size_limit)
    crossing = crlf + 2 if crlf >= 0 else 0
    if first_long_line(data, line_limit, crossing) >= 0:
        return DataStatus.TOO_LONG
    crlf = data.find(b"\r\n", crossing)
    length = crlf + 2 - crossing if crlf >= 0 else len(data) - crossing + 1   # unfinished: at least
    return DataStatus.TOO_LONG if length > read_limit + 2 else DataStatus.TOO_MUCH
