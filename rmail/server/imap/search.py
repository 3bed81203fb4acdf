"""SEARCH evaluation (RFC 3501 §6.4.4) over the session's map and the stored text.

Two passes keep SEARCH proportional to what it asks. The first decides every message it can
from the session's map (flags, sizes, dates, UIDs); only the messages it cannot decide get
their header and body text loaded, a chunk at a time, for the second. Both passes evaluate one
key at a time over a list of candidate message indexes rather than one message at a time over
the whole key tree: AND hands each key only what the keys before it kept, trying keys the map
decides before those that need header text and those before body text; OR asks its second key
only about messages the first did not match; NOT takes the complement. The work is thus a
sequence of small steps (one key on one message), after each of which the `Slicer` may give the
event loop back and meter the command's CPU budget (core.slicing): 300 text keys on one large
message no longer hold the loop for one long stretch.

Matching is case-insensitive substring on decoded text (casefold), as RFC 3501 asks; the store
keeps the decoded, casefolded body text from delivery.

This module does no I/O of its own: the handler passes loaders for stored header and body text,
and for the ids of the stored bytes that the OBJECTID key EMAILID compares (RFC 8474 §6).
"""

from __future__ import annotations

import bisect
import time
from datetime import date, datetime, timezone
from functools import partial
from typing import Awaitable, Callable, Final, Sequence

from rmail.server.core.mime.address import parse_addresses
from rmail.server.core.mime.parse import parse_date
from rmail.server.core.model import MessageInfo
from rmail.server.core.slicing import Slicer
from rmail.server.core.storage.mail import MailStore

from . import commands as c
from .objectid import email_id
from .selected import SelectedMailbox

__all__ = ["BlobIdLoader", "CHUNK", "EVAL_CHUNK", "InfoLoader", "MAP_CHUNK", "TextLoader",
           "search", "store_loaders", "uses_modseq"]

#: Messages whose stored text is held at once: bounds memory (search text is up to 1 MiB a
#: message) and the size of one store read.
CHUNK: Final = 500
#: Messages one key is tried on before the next key: few enough that their text stays in the
#: CPU cache between keys, enough to keep the per-key overhead (set operations) small.
EVAL_CHUNK: Final = 32
#: Messages the first pass (the session's map only) takes at once: bounds the transient sets
#: and the work between two checks of the slicer in the set operations of AND, OR and NOT.
MAP_CHUNK: Final = 4096

InfoLoader = Callable[[list[int]], Awaitable[dict[int, MessageInfo]]]
TextLoader = Callable[[list[int]], Awaitable[dict[int, str]]]
#: UID -> the id of the message's stored bytes (what EMAILID is made of, objectid.py).
BlobIdLoader = Callable[[list[int]], Awaitable[dict[int, str]]]


def store_loaders(store: MailStore, mailbox_id: int) -> tuple[InfoLoader, TextLoader, BlobIdLoader]:
    """The loaders `search` (and SORT's keys, THREAD's fields) read mailbox `mailbox_id` of
    `store` with: parsed fields, the text BODY/TEXT look in, and the stored bytes' ids."""
    return (partial(store.fetch_info, mailbox_id), partial(store.search_text, mailbox_id),
            partial(store.message_blobs, mailbox_id))

# What a key needs beyond the session's map, in the order AND tries keys.
_MAP, _INFO, _TEXT = 0, 1, 2


def _cost(key: c.SearchKey) -> int:
    if isinstance(key, c.SearchBody):
        return _TEXT
    if isinstance(key, c.SearchHeader) or (isinstance(key, c.SearchDate) and key.sent):
        return _INFO
    if isinstance(key, c.SearchObjectId) and key.kind == "EMAILID":
        return _INFO  # a store read, like header data (THREADID is NIL: the map decides)
    if isinstance(key, c.SearchAnd):
        return max(map(_cost, key.keys))
    if isinstance(key, c.SearchOr):
        return max(_cost(key.left), _cost(key.right))
    if isinstance(key, c.SearchNot):
        return _cost(key.key)
    return _MAP


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, timezone.utc).date()


def _compare(relation: str, day: date, target: date) -> bool:
    # RFC 3501 §6.4.4: dates compare "disregarding time and timezone".
    if relation == "before":
        return day < target
    if relation == "on":
        return day == target
    return day >= target


def _sent_day(header_text: str) -> date | None:
    """The day the sender wrote in the first Date: field (RFC 3501 §6.4.4: SENT* keys compare
    "disregarding time and timezone", i.e. the sender's own calendar day). The store keeps the
    Date as an instant, its zone lost, so the day is read back from the header text."""
    values = _header_values(header_text, "date")
    if not values:
        return None
    dt = parse_date(values[0].encode("utf-8", "surrogateescape"))
    return None if dt is None else dt.date()  # parse_date keeps the written offset


def _address_text(value: str) -> str:
    """A FROM/TO/CC/BCC field as the text its keys search (casefolded): each address as
    ``name mailbox@host`` and each group's name, one per line, so that comments, quoting and
    angle brackets in the raw field neither hide an address nor match across two of them."""
    parts = []
    for addr in parse_addresses(value):
        if addr.host is None:  # a group's start (its name in `mailbox`) or end
            if addr.mailbox:
                parts.append(addr.mailbox)
            continue
        spec = f"{addr.mailbox}@{addr.host}" if addr.host else (addr.mailbox or "")
        parts.append(f"{addr.name} {spec}" if addr.name else spec)
    return "\n".join(parts).casefold()


def _header_values(header_text: str, field: str) -> list[str]:
    prefix = field.casefold() + ":"
    out = []
    for line in header_text.split("\n"):
        if line[:len(prefix)].casefold() == prefix:
            out.append(line[len(prefix):].strip())
    return out


def _in_sets(seqset: c.SeqSet, view: SelectedMailbox, uid: bool) -> Callable[[int], bool]:
    """Membership of a message index in a sequence or UID set: one bisect over the merged
    ranges, however many ranges the client wrote (a 64 KiB UID set has thousands)."""
    ranges: list[tuple[int, int]] = []
    if uid:
        for lo, hi in seqset.resolve(view.max_uid):
            start, stop = bisect.bisect_left(view.uids, lo), bisect.bisect_right(view.uids, hi)
            if start < stop:
                ranges.append((start, stop - 1))
    else:
        # Numbers past the end match nothing (SEARCH never fails on them, unlike FETCH).
        ranges = [(lo - 1, min(hi, view.exists) - 1) for lo, hi in seqset.resolve(view.exists)
                  if lo <= view.exists]
    starts = [lo for lo, _ in ranges]
    ends = [hi for _, hi in ranges]

    def test(i: int) -> bool:
        j = bisect.bisect_right(starts, i) - 1
        return j >= 0 and i <= ends[j]
    return test


class _Run:
    """One SEARCH command's evaluation; see the module docstring."""

    def __init__(self, key: c.SearchKey, view: SelectedMailbox, slicer: Slicer,
                 load_info: InfoLoader, load_text: TextLoader,
                 load_blob_ids: BlobIdLoader | None = None) -> None:
        self.key = key
        self.view = view
        self.slicer = slicer
        self.load_info = load_info
        self.load_text = load_text
        self.load_blob_ids = load_blob_ids
        self._costs: dict[int, int] = {}
        self._sets: dict[int, Callable[[int], bool]] = {}
        # Per chunk: what was asked of the store (a UID may be missing from the answer when
        # another session expunged it meanwhile), the answers, casefolded headers.
        self._info_asked: set[int] = set()
        self._text_asked: set[int] = set()
        self._blob_asked: set[int] = set()
        self._info: dict[int, MessageInfo] = {}
        self._blob_ids: dict[int, str] = {}
        self._text: dict[int, str] = {}
        self._folded: dict[int, str] = {}
        self._sent_days: dict[int, date | None] = {}
        self._chunk: list[int] = []

    def _cost(self, key: c.SearchKey) -> int:
        cost = self._costs.get(id(key))
        if cost is None:
            cost = self._costs[id(key)] = _cost(key)
        return cost

    async def run(self, indexes: Sequence[int]) -> list[int]:
        """Matching indexes among `indexes` (ascending)."""
        # Pass 1: the session's map decides what it can, for many messages at a time.
        hits: list[int] = []
        unsure: list[int] = []
        for start in range(0, len(indexes), MAP_CHUNK):
            yes, maybe = await self._decide(self.key, list(indexes[start:start + MAP_CHUNK]))
            hits += yes
            unsure += maybe
        # Pass 2: the rest with their stored text, a chunk at a time, loaded with one read per
        # kind when first needed, and evaluated a few messages at a time so that the text
        # scanned by one key is still in the CPU cache for the next (key at a time over all
        # 500 messages took 1.7 times the CPU of message at a time).
        for start in range(0, len(unsure), CHUNK):
            self._forget()
            self._chunk = unsure[start:start + CHUNK]
            for sub in range(0, len(self._chunk), EVAL_CHUNK):
                hits += await self._eval(self.key, self._chunk[sub:sub + EVAL_CHUNK])
        self._forget()
        hits.sort()
        return hits

    def _forget(self) -> None:
        self._info_asked.clear()
        self._text_asked.clear()
        self._blob_asked.clear()
        self._info.clear()
        self._blob_ids.clear()
        self._text.clear()
        self._folded.clear()
        self._sent_days.clear()

    async def _decide(self, key: c.SearchKey, cands: list[int]) -> tuple[list[int], list[int]]:
        """Split the candidates into those that surely match `key` and those that may match
        but need stored text to tell (both ascending); the rest surely do not match."""
        await self.slicer.tick()  # each node's set operations cost up to MAP_CHUNK steps
        if not cands or self._cost(key) == _MAP:
            return await self._eval(key, cands), []
        if isinstance(key, c.SearchAnd):
            unknown: set[int] = set()
            for sub in sorted(key.keys, key=self._cost):
                yes, maybe = await self._decide(sub, cands)
                unknown.update(maybe)
                live = set(yes)
                live.update(maybe)
                cands = [i for i in cands if i in live]
                if not cands:
                    break
            return ([i for i in cands if i not in unknown], [i for i in cands if i in unknown])
        if isinstance(key, c.SearchOr):
            first, second = self._ordered(key.left, key.right)
            yes1, maybe1 = await self._decide(first, cands)
            done = set(yes1)
            yes2, maybe2 = await self._decide(second, [i for i in cands if i not in done])
            done.update(yes2)
            unknown = set(maybe1)
            unknown.update(maybe2)
            return ([i for i in cands if i in done],
                    [i for i in cands if i in unknown and i not in done])
        if isinstance(key, c.SearchNot):
            yes, maybe = await self._decide(key.key, cands)
            unknown = set(maybe)
            known = set(yes)
            return ([i for i in cands if i not in known and i not in unknown], maybe)
        return [], cands  # a leaf that needs stored text

    def _ordered(self, a: c.SearchKey, b: c.SearchKey) -> tuple[c.SearchKey, c.SearchKey]:
        return (a, b) if self._cost(a) <= self._cost(b) else (b, a)

    async def _eval(self, key: c.SearchKey, cands: list[int]) -> list[int]:
        """The candidates (ascending indexes) that match `key`, in the same order."""
        await self.slicer.tick()
        if not cands:
            return cands
        if isinstance(key, c.SearchAnd):
            for sub in sorted(key.keys, key=self._cost):  # stable: ties keep the client's order
                cands = await self._eval(sub, cands)
                if not cands:
                    break
            return cands
        if isinstance(key, c.SearchOr):
            first, second = self._ordered(key.left, key.right)
            hit = await self._eval(first, cands)
            if len(hit) == len(cands):
                return hit
            matched = set(hit)
            matched.update(await self._eval(second, [i for i in cands if i not in matched]))
            return [i for i in cands if i in matched]
        if isinstance(key, c.SearchNot):
            matched = set(await self._eval(key.key, cands))
            return [i for i in cands if i not in matched]
        if isinstance(key, c.SearchAll):
            return cands
        return await self._filter(await self._leaf(key, cands), cands)

    async def _filter(self, test: Callable[[int], bool], cands: list[int]) -> list[int]:
        slicer = self.slicer
        out = []
        for i in cands:
            if test(i):
                out.append(i)
            if slicer.due():
                await slicer.pause()
        return out

    async def _need_info(self, cands: list[int]) -> None:
        """Header data for `cands`, read with what the rest of the chunk will need (the
        chunk's messages are all undecided by the map, so most of them will)."""
        uids = self.view.uids
        if any(uids[i] not in self._info_asked for i in cands):
            missing = [uids[i] for i in self._chunk if uids[i] not in self._info_asked]
            self._info_asked.update(missing)
            self._info.update(await self.slicer.wait(self.load_info(missing)))

    async def _need_text(self, cands: list[int]) -> None:
        """Body text, like `_need_info`."""
        uids = self.view.uids
        if any(uids[i] not in self._text_asked for i in cands):
            missing = [uids[i] for i in self._chunk if uids[i] not in self._text_asked]
            self._text_asked.update(missing)
            self._text.update(await self.slicer.wait(self.load_text(missing)))

    async def _need_blob_ids(self, cands: list[int]) -> None:
        """The stored bytes' ids, like `_need_info`."""
        assert self.load_blob_ids is not None, "a search with EMAILID needs load_blob_ids"
        uids = self.view.uids
        if any(uids[i] not in self._blob_asked for i in cands):
            missing = [uids[i] for i in self._chunk if uids[i] not in self._blob_asked]
            self._blob_asked.update(missing)
            self._blob_ids.update(await self.slicer.wait(self.load_blob_ids(missing)))

    def _folded_header(self, uid: int) -> str | None:
        folded = self._folded.get(uid)
        if folded is None:
            info = self._info.get(uid)
            if info is None:
                return None
            folded = self._folded[uid] = info.header_text.casefold()
        return folded

    async def _leaf(self, key: c.SearchKey, cands: list[int]) -> Callable[[int], bool]:
        """A test of one message index for a leaf key, with its stored data loaded."""
        view = self.view
        flags, sizes, dates, uids = view.flags, view.sizes, view.dates, view.uids
        if isinstance(key, c.SearchFlag):
            flag = key.flag
            if key.present:
                return lambda i: flag in flags[i]
            return lambda i: flag not in flags[i]
        if isinstance(key, c.SearchRecent):
            return lambda i: view.is_recent(uids[i])
        if isinstance(key, c.SearchSeq):
            test = self._sets.get(id(key))
            if test is None:  # built once per command: a long UID set takes a while to merge
                test = self._sets[id(key)] = _in_sets(key.seqset, view, key.uid)
            return test
        if isinstance(key, c.SearchModseq):  # RFC 7162 §3.1.5: at least that MODSEQ
            modseqs, least = view.modseqs, key.modseq
            return lambda i: modseqs[i] >= least
        if isinstance(key, c.SearchSize):
            limit = key.size
            if key.larger:
                return lambda i: sizes[i] > limit
            return lambda i: sizes[i] < limit
        if isinstance(key, c.SearchAge):
            # RFC 5032 §2: against the server's clock now, to the second, both ends inclusive.
            cutoff = int(time.time()) - key.seconds
            if key.older:
                return lambda i: int(dates[i]) <= cutoff
            return lambda i: int(dates[i]) >= cutoff
        if isinstance(key, c.SearchDate) and not key.sent:
            relation, target = key.relation, key.day
            return lambda i: _compare(relation, _day(dates[i]), target)
        if isinstance(key, c.SearchSaveDate):
            # RFC 8514 §4.3: the save date's day "disregarding time and timezone", by the same
            # rule as the internal date's (its day in UTC, the zone rmail stores and sends).
            relation, target, saved = key.relation, key.day, view.savedates
            return lambda i: _compare(relation, _day(saved[i]), target)
        if isinstance(key, c.SearchObjectId):  # RFC 8474 §6
            if key.kind != "EMAILID":
                return lambda i: False  # THREADID is NIL for every message
            await self._need_blob_ids(cands)
            blob_ids, wanted = self._blob_ids, key.value
            return lambda i: (b := blob_ids.get(uids[i])) is not None and email_id(b) == wanted
        infos = self._info
        if isinstance(key, c.SearchDate):
            await self._need_info(cands)
            relation, target = key.relation, key.day

            days = self._sent_days

            def sent(i: int) -> bool:
                u = uids[i]
                if u in days:
                    day = days[u]
                else:
                    info = infos.get(u)
                    day = days[u] = None if info is None or info.date is None else \
                        _sent_day(info.header_text)
                return day is not None and _compare(relation, day, target)
            return sent
        if isinstance(key, c.SearchHeader):
            await self._need_info(cands)
            field, needle, address = key.field, key.value.casefold(), key.address

            def header(i: int) -> bool:
                info = infos.get(uids[i])
                if info is None:
                    return False
                values = _header_values(info.header_text, field)
                if not needle:
                    return bool(values)  # RFC 3501: HEADER name "" matches any message with the field
                if address:
                    return any(needle in _address_text(v) for v in values)
                return any(needle in v.casefold() for v in values)
            return header
        if isinstance(key, c.SearchBody):
            needle = key.value.casefold()
            texts = self._text
            if key.text:
                await self._need_info(cands)
                await self._need_text(cands)

                def text(i: int) -> bool:
                    u = uids[i]
                    folded = self._folded_header(u)
                    return (folded is not None and needle in folded) or needle in texts.get(u, "")
                return text
            await self._need_text(cands)
            return lambda i: needle in texts.get(uids[i], "")
        raise TypeError(f"unknown search key {key!r}")


def uses_modseq(key: c.SearchKey) -> bool:
    """Whether a MODSEQ key is anywhere in `key` (RFC 7162 §3.1.5: then the answer reports
    the highest MODSEQ of what it found, and CONDSTORE is on)."""
    return c.any_key(key, lambda k: isinstance(k, c.SearchModseq))


def uses_recent(key: c.SearchKey) -> bool:
    """Whether RECENT, NEW or OLD is anywhere in `key`: IMAP4rev2 has none of them (RFC 9051
    Appendix E), so an IMAP4rev2 session's search with one is BAD."""
    return c.any_key(key, lambda k: isinstance(k, c.SearchRecent))


async def search(key: c.SearchKey, view: SelectedMailbox, *, slicer: Slicer,
                 load_info: InfoLoader, load_text: TextLoader,
                 load_blob_ids: BlobIdLoader | None = None,
                 among: Sequence[int] | None = None) -> list[int]:
    """The 0-based indexes of the messages in `view` that match `key`, ascending; only those
    in `among` (ascending indexes) when given, as an updating context asks of changed
    messages (RFC 5267 §4.3). `load_blob_ids` is needed when `key` has EMAILID.

    Raises:
        LimitExceeded: the slicer's CPU budget ran out first.
    """
    indexes = range(view.exists) if among is None else among
    return await _Run(key, view, slicer, load_info, load_text, load_blob_ids).run(indexes)
