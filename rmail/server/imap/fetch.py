"""FETCH items (RFC 3501 §6.4.5, §7.4.2): which values a FETCH sends, as pure functions.

FLAGS, UID, RFC822.SIZE and INTERNALDATE come from the session's map; ENVELOPE, BODY and
BODYSTRUCTURE from the bytes the store computed at delivery (`MessageInfo`, written by the
same string rule as `encode`); only BODY[...] and RFC822* read message bytes, which the caller
passes in. Each item is the RFC's name, a space and its value written by `encode` (flag lists,
date-times, literals): this module picks and cuts values, `encode` decides how they look. The
items are built straight into bytes: this is the hot path of every client sync. MODSEQ (RFC
7162) and SAVEDATE (RFC 8514) come from the map too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Iterable

from rmail.server.core import mime
from rmail.server.core.mime.binary import UnknownEncoding, binary_section, binary_size
from rmail.server.core.mime.headers import split_header
from rmail.server.core.lru import SizedLRU
from rmail.server.core.model import MessageInfo

from .commands import FetchAtt
from .encode import (date_time, flag_list, literal, literal8, literal8_prefix, literal_prefix,
                     modseq_item, string)
from .errors import CommandError
from .objectid import email_id

__all__ = ["FetchPlan", "FileRange", "file_items", "message_items"]

_BLOB_ITEMS: Final = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT"})
_INFO_ITEMS: Final = frozenset({"ENVELOPE", "BODYSTRUCTURE", "PREVIEW"})
#: Top-level sections a file-backed message can answer from its header and byte ranges.
_HEAD_SECTIONS: Final = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})
#: RFC 8474 §5 items.
_OBJECTID_ITEMS: Final = frozenset({"EMAILID", "THREADID"})
#: RFC 3516 §4.2 items: a part's decoded content and its size.
_BINARY_ITEMS: Final = frozenset({"BINARY", "BINARY.SIZE"})
_FIELDS_TEXTS: Final = frozenset({"HEADER.FIELDS", "HEADER.FIELDS.NOT"})
#: What a cached header field costs beyond its bytes (its tuples and name).
HEADER_FIELD_COST: Final = 120


@lru_cache(maxsize=256)
def _label(att: FetchAtt) -> bytes:
    """``BODY[...]<n> `` and the like, built once per distinct item rather than per message."""
    return att.response_name.encode("ascii") + b" "


class FetchPlan:
    """What a FETCH needs, decided once per command rather than per message."""

    __slots__ = ("atts", "needs_info", "needs_blob", "sets_seen", "has_flags", "streamable",
                 "needs_head", "needs_blob_id")

    def __init__(self, atts: Iterable[FetchAtt]) -> None:
        self.atts = tuple(atts)
        self.needs_info = any(a.name in _INFO_ITEMS or (a.name == "BODY" and a.section is None)
                              for a in self.atts)
        self.needs_blob = any(a.section is not None or a.name in _BLOB_ITEMS for a in self.atts)
        self.sets_seen = any(a.sets_seen for a in self.atts)
        self.has_flags = any(a.name == "FLAGS" for a in self.atts)
        blob_atts = [a for a in self.atts if a.section is not None or a.name in _BLOB_ITEMS]
        #: Every body item is the whole message, its text or its header: a file-backed
        #: message can be streamed (`file_items`) instead of read whole.
        self.streamable = all(_file_kind(a) is not None for a in blob_atts)
        self.needs_head = any(_file_kind(a) not in (None, "WHOLE", "SIZE") for a in blob_atts)
        #: EMAILID is made from the id of the stored bytes (objectid.py).
        self.needs_blob_id = any(a.name == "EMAILID" for a in self.atts)


def _file_kind(att: FetchAtt) -> str | None:
    """WHOLE, TEXT, HEAD or SIZE for a body item `file_items` can answer; None otherwise."""
    section = att.section
    if att.name in _BINARY_ITEMS:
        # BINARY[] is the message as stored; a part has to be decoded (read whole).
        if section is None or section.part:
            return None
        return "SIZE" if att.name == "BINARY.SIZE" else "WHOLE"
    if section is None:
        return {"RFC822": "WHOLE", "RFC822.TEXT": "TEXT", "RFC822.HEADER": "HEAD"}.get(att.name)
    if section.part:
        return None
    if section.text is None:
        return "WHOLE"
    if section.text == "TEXT":
        return "TEXT"
    return "HEAD" if section.text in _HEAD_SECTIONS else None


@dataclass(frozen=True, slots=True)
class FileRange:
    """Bytes [start, start+length) of a message file, sent as the body of a literal."""

    start: int
    length: int


def _section_bytes(att: FetchAtt, data: bytes) -> bytes | None:
    section = att.section
    assert section is not None
    return mime.body_section(data, section.part, section.text, section.fields)


def _section_value(att: FetchAtt, data: bytes, blob_id: str | None,
                   headers: SizedLRU[str, mime.HeaderLines] | None) -> bytes:
    """``BODY[section]``'s bytes (empty for a part that does not exist, as Dovecot answers).
    HEADER.FIELDS[.NOT] of the message picks from its header parsed once (``headers``, by
    blob id: the bytes behind a blob id never change): clients ask for many combinations."""
    section = att.section
    assert section is not None
    if section.part or section.text not in _FIELDS_TEXTS or blob_id is None or headers is None:
        return _section_bytes(att, data) or b""
    lines = headers.get(blob_id)
    if lines is None:
        lines = mime.header_lines(data)
        headers.put(blob_id, lines, sum(len(line) for _, line in lines[0]) + HEADER_FIELD_COST * (len(lines[0]) + 1))
    return mime.pick_fields(lines, section.fields, section.text == "HEADER.FIELDS.NOT")


def _binary_item(att: FetchAtt, data: bytes) -> bytes:
    """``BINARY[part]<partial> value`` or ``BINARY.SIZE[part] n`` (RFC 3516 §4.2).

    Raises:
        CommandError: NO [UNKNOWN-CTE], the part's encoding cannot be undone (§4.3).
    """
    assert att.section is not None
    label = _label(att)
    try:
        if att.name == "BINARY.SIZE":
            return label + b"%d" % (binary_size(data, att.section.part) or 0)
        value = binary_section(data, att.section.part)
    except UnknownEncoding as exc:
        raise CommandError("NO", str(exc), "UNKNOWN-CTE") from None
    if value is None:
        value = b""  # as BODY[] does for a part that does not exist
    if att.partial is not None:
        start, count = att.partial
        value = value[start:start + count]
    return label + literal8(value)


def _objectid_item(name: str, blob_id: str | None) -> bytes:
    """``EMAILID (M...)`` or ``THREADID NIL`` (RFC 8474 §5)."""
    if name == "THREADID":
        return b"THREADID NIL"
    assert blob_id is not None, "EMAILID needs the message's blob id"
    return b"EMAILID (" + email_id(blob_id).encode("ascii") + b")"


def _savedate_item(savedate: float | None) -> bytes:
    """``SAVEDATE "date-time"``, or ``SAVEDATE NIL`` when the save date is not known (RFC 8514
    §4.2)."""
    return b"SAVEDATE NIL" if savedate is None else b"SAVEDATE " + date_time(savedate)


def _preview(info: MessageInfo | None) -> bytes:
    """``PREVIEW "text"`` (RFC 8970 §3): the text computed at delivery (at most 200
    characters, whitespace collapsed); "" for a message without text."""
    return b"PREVIEW " + string(_info(info).preview)


def _info(info: MessageInfo | None) -> MessageInfo:
    # The session leaves out messages without metadata (expunged elsewhere, not yet announced)
    # rather than make up an ENVELOPE or BODYSTRUCTURE for them.
    assert info is not None, "a FETCH of ENVELOPE/BODY/BODYSTRUCTURE needs the message's metadata"
    return info


def message_items(plan: FetchPlan, *, uid: int, flags: frozenset[str], recent: bool,
                  size: int, date: float, info: MessageInfo | None, data: bytes | None,
                  force_flags: bool = False, blob_id: str | None = None, modseq: int = 0,
                  savedate: float | None = None,
                  headers: SizedLRU[str, mime.HeaderLines] | None = None) -> bytes:
    """The parenthesised item list of one `* n FETCH (...)` response.

    Args:
        force_flags: add FLAGS even if not asked (\\Seen was just set, RFC 3501 §6.4.5).
        blob_id: the id of the message's stored bytes, when `plan.needs_blob_id` or
            `plan.needs_blob` (then HEADER.FIELDS picks from ``headers``).
        modseq: the message's MODSEQ, read only when the plan asks for it (RFC 7162 §3.1.4).
        savedate: the save date in unix seconds (RFC 8514); None: not known, sent as NIL.
    """
    out: list[bytes] = []
    for att in plan.atts:
        name = att.name
        if name in _BINARY_ITEMS:
            assert data is not None
            out.append(_binary_item(att, data))
        elif att.section is not None:
            assert data is not None
            value = _section_value(att, data, blob_id, headers)
            if att.partial is not None:
                start, count = att.partial
                value = value[start:start + count]
            out.append(_label(att) + literal(value))
        elif name == "UID":
            out.append(b"UID %d" % uid)
        elif name == "FLAGS":
            out.append(b"FLAGS " + flag_list(flags, recent))
        elif name == "RFC822.SIZE":
            out.append(b"RFC822.SIZE %d" % size)
        elif name == "INTERNALDATE":
            out.append(b"INTERNALDATE " + date_time(date))
        elif name == "MODSEQ":
            out.append(modseq_item(modseq))
        elif name == "SAVEDATE":
            out.append(_savedate_item(savedate))
        elif name == "ENVELOPE":
            out.append(b"ENVELOPE " + _info(info).envelope)
        elif name == "BODYSTRUCTURE":
            out.append(b"BODYSTRUCTURE " + _info(info).bodystructure)
        elif name == "BODY":
            out.append(b"BODY " + _info(info).body)
        elif name == "PREVIEW":
            out.append(_preview(info))
        elif name in _OBJECTID_ITEMS:
            out.append(_objectid_item(name, blob_id))
        elif name == "RFC822":
            assert data is not None
            out.append(b"RFC822 " + literal(data))
        elif name == "RFC822.HEADER":
            assert data is not None
            out.append(b"RFC822.HEADER " + literal(mime.header_section(data)))
        elif name == "RFC822.TEXT":
            assert data is not None
            out.append(b"RFC822.TEXT " + literal(mime.text_section(data)))
    if force_flags and not plan.has_flags:
        out.append(b"FLAGS " + flag_list(flags, recent))
    return b"(" + b" ".join(out) + b")"


def _meta_item(name: str, size: int, date: float, info: MessageInfo | None) -> bytes:
    """RFC822.SIZE, INTERNALDATE, ENVELOPE, BODYSTRUCTURE or BODY (no section), for
    `file_items`; `message_items` keeps these inline: it is the hot path of every sync."""
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % size
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + date_time(date)
    if name == "ENVELOPE":
        return b"ENVELOPE " + _info(info).envelope
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + _info(info).bodystructure
    if name == "PREVIEW":
        return _preview(info)
    assert name == "BODY"
    return b"BODY " + _info(info).body


def file_items(plan: FetchPlan, *, uid: int, flags: frozenset[str], recent: bool,
               size: int, date: float, info: MessageInfo | None, file_size: int, head: bytes,
               force_flags: bool = False, blob_id: str | None = None, modseq: int = 0,
               savedate: float | None = None) -> list[bytes | FileRange] | None:
    """`message_items` for a file-backed message (`plan.streamable`): the response as bytes
    and `FileRange`s to stream, so the body is never held in memory.

    Args:
        head: the file's first bytes when `plan.needs_head` (else b""); must contain the
            blank line ending the header, otherwise None is returned and the caller falls
            back to reading the whole message.
    """
    body_start = 0
    header = b""
    if plan.needs_head:
        header_end, body_start = split_header(head, 0, len(head))
        if header_end == body_start and len(head) < file_size:
            return None  # no blank line within what was read (see split_header)
        header = head[:body_start]
    pieces: list[bytes | FileRange] = [b"("]
    first = True
    for att in plan.atts:
        if not first:
            pieces.append(b" ")
        first = False
        name = att.name
        kind = _file_kind(att) if att.section is not None or name in _BLOB_ITEMS else None
        if kind is None:
            if name == "UID":
                pieces.append(b"UID %d" % uid)
            elif name == "FLAGS":
                pieces.append(b"FLAGS " + flag_list(flags, recent))
            elif name in _OBJECTID_ITEMS:
                pieces.append(_objectid_item(name, blob_id))
            elif name == "MODSEQ":
                pieces.append(modseq_item(modseq))
            elif name == "SAVEDATE":
                pieces.append(_savedate_item(savedate))
            else:
                pieces.append(_meta_item(name, size, date, info))
            continue
        label = _label(att)
        if kind == "SIZE":
            pieces.append(label + b"%d" % file_size)
            continue
        if kind == "HEAD":
            value = (mime.header_section(header) if att.section is None
                     or att.section.text == "HEADER" else _section_bytes(att, header)) or b""
            if att.partial is not None:
                start, count = att.partial
                value = value[start:start + count]
            pieces.append(label + literal(value))
            continue
        base = body_start if kind == "TEXT" else 0
        length = file_size - base
        if att.partial is not None:
            start, count = att.partial
            start = min(start, length)
            base, length = base + start, max(0, min(count, length - start))
        # A streamed BINARY[] is sent as literal8: whether it holds a NUL is not known yet.
        pieces.append(label + (literal8_prefix(length) if name == "BINARY"
                               else literal_prefix(length)))
        if length:
            pieces.append(FileRange(base, length))
    if force_flags and not plan.has_flags:
        pieces.append(b" FLAGS " + flag_list(flags, recent))
    pieces.append(b")")
    return pieces

