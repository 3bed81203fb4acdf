"""ENVELOPE, BODY and BODYSTRUCTURE encoding (RFC 3501 §7.4.2), in Dovecot's conventions.

Strings are the raw header bytes (encoded-words are not decoded, RFC 3501
§7.4.2), unfolded; types are written as the message spells them, defaults
lowercase ("text" "plain", "7bit").
"""

from __future__ import annotations

from .address import Addr, parse_addresses
from .encode import NIL, imap_nstring, imap_string
from .headers import Field, parse_disposition, unfold
from .tree import Part

__all__ = ["envelope", "bodystructure", "first_values"]

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


def _addr_list(raw: bytes | None) -> bytes | None:
    if raw is None:
        return None
    addrs = parse_addresses(raw.decode("utf-8", "surrogateescape"))
    if not addrs:
        return None
    return b"(" + b" ".join(_addr(a) for a in addrs) + b")"


def _addr(a: Addr) -> bytes:
    return b"(%s %s %s %s)" % (
        imap_nstring(a.name),
        imap_nstring(a.adl),
        imap_nstring(a.mailbox),
        imap_nstring(a.host),
    )


def envelope(fields: list[Field], values: dict[str, bytes] | None = None) -> bytes:
    """ENVELOPE of a message header; sender and reply-to default to from (RFC 3501 §7.4.2)."""
    v = values if values is not None else first_values(fields)
    frm = _addr_list(v.get("from"))
    sender = _addr_list(v.get("sender")) or frm
    reply_to = _addr_list(v.get("reply-to")) or frm
    items = [
        imap_nstring(v.get("date")),
        imap_nstring(v.get("subject")),
        frm or NIL,
        sender or NIL,
        reply_to or NIL,
        _addr_list(v.get("to")) or NIL,
        _addr_list(v.get("cc")) or NIL,
        _addr_list(v.get("bcc")) or NIL,
        imap_nstring(v.get("in-reply-to")),
        imap_nstring(v.get("message-id")),
    ]
    return b"(" + b" ".join(items) + b")"


def _params(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join(imap_string(k) + b" " + imap_string(v) for k, v in params) + b")"


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
    if part.multipart:
        if part.children:
            inner = b"".join(bodystructure(data, c, extended) for c in part.children)
        else:  # the grammar needs 1*body; Dovecot writes an empty text part
            inner = _EMPTY_PART + (b" NIL NIL NIL NIL)" if extended else b")")
        head = inner + b" " + imap_string(part.ctype.subtype)
        if extended:
            head += b" " + _extension(part, True)
        return b"(" + head + b")"
    ctype = part.ctype
    kind = part.kind
    params = list(ctype.params)
    if kind[0] == "text" and not any(k.lower() == b"charset" for k, _ in params):
        params.append((b"charset", b"us-ascii"))  # RFC 2045 §5.2 default
    size = part.end - part.body_start
    items = [
        imap_string(ctype.type_),
        imap_string(ctype.subtype),
        _params(params),
        imap_nstring(part.header("content-id")),
        imap_nstring(part.header("content-description")),
        imap_string(part.header("content-transfer-encoding") or b"7bit"),
        b"%d" % size,
    ]
    if part.message:
        msg = part.children[0]
        items.append(envelope(msg.fields))
        items.append(bodystructure(data, msg, extended))
        items.append(b"%d" % data.count(b"\n", part.body_start, part.end))
    elif kind[0] == "text":
        items.append(b"%d" % data.count(b"\n", part.body_start, part.end))
    if extended:
        items.append(imap_nstring(part.header("content-md5")))
        items.append(_extension(part, False))
    return b"(" + b" ".join(items) + b")"
