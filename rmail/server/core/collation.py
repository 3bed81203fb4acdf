"""The i;unicode-casemap collation (RFC 5051): the order SORT and THREAD compare text in.

RFC 5256 §7 (SORT and THREAD) requires I18NLEVEL=1 of RFC 5255, i.e. strings collate by
i;unicode-casemap: each character is replaced by its titlecase mapping (UnicodeData field 14),
then by its full decomposition (canonical and compatibility), and the results compare as
UTF-8 octets — for Python strings, code point by code point, which is the same order.
Pure and without dependencies beyond the standard library; the REST API may sort by it too.

Two deviations from the letter of RFC 5051, both invisible for real subjects and names:
Python's `unicodedata.normalize("NFKD")` also puts combining marks in canonical order, and
the titlecase step keeps a character whose only titlecase mapping is several characters (the
full mapping, e.g. "ß" → "Ss") as it is, which is what the simple mapping of field 14 does.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["unicode_casemap"]

#: Characters whose titlecase form was looked up; bounded because the characters come from
#: messages (a few thousand distinct ones cover every script a mailbox holds in practice).
_CACHE_MAX: Final = 8192
_titlecase: dict[str, str] = {}


def _title(ch: str) -> str:
    mapped = _titlecase.get(ch)
    if mapped is None:
        full = ch.title()
        mapped = full if len(full) == 1 else ch  # field 14 is one character or none
        if len(_titlecase) < _CACHE_MAX:
            _titlecase[ch] = mapped
    return mapped


def unicode_casemap(text: str) -> str:
    """The key `text` collates by under i;unicode-casemap (RFC 5051 §2): equal keys mean the
    strings are equal in the collation, and keys order as the strings do."""
    if text.isascii():
        # ASCII titlecases to upper case and has no decompositions: one C call.
        return text.upper()
    return unicodedata.normalize("NFKD", "".join([_title(ch) for ch in text]))
