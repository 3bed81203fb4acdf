"""Domain values shared by the core and the adapters: frozen, slotted, comparable."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from .errors import InvalidInput

#: Longest address we accept (RFC 5321 §4.5.3.1.3 path limit is 256 incl. brackets).
MAX_ADDRESS_LENGTH = 254
#: RFC 5321 §4.5.3.1.1 local-part limit.
MAX_LOCAL_LENGTH = 64


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """A mailbox address ``local@domain``; the domain is kept lower-case."""

    local: str
    domain: str

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``local@domain`` (no display name, no brackets).

        Raises:
            InvalidInput: not a plain address or over the RFC 5321 limits.
        """
        text = text.strip()
        if len(text) > MAX_ADDRESS_LENGTH or text.count("@") < 1:
            raise InvalidInput(f"not an email address: {text[:80]!r}")
        local, _, domain = text.rpartition("@")
        if not local or not domain or len(local) > MAX_LOCAL_LENGTH:
            raise InvalidInput(f"not an email address: {text[:80]!r}")
        if any(c.isspace() or c in '<>(),;:"[]\\' or ord(c) < 32 for c in local + domain):
            raise InvalidInput(f"not an email address: {text[:80]!r}")
        if "." not in domain and domain.lower() != "localhost":
            raise InvalidInput(f"domain needs a dot: {domain[:80]!r}")
        if domain.startswith(".") or domain.endswith(".") or ".." in domain:
            raise InvalidInput(f"malformed domain: {domain[:80]!r}")
        return cls(local, domain.lower())

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


@dataclass(frozen=True, slots=True)
class Account:
    """A user: the owner of mailboxes, who can log in."""

    id: int
    local: str
    domain: str
    admin: bool

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"


@dataclass(frozen=True, slots=True)
class AliasRule:
    """A per-domain routing rule: ``pattern`` (full match on the local part) → ``target`` user."""

    domain: str
    position: int
    pattern: str
    target: str  #: local part of the target user in the same domain


class SpecialUse(str, enum.Enum):
    """RFC 6154 special-use attributes rmail creates for every user."""

    SENT = "\\Sent"
    DRAFTS = "\\Drafts"
    TRASH = "\\Trash"
    JUNK = "\\Junk"
    ARCHIVE = "\\Archive"


#: The mailboxes every new user gets (RFC 6154 names as Dovecot and mox use them).
DEFAULT_MAILBOXES: tuple[tuple[str, SpecialUse | None], ...] = (
    ("INBOX", None),
    ("Sent", SpecialUse.SENT),
    ("Drafts", SpecialUse.DRAFTS),
    ("Trash", SpecialUse.TRASH),
    ("Junk", SpecialUse.JUNK),
    ("Archive", SpecialUse.ARCHIVE),
)


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A mailbox (folder). ``name`` is Unicode with "/" as hierarchy separator. Whether it is
    subscribed is not its property: subscriptions are the user's own list of names
    (``MailStore.list_subscriptions``), kept whether or not a mailbox has the name."""

    id: int
    user_id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """Counts for STATUS, SELECT and the REST folder list."""

    messages: int
    unseen: int
    recent: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int
    size: int


#: System flags stored as a bit mask (RFC 3501 §2.3.2); \Recent is per session, never stored.
SYSTEM_FLAGS: dict[str, int] = {
    "\\Seen": 1,
    "\\Answered": 2,
    "\\Flagged": 4,
    "\\Deleted": 8,
    "\\Draft": 16,
}


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What the store knows of one message in one mailbox without reading its blob."""

    uid: int
    modseq: int
    flags: frozenset[str]
    internaldate: datetime
    size: int
    blob_id: str
    #: When the message was saved into this mailbox (RFC 8514 §3): APPEND, delivery, COPY,
    #: MOVE and import set it to that moment; RENAME keeps it.
    savedate: datetime


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """Fields parsed once at delivery (see core.mime) and kept for FETCH, SEARCH and REST."""

    uid: int
    envelope: bytes
    bodystructure: bytes
    body: bytes
    header_text: str
    subject: str
    from_: str
    to: str
    cc: str
    date: datetime | None
    message_id: str
    in_reply_to: str
    references: str
    preview: str


@dataclass(frozen=True, slots=True)
class MailboxChanges:
    """What changed in a mailbox since a MODSEQ: new or re-flagged messages, and expunged UIDs."""

    highestmodseq: int
    uidnext: int
    changed: tuple[MessageMeta, ...]
    expunged: tuple[int, ...]
    recent_uid: int = 0          #: first UID not yet claimed as \Recent by any session


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A message waiting for outbound delivery to one remote recipient."""

    id: int
    sender: str
    recipient: str
    blob_id: str
    size: int
    created: datetime
    attempts: int
    next_attempt: datetime
    last_error: str
    delayed_notified: bool
