"""Trace and result fields that delivery adds or removes at the top of a message. Pure code.

RFC 5321 §4.4: the final delivery adds ``Return-Path: <envelope sender>`` and an MTA
removes any Return-Path the message arrived with (only the delivering MTA may write one).
RFC 8601 §5: a receiver removes ``Authentication-Results`` fields that claim its own
authserv-id before adding its own. Both are edits of the header block only; the body is
never scanned, and a message without such fields is returned as the same object (no copy
of a 25 MiB message just to find nothing to remove).
"""

from __future__ import annotations

from typing import Callable

from .mime.headers import Field, parse_fields, split_header

__all__ = ["return_path", "drop_fields", "has_field", "without_return_path"]


def return_path(sender: str) -> bytes:
    """The ``Return-Path`` line for an envelope sender ("" is the null sender ``<>``)."""
    # The sender was parsed as an address at MAIL FROM; CR/LF cannot be in it, but a stored
    # header must never be splittable, so control characters are dropped defensively.
    clean = "".join(c for c in sender if c >= " " and c != "\x7f")
    return f"Return-Path: <{clean}>\r\n".encode("utf-8", "surrogateescape")


def has_field(data: bytes, name: bytes) -> bool:
    """Whether the header block may hold a field called ``name``: a cheap prefilter on the
    header bytes (case-insensitive); a True still goes through ``drop_fields``."""
    end, _ = split_header(data, 0, len(data))
    return name.lower() in data[:end].lower()


def drop_fields(data: bytes, drop: Callable[[Field], bool]) -> bytes:
    """``data`` without the header fields for which ``drop(field)`` is true.

    Only the top-level header block is looked at; folded continuation lines go with their
    field. Returns ``data`` itself when nothing is dropped.
    """
    end, _ = split_header(data, 0, len(data))
    fields = parse_fields(data, 0, end)
    spans = [(f.start, f.end) for f in fields if drop(f)]
    if not spans:
        return data
    parts: list[bytes] = []
    pos = 0
    for start, stop in spans:
        parts.append(data[pos:start])
        pos = stop
    parts.append(data[pos:])
    return b"".join(parts)


def without_return_path(data: bytes) -> bytes:
    """``data`` without any Return-Path field (RFC 5321 §4.4: the delivering MTA writes it)."""
    if not has_field(data, b"return-path"):
        return data
    return drop_fields(data, lambda f: f.key == "return-path")
