"""Decoded content of parts: text for SEARCH and display, attachment classification."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .headers import parse_disposition
from .text import b64_clean, decode_charset, param_text, strip_html, transfer_decode
from .tree import Part

__all__ = ["leaves", "decoded", "decoded_size", "part_text", "filename", "is_attachment"]

# Raw bytes of one part decoded for text: enough for the 1 MiB SEARCH cap even
# through base64 (4/3) and 4-byte UTF-8, without decoding a huge part whole.
MAX_TEXT_SOURCE = 6 * 1024 * 1024


def leaves(part: Part, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Part]]:
    """Leaf parts in order with their section numbers (RFC 3501 §6.4.5); message/rfc822 is a leaf here."""
    if part.multipart:
        for i, child in enumerate(part.children, 1):
            yield from leaves(child, path + (i,))
    else:
        yield (path or (1,)), part


def encoding(part: Part) -> str:
    cte = part.header("content-transfer-encoding")
    return cte.decode("latin-1").strip().lower() if cte else "7bit"


def decoded(data: bytes, part: Part, limit: int | None = None) -> bytes:
    """Body bytes with the transfer encoding undone (RFC 2045 §6)."""
    end = part.end if limit is None else min(part.end, part.body_start + limit)
    return transfer_decode(data[part.body_start : end], encoding(part))


def decoded_size(data: bytes, part: Part) -> int:
    """Size of the transfer-decoded body; base64 is counted without decoding it."""
    if encoding(part) == "base64":
        sextets = len(b64_clean(data[part.body_start : part.end]))
        return sextets * 3 // 4
    return len(decoded(data, part))


def charset(part: Part) -> str | None:
    for k, v in part.ctype.params:
        if k.lower() == b"charset":
            return v.decode("latin-1")
    return None


def part_text(data: bytes, part: Part) -> str:
    """Text of a text/* part: transfer- and charset-decoded, HTML reduced to visible text."""
    text = decode_charset(decoded(data, part, MAX_TEXT_SOURCE), charset(part))
    if part.kind[1] == "html":
        text = strip_html(text)
    return text


def _param(params: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for k, v in params:
        low = k.lower()
        if low == name:
            return param_text(v, False)
        if low == name + b"*":
            return param_text(v, True)
    return None


def filename(part: Part) -> str | None:
    """Filename from Content-Disposition (RFC 2183) or the Content-Type ``name`` parameter."""
    dsp = parse_disposition(part.header("content-disposition"))
    name = _param(dsp[1], b"filename") if dsp else None
    return name or _param(part.ctype.params, b"name")


def disposition(part: Part) -> str | None:
    dsp = parse_disposition(part.header("content-disposition"))
    return dsp[0].decode("latin-1").lower() if dsp else None


def is_attachment(part: Part) -> bool:
    """An attachment is a non-inline leaf, or any leaf with a filename."""
    parsed = parse_disposition(part.header("content-disposition"))  # once, for both questions
    dsp = parsed[0].decode("latin-1").lower() if parsed else None
    if dsp == "attachment":
        return True
    if (_param(parsed[1], b"filename") if parsed else None) or _param(part.ctype.params, b"name"):
        return True
    if dsp == "inline":
        return False
    return part.kind not in (("text", "plain"), ("text", "html"))
