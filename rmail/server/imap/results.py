"""A searching command's result in its requested order, and what ESEARCH says about it.

Pure code over ordered lists, shared by every command that answers with ESEARCH (RFC 4466
§2.6.2): SEARCH with RETURN options (ESEARCH RFC 4731, SEARCHRES RFC 5182, CONTEXT=SEARCH RFC
5267) and, by the same functions, an extended SORT (ESORT, CONTEXT=SORT, RFC 5267 §3–4). A
result is a list of items in the *requested order* — mailbox order for SEARCH, the sort order
for SORT — and every rule here is written against that order, never against numeric order:

- `return_data`: the MIN/MAX/ALL/COUNT/PARTIAL items. MIN is the first result and MAX the last
  (RFC 5267 §3.1 says so for SORT; for SEARCH the order is ascending, so they are the lowest and
  highest); ALL is a sequence set whose ranges are only ever ascending runs of the order, so a
  sorted 12,11,10 stays "12,11,10" (RFC 5267 §3.2); PARTIAL is a 1-based slice of the order.
- `saved_items`: what RETURN (SAVE) keeps as "$" (RFC 5182 §2.4's table).
- `modseq_items`: whose MODSEQ an ESEARCH reports with CONDSTORE (RFC 4731 §3.2).
- `ResultList`: an updating context's result (RFC 5267 §4.3). Changes come out as (position,
  items) pairs for ADDTO and REMOVEFROM: position 0 with the items in mailbox order when the
  order is the mailbox's (SEARCH, §4.3.3: "the context position MAY be zero"), real positions
  otherwise (SORT), each pair valid once the pairs before it are applied.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final, TypeVar

from .commands import SearchReturn
from .encode import Atom, Value, sequence_range, sequence_set

__all__ = ["MAILBOX_ORDER", "ResultList", "modseq_items", "return_data", "saved_items"]

T = TypeVar("T")

#: The order key of a SEARCH result: the UID itself (mailbox order, RFC 5267 §4.1).
MAILBOX_ORDER: Final = None


def _only_min_max(returns: SearchReturn) -> bool:
    return (returns.min or returns.max) and not (returns.all or returns.count
                                                 or returns.partial is not None)


def _min_max(items: Sequence[T], returns: SearchReturn) -> list[T]:
    if not items:
        return []
    out = [items[0]] if returns.min else []
    if returns.max and (not out or len(items) > 1):
        out.append(items[-1])
    return out


def saved_items(items: Sequence[T], returns: SearchReturn) -> list[T]:
    """What "$" holds after RETURN (SAVE ...) (RFC 5182 §2.4): MIN and/or MAX alone keep just
    those messages; anything else (ALL, COUNT, PARTIAL, or SAVE alone) keeps every match."""
    if _only_min_max(returns):
        return _min_max(items, returns)
    return list(items)


def modseq_items(items: Sequence[T], returns: SearchReturn) -> list[T]:
    """The messages whose highest MODSEQ an ESEARCH reports when the search used a MODSEQ key
    (RFC 4731 §3.2): the one MIN or MAX message, both when MIN and MAX come alone, otherwise
    every match. Empty when nothing matched (no MODSEQ item then)."""
    if _only_min_max(returns):
        return _min_max(items, returns)
    return list(items)


def return_data(numbers: Sequence[int], returns: SearchReturn, *,
                modseq: int | None = None) -> list[Value]:
    """The search-return-data items of one ESEARCH response, in RFC 4731's order, for the
    result `numbers` (message numbers or UIDs in the requested order).

    MIN, MAX and ALL are left out when nothing matched, COUNT never (RFC 4731 §3.1); PARTIAL
    always comes, NIL when its range is past the end (RFC 5267 §4.4); UPDATE, SAVE and CONTEXT
    add nothing. `modseq` is the CONDSTORE item (None: not asked for, or nothing matched).
    """
    out: list[Value] = []
    if numbers:
        if returns.min:
            out += [Atom("MIN"), numbers[0]]
        if returns.max:
            out += [Atom("MAX"), numbers[-1]]
        if returns.all:
            out += [Atom("ALL"), sequence_set(numbers)]
    if returns.count:
        out += [Atom("COUNT"), len(numbers)]
    if returns.partial is not None:
        first, last = returns.partial
        part = numbers[first - 1:last]
        out += [Atom("PARTIAL"), (sequence_range(first, last), sequence_set(part) if part else None)]
    if modseq is not None:
        out += [Atom("MODSEQ"), modseq]
    return out


#: One ADDTO or REMOVEFROM pair: a context position (0: "wherever mailbox order puts it") and
#: the UIDs in the requested order.
Pair = tuple[int, list[int]]


class ResultList:
    """An updating context's result: UIDs in the requested order (RFC 5267 §4.3).

    With `key` None (`MAILBOX_ORDER`) the order is the UIDs' own; otherwise `key(uid)` gives a
    message's sort key (ties go by UID, as RFC 5256 §3 breaks them by sequence number, which
    follows UID order) and the caller supplies it for every message it adds.
    """

    __slots__ = ("_entries", "_members", "_positional")

    def __init__(self, uids: Iterable[int], keys: Sequence[Hashable] | None = MAILBOX_ORDER) -> None:
        uid_list = list(uids)
        self._positional = keys is not None
        if keys is None:
            self._entries: list[tuple[Any, int]] = sorted((u, u) for u in uid_list)
        else:
            self._entries = sorted(zip(keys, uid_list))
        self._members = set(uid_list)

    def __contains__(self, uid: int) -> bool:
        return uid in self._members

    def __len__(self) -> int:
        return len(self._members)

    def uids(self) -> list[int]:
        """The result in the requested order."""
        return [u for _, u in self._entries]

    def remove(self, uids: Iterable[int]) -> list[Pair]:
        """Take these UIDs out (those not in the result are ignored); the REMOVEFROM pairs."""
        gone = {u for u in uids if u in self._members}
        if not gone:
            return []
        self._members -= gone
        if not self._positional:
            self._entries = [e for e in self._entries if e[1] not in gone]
            return [(0, sorted(gone))]
        pairs: list[Pair] = []
        kept: list[tuple[Any, int]] = []
        for entry in self._entries:
            if entry[1] in gone:
                # §4.3.4: the run starts at the position it has once the earlier pairs are
                # applied, which is where the kept entries end.
                if pairs and pairs[-1][0] == len(kept) + 1:
                    pairs[-1][1].append(entry[1])
                else:
                    pairs.append((len(kept) + 1, [entry[1]]))
            else:
                kept.append(entry)
        self._entries = kept
        return pairs

    def add(self, uids: Iterable[int], key: Callable[[int], Hashable] | None = None) -> list[Pair]:
        """Put these UIDs in (those already in are ignored); the ADDTO pairs. `key` gives each
        new UID's sort key when the order is not the mailbox's."""
        new = [u for u in dict.fromkeys(uids) if u not in self._members]
        if not new:
            return []
        self._members.update(new)
        if not self._positional:
            for u in sorted(new):
                bisect.insort(self._entries, (u, u))
            return [(0, sorted(new))]
        if key is None:
            raise ValueError("a sorted result needs the new messages' sort keys")
        entries = sorted((key(u), u) for u in new)
        merged = sorted(self._entries + entries)
        added = {u for _, u in entries}
        pairs: list[Pair] = []
        for position, (_, u) in enumerate(merged, 1):
            if u not in added:
                continue
            # §4.3.3: inserted at the position it has in the final list; runs in ascending
            # order of position, so each pair sees the earlier ones applied already.
            if pairs and pairs[-1][0] + len(pairs[-1][1]) == position:
                pairs[-1][1].append(u)
            else:
                pairs.append((position, [u]))
        self._entries = merged
        return pairs
