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
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Iterable

from .errors import InvalidInput, QuotaExceeded
from .events import AccountsChanged
from .model import Account

if TYPE_CHECKING:  # the config imports parse_size: keep this module light to import
    from .db import WriteTxn
    from .store import MailStore

__all__ = ["UNLIMITED", "QuotaState", "Quotas", "format_size", "parse_size"]

#: A limit of 0 bytes means no limit, in the config and in the quotas table alike.
UNLIMITED: Final = 0
#: Largest quota accepted: 1 PiB, far past any disk, well inside SQLite's 64-bit integers.
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


_USAGE_SQL: Final = ("SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                     " WHERE b.user_id = ?")


class Quotas:
    """Quota limits and usage over the store's database.

    Args:
        store: the mail store (its database holds the quotas table).
        default: the limit of users without an override, in bytes; UNLIMITED for none.
    """

    def __init__(self, store: MailStore, *, default: int = UNLIMITED) -> None:
        self.db = store.db
        self.default = default

    def _limit(self, conn: sqlite3.Connection, user_id: int) -> tuple[int, bool]:
        row = conn.execute("SELECT bytes FROM quotas WHERE user_id = ?", (user_id,)).fetchone()
        return (self.default, False) if row is None else (row[0], True)

    def _state(self, conn: sqlite3.Connection, user_id: int) -> QuotaState:
        limit, override = self._limit(conn, user_id)
        return QuotaState(conn.execute(_USAGE_SQL, (user_id,)).fetchone()[0], limit, override)

    def _refusal(self, conn: sqlite3.Connection, user_id: int, incoming: int) -> QuotaState | None:
        """The user's state when `incoming` bytes do not fit, else None. A user without a
        limit costs one primary-key lookup: usage is summed only when there is a limit."""
        limit, override = self._limit(conn, user_id)
        if limit == UNLIMITED:
            return None
        state = QuotaState(conn.execute(_USAGE_SQL, (user_id,)).fetchone()[0], limit, override)
        return None if state.fits(incoming) else state

    async def state(self, user_id: int) -> QuotaState:
        """Usage and limit of one user, from one snapshot."""
        return await self.db.read(lambda conn: self._state(conn, user_id))

    async def limits(self) -> dict[int, tuple[int, bool]]:
        """user id → (limit, is an override) for every user (usage comes from
        ``Accounts.usage``, which the console and ``user list`` read anyway)."""
        def q(conn: sqlite3.Connection) -> dict[int, tuple[int, bool]]:
            overrides = dict(conn.execute("SELECT user_id, bytes FROM quotas").fetchall())
            return {uid: ((overrides[uid], True) if uid in overrides else (self.default, False))
                    for (uid,) in conn.execute("SELECT id FROM users")}
        return await self.db.read(q)

    async def set(self, account: Account, limit: int | None) -> None:
        """Give a user its own limit (UNLIMITED for none), or None to use the default again.

        Raises:
            InvalidInput: a negative or absurd limit.
        """
        if limit is not None and not 0 <= limit <= MAX_QUOTA:
            raise InvalidInput("a quota is 0 (unlimited) to 1P bytes")

        def w(txn: WriteTxn) -> None:
            if limit is None:
                txn.conn.execute("DELETE FROM quotas WHERE user_id = ?", (account.id,))
            else:
                txn.conn.execute("INSERT INTO quotas(user_id, bytes) VALUES(?, ?)"
                                 " ON CONFLICT(user_id) DO UPDATE SET bytes = excluded.bytes",
                                 (account.id, limit))
            txn.emit(AccountsChanged())
        await self.db.write(w)

    async def check(self, account: Account, incoming: int) -> None:
        """Refuse `incoming` more bytes for a user whose quota they would exceed.

        Raises:
            QuotaExceeded: the message does not fit (its text names the address).
        """
        state = await self.db.read(lambda conn: self._refusal(conn, account.id, incoming))
        if state is not None:
            raise QuotaExceeded(f"mailbox of {account.address} is full: {format_size(state.used)} of"
                                f" {format_size(state.limit)} used, {format_size(incoming)} more does not fit")

    async def over(self, accounts: Iterable[Account], incoming: int) -> list[Account]:
        """The accounts among `accounts` that `incoming` more bytes would take over quota."""
        accounts = list(accounts)

        def q(conn: sqlite3.Connection) -> list[Account]:
            return [a for a in accounts if self._refusal(conn, a.id, incoming) is not None]
        return await self.db.read(q)
