"""Folder ordering and special-use detection (pure; RFC 6154)."""

from __future__ import annotations

from collections.abc import Iterable

from rmail.client.model import Folder

#: Display order of special-use mailboxes, after INBOX (RFC 6154 §2).
SPECIAL_ORDER = ("\\Drafts", "\\Sent", "\\Archive", "\\Flagged", "\\All", "\\Junk", "\\Trash")
#: Names used when the server does not mark special-use mailboxes.
FALLBACK_NAMES = {
    "drafts": "\\Drafts",
    "sent": "\\Sent",
    "sent messages": "\\Sent",
    "sent items": "\\Sent",
    "archive": "\\Archive",
    "junk": "\\Junk",
    "spam": "\\Junk",
    "trash": "\\Trash",
    "deleted messages": "\\Trash",
    "deleted items": "\\Trash",
}


def special_use(flags: Iterable[str], name: str, delimiter: str) -> str:
    """The RFC 6154 attribute from LIST flags, else a guess from a top-level name."""
    lowered = {f.lower(): f for f in flags}
    for attr in SPECIAL_ORDER:
        if attr.lower() in lowered:
            return attr
    if delimiter and delimiter in name:
        return ""
    return FALLBACK_NAMES.get(name.lower(), "")


def sort_folders(folders: Iterable[Folder]) -> list[Folder]:
    """INBOX first, then special-use folders in a fixed order, then the rest by name."""

    def key(f: Folder) -> tuple[int, str]:
        if f.name.upper() == "INBOX":
            return (0, "")
        if f.special_use in SPECIAL_ORDER:
            return (1 + SPECIAL_ORDER.index(f.special_use), f.name.lower())
        return (1 + len(SPECIAL_ORDER), f.name.lower())

    return sorted(folders, key=key)


def find_special(folders: Iterable[Folder], attr: str) -> Folder | None:
    """The first folder with the special-use ``attr`` (e.g. "\\Trash")."""
    return next((f for f in folders if f.special_use == attr), None)
