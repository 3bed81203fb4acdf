"""Read models for the REST API: each answers one request from one consistent read.

Every lookup starts from the caller's address (domain, local part) → user id, so a token whose
user was removed reaches nothing, and no query can name another user's mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

from ..model import SYSTEM_FLAGS

__all__ = ["FolderRow", "MailViews", "MessageRow", "Owner", "flag_list", "ordered_flags"]

T = TypeVar("T")


class Owner(Protocol):
    """Whose mail a view reads: anything with a domain and a local part."""

    @property
    def local(self) -> str: ...

    @property
    def domain(self) -> str: ...


_SYSTEM_ORDER = tuple(SYSTEM_FLAGS.items())
_FLAG_LISTS: dict[tuple[int, str], list[str]] = {}


def flag_list(mask: int, keywords: str) -> list[str]:
    """System flags in RFC 3501 order, then keywords (sorted as the store keeps them)."""
    key = (mask, keywords)
    flags = _FLAG_LISTS.get(key)
    if flags is None:
        flags = [name for name, bit in _SYSTEM_ORDER if mask & bit]
        if keywords:
            flags.extend(keywords.split(" "))
        if len(_FLAG_LISTS) < 4096:
            _FLAG_LISTS[key] = flags
    return list(flags)


def ordered_flags(flags: frozenset[str]) -> list[str]:
    """A message's flags as ``flag_list`` orders them (MessageMeta.flags is a set)."""
    system = [name for name, _ in _SYSTEM_ORDER if name in flags]
    return system + sorted(f for f in flags if not f.startswith("\\"))


@dataclass(frozen=True, slots=True)
class FolderRow:
    name: str
    special_use: str | None
    subscribed: bool                 #: the name is in the user's subscription list
    selectable: bool
    messages: int
    unseen: int
    size: int
    uidvalidity: int
    uidnext: int


@dataclass(frozen=True, slots=True)
class MessageRow:
    uid: int
    mask: int
    keywords: str
    size: int
    internaldate: int
    date: int | None
    from_: str
    to: str
    subject: str
    preview: str
    cc: str = ""
    message_id: str = ""
    blob_id: str = ""


class MailViews(Protocol):
    """Raises AuthenticationFailed when the owner no longer exists, NotFound for a folder or
    message that does not."""

    async def folders(self, who: Owner) -> list[FolderRow]:
        """INBOX first, then the hierarchy in name order."""
        ...

    async def mailbox_id(self, who: Owner, name: str) -> int:
        """The id of the caller's selectable mailbox ``name`` (already normalized)."""
        ...

    async def special_mailbox(self, who: Owner, special_use: str) -> int | None:
        ...

    async def message(self, who: Owner, name: str, uid: int) -> MessageRow:
        ...

    async def page(self, who: Owner, name: str, offset: int, limit: int,
                   cached: Callable[[tuple[int, ...]], T | None]) -> tuple[tuple[int, ...], T | tuple[int, list[MessageRow]]]:
        """A page of the list, newest first, unless ``cached(key)`` already has it.

        ``key`` is (user id, mailbox id, UIDVALIDITY, HIGHESTMODSEQ, offset, limit): every
        change moves the MODSEQ, so a cached page under a key is never stale.
        """
        ...
