"""Turning raw header and body bytes into text: charsets, RFC 2047, transfer encodings, HTML.

Everything here is tolerant: unknown charsets, broken base64 or stray bytes
degrade to replacement characters and never raise.
"""

from __future__ import annotations

import binascii
import codecs
import html
import re
from urllib.parse import unquote_to_bytes

__all__ = [
    "decode_bytes",
    "decode_charset",
    "decode_words",
    "header_str",
    "transfer_decode",
    "b64_decode",
    "b64_clean",
    "strip_html",
    "param_text",
]

# Charsets announced by mail software that Python spells differently.
_ALIASES = {"x-unknown": "latin-1", "unknown-8bit": "latin-1", "x-user-defined": "latin-1"}
_CODEC_CACHE: dict[str, str] = {}


def _codec(charset: str) -> str:
    """Python codec name for a MIME charset label; utf-8 when unknown."""
    cached = _CODEC_CACHE.get(charset)  # labels usually arrive normalised already
    if cached is not None:
        return cached
    label = charset.strip().strip('"').lower()
    cached = _CODEC_CACHE.get(label)
    if cached is not None:
        return cached
    name = _ALIASES.get(label, label)
    try:
        name = codecs.lookup(name).name
    except (LookupError, ValueError):
        name = "utf-8"
    # us-ascii data in the wild is mostly latin-1 or utf-8; utf-8 with
    # replacement keeps valid utf-8 readable and flags the rest.
    if name == "ascii":
        name = "utf-8"
    if len(_CODEC_CACHE) < 256:  # labels come from messages: bound the cache
        _CODEC_CACHE[label] = name
    return name


def decode_charset(data: bytes, charset: str | None) -> str:
    """Decode *data* in *charset* (a MIME label), replacing what does not decode."""
    if not charset:
        return decode_bytes(data)
    try:
        return data.decode(_codec(charset), "replace")
    except Exception:  # some codecs raise on odd input despite "replace"
        return data.decode("latin-1")


def decode_bytes(data: bytes) -> str:
    """Decode bytes of unknown charset: ASCII, else UTF-8 (RFC 6532), else latin-1."""
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


# RFC 2047 §2 encoded-word, with RFC 2231 §5 language suffix tolerated.
_WORD_RE = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")
_Q_RE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _q_decode(text: str) -> bytes:
    """RFC 2047 §4.2 "Q": "_" is a space, "=XX" a byte, anything else literal."""
    raw = text.encode("latin-1", "replace")
    if b"=" not in raw:
        return raw.replace(b"_", b" ")
    # binascii's quoted-printable decoder agrees with the rule above except
    # for "==" and a trailing "=" (it drops the "="); a payload has no
    # whitespace, so its soft line breaks never apply.
    if b"==" not in raw and not raw.endswith(b"="):
        return binascii.a2b_qp(raw, header=True)
    return _Q_RE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"_", b" "))


def b64_clean(raw: bytes) -> bytes:
    """Only the base64 alphabet of *raw*, trimmed to whole bytes (padding removed)."""
    clean = raw.translate(None, _B64_DELETE)
    if len(clean) % 4 == 1:  # a lone trailing sextet carries no whole byte
        clean = clean[:-1]
    return clean


def b64_decode(raw: bytes) -> bytes:
    """Base64 that skips garbage and repairs padding instead of raising (RFC 2045 §6.8)."""
    clean = b64_clean(raw)
    clean += b"=" * (-len(clean) % 4)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return b""


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DELETE = bytes(c for c in range(256) if c not in _B64_ALPHABET)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words in *text* in one pass.

    Whitespace between adjacent encoded-words is dropped (RFC 2047 §6.2), and
    the bytes of adjacent same-charset words are joined before decoding, so a
    multi-byte character split across two words survives.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    pending = b""
    pending_cs: str | None = None
    for m in _WORD_RE.finditer(text):
        charset, enc, payload = m.groups()
        gap = text[pos : m.start()]
        adjacent = pending_cs is not None and not gap.strip(" \t\r\n")
        if "*" in charset:
            charset = charset.split("*", 1)[0]
        charset = charset.lower()
        if enc in "bB":
            raw = b64_decode(payload.encode("latin-1", "replace"))
        else:
            raw = _q_decode(payload)
        if adjacent and charset == pending_cs:
            pending += raw
        else:
            if pending_cs is not None:
                out.append(decode_charset(pending, pending_cs))
            if not adjacent:
                out.append(gap)
            pending, pending_cs = raw, charset
        pos = m.end()
    if pending_cs is not None:
        out.append(decode_charset(pending, pending_cs))
    out.append(text[pos:])
    return "".join(out)


def header_str(raw: bytes) -> str:
    """Header value bytes to display text: unfolded, charset-guessed, RFC 2047-decoded."""
    if b"\n" in raw:
        raw = raw.replace(b"\r\n", b"").replace(b"\n", b"")
    if b"=?" not in raw and raw.isascii():
        # Most values: nothing to decode. str.strip() removes a superset of
        # what bytes.strip() does, so one strip gives the same text.
        return raw.decode("ascii").strip()
    return decode_words(decode_bytes(raw.strip())).strip()


def transfer_decode(body: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6); unknown encodings pass through."""
    if encoding == "base64":
        return b64_decode(body)
    if encoding == "quoted-printable":
        try:
            return binascii.a2b_qp(body)
        except (binascii.Error, ValueError):
            return body
    return body


def param_text(value: bytes, extended: bool) -> str:
    """Decode a parameter value for display: RFC 2231 §4 when *extended*, else RFC 2047."""
    if extended:
        parts = value.split(b"'", 2)
        if len(parts) == 3:
            charset = parts[0].decode("latin-1")
            return decode_charset(unquote_to_bytes(parts[2]), charset or None)
        return decode_bytes(unquote_to_bytes(value))
    return decode_words(decode_bytes(value))


_TAG_RE = re.compile(r"<[^<>]*>")  # stops at the next "<": linear on hostile input
# The "<" before a block-level tag, so a newline can go in front of it: a
# literal "<" first lets the engine skip to candidates, and a literal
# replacement avoids a Python call per tag.
_BLOCK_RE = re.compile(r"<(?=/?(?i:p|div|br|li|tr|h[1-6]|table|blockquote)\b)")


_SCRIPT_OR_STYLE_RE = re.compile(r"<(?:script|style)", re.I | re.A)


def strip_html(markup: str) -> str:
    """Visible text of an HTML body: script/style dropped, tags removed, entities decoded."""
    # ASCII-only case folding finds exactly what lower() + find would here
    # (no other character lowercases to these letters), without copying.
    if _SCRIPT_OR_STYLE_RE.search(markup) is not None:
        lower = markup.lower()
        kept: list[str] = []
        pos = 0
        while True:
            s = lower.find("<script", pos)
            t = lower.find("<style", pos)
            start = min(x for x in (s, t, len(lower)) if x >= 0)
            kept.append(markup[pos:start])
            if start >= len(lower):
                break
            closer = "</script" if start == s else "</style"
            stop = lower.find(closer, start)
            if stop < 0:
                break
            gt = lower.find(">", stop)
            pos = len(lower) if gt < 0 else gt + 1
        markup = "".join(kept)
    markup = _BLOCK_RE.sub("\n<", markup)
    return html.unescape(_TAG_RE.sub(" ", markup))
