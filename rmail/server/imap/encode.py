"""Typed IMAP server responses → bytes (RFC 3501 §7, §9).

Values inside responses are plain Python values with one fixed mapping, so the handlers never
write protocol syntax by hand:

- None → NIL; int → number; `Atom` → the atom verbatim (flags, keywords, names);
- str/bytes → a quoted string or a literal `{n}` by the rule of `core.imapstring` (RFC 3501
  §4.3), the same rule that wrote the stored ENVELOPE and BODYSTRUCTURE;
- tuple/list → a parenthesised list; `Raw` → pre-encoded bytes (metadata stored encoded);
- `Literal` → always a literal (message bodies).

Human-readable text (resp-text) is sanitised: CR/LF/NUL cannot end a response early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Union

from rmail.server.core.imapstring import MAX_QUOTED, nstring, string

__all__ = [
    "Atom", "Continuation", "Data", "Fetch", "Literal", "Numbered", "Raw", "Response",
    "Status", "Tagged", "encode", "encode_value", "nstring", "string",
]

_TEXT_UNSAFE = re.compile(r'[\x00\r\n]')


@dataclass(frozen=True, slots=True)
class Atom:
    """Sent verbatim: a flag, keyword, status item name or other atom."""

    text: str


@dataclass(frozen=True, slots=True)
class Raw:
    """Pre-encoded protocol bytes (e.g. an ENVELOPE computed at delivery)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Literal:
    """Bytes always sent as a literal (message data)."""

    data: bytes


Value = Union[None, int, str, bytes, Atom, Raw, Literal, tuple, list]


@dataclass(frozen=True, slots=True)
class Tagged:
    """`tag OK|NO|BAD [code] text` (RFC 3501 §7.1)."""

    tag: str
    status: str
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """`* OK|NO|BAD|BYE|PREAUTH [code] text` (RFC 3501 §7.1)."""

    status: str
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Data:
    """`* NAME value...` — CAPABILITY, FLAGS, LIST, LSUB, STATUS, SEARCH, NAMESPACE, ID,
    ENABLED (RFC 3501 §7.2, §7.2.2–7.2.5; RFC 2342, 2971, 5161)."""

    name: str
    values: tuple[Value, ...] = ()


@dataclass(frozen=True, slots=True)
class Numbered:
    """`* n EXISTS|RECENT|EXPUNGE` (RFC 3501 §7.3, §7.4.1)."""

    number: int
    name: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """`* n FETCH (name value ...)` (RFC 3501 §7.4.2)."""

    number: int
    items: tuple[tuple[str, Value], ...]


@dataclass(frozen=True, slots=True)
class Continuation:
    """`+ text` (RFC 3501 §7.5)."""

    text: str = "Ready"


Response = Union[Tagged, Status, Data, Numbered, Fetch, Continuation]


def encode_value(value: Value, out: list[bytes]) -> None:
    """Append the wire form of `value` to `out`."""
    if value is None:
        out.append(b"NIL")
    elif isinstance(value, bool):
        raise TypeError("booleans have no IMAP form")
    elif isinstance(value, int):
        if value < 0:
            raise ValueError("IMAP numbers are unsigned")
        out.append(b"%d" % value)
    elif isinstance(value, (str, bytes)):
        out.append(string(value))
    elif isinstance(value, Atom):
        out.append(value.text.encode("ascii"))
    elif isinstance(value, Raw):
        out.append(value.data)
    elif isinstance(value, Literal):
        out.append(b"{%d}\r\n" % len(value.data))
        out.append(value.data)
    elif isinstance(value, (tuple, list)):
        out.append(b"(")
        for i, item in enumerate(value):
            if i:
                out.append(b" ")
            encode_value(item, out)
        out.append(b")")
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _text(text: str) -> bytes:
    cleaned = _TEXT_UNSAFE.sub(" ", text).strip() or "done"
    return cleaned.encode("utf-8", "replace")


def _code(code: str | None) -> bytes:
    if not code:
        return b""
    return b"[" + _TEXT_UNSAFE.sub(" ", code).replace("]", "").encode("utf-8") + b"] "


def encode(response: Response) -> bytes:
    """The complete wire form of one response, CRLF included."""
    if isinstance(response, Tagged):
        return b"%b %b %b%b\r\n" % (response.tag.encode("ascii"), response.status.encode("ascii"),
                                     _code(response.code), _text(response.text))
    if isinstance(response, Status):
        return b"* %b %b%b\r\n" % (response.status.encode("ascii"), _code(response.code),
                                    _text(response.text))
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
        return b"+ " + _text(response.text) + b"\r\n"
    raise TypeError(f"not a response: {type(response).__name__}")


def encode_all(responses: Iterable[Response]) -> bytes:
    return b"".join(encode(r) for r in responses)
