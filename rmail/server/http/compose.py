"""Building the RFC 5322 message for POST /messages/send (pure: no I/O, no clock of its own).

The From header is always the caller's address; Bcc recipients get the message but never
appear in it (RFC 5322 §3.6.3, the "Bcc removed" variant). Every header value is checked for
CR/LF before the email package sees it, so a request cannot add headers of its own.
Non-ASCII subjects become RFC 2047 encoded-words; bodies are UTF-8 quoted-printable, so no
line exceeds the RFC 5322 §2.1.1 limit whatever the client sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from rmail.server.core.errors import InvalidInput
from rmail.server.core.model import Address

from .inputs import check_text, get_str, get_str_list

MAX_SUBJECT = 998            #: RFC 5322 §2.1.1 line limit
MAX_ATTACHMENTS = 100
MAX_FILENAME = 255
_CONTENT_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    maintype: str
    subtype: str
    data: bytes


@dataclass(frozen=True, slots=True)
class SendRequest:
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    body: str
    html: str | None
    attachments: tuple[Attachment, ...]

    @property
    def recipients(self) -> list[str]:
        """To, Cc and Bcc without repeats (addresses compare case-insensitively)."""
        seen: set[str] = set()
        out = []
        for rcpt in (*self.to, *self.cc, *self.bcc):
            if rcpt.lower() not in seen:
                seen.add(rcpt.lower())
                out.append(rcpt)
        return out


def _addresses(body: dict[str, Any], key: str, max_recipients: int) -> tuple[str, ...]:
    out = []
    for text in get_str_list(body, key, max_items=max_recipients, max_length=320, allow_single=True):
        out.append(str(Address.parse(text)))
    return tuple(out)


def _attachment(item: Any, max_bytes: int) -> Attachment:
    if not isinstance(item, dict):
        raise InvalidInput("each attachment must be an object with filename, content_type, content_base64")
    filename = get_str(item, "filename", max_length=MAX_FILENAME, single_line=True) or ""
    if not filename.strip():
        raise InvalidInput("attachment filename may not be empty")
    ctype = get_str(item, "content_type", max_length=255, required=False, single_line=True)
    if ctype is None:
        ctype = "application/octet-stream"
    if not _CONTENT_TYPE_RE.fullmatch(ctype):
        raise InvalidInput(f"attachment content_type {ctype[:80]!r} is not type/subtype")
    maintype, subtype = ctype.lower().split("/")
    if maintype in ("multipart", "message"):
        # Their bodies may not be base64 (RFC 2046 §5.1.1, §5.2.1); send them as files.
        raise InvalidInput(f"attachments of type {maintype}/* are not supported; use application/octet-stream")
    encoded = get_str(item, "content_base64", max_length=max_bytes * 4 // 3 + 8, bulk=True)
    try:
        data = base64.b64decode(encoded or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"attachment {filename[:80]!r}: content_base64 is not valid base64") from None
    return Attachment(filename, maintype, subtype, data)


def parse_send_request(body: dict[str, Any], *, max_recipients: int, max_bytes: int) -> SendRequest:
    """Validate the JSON of POST /messages/send.

    Raises:
        InvalidInput: a missing or mistyped field, a bad address, CR/LF in a header value, no
            recipients, too many recipients or attachments, bad base64.
    """
    if "to" not in body:
        raise InvalidInput("to is required (it may be an empty list when cc or bcc is given)")
    to = _addresses(body, "to", max_recipients)
    cc = _addresses(body, "cc", max_recipients)
    bcc = _addresses(body, "bcc", max_recipients)
    subject = get_str(body, "subject", max_length=MAX_SUBJECT, single_line=True) or ""
    text = get_str(body, "body", max_length=max_bytes, bulk=True) or ""
    html = get_str(body, "html", max_length=max_bytes, required=False, bulk=True)
    raw_attachments = body.get("attachments", [])
    if not isinstance(raw_attachments, list):
        raise InvalidInput("attachments must be a list")
    if len(raw_attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(f"at most {MAX_ATTACHMENTS} attachments")
    attachments = tuple(_attachment(item, max_bytes) for item in raw_attachments)
    request = SendRequest(to, cc, bcc, subject, text, html, attachments)
    count = len(request.recipients)
    if count == 0:
        raise InvalidInput("at least one recipient (to, cc or bcc) is required")
    if count > max_recipients:
        raise InvalidInput(f"at most {max_recipients} recipients per message")
    return request


def build_message(sender: str, req: SendRequest, *, hostname: str, now: datetime) -> tuple[bytes, str]:
    """The message bytes (CRLF line ends) and its Message-ID."""
    non_ascii = any(not a.isascii() for a in (sender, *req.to, *req.cc))
    # RFC 6532 addresses need SMTPUTF8; otherwise headers stay 7-bit with RFC 2047 words.
    msg = EmailMessage(policy=policy.SMTPUTF8 if non_ascii else policy.SMTP)
    message_id = make_msgid(domain=hostname)
    msg["Date"] = format_datetime(now)
    msg["From"] = sender
    if req.to:
        msg["To"] = ", ".join(req.to)
    if req.cc:
        msg["Cc"] = ", ".join(req.cc)
    msg["Subject"] = check_text(req.subject, "subject", max_length=MAX_SUBJECT, single_line=True)
    msg["Message-ID"] = message_id
    msg.set_content(req.body, subtype="plain", charset="utf-8", cte="quoted-printable")
    if req.html is not None:
        msg.add_alternative(req.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for att in req.attachments:
        msg.add_attachment(att.data, maintype=att.maintype, subtype=att.subtype, filename=att.filename)
    try:
        return msg.as_bytes(), message_id
    except (UnicodeError, ValueError) as exc:
        raise InvalidInput(f"cannot encode this message: {exc}") from None
