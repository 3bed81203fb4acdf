"""message_view: a decoded view of a message for the REST API and clients."""

from __future__ import annotations

from dataclasses import dataclass

from .content import charset, decoded, decoded_size, filename, is_attachment, leaves, part_text
from .sections import resolve_part
from .text import decode_bytes, decode_charset, header_str
from .tree import Part, parse_tree

__all__ = ["Attachment", "MessageView", "message_view", "part_content"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment; ``size`` counts decoded bytes, ``part`` is its section number (RFC 3501 §6.4.5)."""

    filename: str
    content_type: str
    size: int
    part: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageView:
    """Top-level headers (decoded), first text/plain and text/html bodies, and attachments."""

    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[Attachment]


def message_view(data: bytes) -> MessageView:
    """Decoded view of *data*; never raises on malformed input."""
    root = parse_tree(data)
    headers = [
        (decode_bytes(f.name), header_str(f.value))
        for f in root.fields
    ]
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for path, part in leaves(root):
        if is_attachment(part):
            name = filename(part) or ("message.eml" if part.kind == ("message", "rfc822") else "")
            attachments.append(
                Attachment(name, "/".join(part.kind), decoded_size(data, part), path)
            )
        elif part.kind == ("text", "plain") and text is None:
            text = part_text(data, part)
        elif part.kind == ("text", "html") and html is None:
            # Raw markup for the client to sanitise; part_text would strip it.
            html = _html(data, part)
    return MessageView(headers, text, html, attachments)


def _html(data: bytes, part: Part) -> str:
    return decode_charset(decoded(data, part), charset(part))


def part_content(data: bytes, part: tuple[int, ...]) -> bytes | None:
    """Transfer-decoded body of the part named *part* (attachment download), or None."""
    node = resolve_part(parse_tree(data), part)
    return None if node is None else decoded(data, node)
