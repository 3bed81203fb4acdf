"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3): IMAP's wire form, and the folder names of
Dovecot's Maildir++ (core/mailformats.py).

Printable US-ASCII except "&" stands for itself; "&" is written "&-"; any other run of
characters is UTF-16BE, base64-encoded with "," instead of "/" and no padding, between "&"
and "-". Decoding is strict: a name has exactly one spelling, so two spellings can never
reach the same mailbox (and a rejected spelling never reaches the store).
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["MUTF7Error", "decode", "encode"]


class MUTF7Error(ValueError):
    """A mailbox name that is not valid modified UTF-7."""


def _printable(ch: str) -> bool:
    return "\x20" <= ch <= "\x7e"


def encode(name: str, *, also: str = "") -> str:
    """Encode a Unicode mailbox name to modified UTF-7 (ASCII). Characters in ``also`` are
    shifted too although printable (Maildir++ shifts "." , its hierarchy separator)."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            raw = "".join(run).encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=")
                       .replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if _printable(ch) and ch not in also:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    """Decode a modified UTF-7 mailbox name.

    Raises:
        MUTF7Error: non-ASCII or control characters, an unterminated or malformed shift
            sequence, or a non-canonical spelling (printable ASCII inside a shift, two
            adjacent shifts, bad padding bits).
    """
    out: list[str] = []
    i = 0
    n = len(name)
    last_was_shift = False
    while i < n:
        ch = name[i]
        if not _printable(ch):
            raise MUTF7Error("mailbox name must be printable ASCII in modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            last_was_shift = False
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise MUTF7Error("unterminated & sequence in mailbox name")
        chunk = name[i + 1:end]
        i = end + 1
        if not chunk:
            out.append("&")
            last_was_shift = False
            continue
        if last_was_shift:
            # RFC 3501 §5.1.3: adjacent shifts must be merged into one.
            raise MUTF7Error("non-canonical modified UTF-7 (adjacent shifts)")
        out.append(_decode_chunk(chunk))
        last_was_shift = True
    return "".join(out)


def _decode_chunk(chunk: str) -> str:
    if not all(c.isascii() and (c.isalnum() or c in "+,") for c in chunk):
        raise MUTF7Error("invalid character in modified UTF-7 shift")
    if len(chunk) % 4 == 1:
        raise MUTF7Error("truncated modified UTF-7 shift")
    padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise MUTF7Error("invalid base64 in modified UTF-7 shift") from exc
    if len(raw) % 2:
        raise MUTF7Error("odd number of bytes in modified UTF-7 shift")
    # Leftover bits must be zero: otherwise the same name has two spellings.
    if base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") != chunk:
        raise MUTF7Error("non-canonical modified UTF-7 shift")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise MUTF7Error("invalid UTF-16 in modified UTF-7 shift") from exc
    if any(_printable(c) for c in text):
        raise MUTF7Error("printable ASCII must not be base64-encoded")
    return text
