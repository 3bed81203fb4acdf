"""Turn raw RFC 5322 bytes into a ReadableMessage (pure; email package, no I/O).

Malformed input never raises: broken headers degrade to their raw text and undecodable parts
to a placeholder, because the reader must open anything a server can store.
"""

from __future__ import annotations

import email.policy
import email.utils
from email.message import EmailMessage, Message
from email.parser import BytesParser

from rmail.client.html2text import html_to_text
from rmail.client.imapwire import decode_words, message_ids
from rmail.client.model import Address, AttachmentInfo, ReadableMessage

#: Text shown from one message body; longer parts are cut with a note (reader stays fast).
MAX_TEXT = 2 * 1024 * 1024


def _parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, TypeError, IndexError, AttributeError):
        # policy.default parses lazily; a broken header falls back to the compat32 raw value.
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), "")  # type: ignore[attr-defined]
    return " ".join(decode_words(str(value)).split()) if value is not None else ""


def _addresses(msg: Message, name: str) -> tuple[Address, ...]:
    values = []
    for k, v in msg.raw_items():  # type: ignore[attr-defined]
        if k.lower() == name:
            values.append(decode_words(str(v)))
    return tuple(Address(n, a) for n, a in email.utils.getaddresses(values) if n or a)


def _part_text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, ValueError, AssertionError, KeyError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    if len(content) > MAX_TEXT:
        content = content[:MAX_TEXT] + "\n[… message cut: too long to display]"
    return content.replace("\r\n", "\n")


def _walk(msg: Message) -> list[Message]:
    """Parts in depth-first order, not descending into attached messages (message/rfc822)."""
    out: list[Message] = [msg]
    if msg.get_content_type() == "message/rfc822":
        return out
    if msg.is_multipart():
        for sub in msg.get_payload():  # type: ignore[union-attr]
            if isinstance(sub, Message):
                out.extend(_walk(sub))
    return out


def _is_attachment(part: Message, top: bool) -> bool:
    ctype = part.get_content_type()
    if ctype == "message/rfc822":
        return not top
    if part.is_multipart():
        return False
    if (part.get_content_disposition() or "").lower() == "attachment" or part.get_filename():
        return True
    # A non-text leaf that is not the whole message (images, PDFs without a name).
    return not top and part.get_content_maintype() != "text"


def _payload(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes()
        return b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _attachments(msg: EmailMessage) -> list[tuple[AttachmentInfo, Message]]:
    out: list[tuple[AttachmentInfo, Message]] = []
    for index, part in enumerate(_walk(msg)):
        if not _is_attachment(part, part is msg):
            continue
        ext = "eml" if part.get_content_type() == "message/rfc822" else part.get_content_subtype()
        name = decode_words(part.get_filename() or "") or f"part-{index}.{ext}"
        # Never let a sender choose a path: keep only the last component of the name.
        name = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or f"part-{index}"
        out.append((AttachmentInfo(index, name, part.get_content_type(), len(_payload(part))), part))
    return out


def parse_message(raw: bytes) -> ReadableMessage:
    """Parse a whole message for display and for reply/forward."""
    msg = _parse(raw)
    text, from_html = "", False
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
    except (LookupError, ValueError, KeyError):
        body = None
    if body is None and not msg.is_multipart() and msg.get_content_maintype() == "text":
        body = msg
    if body is not None:
        text = _part_text(body)
        if body.get_content_subtype() == "html":
            text, from_html = html_to_text(text), True
    in_reply_to = message_ids(_header(msg, "In-Reply-To"))
    return ReadableMessage(
        subject=_header(msg, "Subject"),
        sender=_addresses(msg, "from"),
        reply_to=_addresses(msg, "reply-to"),
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        bcc=_addresses(msg, "bcc"),
        date=_header(msg, "Date"),
        message_id=(message_ids(_header(msg, "Message-ID")) or ("",))[0],
        in_reply_to=in_reply_to[0] if in_reply_to else "",
        references=message_ids(_header(msg, "References")),
        text=text,
        from_html=from_html,
        attachments=tuple(info for info, _ in _attachments(msg)),
    )


def attachment_data(raw: bytes, index: int) -> tuple[str, str, bytes]:
    """(filename, content type, decoded bytes) of the attachment at part position ``index``.

    Raises:
        KeyError: when no attachment has that index.
    """
    for info, part in _attachments(_parse(raw)):
        if info.index == index:
            return info.filename, info.content_type, _payload(part)
    raise KeyError(index)


def all_attachments(raw: bytes) -> list[tuple[str, str, bytes]]:
    """Every attachment's (filename, content type, bytes), for forwarding and drafts."""
    return [(info.filename, info.content_type, _payload(part)) for info, part in _attachments(_parse(raw))]
