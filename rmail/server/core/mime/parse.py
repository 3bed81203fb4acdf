"""parse_message: everything FETCH and SEARCH need, computed once at delivery."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from .address import display
from .content import is_attachment, part_text
from .imapstruct import address_lists, envelope, structures
from .text import decode_bytes, header_str
from .tree import Part, parse_tree

__all__ = ["ParsedMessage", "parse_message", "MAX_SEARCH_TEXT", "PREVIEW_CHARS"]

#: Characters of search_text and of header_text per message; beyond it text is not searchable.
MAX_SEARCH_TEXT = 1024 * 1024
PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Precomputed metadata of one message (see the package docstring)."""

    envelope: bytes
    bodystructure: bytes
    body: bytes
    header_text: str
    search_text: str
    subject: str
    from_: str
    to: str
    cc: str
    date: datetime | None
    message_id: str
    in_reply_to: str
    references: str
    preview: str


# The RFC 5322 §3.3 form nearly all mail uses, e.g. "Tue, 2 Jan 2024
# 10:00:00 +0100" (anything may follow after a blank, such as a comment).
# It is converted directly, with the same arithmetic as the stdlib parser;
# everything else goes through parsedate_to_datetime.
_DATE_RE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{1,2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})(?:[ \t]|\Z)"
)
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"), 1)}  # fmt: skip


def _fast_date(text: str) -> datetime | None:
    m = _DATE_RE.match(text)
    if m is None:
        return None
    day, month, year, hh, mm, ss, sign, tzh, tzm = m.groups()
    yy = int(year)
    if yy < 100:  # "0099": the stdlib's two-digit-year rule applies
        yy += 1900 if yy > 68 else 2000
    offset = int(tzh) * 3600 + int(tzm) * 60
    try:
        # "-0000" (no zone information) ends up UTC below, like "+0000".
        tz = timezone(timedelta(seconds=-offset if sign == "-" else offset))
        return datetime(yy, _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=tz)
    except (ValueError, OverflowError):
        return None  # parse_date would fail too: let it decide


_HEADER_KEYS = ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
                "in-reply-to", "message-id", "references")  # fmt: skip


def parse_date(raw: bytes | None) -> datetime | None:
    """Date header to an aware datetime (RFC 5322 §3.3); None when absent or unparseable."""
    if not raw:
        return None
    if raw.isascii():
        dt = _fast_date(raw.decode("ascii"))
        if dt is not None:
            return dt
    try:
        dt = parsedate_to_datetime(decode_bytes(raw))
    except Exception:  # the stdlib raises several types on junk
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _text_parts(data: bytes, root: Part) -> list[tuple[Part, str]]:
    """Decoded text of every text/* leaf, nested messages included, in order."""
    out: list[tuple[Part, str]] = []
    stack = [root]
    budget = MAX_SEARCH_TEXT
    while stack and budget > 0:
        node = stack.pop()
        if node.multipart or node.message:
            stack.extend(reversed(node.children))
            continue
        if node.kind[0] != "text":
            continue
        text = part_text(data, node)[:budget]
        budget -= len(text)
        out.append((node, text))
    return out


def _preview(texts: list[tuple[Part, str]]) -> str:
    chosen = next((t for p, t in texts if p.kind[1] == "plain" and not is_attachment(p)), None)
    if chosen is None:
        chosen = next((t for p, t in texts if not is_attachment(p)), "")
    # split() and regex \s agree on what whitespace is: runs collapse to one space, ends trimmed.
    return " ".join(chosen[: PREVIEW_CHARS * 8].split())[:PREVIEW_CHARS]


def parse_message(data: bytes) -> ParsedMessage:
    """Parse raw message bytes into :class:`ParsedMessage`; never raises on malformed input."""
    root = parse_tree(data)
    values = root.first_values(_HEADER_KEYS)
    header_lines = []
    subject: str | None = None  # the first Subject field, decoded once
    budget = MAX_SEARCH_TEXT  # header_text has the same cap as search_text
    for key, raw, _, _, name in root.fields:
        if budget <= 0:
            break
        # header_str inlined for the usual ASCII field without encoded-words.
        if b"\n" in raw:
            raw = raw.replace(b"\r\n", b"").replace(b"\n", b"")
        if b"=?" not in raw and raw.isascii():
            value = raw.decode("ascii").strip()
        else:
            value = header_str(raw)
        if subject is None and key == "subject":
            subject = value
        line = f"{name.decode('ascii') if name.isascii() else decode_bytes(name)}: {value}"
        header_lines.append(line)
        budget -= len(line) + 1

    addrs = address_lists(values)

    texts = _text_parts(data, root)
    search = "\n".join(t for _, t in texts).casefold()[:MAX_SEARCH_TEXT]
    full, basic = structures(data, root)
    return ParsedMessage(
        envelope=envelope(root.fields, values, addrs),
        bodystructure=full,
        body=basic,
        header_text="\n".join(header_lines),
        search_text=search,
        subject=header_str(values.get("subject", b"")) if subject is None else subject,
        from_=display(addrs.get("from", [])),
        to=display(addrs.get("to", [])),
        cc=display(addrs.get("cc", [])),
        date=parse_date(values.get("date")),
        message_id=decode_bytes(values.get("message-id", b"")),
        in_reply_to=decode_bytes(values.get("in-reply-to", b"")),
        references=decode_bytes(values.get("references", b"")),
        preview=_preview(texts),
    )
