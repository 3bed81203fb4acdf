"""Mailbox names as every backend stores them (pure)."""

from __future__ import annotations

from typing import Final

from ..errors import InvalidInput

__all__ = ["MAX_MAILBOX_DEPTH", "MAX_MAILBOX_NAME", "MAX_SUBSCRIPTIONS", "normalize_mailbox_name"]

#: RFC 3501 leaves mailbox name length open; Dovecot caps a name at 255 bytes per level.
MAX_MAILBOX_NAME: Final = 512
MAX_MAILBOX_DEPTH: Final = 16
#: Names in one user's subscription list. A subscription needs no mailbox (RFC 3501 §6.3.6), so
#: nothing else bounds the list; real users subscribe to tens or hundreds of names, and 10,000
#: names of at most 512 characters keep one user's list under about 5 MB.
MAX_SUBSCRIPTIONS: Final = 10_000


def normalize_mailbox_name(name: str) -> str:
    """Validate a Unicode mailbox name; "INBOX" is case-insensitive (RFC 3501 §5.1).

    Raises:
        InvalidInput: empty, too long, too deep, wildcards, control characters or empty levels.
    """
    if not name or len(name) > MAX_MAILBOX_NAME:
        raise InvalidInput("mailbox name must be 1 to 512 characters")
    if any(ord(c) < 0x20 or c in "*%\x7f" for c in name):
        raise InvalidInput("mailbox name may not contain wildcards or control characters")
    parts = name.split("/")
    if any(p == "" for p in parts):
        raise InvalidInput("mailbox name may not have empty levels (leading, trailing or double /)")
    if any(p in (".", "..") for p in parts):
        raise InvalidInput("mailbox name levels may not be . or ..")
    if len(parts) > MAX_MAILBOX_DEPTH:
        raise InvalidInput(f"mailbox hierarchy is limited to {MAX_MAILBOX_DEPTH} levels")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return "/".join(parts)
