"""FETCH response building (RFC 3501 §6.4.5, §7.4.2): pure functions over stored metadata.

FLAGS, UID, RFC822.SIZE and INTERNALDATE come from the session's map; ENVELOPE, BODY and
BODYSTRUCTURE from the text the store computed at delivery (`MessageInfo`); only BODY[...]
and RFC822* read message bytes, which the caller passes in. Each response is built straight
into bytes: this is the hot path of every client sync.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Final, Iterable

from rmail.server.core import mime
from rmail.server.core.model import MessageInfo

from .grammar import FetchAtt

__all__ = ["FetchPlan", "flags_bytes", "internaldate", "message_items"]

_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec")
_SYSTEM_ORDER: Final = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
#: Encoded flag lists by (flag set, recent); flag sets repeat a lot across a mailbox.
_FLAG_CACHE: dict[tuple[frozenset[str], bool], bytes] = {}
_FLAG_CACHE_MAX: Final = 4096
_BLOB_ITEMS: Final = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT"})
_INFO_ITEMS: Final = frozenset({"ENVELOPE", "BODYSTRUCTURE"})


def flags_bytes(flags: frozenset[str], recent: bool) -> bytes:
    """`(\\Seen $Label ...)`: system flags in a fixed order, then keywords sorted."""
    key = (flags, recent)
    out = _FLAG_CACHE.get(key)
    if out is None:
        names = [f for f in _SYSTEM_ORDER if f in flags]
        names += sorted(f for f in flags if not f.startswith("\\"))
        if recent:
            names.append("\\Recent")
        out = ("(" + " ".join(names) + ")").encode("ascii")
        if len(_FLAG_CACHE) < _FLAG_CACHE_MAX:
            _FLAG_CACHE[key] = out
    return out


def internaldate(ts: float) -> bytes:
    """RFC 3501 §9 date-time, in UTC: `"05-Mar-2024 09:08:07 +0000"`."""
    d = datetime.fromtimestamp(ts, timezone.utc)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (d.day, _MONTHS[d.month - 1].encode(),
                                                     d.year, d.hour, d.minute, d.second)


class FetchPlan:
    """What a FETCH needs, decided once per command rather than per message."""

    __slots__ = ("atts", "needs_info", "needs_blob", "sets_seen", "has_flags")

    def __init__(self, atts: Iterable[FetchAtt]) -> None:
        self.atts = tuple(atts)
        self.needs_info = any(a.name in _INFO_ITEMS or (a.name == "BODY" and a.section is None)
                              for a in self.atts)
        self.needs_blob = any(a.section is not None or a.name in _BLOB_ITEMS for a in self.atts)
        self.sets_seen = any(a.sets_seen for a in self.atts)
        self.has_flags = any(a.name == "FLAGS" for a in self.atts)


def _section_bytes(att: FetchAtt, data: bytes) -> bytes | None:
    section = att.section
    assert section is not None
    return mime.body_section(data, section.part, section.text, section.fields)


def message_items(plan: FetchPlan, *, uid: int, flags: frozenset[str], recent: bool,
                  size: int, date: float, info: MessageInfo | None, data: bytes | None,
                  force_flags: bool = False) -> bytes:
    """The parenthesised item list of one `* n FETCH (...)` response.

    Args:
        force_flags: add FLAGS even if not asked (\\Seen was just set, RFC 3501 §6.4.5).
    """
    out: list[bytes] = []
    for att in plan.atts:
        name = att.name
        if att.section is not None:
            assert data is not None
            value = _section_bytes(att, data)
            if value is None:
                # Dovecot's answer for a part that does not exist: an empty string.
                value = b""
            if att.partial is not None:
                start, count = att.partial
                value = value[start:start + count]
            out.append(att.response_name.encode("ascii") + b" {%d}\r\n" % len(value) + value)
        elif name == "UID":
            out.append(b"UID %d" % uid)
        elif name == "FLAGS":
            out.append(b"FLAGS " + flags_bytes(flags, recent))
        elif name == "RFC822.SIZE":
            out.append(b"RFC822.SIZE %d" % size)
        elif name == "INTERNALDATE":
            out.append(b"INTERNALDATE " + internaldate(date))
        elif name == "ENVELOPE":
            out.append(b"ENVELOPE " + (info.envelope if info else _EMPTY_ENVELOPE))
        elif name == "BODYSTRUCTURE":
            out.append(b"BODYSTRUCTURE " + (info.bodystructure if info else _EMPTY_BODY))
        elif name == "BODY":
            out.append(b"BODY " + (info.body if info else _EMPTY_BODY))
        elif name == "RFC822":
            assert data is not None
            out.append(b"RFC822 {%d}\r\n" % len(data) + data)
        elif name == "RFC822.HEADER":
            assert data is not None
            out.append(b"RFC822.HEADER " + _literal(mime.header_section(data)))
        elif name == "RFC822.TEXT":
            assert data is not None
            out.append(b"RFC822.TEXT " + _literal(mime.text_section(data)))
    if force_flags and not plan.has_flags:
        out.append(b"FLAGS " + flags_bytes(flags, recent))
    return b"(" + b" ".join(out) + b")"


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


# Used only if a row lost its parsed fields (cannot happen for rows the store wrote).
_EMPTY_ENVELOPE: Final = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
_EMPTY_BODY: Final = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
