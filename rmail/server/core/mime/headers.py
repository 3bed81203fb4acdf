"""Header blocks: where they end, their fields, and structured values.

All positions are absolute byte offsets into the raw message, so a FETCH can
cut the original bytes back out (RFC 3501 §6.4.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "Field",
    "split_header",
    "parse_fields",
    "unfold",
    "parse_params",
    "parse_content_type",
]


class Field(NamedTuple):
    """One header field as it appears in the message.

    A NamedTuple rather than a frozen dataclass: a message has dozens of
    fields and tuple construction is several times cheaper on the delivery
    hot path.
    """

    #: Field name lowercased, for case-insensitive lookup (RFC 5322 §1.2.2).
    key: str
    #: Raw value bytes after the colon, still folded, without the final line break.
    value: bytes
    #: Offsets of the whole field including its final line break.
    start: int
    end: int
    #: Field name as written.
    name: bytes


def split_header(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Find the header block of the entity in ``data[start:end]``.

    Returns ``(header_end, body_start)``: the header is ``data[start:header_end]``
    without the blank line, the body starts after it. Bare LF is accepted as a
    line break. Without a blank line the whole range is header and the body is
    empty, as Dovecot does.
    """
    if start >= end:
        return end, end
    # A blank line right at the start means an empty header.
    if data.startswith(b"\n", start):
        return start, start + 1
    if data.startswith(b"\r\n", start, end):
        return start, start + 2
    # Search for the likelier blank-line form first (from the first line
    # ending), then look for the other only before it: a 100 KiB body is
    # never scanned twice.
    nl = data.find(b"\n", start, end)
    if nl < 0:
        return end, end
    if nl > start and data[nl - 1] == 0x0D:
        b = data.find(b"\n\r\n", nl, end)
        a = data.find(b"\n\n", nl, end if b < 0 else b)
    else:
        a = data.find(b"\n\n", nl, end)
        b = data.find(b"\n\r\n", nl, end if a < 0 else a)
    if a < 0 and b < 0:
        return end, end
    if b < 0 or (0 <= a < b):
        return a + 1, a + 2
    return b + 1, b + 3


# One field: name, optional colon, the rest of the first line plus any
# continuation lines starting with WSP (RFC 5322 §2.2.3). Linear: no
# alternative can match the same bytes twice. Every match starting before
# the end is non-empty, so consecutive matches tile the header block.
_FIELD_RE = re.compile(rb"(([^:\n]*)(:?)([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|$))")


#: Header fields kept per header block. Real mail has dozens; a hostile
#: header of millions of tiny fields would otherwise cost seconds per message.
MAX_FIELDS = 10_000
#: Header blocks up to this size are split with one ``findall`` (no match
#: objects); larger ones are walked lazily so the field cap bounds the work.
_FINDALL_LIMIT = 64 * 1024
_new_field = tuple.__new__


def parse_fields(data: bytes, start: int, end: int) -> list[Field]:
    """Split ``data[start:end]`` (a header block without its blank line) into fields.

    A line without a colon becomes a field with an empty value, so the bytes
    of every line stay accounted for. Only the first :data:`MAX_FIELDS`
    fields are returned.
    """
    if start >= end:
        return []
    fields: list[Field] = []
    append = fields.append
    if end - start <= _FINDALL_LIMIT:  # at most 32K fields: cap applied below
        pos = start
        for whole, name, colon, value in _FIELD_RE.findall(data, start, end):
            if not whole:  # the empty match at the very end
                continue
            if len(fields) >= MAX_FIELDS:
                break
            e = pos + len(whole)
            if not colon:  # the first line is all name; there is no value
                value = b""
            name = name.strip()
            append(_new_field(Field, (name.decode("latin-1").lower(), value, pos, e, name)))
            pos = e
        return fields
    for m in _FIELD_RE.finditer(data, start, end):
        s, e = m.span()
        if s == e:
            continue
        if len(fields) >= MAX_FIELDS:
            break
        name, colon, value = m.group(2, 3, 4)
        if not colon:
            value = b""
        name = name.strip()
        append(Field(name.decode("latin-1").lower(), value, s, e, name))
    return fields


def unfold(value: bytes) -> bytes:
    """Unfold a raw value (RFC 5322 §2.2.3: drop the line breaks, keep the WSP) and trim it."""
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return value.strip()


def first(fields: list[Field], key: str) -> bytes | None:
    """Unfolded value of the first field named *key*, or None."""
    for f in fields:
        if f.key == key:
            return unfold(f.value)
    return None


# Parameter values are split at ";" outside quoted strings (RFC 2045 §5.1).
# Every alternative consumes input, so hostile values cost O(n).
_SEGMENT_RE = re.compile(rb'"(?:[^"\\]|\\.)*"?|[^;"]+|;', re.S)
_QPAIR_RE = re.compile(rb"\\(.)", re.S)
_COMMENT_RE = re.compile(rb"\((?:[^()\\]|\\.)*\)")
#: Structured header values longer than this are cut before parameter parsing.
MAX_PARAM_VALUE = 64 * 1024


def _segments(rest: bytes) -> list[bytes]:
    pieces = rest.split(b";")
    # Without backslashes a ";" is inside a quoted string exactly when an odd
    # number of quotes precede it, so even counts per piece make the plain
    # split exact; anything else takes the tokenizer.
    if b"\\" not in rest:
        if b'"' not in rest:
            return pieces
        for p in pieces:
            if p.count(b'"') & 1:
                break
        else:
            return pieces
    out: list[bytes] = []
    cur: list[bytes] = []
    for m in _SEGMENT_RE.finditer(rest):
        piece = m.group(0)
        if piece == b";":
            out.append(b"".join(cur))
            cur = []
        else:
            cur.append(piece)
    out.append(b"".join(cur))
    return out


def _strip_comments(value: bytes) -> bytes:
    # Only bother when a comment could exist; quoted strings with parens are
    # rare in these headers and harmless to lose.
    if b"(" not in value:
        return value
    out = value
    for _ in range(8):  # nested comments peel one level per pass; bounded
        new = _COMMENT_RE.sub(b" ", out)
        if new == out:
            break
        out = new
    return out


def parse_params(rest: bytes) -> list[tuple[bytes, bytes]]:
    """Parse ``; name=value`` parameters (RFC 2045 §5.1), merging RFC 2231 continuations.

    Names keep their case, values are unquoted, the first of duplicate names
    wins. Continuations ``name*0``, ``name*1*`` are joined into ``name`` (or
    ``name*`` when a piece is extended, value left percent-encoded as Dovecot
    does; :func:`rmail.server.core.mime.text.param_text` decodes it).
    """
    if b"=" not in rest:
        return []
    rest = rest[:MAX_PARAM_VALUE]
    segments = _segments(rest)
    if b"*" not in rest:  # no RFC 2231 names: no continuations to merge
        plain: list[tuple[bytes, bytes]] = []
        seen_plain: set[bytes] = set()
        for segment in segments:
            eq = segment.find(b"=")
            if eq <= 0:
                continue
            name = segment[:eq].strip()
            if not name or len(name) > 200 or b'"' in name:
                continue
            raw = segment[eq + 1 :].strip()
            if raw.startswith(b'"'):
                close = raw.rfind(b'"')
                raw = raw[1:close] if close > 0 else raw[1:]
                if b"\\" in raw:
                    raw = _QPAIR_RE.sub(rb"\1", raw)
            low = name.lower()
            if low not in seen_plain:
                seen_plain.add(low)
                plain.append((name, raw))
        return plain
    out: list[tuple[bytes, bytes] | bytes] = []
    seen: set[bytes] = set()
    pieces: dict[bytes, list[tuple[int, bool, bytes]]] = {}
    for segment in segments:
        eq = segment.find(b"=")
        if eq <= 0:
            continue
        name = segment[:eq].strip()
        raw = segment[eq + 1 :].strip()
        if not name or len(name) > 200 or b'"' in name:
            continue
        if raw.startswith(b'"'):
            close = raw.rfind(b'"')
            raw = raw[1:close] if close > 0 else raw[1:]
            if b"\\" in raw:
                raw = _QPAIR_RE.sub(rb"\1", raw)
        star = name.find(b"*")
        if star < 0:
            low = name.lower()
            if low not in seen:
                seen.add(low)
                out.append((name, raw))
            continue
        base = name[:star]
        tail = name[star + 1 :]
        digits = tail.rstrip(b"*")
        index = int(digits) if digits.isdigit() and len(digits) < 4 else 0
        low = base.lower()
        if low not in pieces:
            pieces[low] = []
            out.append(base)  # position marker, merged below
        pieces[low].append((index, tail.endswith(b"*") or tail == b"", raw))
    result: list[tuple[bytes, bytes]] = []
    for item in out:
        if isinstance(item, tuple):
            result.append(item)
            continue
        low = item.lower()
        if low in seen:  # a plain value of the same name wins
            continue
        parts = sorted(pieces[low], key=lambda p: p[0])
        joined = b"".join(p[2] for p in parts)
        result.append((item + b"*", joined) if parts[0][1] else (item, joined))
    return result


@dataclass(frozen=True, slots=True)
class ContentType:
    """A parsed Content-Type (RFC 2045 §5.1); ``type_``/``subtype`` keep the message's case."""

    type_: bytes
    subtype: bytes
    #: A tuple: parsed types are cached and shared between messages.
    params: tuple[tuple[bytes, bytes], ...]

    @property
    def lower(self) -> tuple[str, str]:
        return (
            self.type_.decode("latin-1").lower(),
            self.subtype.decode("latin-1").lower(),
        )


_TEXT_PLAIN = ContentType(b"text", b"plain", ())
_MESSAGE_RFC822 = ContentType(b"message", b"rfc822", ())
_TOKEN_RE = re.compile(rb"\s*([^\s/;()\"]+)\s*/\s*([^\s/;()\"]+)")


def parse_content_type(value: bytes | None, digest: bool = False) -> ContentType:
    """Parse a Content-Type value, defaulting per RFC 2045 §5.2 / RFC 2046 §5.1.5.

    A missing or syntactically broken header yields the default type
    (text/plain, or message/rfc822 inside multipart/digest).
    """
    if value is None:
        return _MESSAGE_RFC822 if digest else _TEXT_PLAIN
    value = _strip_comments(value[:MAX_PARAM_VALUE])
    m = _TOKEN_RE.match(value)
    if m is None:
        return _MESSAGE_RFC822 if digest else _TEXT_PLAIN
    return ContentType(m.group(1), m.group(2), tuple(parse_params(value[m.end() :])))


def parse_disposition(value: bytes | None) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """Parse Content-Disposition (RFC 2183) into ``(type, params)``, or None."""
    if value is None:
        return None
    value = _strip_comments(value[:MAX_PARAM_VALUE])
    semi = value.find(b";")
    kind = (value if semi < 0 else value[:semi]).strip()
    if not kind or b"=" in kind:
        return None
    return kind, parse_params(value[semi:]) if semi >= 0 else []
