"""Hypothesis properties of the pure IMAP layers.

- Any chunking of the input gives the same frames and errors.
- On arbitrary bytes only `WireError` leaves the framer and only `ParseError` the parser, and
  each call makes progress (a bounded number of events for a bounded input).
- Encode → parse round trips: strings (quoted or literal) through our own parser, responses
  through IMAPClient's independent response parser, mailbox names through modified UTF-7.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from imapclient.response_parser import parse_fetch_response, parse_response

from rmail.server.imap import encode as e
from rmail.server.imap import commands as c
from rmail.server.imap import parser
from rmail.server.core import mutf7
from rmail.server.imap.wire import NEED_DATA, Frame, Framer, NeedContinuation, WireError

settings.register_profile("rmail", max_examples=150, deadline=None)
settings.load_profile("rmail")

MAX_LITERAL = 64


def run(chunks: list[bytes], *, max_line: int = 80) -> list[object]:
    framer = Framer(max_line=max_line, max_literal=MAX_LITERAL, max_command=400)
    events: list[object] = []
    budget = 10 * (sum(len(c) for c in chunks) + 2)
    for chunk in chunks:
        framer.receive_data(chunk)
        while True:
            budget -= 1
            assert budget > 0, "framer made no progress"
            try:
                ev = framer.next_event()
            except WireError as exc:
                events.append(("error", exc.tag, exc.status, exc.code, exc.text))
                continue
            if ev is NEED_DATA:
                break
            events.append(ev)
    return events


literal = st.tuples(st.binary(max_size=MAX_LITERAL + 20), st.booleans())
line_text = st.binary(max_size=100).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))
command = st.tuples(st.from_regex(r"[a-z0-9]{1,5}", fullmatch=True), line_text,
                    st.lists(st.tuples(literal, line_text), max_size=3))


def render(cmd: tuple[str, bytes, list[tuple[tuple[bytes, bool], bytes]]]) -> bytes:
    tag, first, rest = cmd
    out = tag.encode() + b" " + first
    for (data, sync), after in rest:
        out += b"{%d%s}\r\n" % (len(data), b"" if sync else b"+") + data + after
    return out + b"\r\n"


@given(st.lists(command, max_size=4), st.data())
def test_any_chunking_gives_same_events(commands: list, data: st.DataObject) -> None:
    stream = b"".join(render(c) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    assert run(chunks) == run([stream])


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_only_wire_error_escapes_and_progress(chunks: list[bytes]) -> None:
    for ev in run(chunks):
        if isinstance(ev, Frame):
            assert len(ev.parts) % 2 == 1
            try:
                parser.parse_command(ev)
            except parser.ParseError:
                pass


@given(st.lists(command, max_size=4))
def test_well_formed_commands_frame_in_order(commands: list) -> None:
    frames = [ev for ev in run([b"".join(render(c) for c in commands)], max_line=1000)
              if not isinstance(ev, NeedContinuation)]
    for cmd, ev in zip(commands, frames):
        tag, _, rest = cmd
        if any(len(d) > MAX_LITERAL for (d, _), _ in rest):
            assert isinstance(ev, tuple) and ev[0] == "error"
        elif isinstance(ev, Frame):
            assert ev.literals == tuple(d for (d, _), _ in rest)
            assert ev.parts[0].startswith(tag.encode() + b" ")


# Strings without NUL: RFC 3501 §4.3 allows none in a string, so the encoder drops it.
no_nul = st.binary(max_size=80).map(lambda b: b.replace(b"\x00", b""))


@given((st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
       .map(lambda t: t.replace("\x00", "")))
def test_encoded_string_parses_back(text: str) -> None:
    raw = text.encode("utf-8")
    encoded = e.string(raw)
    line = b"a LOGIN " + encoded + b" pw\r\n"
    framer = Framer()
    framer.receive_data(line)
    ev = framer.next_event()
    while isinstance(ev, NeedContinuation):
        ev = framer.next_event()
    assert isinstance(ev, Frame)
    cmd = parser.parse_command(ev)
    assert isinstance(cmd, c.Login) and cmd.userid == text


def imaplib_chunks(wire: bytes) -> list[object]:
    """Split an encoded untagged response the way imaplib hands it to IMAPClient."""
    body = re.sub(rb"^(\d+) FETCH \(", rb"\1 (", wire[2:-2])  # imaplib drops "* ", "FETCH"
    out: list[object] = []
    pos = 0
    marker = re.compile(rb"\{(\d+)\}\r\n")
    while (m := marker.search(body, pos)) is not None:
        size = int(m.group(1))
        out.append((body[pos:m.start()] + b"{%d}" % size, body[m.end():m.end() + size]))
        pos = m.end() + size
    out.append(body[pos:])
    return out


values = st.recursive(
    st.none() | st.integers(0, 2**32) | no_nul,
    lambda inner: st.lists(inner, max_size=4).map(tuple), max_leaves=12)


@given(st.integers(1, 10**6), st.integers(1, 10**6), values)
def test_fetch_response_round_trips_through_imapclient(seq: int, uid: int, value: object) -> None:
    wire = e.encode(e.Fetch(seq, (("UID", uid), ("X-VALUE", value))))
    parsed = parse_fetch_response(imaplib_chunks(wire))
    assert parsed[uid][b"SEQ"] == seq
    assert parsed[uid][b"X-VALUE"] == value


@given(st.lists(no_nul, max_size=6))
def test_data_strings_round_trip_through_imapclient(items: list[bytes]) -> None:
    wire = e.encode(e.Data("X", (tuple(items),)))
    chunks = imaplib_chunks(wire)
    parsed = parse_response(chunks)
    assert parsed[0] == b"X" and tuple(parsed[1]) == tuple(items)


@given(st.text(max_size=60))
def test_mutf7_round_trip(name: str) -> None:
    wire = mutf7.encode(name)
    assert wire.isascii()
    assert mutf7.decode(wire) == name


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=6),
       st.integers(0, 60))
def test_seqset_text_round_trip_and_resolve(ranges: list[tuple[int, int]], largest: int) -> None:
    seqset = c.SeqSet(tuple(ranges))
    assert parser.parse_seqset(str(seqset)) == seqset
    resolved = seqset.resolve(largest)
    members = {n for lo, hi in resolved for n in range(lo, hi + 1)}
    assert members == {n for n in range(1, 61) if seqset.contains(n, largest)} | \
        {n for n in members if n > 60}
    assert all(a[1] + 1 < b[0] for a, b in zip(resolved, resolved[1:]))
