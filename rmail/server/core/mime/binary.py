"""Decoded part content for IMAP BINARY (RFC 3516), and binary APPENDs made storable.

FETCH BINARY[part] returns a part's body with its Content-Transfer-Encoding undone
(RFC 3516 §4.2); BINARY.SIZE[part] its decoded length. A composite part (multipart,
message/rfc822) has each leaf below it decoded, its header then saying
``Content-Transfer-Encoding: binary`` (Dovecot's answer). An encoding the server does not know
cannot be undone: `UnknownEncoding`, which IMAP answers ``NO [UNKNOWN-CTE]``. ``BINARY[]``
(no part) is the whole message as stored: the top-level message has no encoding to undo.

A message APPENDed as a literal8 (RFC 3516 §4.4) may carry raw binary parts (NUL octets,
``Content-Transfer-Encoding: binary``), which BODY[] could not send in an IMAP4rev1 literal.
`storable` re-encodes each such leaf part as base64, as Dovecot does, so every stored
message stays valid for BODY[] while BINARY[] still gives the original octets back.

Pure functions over bytes; bounded by the part tree's own limits (``tree.MAX_DEPTH``,
``tree.MAX_PARTS``).
"""

from __future__ import annotations

import base64
import re
from typing import Final

from .content import encoding
from .sections import resolve_part
from .text import b64_clean, b64_decode
from .tree import Part, parse_tree

__all__ = ["KNOWN_ENCODINGS", "UnknownEncoding", "binary_section", "binary_size",
           "decoded_message", "qp_decode", "storable"]

#: RFC 2045 §6.1 (the identity encodings and the two real ones); anything else is unknown.
KNOWN_ENCODINGS: Final = frozenset({"7bit", "8bit", "binary", "base64", "quoted-printable"})
_IDENTITY: Final = frozenset({"7bit", "8bit", "binary"})
_HEX: Final = frozenset(b"0123456789ABCDEFabcdef")
#: A message that names no "binary" encoding and holds no NUL needs no look at its parts.
_BINARY_WORD: Final = re.compile(rb"binary", re.IGNORECASE)
#: RFC 2045 §6.8: encoded lines are at most 76 characters.
_B64_LINE: Final = 76


class UnknownEncoding(Exception):
    """A part's Content-Transfer-Encoding is none of `KNOWN_ENCODINGS` (RFC 3516 §4.3)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown Content-Transfer-Encoding {name[:64]!r}")
        self.name = name


def qp_decode(body: bytes) -> bytes:
    """Quoted-printable (RFC 2045 §6.7), keeping each line's own line break (CRLF or LF).

    Trailing whitespace of a line is transport padding and goes (rule 3), so a soft line
    break may be followed by it (``"= "``); an ``=`` not followed by two hex digits is kept
    as it is (§6.7 note 2: robust decoding). binascii's decoder keeps the trailing
    whitespace, which BINARY.SIZE would count.
    """
    out = bytearray()
    lines = body.split(b"\n")
    last = len(lines) - 1
    for n, line in enumerate(lines):
        eol = b""
        if n < last:
            eol = b"\n"
            if line.endswith(b"\r"):
                line = line[:-1]
                eol = b"\r\n"
        line = line.rstrip(b" \t")
        if line.endswith(b"="):
            line = line[:-1]
            eol = b""  # soft line break
        i = 0
        while True:
            j = line.find(b"=", i)
            if j < 0:
                out += line[i:]
                break
            out += line[i:j]
            if j + 2 < len(line) and line[j + 1] in _HEX and line[j + 2] in _HEX:
                out.append(int(line[j + 1:j + 3], 16))
                i = j + 3
            else:
                out.append(0x3D)
                i = j + 1
        out += eol
    return bytes(out)


def _decode(data: bytes, node: Part) -> bytes:
    name = encoding(node)
    body = data[node.body_start:node.end]
    if name in _IDENTITY:
        return body
    if name == "base64":
        return b64_decode(body)
    if name == "quoted-printable":
        return qp_decode(body)
    raise UnknownEncoding(name)


def _decoded_entity(data: bytes, node: Part, relabel: bool = True) -> bytes:
    """A whole entity (header and body) with every leaf below it decoded, its header saying
    ``Content-Transfer-Encoding: binary`` (as Dovecot gives a composite part's BINARY); with
    `relabel` False the headers are left as they are."""
    if node.multipart or node.message:
        return data[node.start:node.body_start] + _decoded_body(data, node, relabel)
    if encoding(node) in _IDENTITY:
        return data[node.start:node.end]
    head = (_with_encoding(data, node, b"binary") if relabel
            else data[node.start:node.body_start])
    return head + _decode(data, node)


def _decoded_body(data: bytes, node: Part, relabel: bool = True) -> bytes:
    """The body of a part decoded: a leaf's content, or a composite's with its leaves
    decoded (the boundaries, preamble and epilogue as they are)."""
    if not (node.multipart or node.message):
        return _decode(data, node)
    out = bytearray()
    pos = node.body_start
    for child in node.children:
        out += data[pos:child.start]
        out += _decoded_entity(data, child, relabel)
        pos = child.end
    out += data[pos:node.end]
    return bytes(out)


def _node(data: bytes, part: tuple[int, ...]) -> Part | None:
    try:
        return resolve_part(parse_tree(data), part)
    except RecursionError:  # defensive: depth is bounded by tree.MAX_DEPTH
        return None


def binary_section(data: bytes, part: tuple[int, ...]) -> bytes | None:
    """``BINARY[part]``: the decoded body of the part; the whole message for ``()``; None
    when the part does not exist.

    Raises:
        UnknownEncoding: the part's encoding cannot be undone.
    """
    if not part:
        return data
    node = _node(data, part)
    return None if node is None else _decoded_body(data, node)


def decoded_message(data: bytes) -> bytes:
    """The whole message with every leaf decoded and every header as it was: what a
    BODYPARTSTRUCTURE asked for beside BINARY describes (RFC 5524 §3; sizes and lines of
    the decoded content, the encodings as declared, as Dovecot answers).

    Raises:
        UnknownEncoding: a part's encoding cannot be undone.
    """
    try:
        return _decoded_entity(data, parse_tree(data), relabel=False)
    except RecursionError:  # defensive: depth is bounded by tree.MAX_DEPTH
        return data


def binary_size(data: bytes, part: tuple[int, ...]) -> int | None:
    """``BINARY.SIZE[part]``: the length of `binary_section`, counted without decoding
    base64; None when the part does not exist.

    Raises:
        UnknownEncoding: the part's encoding cannot be undone.
    """
    if not part:
        return len(data)
    node = _node(data, part)
    if node is None:
        return None
    if encoding(node) == "base64" and not (node.multipart or node.message):
        return len(b64_clean(data[node.body_start:node.end])) * 3 // 4
    return len(_decoded_body(data, node))


# -- binary APPEND -------------------------------------------------------------------------

def _needs_base64(data: bytes, node: Part) -> bool:
    if node.multipart or node.message:
        return False
    return encoding(node) == "binary" or data.find(b"\x00", node.body_start, node.end) >= 0


def _has_binary(data: bytes, node: Part) -> bool:
    if _needs_base64(data, node):
        return True
    return any(_has_binary(data, child) for child in node.children)


def _with_encoding(data: bytes, node: Part, name: bytes) -> bytes:
    """The part's header with Content-Transfer-Encoding set to `name` (added when absent)."""
    eol = b"\r\n" if data.find(b"\r\n", node.start, node.body_start) >= 0 else b"\n"
    field = b"Content-Transfer-Encoding: " + name + eol
    out = bytearray()
    pos = node.start
    done = False
    for f in node.fields:
        if f.key == "content-transfer-encoding":
            out += data[pos:f.start]
            if not done:
                out += field
                done = True
            pos = f.end
    header_end = node.header_end
    out += data[pos:header_end]
    if not done:
        if header_end > node.start and data[header_end - 1] != 0x0A:
            out += eol  # a last field without its line break (no blank line followed)
        out += field
    blank = data[header_end:node.body_start]
    out += blank if blank else eol
    return bytes(out)


def _rebuild(data: bytes, node: Part) -> bytes:
    if _needs_base64(data, node):
        raw = data[node.body_start:node.end]
        if encoding(node) not in _IDENTITY:
            # NULs inside an encoding that already is one (a broken message): keep it whole.
            return data[node.start:node.end]
        text = base64.b64encode(raw)
        lines = [text[i:i + _B64_LINE] for i in range(0, len(text), _B64_LINE)]
        return _with_encoding(data, node, b"base64") + b"\r\n".join(lines)
    if not _has_binary(data, node):
        return data[node.start:node.end]
    # A container (multipart, message/rfc822) with binary parts inside: rebuild the parts
    # and say the container is 8bit at most now (RFC 2045 §6.4: a composite type's encoding
    # must be an identity one, and "binary" no longer applies).
    head = data[node.start:node.body_start]
    if encoding(node) == "binary":
        head = _with_encoding(data, node, b"8bit")
    out = bytearray(head)
    pos = node.body_start
    for child in node.children:
        out += data[pos:child.start]
        out += _rebuild(data, child)
        pos = child.end
    out += data[pos:node.end]
    return bytes(out)


def storable(data: bytes) -> bytes:
    """The message with every binary leaf part (``Content-Transfer-Encoding: binary`` or
    NUL octets in an identity encoding) re-encoded as base64; unchanged when it has none."""
    if b"\x00" not in data and _BINARY_WORD.search(data) is None:
        return data
    try:
        root = parse_tree(data)
        if not _has_binary(data, root):
            return data
        return _rebuild(data, root)
    except RecursionError:  # defensive: depth is bounded by tree.MAX_DEPTH
        return data

