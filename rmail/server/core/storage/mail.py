"""The mail store: mailboxes, messages, flags, MODSEQs and expunge records of every user."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Protocol, Sequence

from ..model import Mailbox, MailboxChanges, MailboxStatus, MessageInfo, MessageMeta
from ..space import SpaceState
from .body import MessageBody

__all__ = ["Delivered", "Import", "MailStore", "MailboxSnapshot", "NewMessage", "Outbound",
           "SpaceGuard"]


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """A mailbox with its messages in UID order, as parallel columns (what SELECT needs).

    Columns rather than one object per message: building 10,000 MessageMeta values was most
    of SELECT's time, and a session keeps exactly these columns anyway.
    """

    mailbox: Mailbox
    recent_uid: int                  #: first UID no session has claimed as \Recent yet
    uids: array[int]                 #: array("I")
    flags: list[frozenset[str]]
    sizes: array[int]                #: array("Q"), RFC822.SIZE
    dates: array[float]              #: array("d"), INTERNALDATE in unix seconds
    modseqs: array[int]              #: array("Q"), each message's MODSEQ (RFC 7162)
    savedates: array[float]          #: array("d"), save date in unix seconds (RFC 8514 §3)

    @property
    def unclaimed_recent(self) -> bool:
        return self.recent_uid < self.mailbox.uidnext


@dataclass(frozen=True, slots=True)
class Outbound:
    """Outbound queue entries added in a delivery's transaction: one per recipient, sharing
    the delivered message's bytes."""

    sender: str
    recipients: tuple[str, ...]
    created: float                   #: unix seconds; also the first attempt's due time


@dataclass(frozen=True, slots=True)
class Import:
    """Marks a delivery as an import (``run.py import``): its source identity is recorded in
    the same transaction, and the message does not count as \\Recent."""

    user_id: int
    source: str                      #: "maildir" or "mbox"
    key: str


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message of `MailStore.append_many`: its bytes, flags and internal date (now when
    None). Its save date is always the moment of the append (RFC 8514 §3)."""

    data: bytes
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    uids: tuple[int, ...]            #: one per target, in the order given
    queued: tuple[int, ...]          #: outbound queue entry ids, one per recipient


class SpaceGuard(Protocol):
    """Free-space reserve of the store's disk (config limits.min_free_space); a backend whose
    disk is not local (PostgreSQL) reports no state and refuses nothing."""

    @property
    def state(self) -> SpaceState | None:
        """The last measurement, or None when there is none (or nothing to measure)."""
        ...

    async def refresh(self) -> SpaceState | None:
        ...

    async def require(self, incoming: int = 0) -> None:
        """Raises: StorageFull: ``incoming`` more bytes would go below the reserve."""
        ...


class MailStore(Protocol):
    """Mailboxes and messages. Every method is a coroutine that never blocks the loop.

    Errors: NotFound (no such mailbox/message, or it ended meanwhile), AlreadyExists,
    InvalidInput (bad names, flags), PermissionDenied (INBOX), LimitExceeded, StorageFull and
    TemporaryFailure (the store could not be reached or written; nothing was changed).
    """

    @property
    def space(self) -> SpaceGuard:
        """Read-only, so a backend may hold its own guard class (SQLite's FreeSpace)."""
        ...

    #: Called with the seconds each durable commit took (GET /metrics); cheap, never raises.
    on_commit: Callable[[float], None] | None

    # -- mailboxes ---------------------------------------------------------------------------

    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        """Selectable mailboxes of a user, by name."""
        ...

    async def list_noselect(self, user_id: int) -> list[str]:
        """Names kept only because they have children (LIST shows them \\Noselect), by name."""
        ...

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox:
        """Raises: NotFound (no selectable mailbox of that name), InvalidInput (bad name)."""
        ...

    async def create_mailbox(self, user_id: int, name: str, special_use: str | None = None) -> Mailbox:
        """Create a mailbox and any missing parents (RFC 3501 §6.3.3); re-creating over a
        \\Noselect name starts a new life (new id and UIDVALIDITY).

        Raises: AlreadyExists, InvalidInput (bad name or special-use attribute).
        """
        ...

    async def delete_mailbox(self, user_id: int, name: str) -> None:
        """RFC 3501 §6.3.4: its messages go; with children it stays as \\Noselect (a new row).

        Raises: PermissionDenied (INBOX), NotFound, InvalidInput (already \\Noselect with children).
        """
        ...

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        """RFC 3501 §6.3.5: children move along and keep UIDVALIDITY; renaming INBOX moves its
        messages into a new mailbox and leaves INBOX empty. Messages keep their save dates
        (a rename saves nothing anew, RFC 8514 §3).

        Raises: NotFound, AlreadyExists, InvalidInput (into itself, to INBOX).
        """
        ...

    async def list_subscriptions(self, user_id: int) -> list[str]:
        """The user's subscription list (RFC 3501 §6.3.6), by name: names, not mailboxes, so
        it may hold names no mailbox has (deleted, renamed or never created)."""
        ...

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        """Add ``name`` to the subscription list or remove it; either is a no-op when it is
        already so. The name need not exist (RFC 3501 §6.3.6, as Dovecot). CREATE, DELETE and
        RENAME never change the list (RFC 3501 §6.3.6 "MUST NOT unilaterally remove", RFC
        9051 §6.3.6 on RENAME).

        Raises: InvalidInput (bad name), LimitExceeded (``names.MAX_SUBSCRIPTIONS``),
        NotFound (the user is gone).
        """
        ...

    async def status(self, mailbox_id: int) -> MailboxStatus:
        ...

    async def status_many(self, mailbox_ids: Sequence[int]) -> dict[int, MailboxStatus]:
        """Raises NotFound if any of them is gone."""
        ...

    # -- messages: reading -------------------------------------------------------------------

    async def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        """Every message in UID order."""
        ...

    async def snapshot(self, user_id: int, name: str) -> MailboxSnapshot:
        """A mailbox and all its messages from one consistent read."""
        ...

    async def get_meta(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageMeta]:
        """The messages among ``uids`` that exist, in UID order."""
        ...

    async def message_blobs(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        """``MessageMeta.blob_id`` of the messages among ``uids`` that exist (FETCH of message
        bytes). A (mailbox, UID) pair names one message for good, so a backend may answer
        from memory for a message expunged meanwhile (RFC 3501 §7.4.1 allows serving it to
        a session that has not been told)."""
        ...

    async def page(self, mailbox_id: int, offset: int, limit: int) -> tuple[int, list[MessageMeta]]:
        """Newest (highest UID) first; returns (total, page)."""
        ...

    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        """Messages added or re-flagged after ``modseq``, UIDs expunged after it, and the
        mailbox's HIGHESTMODSEQ, UIDNEXT and \\Recent mark, from one consistent read."""
        ...

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        """UIDs expunged after ``modseq`` (QRESYNC's VANISHED (EARLIER), RFC 7162 §3.2.5),
        ascending. Expunge records are kept for the whole life of a mailbox, so the answer
        is exact for any ``modseq`` of that life.

        Raises: NotFound (the mailbox is gone).
        """
        ...

    async def fetch_info(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageInfo]:
        """Parsed fields (ENVELOPE, BODYSTRUCTURE, headers...) of the messages that exist."""
        ...

    async def search_text(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        """Casefolded decoded body text (SEARCH BODY/TEXT), precomputed at delivery."""
        ...

    async def open_message(self, blob_id: str) -> MessageBody:
        """The bytes of a message (``MessageMeta.blob_id``), open for reading.

        Raises: NotFound: no such message (expunged meanwhile).
        """
        ...

    async def read_message(self, blob_id: str) -> bytes:
        """The whole message. Raises: NotFound."""
        ...

    async def claim_recent_range(self, mailbox_id: int) -> tuple[int, int]:
        """RFC 3501 §2.3.2: \\Recent goes to one session only. Returns [first, end) of the
        UIDs this session sees as recent; later sessions get UIDs from ``end`` on."""
        ...

    async def claim_recent(self, mailbox_id: int) -> int:
        """The first UID this session sees as recent (``claim_recent_range()[0]``)."""
        ...

    async def imported_keys(self, user_id: int, source: str) -> set[str]:
        """Source identities of everything imported from ``source`` for the user."""
        ...

    # -- messages: writing -------------------------------------------------------------------

    async def append(self, mailbox_id: int, data: bytes, flags: Iterable[str] = (),
                     internaldate: datetime | None = None) -> int:
        """Store a message in one mailbox; returns its UID. The save date is now, whatever
        ``internaldate`` says (RFC 8514 §3)."""
        ...

    async def append_many(self, mailbox_id: int, messages: Sequence[NewMessage]) -> list[int]:
        """Store several messages in one mailbox in one transaction (IMAP MULTIAPPEND,
        RFC 3502 §6.3.11: all or none of them); returns their UIDs, ascending in the order
        given. Returns only once everything is durable.

        Raises: StorageFull, NotFound (the mailbox is gone: nothing is stored), InvalidInput
        (bad flags, or no message).
        """
        ...

    async def deliver(self, targets: Sequence[tuple[int, Iterable[str]]], data: bytes,
                      internaldate: datetime | None = None, *, outbound: Outbound | None = None,
                      imported: Import | None = None) -> Delivered:
        """Store one message in several mailboxes (one copy of the bytes), plus outbound queue
        entries and an import record, all in one transaction. The save date is now (an
        import's too: its ``internaldate`` is the source's, its save date the import's).
        ``targets`` may be empty when ``outbound`` is given. Returns only once everything is durable.

        Raises: StorageFull, NotFound (a target mailbox is gone: nothing is stored),
        InvalidInput (bad flags, an ``outbound`` without recipients).
        """
        ...

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str,
                          flags: Iterable[str], *, unchanged_since: int | None = None) -> list[MessageMeta]:
        """STORE: ``mode`` is "set", "add" or "remove". Returns the messages (those that exist)
        as they are now; rows whose flags do not change keep their MODSEQ.

        With ``unchanged_since`` (STORE UNCHANGEDSINCE, RFC 7162 §3.1.3) a message whose MODSEQ
        is above it is left alone and left out of the result, decided in the same transaction
        as the write."""
        ...

    async def copy(self, src: int, uids: Sequence[int], dst: int) -> list[tuple[int, int]]:
        """COPY (RFC 3501 §6.4.7), flags and internal date kept, the save date the moment of
        the copy (RFC 8514 §3). Returns (source UID, new UID) pairs.

        Raises: StorageFull (below the free-space reserve), NotFound.
        """
        ...

    async def move(self, src: int, uids: Sequence[int], dst: int) -> list[tuple[int, int]]:
        """MOVE (RFC 6851): copy and expunge in one transaction (a new save date, as COPY)."""
        ...

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only among ``uids`` when given); ascending UIDs."""
        ...

    async def delete_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        """Remove messages whatever their flags (REST DELETE); ascending UIDs."""
        ...
