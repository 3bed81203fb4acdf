"""Pure composition: replies, forwards, address checks and MIME building (no I/O).

References: RFC 5322 §3.6.4 (Message-ID, In-Reply-To, References), RFC 5322 §3.6.3 (Bcc is not
transmitted), RFC 2046 (multipart/mixed with attachments), RFC 3676 §4.5 style quoting.
"""

from __future__ import annotations

import email.policy
import email.utils
import mimetypes
import re
from dataclasses import dataclass, field, replace
from email.message import EmailMessage

from rmail.client.model import Address, ReadableMessage

#: Replies reference at most this many ancestors; RFC 5322 lets clients trim long chains,
#: and some servers cap header lines (keep the first and the most recent ones).
MAX_REFERENCES = 20
#: A sanity bound on one address list typed by the user.
MAX_RECIPIENTS = 100

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_FWD_PREFIX = re.compile(r"^\s*(fwd?|wg)\s*:\s*", re.IGNORECASE)
# Permissive addr-spec: dot-atom-ish local part (UTF-8 allowed, RFC 6531) and a domain of labels.
_ADDR = re.compile(r"^[^\s@<>()\[\],;:\"]+@([^\s@<>()\[\],;:\".]+\.)*[^\s@<>()\[\],;:\".]+$")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to send: name, MIME type and content."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Draft:
    """A message being written; fields hold the user's text as typed."""

    sender: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class AddressCheck:
    """Result of parsing one address field."""

    addresses: tuple[Address, ...]
    invalid: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.invalid


def is_valid_address(addr: str) -> bool:
    """True for a plausible ``local@domain`` addr-spec (no display name)."""
    return bool(_ADDR.match(addr)) and len(addr) <= 254


def check_addresses(text: str) -> AddressCheck:
    """Parse a comma/semicolon separated field such as ``Bob <b@x.org>, c@y.org``."""
    good: list[Address] = []
    bad: list[str] = []
    for chunk in _split_field(text):
        pairs = email.utils.getaddresses([chunk])
        if len(pairs) != 1 or not is_valid_address(pairs[0][1]):
            bad.append(chunk)
            continue
        good.append(Address(pairs[0][0], pairs[0][1]))
    if len(good) > MAX_RECIPIENTS:
        bad.append(f"more than {MAX_RECIPIENTS} addresses")
    return AddressCheck(tuple(good), tuple(bad))


def _split_field(text: str) -> list[str]:
    """Split on , and ; outside quotes and angle brackets."""
    parts, buf, quoted, angle = [], [], False, False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        if ch in ",;" and not quoted and not angle:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def format_addresses(addresses: tuple[Address, ...] | list[Address]) -> str:
    """Addresses as a field value the user can edit (RFC 5322 quoting of display names)."""
    return ", ".join(email.utils.formataddr((a.name, a.email)) if a.name else a.email for a in addresses)


def reply_subject(subject: str) -> str:
    """``Re: subject`` without stacking prefixes (RFC 5322 §3.6.5)."""
    return "Re: " + _REPLY_PREFIX.sub("", subject).strip()


def forward_subject(subject: str) -> str:
    """``Fwd: subject`` without stacking prefixes."""
    return "Fwd: " + _FWD_PREFIX.sub("", subject).strip()


def quote_text(text: str) -> str:
    """Prefix every line with ``>`` (``>>`` for already-quoted lines, RFC 3676 §4.5)."""
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    return "\n".join((">" + line) if line.startswith(">") else ("> " + line if line else ">") for line in lines)


def _references(original: ReadableMessage) -> tuple[str, ...]:
    refs = list(original.references) or ([original.in_reply_to] if original.in_reply_to else [])
    if original.message_id:
        refs.append(original.message_id)
    if len(refs) > MAX_REFERENCES:
        refs = refs[:1] + refs[-(MAX_REFERENCES - 1) :]
    return tuple(refs)


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def reply(original: ReadableMessage, me: str, *, reply_all: bool = False) -> Draft:
    """A reply (or reply-all) draft to ``original`` written by ``me`` (RFC 5322 §3.6.3-3.6.4).

    The reply goes to Reply-To if present, else From. Reply-all adds the original To and Cc to
    Cc, minus ``me`` and minus anyone already in To.
    """
    primary = original.reply_to or original.sender
    if all(_same(a.email, me) for a in primary) and original.to:
        # Replying to one's own sent message: answer the original recipients.
        primary = original.to
    to = [a for a in primary]
    cc: list[Address] = []
    if reply_all:
        seen = {a.email.lower() for a in to} | {me.lower()}
        for a in (*original.to, *original.cc):
            if a.email and a.email.lower() not in seen:
                seen.add(a.email.lower())
                cc.append(a)
    who = str(original.sender[0]) if original.sender else "someone"
    intro = f"On {original.date}, {who} wrote:" if original.date else f"{who} wrote:"
    body = f"\n\n{intro}\n{quote_text(original.text)}\n"
    return Draft(
        sender=me,
        to=format_addresses(to),
        cc=format_addresses(cc),
        subject=reply_subject(original.subject),
        body=body,
        in_reply_to=original.message_id,
        references=_references(original),
    )


def forward(original: ReadableMessage, me: str, attachments: tuple[Attachment, ...] = ()) -> Draft:
    """An inline forward: the original headers and text below a separator, attachments kept."""
    header = [
        "---------- Forwarded message ----------",
        f"From: {format_addresses(original.sender)}",
        f"Date: {original.date}",
        f"Subject: {original.subject}",
        f"To: {format_addresses(original.to)}",
    ]
    if original.cc:
        header.append(f"Cc: {format_addresses(original.cc)}")
    body = "\n\n" + "\n".join(header) + "\n\n" + original.text.rstrip("\n") + "\n"
    return Draft(sender=me, subject=forward_subject(original.subject), body=body, attachments=attachments)


def draft_from_message(message: ReadableMessage, me: str, attachments: tuple[Attachment, ...] = ()) -> Draft:
    """Reopen a saved draft for editing (its Bcc was kept in the Drafts copy)."""
    return Draft(
        sender=me,
        to=format_addresses(message.to),
        cc=format_addresses(message.cc),
        bcc=format_addresses(message.bcc),
        subject=message.subject,
        body=message.text,
        in_reply_to=message.in_reply_to,
        references=message.references,
        attachments=attachments,
    )


def attachment_from_file(filename: str, data: bytes) -> Attachment:
    """Guess the MIME type from the file name (application/octet-stream otherwise)."""
    ctype, encoding = mimetypes.guess_type(filename)
    if ctype is None or encoding is not None:
        ctype = "application/octet-stream"
    return Attachment(filename, ctype, data)


def recipients(draft: Draft) -> list[str]:
    """Envelope recipients: To + Cc + Bcc, de-duplicated, in order."""
    out: list[str] = []
    for text in (draft.to, draft.cc, draft.bcc):
        for a in check_addresses(text).addresses:
            if a.email.lower() not in (x.lower() for x in out):
                out.append(a.email)
    return out


def validate(draft: Draft) -> list[str]:
    """Problems that prevent sending, as sentences for the user (empty when fine)."""
    problems: list[str] = []
    for label, text in (("To", draft.to), ("Cc", draft.cc), ("Bcc", draft.bcc)):
        check = check_addresses(text)
        if check.invalid:
            problems.append(f"{label}: not an address: {', '.join(check.invalid)}")
    if not recipients(draft) and not problems:
        problems.append("Add at least one recipient.")
    if not is_valid_address(draft.sender):
        problems.append(f"From: not an address: {draft.sender}")
    if any(c in draft.subject for c in "\r\n"):
        problems.append("Subject: line breaks are not allowed.")
    return problems


def build_message(
    draft: Draft,
    *,
    date: str | None = None,
    message_id: str | None = None,
    keep_bcc: bool = False,
) -> bytes:
    """RFC 5322 bytes for ``draft`` (CRLF line ends, ready for SMTP DATA or IMAP APPEND).

    Args:
        date: Date header; now when omitted (tests pass a fixed one).
        message_id: Message-ID; generated from the sender's domain when omitted.
        keep_bcc: keep the Bcc header (for the Drafts copy only, never for sending).
    """
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = draft.sender
    for name, text in (("To", draft.to), ("Cc", draft.cc)) + ((("Bcc", draft.bcc),) if keep_bcc else ()):
        addresses = check_addresses(text).addresses
        if addresses:
            msg[name] = format_addresses(addresses)
    msg["Subject"] = draft.subject
    msg["Date"] = date or email.utils.formatdate(localtime=True)
    domain = draft.sender.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = message_id or email.utils.make_msgid(domain=domain)
    if draft.in_reply_to:
        msg["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        msg["References"] = " ".join(draft.references)
    msg.set_content(draft.body if draft.body.endswith("\n") else draft.body + "\n")
    for att in draft.attachments:
        maintype, _, subtype = att.content_type.partition("/")
        if maintype == "text":
            msg.add_attachment(att.data.decode("utf-8", "replace"), subtype=subtype or "plain", filename=att.filename)
        else:
            msg.add_attachment(att.data, maintype=maintype, subtype=subtype or "octet-stream", filename=att.filename)
    return msg.as_bytes()


def with_attachment(draft: Draft, attachment: Attachment) -> Draft:
    return replace(draft, attachments=(*draft.attachments, attachment))
