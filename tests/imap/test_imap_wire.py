"""Framer tables: literals, LITERAL+, limits and resynchronisation (rmail.server.imap.wire)."""

from __future__ import annotations

import pytest

from rmail.server.imap.wire import (
    NEED_DATA, Frame, Framer, NeedContinuation, RawLine, WireError,
)


def drain(framer: Framer) -> list[object]:
    """All events until NEED_DATA; a WireError is recorded as ("error", tag, status, text)."""
    out: list[object] = []
    while True:
        try:
            ev = framer.next_event()
        except WireError as exc:
            out.append(("error", exc.tag, exc.status, exc.text))
            continue
        if ev is NEED_DATA:
            return out
        out.append(ev)


FRAMES = [
    ("simple", b"a1 NOOP\r\n", [Frame((b"a1 NOOP",))]),
    ("bare LF", b"a1 NOOP\n", [Frame((b"a1 NOOP",))]),
    ("two pipelined", b"a1 NOOP\r\na2 CHECK\r\n", [Frame((b"a1 NOOP",)), Frame((b"a2 CHECK",))]),
    ("sync literal", b"a1 LOGIN {3}\r\nbob pw\r\n",
     [NeedContinuation(3), Frame((b"a1 LOGIN ", b"bob", b" pw"))]),
    ("non-sync literal", b"a1 LOGIN {3+}\r\nbob {2+}\r\npw\r\n",
     [Frame((b"a1 LOGIN ", b"bob", b" ", b"pw", b""))]),
    ("empty literal", b"a1 LOGIN {0}\r\n {0+}\r\n\r\n",
     [NeedContinuation(0), Frame((b"a1 LOGIN ", b"", b" ", b"", b""))]),
    ("literal holding CRLF and braces", b"a APPEND x {8+}\r\n{1}\r\n\r\n}\r\n",
     [Frame((b"a APPEND x ", b"{1}\r\n\r\n}", b""))]),
    ("brace atom is not a literal", b"a LOGIN foo} bar}\r\n", [Frame((b"a LOGIN foo} bar}",))]),
    ("non-numeric brace", b"a LOGIN {abc}\r\n", [Frame((b"a LOGIN {abc}",))]),
]


@pytest.mark.parametrize("data, expected", [(d, e) for _, d, e in FRAMES],
                         ids=[i for i, _, _ in FRAMES])
def test_frames(data: bytes, expected: list[object]) -> None:
    framer = Framer()
    framer.receive_data(data)
    assert drain(framer) == expected


def test_continuation_reported_once_and_before_literal_bytes() -> None:
    framer = Framer()
    framer.receive_data(b"a1 APPEND INBOX {5}\r\n")
    assert framer.next_event() == NeedContinuation(5)
    assert framer.next_event() is NEED_DATA
    framer.receive_data(b"he")
    assert framer.next_event() is NEED_DATA
    framer.receive_data(b"llo\r\n")
    assert framer.next_event() == Frame((b"a1 APPEND INBOX ", b"hello", b""))


def test_sync_literal_over_limit_refused_before_continuation() -> None:
    framer = Framer(max_literal=100)
    framer.receive_data(b"a1 APPEND INBOX {101}\r\na2 NOOP\r\n")
    with pytest.raises(WireError) as err:
        framer.next_event()
    assert (err.value.tag, err.value.status, err.value.code) == ("a1", "NO", "TOOBIG")
    # No continuation was produced; the next command is read normally.
    assert framer.next_event() == Frame((b"a2 NOOP",))


def test_literal_plus_over_limit_is_discarded_without_buffering() -> None:
    framer = Framer(max_literal=100)
    framer.receive_data(b"a1 APPEND INBOX {1000+}\r\n")
    with pytest.raises(WireError) as err:
        framer.next_event()
    assert err.value.tag == "a1" and err.value.code == "TOOBIG"
    for _ in range(10):
        framer.receive_data(b"x" * 100)
        assert framer.next_event() is NEED_DATA
        assert framer.buffered == 0
    # The rest of the refused command (another LITERAL+ and the final line) is dropped too.
    framer.receive_data(b" {3+}\r\nabc\r\na2 NOOP\r\n")
    assert drain(framer) == [Frame((b"a2 NOOP",))]


def test_refused_command_ending_in_sync_literal_ends_there() -> None:
    framer = Framer(max_literal=10)
    framer.receive_data(b"a1 APPEND INBOX {50+}\r\n" + b"y" * 50 + b" {4}\r\na2 NOOP\r\n")
    assert drain(framer) == [("error", "a1", "NO", "literal too large"), Frame((b"a2 NOOP",))]


def test_line_too_long_without_newline_is_dropped_as_it_arrives() -> None:
    framer = Framer(max_line=64)
    framer.receive_data(b"t9 SEARCH " + b"A" * 100)
    assert drain(framer) == [("error", "t9", "BAD", "line too long")]
    framer.receive_data(b"B" * 1000)
    assert drain(framer) == [] and framer.buffered == 0
    framer.receive_data(b"\r\nt10 NOOP\r\n")
    assert drain(framer) == [Frame((b"t10 NOOP",))]


def test_line_too_long_with_newline_in_same_chunk() -> None:
    framer = Framer(max_line=64)
    framer.receive_data(b"t1 X " + b"A" * 100 + b"\r\nt2 NOOP\r\n")
    assert drain(framer) == [("error", "t1", "BAD", "line too long"), Frame((b"t2 NOOP",))]


def test_over_long_line_ending_in_literal_plus_discards_the_literal() -> None:
    framer = Framer(max_line=64)
    framer.receive_data(b"t1 X " + b"A" * 100)
    assert drain(framer) == [("error", "t1", "BAD", "line too long")]
    framer.receive_data(b"A {5+}\r\n12345\r\nt2 NOOP\r\n")
    assert drain(framer) == [Frame((b"t2 NOOP",))]


def test_command_total_size_cap() -> None:
    framer = Framer(max_literal=10, max_command=25)
    framer.receive_data(b"a1 X {10+}\r\n0123456789 {10}\r\na2 NOOP\r\n")
    assert drain(framer) == [("error", "a1", "NO", "command too large"), Frame((b"a2 NOOP",))]


def test_untagged_error_when_tag_invalid() -> None:
    framer = Framer(max_literal=1)
    framer.receive_data(b"a+b X {5}\r\n")
    assert drain(framer) == [("error", None, "NO", "literal too large")]


def test_huge_literal_number() -> None:
    framer = Framer()
    framer.receive_data(b"a1 X {99999999999}\r\na2 NOOP\r\n")
    assert drain(framer) == [("error", "a1", "BAD", "literal too large"), Frame((b"a2 NOOP",))]


def test_raw_line_mode_for_idle_done() -> None:
    framer = Framer()
    framer.receive_data(b"a1 IDLE\r\n")
    assert framer.next_event() == Frame((b"a1 IDLE",))
    framer.expect_line()
    framer.receive_data(b"DONE {5}\r\na2 NOOP\r\n")
    assert framer.next_event() == RawLine(b"DONE {5}")
    assert framer.next_event() == Frame((b"a2 NOOP",))


def test_discard_buffered_drops_pipelined_cleartext() -> None:
    framer = Framer()
    framer.receive_data(b"a1 STARTTLS\r\na2 LOGIN evil pw\r\na3 X {4}\r\n")
    assert framer.next_event() == Frame((b"a1 STARTTLS",))
    assert framer.discard_buffered() > 0
    assert framer.next_event() is NEED_DATA
    framer.receive_data(b"a4 NOOP\r\n")
    assert framer.next_event() == Frame((b"a4 NOOP",))


def test_in_command_tracks_partial_input() -> None:
    framer = Framer()
    framer.receive_data(b"a1 APPEND INBOX {5}\r\nab")
    assert isinstance(framer.next_event(), NeedContinuation)
    assert framer.next_event() is NEED_DATA
    assert framer.in_command
    framer.receive_data(b"cde\r\n")
    framer.next_event()
    assert not framer.in_command


def test_newline_search_does_not_rescan() -> None:
    """Dripping a long line byte by byte stays linear: the scan offset only moves forward."""
    framer = Framer()
    line = b"a1 SEARCH " + b"x" * 5000 + b"\r\n"
    for i in range(len(line) - 1):
        framer.receive_data(line[i:i + 1])
        assert framer.next_event() is NEED_DATA
        assert framer._scan == i + 1
    framer.receive_data(line[-1:])
    assert framer.next_event() == Frame((line[:-2],))


def test_set_limits_applies_to_commands_still_buffered() -> None:
    # Pre-login caps, then the full ones once logged in (a LOGIN with an APPEND behind it).
    framer = Framer(max_line=64, max_literal=8, max_command=32)
    framer.receive_data(b"a LOGIN {9}\r\nb LOGIN {8}\r\n")
    assert drain(framer) == [("error", "a", "NO", "literal too large"), NeedContinuation(8)]
    framer.receive_data(b"12345678 pw\r\nc APPEND x {500}\r\n")
    assert framer.next_event() == Frame((b"b LOGIN ", b"12345678", b" pw"))
    framer.set_limits(max_line=1000, max_literal=1000)
    assert framer.next_event() == NeedContinuation(500)


def test_draining_reports_a_refused_literal_plus_until_dropped() -> None:
    framer = Framer(max_literal=8)
    framer.receive_data(b"a LOGIN {20+}\r\n")
    with pytest.raises(WireError):
        framer.next_event()
    assert framer.draining
    framer.receive_data(b"x" * 20 + b"\r\n")
    assert framer.next_event() is NEED_DATA and not framer.draining
