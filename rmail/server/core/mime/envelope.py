"""Reading back the address lists of a stored ENVELOPE (the inverse of `imapstruct.envelope`).

The store keeps each message's ENVELOPE as the IMAP bytes written at delivery (RFC 3501
§7.4.2), with the addresses exactly as parsed then: a group as its start (name in `mailbox`,
no host) and end markers, names as raw header text (encoded-words not decoded). Sorting by an
address (RFC 5256 FROM/TO/CC, RFC 5957 DISPLAYFROM/DISPLAYTO) needs that structure; the
decoded header text the store also keeps has lost it (a decoded name may hold a comma).

The bytes were written by `core.imapstring`, so the reader knows only what it writes: ``(``,
``)``, ``NIL``, quoted strings with ``\\`` escapes and ``{n}`` CRLF literals. Anything else
ends the reading early with what was read so far; it never raises.
"""

from __future__ import annotations

import re
from typing import Collection, Final

from .address import Addr

__all__ = ["envelope_addresses"]

#: ENVELOPE fields that are address lists, by position (RFC 3501 §9 ``envelope``).
_ADDRESS_FIELDS: Final = {2: "from", 3: "sender", 4: "reply-to", 5: "to", 6: "cc", 7: "bcc"}
_TOKEN: Final = re.compile(rb' *(?:(\()|(\))|(NIL)|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n)', re.S)
#: The tokens of an ENVELOPE without literals, found in one call (the usual case: a
#: literal is written only for 8-bit, CR/LF or over-long values).
_PLAIN_TOKENS: Final = re.compile(rb'\(|\)|NIL|"(?:[^"\\]|\\.)*"', re.S)
_ESCAPE: Final = re.compile(rb"\\(.)", re.S)

def _text(raw: bytes | None) -> str | None:
    # The writer encoded str with surrogateescape: undo exactly that.
    return None if raw is None else raw.decode("utf-8", "surrogateescape")


def _read_plain(data: bytes, stop: int) -> list[object]:
    """`_read` for an ENVELOPE without literals, up to its item `stop` (0-based)."""
    stack: list[list[object]] = []
    for token in _PLAIN_TOKENS.findall(data):
        first = token[0]
        if first == 0x28:  # (
            stack.append([])
        elif first == 0x29:  # )
            if len(stack) <= 1:
                break
            done = stack.pop()
            stack[-1].append(done)
            if len(stack) == 1 and len(stack[0]) > stop:
                break
        elif stack:
            if first == 0x22:  # a quoted string
                value = token[1:-1]
                stack[-1].append(_ESCAPE.sub(rb"\1", value) if b"\\" in value else value)
            else:
                stack[-1].append(None)
    return stack[0] if stack else []


def _read(data: bytes) -> list[object]:
    """The top-level items of the parenthesised list `data` as nested lists of bytes/None."""
    stack: list[list[object]] = []
    top: list[object] = []
    pos = 0
    while pos < len(data):
        m = _TOKEN.match(data, pos)
        if m is None:
            break
        pos = m.end()
        if m.group(1) is not None:
            stack.append([])
        elif m.group(2) is not None:
            if not stack:
                break
            done = stack.pop()
            (stack[-1] if stack else top).append(done)
        elif m.group(3) is not None:
            if stack:
                stack[-1].append(None)
        else:
            if m.group(5) is not None:
                size = int(m.group(5))
                value = data[pos:pos + size]
                pos += size
            else:
                quoted = m.group(4)
                value = _ESCAPE.sub(rb"\1", quoted) if b"\\" in quoted else quoted
            if stack:
                stack[-1].append(value)
    if top and isinstance(top[0], list):
        return top[0]
    return stack[0] if stack else []  # cut short: the fields read so far


def envelope_addresses(envelope: bytes, fields: Collection[str] | None = None,
                       ) -> dict[str, list[Addr]]:
    """The address lists of a stored ENVELOPE by lower-case field name ("from", "sender",
    "reply-to", "to", "cc", "bcc"); a field that is NIL is absent. Strings are as
    `address.parse_addresses` gave them at delivery.

    Args:
        fields: only these fields (the reading stops after the last of them); None for all.
    """
    wanted = {i: n for i, n in _ADDRESS_FIELDS.items() if fields is None or n in fields}
    if not wanted:
        return {}
    if b"{" in envelope:
        items = _read(envelope)
    else:
        items = _read_plain(envelope, max(wanted))
    out: dict[str, list[Addr]] = {}
    for index, name in wanted.items():
        field = items[index] if index < len(items) else None
        if not isinstance(field, list):
            continue
        addrs = []
        for entry in field:
            if isinstance(entry, list) and len(entry) == 4:
                name_, adl, mailbox, host = (_text(p) if isinstance(p, bytes) else None
                                             for p in entry)
                addrs.append(Addr(name_, adl, mailbox, host))
        out[name] = addrs
    return out
