"""IMAP string encoding for ENVELOPE and BODYSTRUCTURE (RFC 3501 §4.3, §9 ``string``).

The IMAP adapter has its own encoder for responses; this small copy keeps
the core free of protocol imports while producing the same wire syntax.
"""

from __future__ import annotations

import re

__all__ = ["imap_string", "imap_nstring", "NIL"]

NIL = b"NIL"

# Longest value still sent as a quoted string; longer ones go as literals so a
# client never has to scan a huge quoted run for its closing DQUOTE.
_MAX_QUOTED = 1024
#: Values that go out quoted unchanged: 7-bit, no NUL/CR/LF, nothing to escape.
_PLAIN_QUOTED = re.compile(rb'[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]{0,%d}' % _MAX_QUOTED)


def imap_string(value: bytes | str) -> bytes:
    """Encode *value* as an IMAP ``string``: quoted when safe, otherwise a literal.

    Quoted strings carry only 7-bit TEXT-CHARs without CR/LF (RFC 3501 §9
    ``QUOTED-CHAR``); anything else is sent as a literal. NUL is dropped
    because RFC 3501 §4.3 forbids it even in literals.
    """
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if _PLAIN_QUOTED.fullmatch(value) is not None:  # the common case, in one C call
        return b'"' + value + b'"'
    if len(value) <= _MAX_QUOTED and value.isascii():
        if b"\r" not in value and b"\n" not in value and b"\x00" not in value:
            if b"\\" in value or b'"' in value:
                value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
            return b'"' + value + b'"'
    if b"\x00" in value:
        value = value.replace(b"\x00", b"")
        return imap_string(value)
    return b"{%d}\r\n%s" % (len(value), value)


def imap_nstring(value: bytes | str | None) -> bytes:
    """Encode *value* as an IMAP ``nstring`` (NIL when absent)."""
    return NIL if value is None else imap_string(value)
