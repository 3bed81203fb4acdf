"""ENVELOPE, BODY and BODYSTRUCTURE encoding (RFC 3501 §7.4.2), in Dovecot's conventions.

Strings are the raw header bytes (encoded-words are not decoded, RFC 3501
§7.4.2), unfolded; types are written as the message spells them, defaults
lowercase ("text" "plain", "7bit"). Every string goes through `core.imapstring`, the
quoting rule the IMAP adapter's encoder uses too (the store keeps these bytes and the
adapter sends them as they are).
"""

from __future__ import annotations

from collections.abc import Sequence

from .address import Addr, parse_addresses
from ..imapstring import NIL, address
from ..imapstring import nstring as imap_nstring
from ..imapstring import string as imap_string
from .headers import Field, parse_disposition, unfold
from .tree import Part

__all__ = ["envelope", "bodystructure", "structures", "first_values", "address_lists"]

_ENVELOPE_KEYS = (
    "date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id",
)  # fmt: skip
_EMPTY_PART = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0'


def first_values(fields: list[Field], keys: tuple[str, ...] = _ENVELOPE_KEYS) -> dict[str, bytes]:
    """Unfolded value of the first occurrence of each of *keys*."""
    found: dict[str, bytes] = {}
    wanted = set(keys)
    for f in fields:
        if f.key in wanted and f.key not in found:
            found[f.key] = unfold(f.value)
    return found


_ADDRESS_KEYS = ("from", "sender", "reply-to", "to", "cc", "bcc")


def address_lists(values: dict[str, bytes]) -> dict[str, list[Addr]]:
    """Parsed address headers among *values* (from :func:`first_values`)."""
    return {
        key: parse_addresses(values[key].decode("utf-8", "surrogateescape"))
        for key in _ADDRESS_KEYS
        if key in values
    }


def _addr_list(addrs: list[Addr] | None) -> bytes | None:
    if not addrs:
        return None
    return b"(" + b" ".join([address(*a) for a in addrs]) + b")"


def envelope(
    fields: list[Field],
    values: dict[str, bytes] | None = None,
    addrs: dict[str, list[Addr]] | None = None,
) -> bytes:
    """ENVELOPE of a message header; sender and reply-to default to from (RFC 3501 §7.4.2).

    *values* and *addrs* may be passed when the caller already computed them.
    """
    v = values if values is not None else first_values(fields)
    a = addrs if addrs is not None else address_lists(v)
    frm = _addr_list(a.get("from"))
    sender = _addr_list(a.get("sender")) or frm
    reply_to = _addr_list(a.get("reply-to")) or frm
    items = [
        imap_nstring(v.get("date")),
        imap_nstring(v.get("subject")),
        frm or NIL,
        sender or NIL,
        reply_to or NIL,
        _addr_list(a.get("to")) or NIL,
        _addr_list(a.get("cc")) or NIL,
        _addr_list(a.get("bcc")) or NIL,
        imap_nstring(v.get("in-reply-to")),
        imap_nstring(v.get("message-id")),
    ]
    return b"(" + b" ".join(items) + b")"


def _params(params: Sequence[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join([imap_string(k) + b" " + imap_string(v) for k, v in params]) + b")"


def _extension(part: Part, with_params: bool) -> bytes:
    out = []
    if with_params:
        out.append(_params(part.ctype.params))
    dsp = parse_disposition(part.header("content-disposition"))
    out.append(NIL if dsp is None else b"(%s %s)" % (imap_string(dsp[0]), _params(dsp[1])))
    lang = part.header("content-language")
    if lang:
        tags = [t for t in lang.replace(b",", b" ").split() if t]
        out.append(b"(" + b" ".join(imap_string(t) for t in tags) + b")" if tags else NIL)
    else:
        out.append(NIL)
    out.append(imap_nstring(part.header("content-location")))
    return b" ".join(out)


def bodystructure(data: bytes, part: Part, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (``extended``) or BODY of *part* (RFC 3501 §7.4.2)."""
    full, basic = structures(data, part)
    return full if extended else basic


def _has_charset(params: Sequence[tuple[bytes, bytes]]) -> bool:
    for k, _ in params:
        if k.lower() == b"charset":
            return True
    return False


def structures(data: bytes, part: Part) -> tuple[bytes, bytes]:
    """``(BODYSTRUCTURE, BODY)`` of *part* in one walk of the tree (RFC 3501 §7.4.2)."""
    if part.multipart:
        if part.children:
            pairs = [structures(data, c) for c in part.children]
            full = b"".join([p[0] for p in pairs])
            basic = b"".join([p[1] for p in pairs])
        else:  # the grammar needs 1*body; Dovecot writes an empty text part
            full, basic = _EMPTY_PART + b" NIL NIL NIL NIL)", _EMPTY_PART + b")"
        subtype = b" " + imap_string(part.ctype.subtype)
        return (
            b"(" + full + subtype + b" " + _extension(part, True) + b")",
            b"(" + basic + subtype + b")",
        )
    ctype = part.ctype
    kind = part.kind
    params = ctype.params
    if kind[0] == "text" and not _has_charset(params):
        params = (*params, (b"charset", b"us-ascii"))  # RFC 2045 §5.2 default
    items = [
        imap_string(ctype.type_),
        imap_string(ctype.subtype),
        _params(params),
        imap_nstring(part.header("content-id")),
        imap_nstring(part.header("content-description")),
        imap_string(part.header("content-transfer-encoding") or b"7bit"),
        b"%d" % (part.end - part.body_start),
    ]
    basic_items = items
    full_items = list(items)
    if part.message:
        msg = part.children[0]
        env = envelope(msg.fields)
        inner_full, inner_basic = structures(data, msg)
        lines = b"%d" % data.count(b"\n", part.body_start, part.end)
        full_items += [env, inner_full, lines]
        basic_items = items + [env, inner_basic, lines]
    elif kind[0] == "text":
        lines = b"%d" % data.count(b"\n", part.body_start, part.end)
        full_items.append(lines)
        basic_items = items + [lines]
    full_items.append(imap_nstring(part.header("content-md5")))
    full_items.append(_extension(part, False))
    return b"(" + b" ".join(full_items) + b")", b"(" + b" ".join(basic_items) + b")"
