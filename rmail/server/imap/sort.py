"""SORT (RFC 5256 §3, with RFC 5957's DISPLAYFROM and DISPLAYTO): the order of the messages a
search matched.

Each criterion turns into one column of values, one per matching message:

- ARRIVAL and SIZE come from the session's map (internal date, RFC822.SIZE);
- DATE is the sent date (RFC 5256 §2.2): the Date: field as an instant (UTC), or the internal
  date when the field is missing or unparseable;
- SUBJECT is the base subject (§2.1, `core.mime.subject`);
- FROM, TO, CC are the addr-mailbox of the field's first address, DISPLAYFROM and DISPLAYTO
  its display name decoded (RFC 5957 §3), or ``mailbox@host`` when it has none; a group's
  first address is its start, so a group sorts by its name, as in Dovecot;
- strings compare by i;unicode-casemap (RFC 5256 §7, `core.collation`); a missing field is
  the empty string, which sorts first.

The columns become one tuple per message, ending in its sequence number: the implicit last
criterion (RFC 5256 §3), which REVERSE does not reverse. REVERSE negates a number; a string
column is replaced by the rank of each value among the column's distinct values, negated.

An updating sorted result (CONTEXT=SORT, RFC 5267 §4) places messages that start matching
later among those it holds, so it needs keys that compare across calls: `sort_keys` gives each
message its tuple of criterion values with a reversed string wrapped in `Descending` (ranks
only hold within one column). Ties are left to the caller, which breaks them by UID, the same
order as the sequence number within one mailbox. Every key is a property of the message that
never changes (dates, size, header fields), so a flag change never moves a message.

Work and memory are bounded the way SEARCH's are: the store's parsed fields are read a chunk
of `CHUNK` messages at a time and only the few values each criterion needs are kept (strings
cut at `KEY_CHARS`, a subject read up to `SUBJECT_CHARS`); sorting runs as sorted runs of
`RUN` items merged lazily, so the event loop is given back between runs and every few
hundred merged items (`Slicer`), and the command's CPU budget applies.

This module does no I/O of its own: the handler passes a loader for the stored fields.
"""

from __future__ import annotations

import heapq
from functools import total_ordering
from typing import Any, Final, Sequence, TypeVar

from rmail.server.core.collation import unicode_casemap
from rmail.server.core.mime.address import Addr
from rmail.server.core.mime.envelope import envelope_addresses
from rmail.server.core.mime.subject import BaseSubject, base_subject
from rmail.server.core.mime.text import decode_words
from rmail.server.core.model import MessageInfo
from rmail.server.core.slicing import Slicer

from . import commands as c
from .search import CHUNK, InfoLoader
from .selected import SelectedMailbox

__all__ = ["KEY_CHARS", "RUN", "SUBJECT_CHARS", "Descending", "SortKey", "display_name",
           "sent_date", "sort", "sort_keys", "sorted_sliced", "subject_key", "text_key"]

#: Keys answered from the session's map, without the store.
_MAP_KEYS: Final = frozenset({"ARRIVAL", "SIZE"})
#: Characters of a string value that sorting compares (a base subject, a mailbox, a display
#: name): bounds the memory kept per message; real values differ far sooner.
KEY_CHARS: Final = 1024
#: Characters of a Subject field the base subject is extracted from (see `subject_key`).
SUBJECT_CHARS: Final = 16 * 1024
#: The ENVELOPE address list each address key reads.
_FIELDS: Final = {"FROM": "from", "DISPLAYFROM": "from", "TO": "to", "DISPLAYTO": "to",
                  "CC": "cc"}
#: Items sorted in one go before the loop is given back: about a millisecond of C sorting
#: for tuples of a few strings.
RUN: Final = 2048
#: Merged items between two checks of the slicer.
_MERGE_STEP: Final = 256

T = TypeVar("T")
#: One criterion's values, aligned with the matching messages: all floats or all strings.
Column = list[Any]
#: One message's values for all criteria, in criteria order (`sort_keys`).
SortKey = tuple[Any, ...]


@total_ordering
class Descending:
    """A string sort value under REVERSE: compares the other way round, so a key made of
    these stays comparable with the keys of messages sorted at another time."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and self.value == other.value

    def __lt__(self, other: Descending) -> bool:
        return self.value > other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Descending({self.value!r})"


async def sorted_sliced(items: list[T], slicer: Slicer) -> list[T]:
    """`items` sorted (ascending, by their own order), yielding the loop between runs.

    Sorted runs of `RUN` items are merged lazily, so no single step sorts more than one run.
    """
    if len(items) <= RUN:
        items.sort()
        await slicer.tick()
        return items
    runs: list[list[Any]] = []
    for start in range(0, len(items), RUN):
        runs.append(sorted(items[start:start + RUN]))
        await slicer.tick()
    out: list[T] = []
    for n, item in enumerate(heapq.merge(*runs)):
        out.append(item)
        if not n % _MERGE_STEP and slicer.due():
            await slicer.pause()
    return out


def text_key(text: str) -> str:
    """The collation key of a string sort value: i;unicode-casemap of its first `KEY_CHARS`."""
    return unicode_casemap(text[:KEY_CHARS])


def subject_key(subject: str) -> BaseSubject:
    """The collation key of a subject's base subject (RFC 5256 §2.1), and whether it was a
    reply or forward. A subject longer than `SUBJECT_CHARS` (the store keeps a Subject field
    whole, up to the message size) is read only that far, so one message cannot hold the loop
    for long; the base subject of a shorter one is exact."""
    base = base_subject(subject[:SUBJECT_CHARS])
    return BaseSubject(text_key(base.text), base.reply_or_forward)


def display_name(addr: Addr | None) -> str:
    """RFC 5957 §3: the display name of an address, decoded (RFC 2047); without one, the
    address as ``mailbox@host`` (a group start or a bare local part: the name alone)."""
    if addr is None:
        return ""
    name = addr.name
    if name:
        if not name.isascii():  # raw header bytes kept with surrogateescape
            name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        name = " ".join(decode_words(name).split())
        if name:
            return name
    mailbox = _mailbox(addr)
    return f"{mailbox}@{addr.host}" if addr.host else mailbox


def _mailbox(addr: Addr | None) -> str:
    if addr is None or not addr.mailbox:
        return ""
    mailbox = addr.mailbox
    if not mailbox.isascii():
        mailbox = mailbox.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return mailbox


def _first(addrs: dict[str, list[Addr]], field: str) -> Addr | None:
    found = addrs.get(field)
    return found[0] if found else None


def sent_date(info: MessageInfo | None, internal: float) -> float:
    """RFC 5256 §2.2: the Date: field as a UTC instant, else the internal date."""
    if info is None or info.date is None:
        return internal
    return info.date.timestamp()


def _value(key: str, info: MessageInfo | None, addrs: dict[str, list[Addr]] | None,
           internal: float) -> float | str:
    """The value of one stored-field criterion for one message (strings collation keys)."""
    if key == "DATE":
        return sent_date(info, internal)
    if info is None:
        return ""
    if key == "SUBJECT":
        return subject_key(info.subject).text
    assert addrs is not None
    if key == "FROM":
        return text_key(_mailbox(_first(addrs, "from")))
    if key == "TO":
        return text_key(_mailbox(_first(addrs, "to")))
    if key == "CC":
        return text_key(_mailbox(_first(addrs, "cc")))
    if key == "DISPLAYFROM":
        return text_key(display_name(_first(addrs, "from")))
    return text_key(display_name(_first(addrs, "to")))  # DISPLAYTO


async def _columns(criteria: Sequence[c.SortCriterion], hits: Sequence[int],
                   view: SelectedMailbox, slicer: Slicer,
                   load_info: InfoLoader) -> list[Column]:
    """One list of values per criterion, aligned with `hits`."""
    columns: list[Column] = [[] for _ in criteria]
    stored = [(n, crit.key) for n, crit in enumerate(criteria) if crit.key not in _MAP_KEYS]
    for n, crit in enumerate(criteria):
        if crit.key == "ARRIVAL":
            columns[n] = [view.dates[i] for i in hits]
        elif crit.key == "SIZE":
            columns[n] = [float(view.sizes[i]) for i in hits]
    if stored:
        uids, dates = view.uids, view.dates
        fields = {_FIELDS[key] for _, key in stored if key in _FIELDS}
        for start in range(0, len(hits), CHUNK):
            chunk = hits[start:start + CHUNK]
            infos = await slicer.wait(load_info([uids[i] for i in chunk]))
            for i in chunk:
                info = infos.get(uids[i])  # None: expunged by another session meanwhile
                addrs = envelope_addresses(info.envelope, fields) if fields and info else None
                for n, key in stored:
                    columns[n].append(_value(key, info, addrs, dates[i]))
                if slicer.due():
                    await slicer.pause()
            del infos
    return columns


async def _ranks(column: list[str], slicer: Slicer) -> list[float]:
    """Each string's rank among the column's distinct values (for REVERSE)."""
    ordered = await sorted_sliced(list(set(column)), slicer)
    rank = {value: float(n) for n, value in enumerate(ordered)}
    return [rank[value] for value in column]


async def sort_keys(criteria: Sequence[c.SortCriterion], hits: Sequence[int],
                    view: SelectedMailbox, *, slicer: Slicer,
                    load_info: InfoLoader) -> list[SortKey]:
    """Each message's sort key (aligned with `hits`), comparable with the keys of any other
    message of the mailbox, whenever computed; ties are the caller's to break.

    Raises:
        LimitExceeded: the slicer's CPU budget ran out first.
    """
    columns = await _columns(criteria, hits, view, slicer, load_info)
    for n, crit in enumerate(criteria):
        if crit.reverse:
            column = columns[n]
            columns[n] = [Descending(v) if isinstance(v, str) else -v for v in column]
    return list(zip(*columns))


async def sort(criteria: Sequence[c.SortCriterion], hits: Sequence[int], view: SelectedMailbox,
               *, slicer: Slicer, load_info: InfoLoader) -> list[int]:
    """The message indexes `hits` (ascending) in the order of `criteria`.

    Raises:
        LimitExceeded: the slicer's CPU budget ran out first.
    """
    columns = await _columns(criteria, hits, view, slicer, load_info)
    for n, crit in enumerate(criteria):
        if not crit.reverse:
            continue
        column = columns[n]
        if column and isinstance(column[0], str):
            column = await _ranks(column, slicer)
        columns[n] = [-v for v in column]
    rows = list(zip(*columns, hits))
    ordered = await sorted_sliced(rows, slicer)
    return [row[-1] for row in ordered]
