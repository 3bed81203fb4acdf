"""Everything the IMAP server sends, as bytes (RFC 3501 §4, §7, §9): the one encoder.

No other module of the package writes protocol syntax. Handlers build typed responses
(`Tagged`, `Status`, `Data`, `Numbered`, `Fetch`, `Continuation`, `Challenge`) and `encode`
turns them into bytes; the hot paths of a sync — FETCH, STORE, SEARCH, EXPUNGE and the updates
of a selected mailbox, once per message — call the byte builders at the end of this module,
which write exactly what the typed responses would, without an object per message.

Values inside responses have one fixed mapping:

- None → NIL; int → number; `Atom` → the atom verbatim (flags, keywords, item names);
- str/bytes → a quoted string or a literal ``{n}``, by the rule of `core.imapstring` (RFC
  3501 §4.3) — the rule that also wrote the stored ENVELOPE and BODYSTRUCTURE;
- tuple/list → a parenthesised list; `Raw` → bytes written earlier by these same rules (the
  ENVELOPE/BODYSTRUCTURE the store keeps); `Literal` → always a literal (message data).

Text for humans — resp-text, continuation text, a response code given as text — has one rule
(`text`): CR, LF and NUL become spaces, at most `MAX_TEXT` octets, never empty, so a reply can
neither end early nor carry a client's long input back; a code given as text also loses "]".
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, Union

from rmail.server.core.imapstring import MAX_QUOTED, NIL, nstring, string

__all__ = [
    "Atom", "CRLF", "Challenge", "Code", "Continuation", "Data", "FETCH_ORDER", "FLAGS_ORDER",
    "Fetch", "Literal", "MAX_QUOTED", "MAX_TEXT", "Numbered", "Raw", "Response", "SEARCH_PIECE",
    "Status", "Tagged", "date_time", "encode", "encode_all", "encode_value", "fetch_flags",
    "fetch_head", "fetch_response", "flag_list", "literal", "literal_prefix", "nstring",
    "numbered", "search_response", "sequence_set", "string", "text",
    "fetch_modseq", "modseq_item", "vanished",
    "THREAD_CLOSE", "THREAD_OPEN", "sort_response", "thread_response",
    "Value", "esearch_response", "sequence_range",
]
# BINARY (RFC 3516) and URLFETCH (RFC 4467, RFC 5524).
__all__ += ["literal8", "literal8_prefix", "urlfetch_head", "urlfetch_pair"]

#: Ends every response line (RFC 3501 §2.2).
CRLF: Final = b"\r\n"
#: Longest resp-text sent, in octets (cut on a character boundary). Text is for humans; the
#: cap keeps any reply line far below the 8192 octets RFC 7162 §4 asks every peer to accept,
#: whatever an error message quotes.
MAX_TEXT: Final = 1024
_TEXT_UNSAFE = re.compile(r"[\x00\r\n]")
_MONTHS: Final = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep",
                  b"Oct", b"Nov", b"Dec")
#: The system flags (the store's, `core.model.SYSTEM_FLAGS`) in the order a FETCH FLAGS list
#: has always had them; keywords follow, sorted, then \Recent.
FETCH_ORDER: Final = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
#: The same flags in `* FLAGS` and PERMANENTFLAGS: RFC 3501 §2.3.2's order.
FLAGS_ORDER: Final = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
#: Encoded flag lists by (flag set, recent): a mailbox shares few flag sets, and a sync of a
#: large mailbox encodes the same ones thousands of times.
_FLAG_CACHE: dict[tuple[frozenset[str], bool], bytes] = {}
_FLAG_CACHE_MAX: Final = 4096
#: Numbers per piece of a long SEARCH answer (`search_response`).
SEARCH_PIECE: Final = 4096


# -- values ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Atom:
    """Sent verbatim: a flag, keyword, status item name or other atom."""

    text: str


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes already written by these rules (an ENVELOPE computed at delivery)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Literal:
    """Bytes always sent as a literal (message data)."""

    data: bytes


Value = Union[None, int, str, bytes, "Atom", "Raw", "Literal", tuple[Any, ...], list[Any]]


@dataclass(frozen=True, slots=True)
class Code:
    """A response code ``[NAME args]`` (RFC 3501 §7.1; RFC 4315, 5530): args are atoms,
    numbers and lists of them, encoded like any value."""

    name: str
    args: tuple[Value, ...] = ()


# -- responses ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Tagged:
    """``tag OK|NO|BAD [code] text`` (RFC 3501 §7.1): the last reply of a command."""

    tag: str
    status: str
    text: str
    code: Code | str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """``* OK|NO|BAD|BYE|PREAUTH [code] text`` (RFC 3501 §7.1)."""

    status: str
    text: str
    code: Code | str | None = None


@dataclass(frozen=True, slots=True)
class Data:
    """``* NAME value...``: CAPABILITY, FLAGS, LIST, LSUB, STATUS, SEARCH, NAMESPACE, ID,
    ENABLED (RFC 3501 §7.2, §7.2.2–7.2.5; RFC 2342, 2971, 5161)."""

    name: str
    values: tuple[Value, ...] = ()


@dataclass(frozen=True, slots=True)
class Numbered:
    """``* n EXISTS|RECENT|EXPUNGE`` (RFC 3501 §7.3, §7.4.1)."""

    number: int
    name: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """``* n FETCH (name value ...)`` (RFC 3501 §7.4.2)."""

    number: int
    items: tuple[tuple[str, Value], ...]


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text`` (RFC 3501 §7.5)."""

    text: str = "Ready"


@dataclass(frozen=True, slots=True)
class Challenge:
    """``+ base64`` (RFC 3501 §7.5, §6.2.2): a SASL server challenge, possibly empty."""

    data: bytes


Response = Union[Tagged, Status, Data, Numbered, Fetch, Continuation, Challenge]


# -- encoding -------------------------------------------------------------------------------

def encode_value(value: Value, out: list[bytes]) -> None:
    """Append the wire form of `value` to `out` (the commonest kinds are tried first)."""
    if isinstance(value, Atom):
        out.append(value.text.encode("ascii"))
    elif isinstance(value, (str, bytes)):
        out.append(string(value))
    elif isinstance(value, bool):
        raise TypeError("booleans have no IMAP form")
    elif isinstance(value, int):
        if value < 0:
            raise ValueError("IMAP numbers are unsigned")
        out.append(b"%d" % value)
    elif value is None:
        out.append(b"NIL")
    elif isinstance(value, (tuple, list)):
        out.append(b"(")
        for i, item in enumerate(value):
            if i:
                out.append(b" ")
            encode_value(item, out)
        out.append(b")")
    elif isinstance(value, Raw):
        out.append(value.data)
    elif isinstance(value, Literal):
        out.append(literal(value.data))
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def text(value: str) -> bytes:
    """Human-readable text (resp-text): one line, at most `MAX_TEXT` octets, never empty."""
    if (len(value) <= MAX_TEXT and value.isascii() and value.isprintable() and value
            and value[0] != " " and value[-1] != " "):
        return value.encode("ascii")  # the usual case (a constant): nothing to change
    data = (_TEXT_UNSAFE.sub(" ", value).strip() or "done").encode("utf-8", "replace")
    if len(data) > MAX_TEXT:
        data = data[:MAX_TEXT].decode("utf-8", "ignore").encode("utf-8")
    return data


def _code(code: Code | str | None) -> bytes:
    if not code:
        return b""
    if isinstance(code, str):
        return b"[" + text(code).replace(b"]", b"") + b"] "
    out = [b"[", code.name.encode("ascii")]
    for arg in code.args:
        out.append(b" ")
        encode_value(arg, out)
    out.append(b"] ")
    return b"".join(out)


def encode(response: Response) -> bytes:
    """The complete wire form of one response, CRLF included."""
    if isinstance(response, Tagged):
        code = b"" if response.code is None else _code(response.code)
        return b"%b %b %b%b\r\n" % (response.tag.encode("ascii"), response.status.encode("ascii"),
                                     code, text(response.text))
    if isinstance(response, Status):
        return b"* %b %b%b\r\n" % (response.status.encode("ascii"), _code(response.code),
                                    text(response.text))
    if isinstance(response, Numbered):
        return b"* %d %b\r\n" % (response.number, response.name.encode("ascii"))
    if isinstance(response, Data):
        out = [b"* ", response.name.encode("ascii")]
        for value in response.values:
            out.append(b" ")
            encode_value(value, out)
        out.append(b"\r\n")
        return b"".join(out)
    if isinstance(response, Fetch):
        out = [b"* %d FETCH (" % response.number]
        for i, (name, value) in enumerate(response.items):
            if i:
                out.append(b" ")
            out.append(name.encode("ascii"))
            out.append(b" ")
            encode_value(value, out)
        out.append(b")\r\n")
        return b"".join(out)
    if isinstance(response, Continuation):
        return b"+ " + text(response.text) + b"\r\n"
    if isinstance(response, Challenge):
        return b"+ " + base64.b64encode(response.data) + b"\r\n"
    raise TypeError(f"not a response: {type(response).__name__}")


def encode_all(responses: Iterable[Response]) -> bytes:
    return b"".join([encode(r) for r in responses])


# -- byte builders for the hot paths ----------------------------------------------------------

def literal(data: bytes) -> bytes:
    """``{n}`` CRLF `data`: message data, whatever its bytes."""
    return b"{%d}\r\n" % len(data) + data


def literal_prefix(size: int) -> bytes:
    """The ``{n}`` CRLF that announces a literal whose bytes are streamed after it."""
    return b"{%d}\r\n" % size


def literal8(data: bytes) -> bytes:
    """``~{n}`` CRLF `data` (RFC 3516 §4.2) when `data` holds a NUL octet, which an
    IMAP4rev1 literal cannot carry; an ordinary literal otherwise."""
    if b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data


def literal8_prefix(size: int) -> bytes:
    """The ``~{n}`` CRLF of a literal8 whose bytes are streamed after it (RFC 3516 §4.2):
    what they hold is not known when the prefix is sent."""
    return b"~{%d}\r\n" % size


def urlfetch_head() -> bytes:
    """``* URLFETCH``, followed by one `urlfetch_pair` per URL and CRLF (RFC 4467 §6.3): the
    pairs are written one by one, so a session holds one fetched message at a time."""
    return b"* URLFETCH"


def urlfetch_pair(url: str, value: bytes | None, *, extended: bool = False,
                  items: Sequence[tuple[str, bytes | None, bool]] = ()) -> bytes:
    """`` url data`` of a URLFETCH response: the plain form's literal or NIL (RFC 4467 §6.3);
    with `extended`, ``(NAME value ...)`` of RFC 5524 §3 from `items` — (name, data or None,
    whether data is written as a literal8 when it holds NUL (BINARY) rather than a literal;
    BODYPARTSTRUCTURE's data is written as it is)."""
    if not extended:
        return b" " + string(url) + b" " + (NIL if value is None else literal(value))
    out = []
    for name, data, binary in items:
        if data is None:
            out.append(name.encode("ascii") + b" " + NIL)
        elif name == "BODYPARTSTRUCTURE":
            out.append(b"BODYPARTSTRUCTURE " + data)
        else:
            out.append(name.encode("ascii") + b" " + (literal8(data) if binary else literal(data)))
    return b" " + string(url) + b" (" + b" ".join(out) + b")"


def flag_list(flags: frozenset[str], recent: bool) -> bytes:
    """A FETCH flag list ``(\\Seen $Label \\Recent)``: system flags in a fixed order, keywords
    sorted, \\Recent last (RFC 3501 §7.4.2)."""
    key = (flags, recent)
    out = _FLAG_CACHE.get(key)
    if out is None:
        names = [f for f in FETCH_ORDER if f in flags]
        names += sorted(f for f in flags if not f.startswith("\\"))
        if recent:
            names.append("\\Recent")
        out = ("(" + " ".join(names) + ")").encode("ascii")
        if len(_FLAG_CACHE) < _FLAG_CACHE_MAX:
            _FLAG_CACHE[key] = out
    return out


def date_time(ts: float) -> bytes:
    """RFC 3501 §9 date-time in UTC, quoted: ``"05-Mar-2024 09:08:07 +0000"``."""
    d = datetime.fromtimestamp(ts, timezone.utc)
    return b'"%02d-%b-%04d %02d:%02d:%02d +0000"' % (d.day, _MONTHS[d.month - 1], d.year,
                                                     d.hour, d.minute, d.second)


def fetch_response(seq: int, msg_att: bytes) -> bytes:
    """``* n FETCH msg-att`` CRLF, `msg-att` being the parenthesised items (fetch.py)."""
    return b"* %d FETCH %b\r\n" % (seq, msg_att)


def fetch_head(seq: int) -> bytes:
    """The start of a FETCH response whose items follow in pieces (a streamed body); the
    caller ends it with CRLF."""
    return b"* %d FETCH " % seq


def fetch_flags(seq: int, flags: frozenset[str], recent: bool, uid: int | None = None,
                modseq: int | None = None) -> bytes:
    """``* n FETCH ([UID u ]FLAGS (...)[ MODSEQ (m)])``: STORE's answer and a flag change seen
    in a sync; MODSEQ once CONDSTORE is on (RFC 7162 §3.1.3, §3.2)."""
    tail = b")\r\n" if modseq is None else b" MODSEQ (%d))\r\n" % modseq
    if uid is None:
        return b"* %d FETCH (FLAGS %b%b" % (seq, flag_list(flags, recent), tail)
    return b"* %d FETCH (UID %d FLAGS %b%b" % (seq, uid, flag_list(flags, recent), tail)


def fetch_modseq(seq: int, uid: int | None, modseq: int) -> bytes:
    """``* n FETCH ([UID u ]MODSEQ (m))``: a STORE .SILENT's new MODSEQ (RFC 7162 §3.1.3)."""
    if uid is None:
        return b"* %d FETCH (MODSEQ (%d))\r\n" % (seq, modseq)
    return b"* %d FETCH (UID %d MODSEQ (%d))\r\n" % (seq, uid, modseq)


def modseq_item(modseq: int) -> bytes:
    """The FETCH item ``MODSEQ (m)`` (RFC 7162 §3.1.4.1)."""
    return b"MODSEQ (%d)" % modseq


def vanished(uids: Sequence[int], *, earlier: bool = False) -> bytes:
    """``* VANISHED [(EARLIER) ]uid-set`` CRLF (RFC 7162 §3.2.10) for ascending UIDs; nothing
    for none."""
    if not uids:
        return b""
    return b"* VANISHED %b%b\r\n" % (b"(EARLIER) " if earlier else b"",
                                       sequence_set(uids).text.encode("ascii"))


def numbered(numbers: Iterable[int], name: str) -> bytes:
    """``* n NAME`` CRLF for each number: `Numbered` for runs (EXPUNGE of many messages)."""
    tail = b" " + name.encode("ascii") + b"\r\n"
    return b"".join([b"* %d%b" % (n, tail) for n in numbers])


def search_response(numbers: Sequence[int], modseq: int | None = None) -> Iterator[bytes]:
    """``* SEARCH n ...`` CRLF (RFC 3501 §7.2.5) in pieces of `SEARCH_PIECE` numbers, so the
    caller can give the event loop back between the pieces of a long answer; with `modseq`
    (a SEARCH with MODSEQ that found something) it ends in ``(MODSEQ m)`` (RFC 7162 §3.1.5)."""
    yield b"* SEARCH"
    for start in range(0, len(numbers), SEARCH_PIECE):
        yield b"".join([b" %d" % n for n in numbers[start:start + SEARCH_PIECE]])
    yield b"\r\n" if modseq is None else b" (MODSEQ %d)\r\n" % modseq


def sort_response(numbers: Sequence[int], modseq: int | None = None) -> Iterator[bytes]:
    """``* SORT n ...`` CRLF (RFC 5256 §4) in pieces, like `search_response` (and like it
    ending in ``(MODSEQ m)`` after a MODSEQ key, RFC 7162 §3.1.5)."""
    yield b"* SORT"
    for start in range(0, len(numbers), SEARCH_PIECE):
        yield b"".join([b" %d" % n for n in numbers[start:start + SEARCH_PIECE]])
    yield b"\r\n" if modseq is None else b" (MODSEQ %d)\r\n" % modseq


#: Markers in the token stream of a THREAD answer (`thread_response`); message numbers are
#: positive.
THREAD_OPEN: Final = -1
THREAD_CLOSE: Final = -2


def thread_response(tokens: Sequence[int]) -> Iterator[bytes]:
    """``* THREAD (...)(...)`` CRLF (RFC 5256 §4) from a flat token stream, in pieces.

    A thread-list is `THREAD_OPEN`, its members, `THREAD_CLOSE`; members are message numbers
    (parent before child) and then nested thread-lists. The grammar's spacing follows from the
    neighbours: a space before a number or an opening parenthesis that follows a number
    (``3 6 (4 23)(44 7 96)``), none elsewhere. Flat, so a thread ten thousand messages deep
    needs no recursion to write.
    """
    yield b"* THREAD"
    prev = THREAD_CLOSE
    piece: list[bytes] = [b" "] if tokens else []
    for token in tokens:
        if token == THREAD_OPEN:
            piece.append(b" (" if prev > 0 else b"(")
        elif token == THREAD_CLOSE:
            piece.append(b")")
        else:
            piece.append(b" %d" % token if prev > 0 else b"%d" % token)
        prev = token
        if len(piece) >= SEARCH_PIECE:
            yield b"".join(piece)
            piece = []
    if piece:
        yield b"".join(piece)
    yield b"\r\n"


def sequence_set(numbers: Sequence[int]) -> Atom:
    """Ascending numbers compacted into a sequence set such as ``1:3,7`` (RFC 4315 uid-set)."""
    parts: list[str] = []
    start = prev = -1
    for n in numbers:
        if start < 0:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = n
    if start >= 0:
        parts.append(f"{start}:{prev}" if start != prev else str(start))
    return Atom(",".join(parts))


def sequence_range(first: int, last: int) -> Atom:
    """``first:last``: a PARTIAL range as the client asked for it (RFC 5267 §5)."""
    return Atom(f"{first}:{last}")


def esearch_response(tag: str, uid: bool, data: Sequence[Value]) -> bytes:
    """``* ESEARCH (TAG "tag") [UID] data...`` CRLF (RFC 4466 §2.6.2, RFC 4731 §3.1): the
    search correlator names the command (RFC 5267 §4.3: also on later ADDTO/REMOVEFROM);
    `data` are the search-return-data items, names as atoms, e.g. ``[Atom("COUNT"), 3]``."""
    head: tuple[Value, ...] = ((Atom("TAG"), tag),)
    if uid:
        head += (Atom("UID"),)
    return encode(Data("ESEARCH", head + tuple(data)))
