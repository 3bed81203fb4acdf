"""Values passed between the backend, the pure helpers and the UI."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Security(enum.Enum):
    """How a connection is protected."""

    #: Plain TCP, then STARTTLS before login (RFC 3501 §6.2.1, RFC 3207).
    STARTTLS = "starttls"
    #: TLS from the first byte (RFC 8314 implicit TLS: 993/465).
    TLS = "tls"
    #: No TLS at all: only sensible for a local server without TLS configured.
    NONE = "none"


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """Everything needed to reach one mailbox, except the password."""

    server: str
    imap_port: int
    smtp_port: int
    security: Security
    user: str
    #: Trusted server certificate (hex SHA-256 of the DER bytes), or "" for CA verification.
    fingerprint: str = ""
    #: Skip certificate checks entirely (``--insecure``).
    insecure: bool = False
    #: Connect timeout and per-command socket timeout, seconds.
    timeout: float = 30.0

    @property
    def key(self) -> str:
        """Identity of a remembered account."""
        return f"{self.user}@{self.server}:{self.imap_port}"


@dataclass(frozen=True, slots=True)
class Folder:
    """One IMAP mailbox as listed by LIST + STATUS."""

    name: str
    delimiter: str
    #: RFC 6154 attribute such as "\\Sent", or "" when none.
    special_use: str = ""
    total: int = 0
    unseen: int = 0
    selectable: bool = True

    @property
    def leaf(self) -> str:
        """Last component of the hierarchical name."""
        return self.name.rsplit(self.delimiter, 1)[-1] if self.delimiter else self.name


@dataclass(frozen=True, slots=True)
class Address:
    """A display name and an addr-spec (either may be empty)."""

    name: str
    email: str

    def __str__(self) -> str:
        if self.name and self.email:
            return f"{self.name} <{self.email}>"
        return self.name or self.email


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What the message list shows, from FETCH ENVELOPE FLAGS RFC822.SIZE (RFC 3501 §7.4.2)."""

    uid: int
    flags: frozenset[str]
    size: int
    date: str
    subject: str
    sender: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    message_id: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    #: Seconds since the epoch parsed from ``date``; 0 when unparsable (sorting only).
    timestamp: float = 0.0

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags

    @property
    def flagged(self) -> bool:
        return "\\Flagged" in self.flags

    @property
    def from_text(self) -> str:
        return ", ".join(a.name or a.email for a in self.sender)


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """One attachment of a message, addressed by its index in ``walk()`` order."""

    index: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class ReadableMessage:
    """A parsed message, ready for the reader and for reply/forward."""

    subject: str
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    date: str
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    text: str
    #: True when ``text`` was converted from the HTML part (there was no text/plain).
    from_html: bool = False
    attachments: tuple[AttachmentInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """An AND of (field, value) terms; field is from|to|subject|body|text (RFC 3501 §6.4.4)."""

    terms: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        return " ".join(f"{k}:{v}" for k, v in self.terms)
