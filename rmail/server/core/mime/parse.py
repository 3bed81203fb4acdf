"""parse_message: everything FETCH and SEARCH need, computed once at delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from .address import display
from .content import is_attachment, part_text
from .imapstruct import address_lists, envelope, first_values, structures
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


def parse_date(raw: bytes | None) -> datetime | None:
    """Date header to an aware datetime (RFC 5322 §3.3); None when absent or unparseable."""
    if not raw:
        return None
    try:
        dt = parsedate_to_datetime(decode_bytes(raw))
    except Exception:  # the stdlib raises several types on junk
        return None
    if dt is None:
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
    values = first_values(
        root.fields,
        ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
         "in-reply-to", "message-id", "references"),
    )  # fmt: skip
    header_lines = []
    decoded: dict[str, str] = {}  # first occurrence of each field, decoded once
    budget = MAX_SEARCH_TEXT  # header_text has the same cap as search_text
    for f in root.fields:
        if budget <= 0:
            break
        value = header_str(f.value)
        decoded.setdefault(f.key, value)
        line = f"{decode_bytes(f.name)}: {value}"
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
        subject=decoded["subject"] if "subject" in decoded else header_str(values.get("subject", b"")),
        from_=display(addrs.get("from", [])),
        to=display(addrs.get("to", [])),
        cc=display(addrs.get("cc", [])),
        date=parse_date(values.get("date")),
        message_id=decode_bytes(values.get("message-id", b"")),
        in_reply_to=decode_bytes(values.get("in-reply-to", b"")),
        references=decode_bytes(values.get("references", b"")),
        preview=_preview(texts),
    )
