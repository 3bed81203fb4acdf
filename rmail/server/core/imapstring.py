"""IMAP strings (RFC 3501 §4.3, §9 ``string``/``nstring``): the one rule for quoted or literal.

Pure and without dependencies, like `mutf7`: the core writes the ENVELOPE, BODY and
BODYSTRUCTURE it computes at delivery with it (`mime.imapstruct`; the store keeps them as wire
bytes), and the IMAP adapter's encoder writes every other string it sends with it
(`rmail.server.imap.encode`), so a client sees one quoting rule whichever computed the bytes.

The rule:

- A value of at most `MAX_QUOTED` octets, all 7-bit TEXT-CHARs (any CHAR but CR and LF, RFC
  3501 §9 ``QUOTED-CHAR``), goes quoted, with ``"`` and ``\\`` escaped.
- Anything else — 8-bit text, CR or LF, a longer value — goes as a literal ``{n}`` CRLF octets.
- NUL is dropped: RFC 3501 §4.3 forbids it in every string, literals included (``CHAR8`` is
  %x01-ff), and a header that carries one must not make the response unparsable.
- ``str`` values are sent as UTF-8; surrogate escapes (undecodable header bytes kept by
  ``surrogateescape``) go back to the bytes they stood for.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_QUOTED", "NIL", "address", "nstring", "string"]

NIL: Final = b"NIL"
#: Longest value still sent quoted; longer ones go as literals, so a client never has to scan
#: a long quoted run for its closing DQUOTE.
MAX_QUOTED: Final = 1024
#: Values that go out quoted unchanged: 7-bit, no NUL/CR/LF, nothing to escape (one C call for
#: the common case: most header values and every mailbox name).
_PLAIN_QUOTED = re.compile(rb'[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]{0,%d}' % MAX_QUOTED)
#: What keeps an ASCII str from going out quoted unchanged.
_UNSAFE_TEXT = re.compile('["\\\\\r\n\x00]')
_DQ: Final = '"'


def string(value: bytes | str) -> bytes:
    """*value* as an IMAP ``string``: quoted when the rule allows, otherwise a literal."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if _PLAIN_QUOTED.fullmatch(value) is not None:
        return b'"' + value + b'"'
    if len(value) <= MAX_QUOTED and value.isascii():
        if b"\r" not in value and b"\n" not in value and b"\x00" not in value:
            if b"\\" in value or b'"' in value:
                value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
            return b'"' + value + b'"'
    if b"\x00" in value:
        return string(value.replace(b"\x00", b""))
    return b"{%d}\r\n%s" % (len(value), value)


def nstring(value: bytes | str | None) -> bytes:
    """*value* as an IMAP ``nstring``: NIL when absent."""
    return NIL if value is None else string(value)


def address(name: str | None, adl: str | None, mailbox: str | None, host: str | None) -> bytes:
    """An ENVELOPE ``address`` (RFC 3501 §9): ``(name adl mailbox host)``, each an `nstring`.

    Written for every address at every delivery, so plain ASCII text (the usual address)
    takes one check for all four parts and one format.
    """
    text = f"{name or ''}{adl or ''}{mailbox or ''}{host or ''}"
    if len(text) <= MAX_QUOTED and text.isascii() and _UNSAFE_TEXT.search(text) is None:
        return (f"({'NIL' if name is None else f'{_DQ}{name}{_DQ}'}"
                f" {'NIL' if adl is None else f'{_DQ}{adl}{_DQ}'}"
                f" {'NIL' if mailbox is None else f'{_DQ}{mailbox}{_DQ}'}"
                f" {'NIL' if host is None else f'{_DQ}{host}{_DQ}'})").encode("ascii")
    return b"(%s %s %s %s)" % (nstring(name), nstring(adl), nstring(mailbox), nstring(host))
