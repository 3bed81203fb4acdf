"""Per-user storage quotas: a default for everyone ([limits] quota) and per-user overrides.

Usage is the sum of the sizes (RFC822.SIZE) of a user's messages in all its mailboxes; a copy
counts again, as in Dovecot's "count" quota, because the user sees it twice. It is computed by
one indexed query (the message rows of the user's mailboxes; about 1 ms for 10,000 messages,
15-30 ms for 100,000, measured on a reader thread) rather than kept as a counter, so no write
path, no crash and no other process (the CLI) can make it drift.

The check is made before a write, not inside the writer's transaction, so writes racing each
other may pass together: the overshoot is bounded by the messages in flight for that user at
that moment (the SMTP and IMAP connection caps bound those), the same trade-off as Dovecot's
quota checks. Callers decide what "would not fit" means for their protocol: SMTP lets a
message that many recipients share go to a full mailbox rather than refuse it for everyone
(see `Delivery.deliver`).

Overrides live in the ``quotas`` table (bytes = 0: unlimited); a user without a row gets the
default. Removing a user removes its row (ON DELETE CASCADE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Iterable

from .errors import InvalidInput, QuotaExceeded
from .model import Account

if TYPE_CHECKING:  # the config imports parse_size: keep this module light to import
    from .storage.directory import Directory

__all__ = ["UNLIMITED", "QuotaState", "Quotas", "format_size", "parse_size"]

#: A limit of 0 bytes means no limit, in the config and in the quotas table alike.
UNLIMITED: Final = 0
#: Largest quota accepted: 1 PiB, far past any disk, well inside 64-bit integers.
MAX_QUOTA: Final = 1 << 50

_UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """A byte count from "2048", "500M", "1.5G", "2GiB" (binary units, as message_size).

    Raises:
        InvalidInput: not a size, or larger than 1 PiB.
    """
    m = _SIZE.fullmatch(text)
    if m is None:
        raise InvalidInput(f"not a size: {text[:40]!r} (use bytes or K, M, G, T, e.g. 500M)")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value > MAX_QUOTA:
        raise InvalidInput(f"{text.strip()} is more than the largest quota (1P)")
    return int(value)


def format_size(n: int) -> str:
    """Bytes in the largest binary unit that keeps one decimal, e.g. 1.5G, 500M, 812 bytes."""
    for unit in ("P", "T", "G", "M", "K"):
        scale = _UNITS[unit]
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value == int(value) or value >= 100 else f"{value:.1f}{unit}"
    return f"{n} bytes"


@dataclass(frozen=True, slots=True)
class QuotaState:
    """A user's usage and limit, read together."""

    used: int            #: bytes stored
    limit: int           #: bytes allowed; UNLIMITED (0) for no limit
    override: bool       #: the limit is the user's own, not the default

    def fits(self, incoming: int) -> bool:
        """Whether `incoming` more bytes stay within the limit (a full mailbox takes nothing,
        not even an empty message)."""
        return self.limit == UNLIMITED or self.used + max(incoming, 1) <= self.limit

    def describe(self) -> str:
        """E.g. "1.2M of 500M", "3.4G of 5G (default)", "812 bytes used, no limit"."""
        source = "" if self.override else " (default)"
        if self.limit == UNLIMITED:
            return f"{format_size(self.used)} used, no limit{source}"
        return f"{format_size(self.used)} of {format_size(self.limit)}{source}"


class Quotas:
    """Quota limits and usage over the store's directory.

    Args:
        directory: where users and their own limits are kept.
        default: the limit of users without an override, in bytes; UNLIMITED for none.
    """

    def __init__(self, directory: Directory, *, default: int = UNLIMITED) -> None:
        self.directory = directory
        self.default = default

    async def state(self, user_id: int) -> QuotaState:
        """Usage and limit of one user, from one snapshot."""
        found = await self.directory.quota_usage([user_id], self.default)
        used, limit, own = found.get(user_id, (0, self.default, False))
        return QuotaState(used, limit, own)

    async def limits(self) -> dict[int, tuple[int, bool]]:
        """user id → (limit, is an override) for every user (usage comes from
        ``Accounts.usage``, which the console and ``user list`` read anyway)."""
        overrides = await self.directory.quota_overrides()
        return {a.id: ((overrides[a.id], True) if a.id in overrides else (self.default, False))
                for a in await self.directory.list_users()}

    async def set(self, account: Account, limit: int | None) -> None:
        """Give a user its own limit (UNLIMITED for none), or None to use the default again.

        Raises:
            InvalidInput: a negative or absurd limit.
        """
        if limit is not None and not 0 <= limit <= MAX_QUOTA:
            raise InvalidInput("a quota is 0 (unlimited) to 1P bytes")
        await self.directory.set_quota(account.id, limit)

    async def _refusals(self, accounts: list[Account], incoming: int) -> dict[int, QuotaState]:
        """The states of the accounts that ``incoming`` more bytes do not fit. A user without
        a limit costs one lookup: usage is summed only when there is a limit."""
        found = await self.directory.quota_usage([a.id for a in accounts], self.default, limited_only=True)
        states = {uid: QuotaState(used, limit, own) for uid, (used, limit, own) in found.items()}
        return {uid: st for uid, st in states.items() if not st.fits(incoming)}

    async def check(self, account: Account, incoming: int) -> None:
        """Refuse `incoming` more bytes for a user whose quota they would exceed.

        Raises:
            QuotaExceeded: the message does not fit (its text names the address).
        """
        state = (await self._refusals([account], incoming)).get(account.id)
        if state is not None:
            raise QuotaExceeded(f"mailbox of {account.address} is full: {format_size(state.used)} of"
                                f" {format_size(state.limit)} used, {format_size(incoming)} more does not fit")

    async def over(self, accounts: Iterable[Account], incoming: int) -> list[Account]:
        """The accounts among `accounts` that `incoming` more bytes would take over quota."""
        accounts = list(accounts)
        refused = await self._refusals(accounts, incoming)
        return [a for a in accounts if a.id in refused]
