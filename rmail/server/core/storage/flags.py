"""Message flags as every backend stores them: a system-flag bit mask plus a canonical keyword
string (sorted, space separated). Pure; shared so both backends agree byte for byte."""

from __future__ import annotations

from typing import Final, Iterable

from ..errors import InvalidInput, LimitExceeded
from ..model import SYSTEM_FLAGS

__all__ = ["DELETED", "MAX_KEYWORDS", "MAX_KEYWORD_LENGTH", "SEEN", "columns_to_flags", "flags_to_columns",
           "stored_flags", "validate_flags"]

MAX_KEYWORD_LENGTH: Final = 128
MAX_KEYWORDS: Final = 64
SEEN: Final = SYSTEM_FLAGS["\\Seen"]
DELETED: Final = SYSTEM_FLAGS["\\Deleted"]

_SYSTEM_BY_LOWER = {name.lower(): name for name in SYSTEM_FLAGS}
_FLAG_CACHE: dict[tuple[int, str], frozenset[str]] = {}


def flags_to_columns(flags: Iterable[str]) -> tuple[int, str]:
    """Split flags into the system-flag mask and a canonical keyword string.

    Raises:
        InvalidInput: an unknown system flag (\\Foo), \\Recent, or a malformed keyword.
        LimitExceeded: more than MAX_KEYWORDS keywords.
    """
    mask = 0
    keywords: set[str] = set()
    for flag in flags:
        if flag.startswith("\\"):
            canonical = _SYSTEM_BY_LOWER.get(flag.lower())
            if canonical is None:
                raise InvalidInput(f"unknown system flag {flag[:40]}")
            mask |= SYSTEM_FLAGS[canonical]
        else:
            if not flag or len(flag) > MAX_KEYWORD_LENGTH or any(
                    c in '(){ %*"\\]' or ord(c) <= 0x20 or ord(c) >= 0x7f for c in flag):
                raise InvalidInput(f"invalid keyword {flag[:40]!r}")
            keywords.add(flag)
    if len(keywords) > MAX_KEYWORDS:
        raise LimitExceeded(f"at most {MAX_KEYWORDS} keywords per message")
    return mask, " ".join(sorted(keywords))


def stored_flags(mode: str, old_mask: int, old_keywords: str, mask: int,
                 keywords: frozenset[str]) -> tuple[int, str] | None:
    """STORE's rule for one message: the columns after ``mode`` ("set", "add", "remove")
    applies ``mask`` and ``keywords`` to the stored ones, or None when nothing changes (the
    message then keeps its MODSEQ).

    Raises:
        LimitExceeded: the result would carry more than MAX_KEYWORDS keywords.
    """
    old_kw = frozenset(old_keywords.split()) if old_keywords else frozenset()
    if mode == "set":
        new_mask, new_kw = mask, keywords
    elif mode == "add":
        new_mask, new_kw = old_mask | mask, old_kw | keywords
    else:
        new_mask, new_kw = old_mask & ~mask, old_kw - keywords
    if len(new_kw) > MAX_KEYWORDS:
        raise LimitExceeded(f"at most {MAX_KEYWORDS} keywords per message")
    if (new_mask, new_kw) == (old_mask, old_kw):
        return None
    return new_mask, " ".join(sorted(new_kw))


def validate_flags(flags: Iterable[str]) -> None:
    """Raise as ``flags_to_columns`` would (adapters check input before any lookup)."""
    flags_to_columns(flags)


def columns_to_flags(mask: int, keywords: str) -> frozenset[str]:
    key = (mask, keywords)
    flags = _FLAG_CACHE.get(key)
    if flags is None:
        names = [name for name, bit in SYSTEM_FLAGS.items() if mask & bit]
        if keywords:
            names.extend(keywords.split(" "))
        flags = frozenset(names)
        if len(_FLAG_CACHE) < 4096:
            _FLAG_CACHE[key] = flags
    return flags
