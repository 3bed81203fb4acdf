"""The selected mailbox as one session sees it: seq↔UID map, cached flags, \\Recent.

Pure bookkeeping (pymap's `selected.py` habit): no I/O. The handler feeds it store snapshots
(`load`) and change sets (`apply`), and asks it which untagged responses to send.

Invariants (RFC 3501 §7.4.1, §2.3.1.2):

- Message sequence numbers only change when this session has *told* the client: an expunge
  seen while a FETCH, STORE or SEARCH is running stays in the map (marked pending) until a
  command that may carry EXPUNGE responses ends. New messages may be announced at any time
  with EXISTS, whose count always includes messages still pending expunge.
- The map is kept as columns (UIDs in an `array`, flags as shared frozensets, sizes, dates,
  MODSEQs and save dates in arrays) so that FETCH FLAGS/MODSEQ/SAVEDATE, UID sets and flag
  searches over a large mailbox need no store round trip and little memory (~36 bytes per
  message).
- `synced_modseq` is the MODSEQ up to which the client has been told everything (RFC 7162
  HIGHESTMODSEQ): it stays behind `modseq` while an expunge is held back, so a client that
  resynchronises from it never misses that expunge.
- \\Recent is per session: the UIDs this session claimed from the store, as a few ranges.
- Every keyword in the map has been (or is about to be) announced in `* FLAGS` (RFC 3501
  §7.2.6): a flag set entering the map is checked against the announced keywords there, once
  per distinct set, and a new keyword marks the list stale (`keywords_stale`); the session
  sends the grown FLAGS and PERMANENTFLAGS before the next response that carries flags, and
  every flag it sends comes from this map. The list never shrinks (as in Dovecot).
- A `Watcher` (the session's updating searches, `context`) hears of every change to the map
  as it happens: UIDs whose flags or MODSEQ changed or that arrived go into its `touched` set, and
  messages about to leave are shown to `removing` while their sequence numbers still hold
  (RFC 5267 §4.3.4 wants REMOVEFROM before the EXPUNGE).
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, Sequence

from rmail.server.core.model import Mailbox, MailboxChanges, MessageMeta

__all__ = ["SelectedMailbox", "Update", "InvalidSequence", "Watcher", "in_ranges"]

#: At most this many \Recent ranges are kept; past it the oldest is forgotten (its messages
#: stop being \Recent here). Never merged: the UIDs between two ranges belong to other
#: sessions, and \Recent may go to one session only (RFC 3501 §2.3.2).
MAX_RECENT_RANGES = 32
#: Distinct flag sets remembered as holding only announced keywords. A mailbox has few (the
#: store shares one frozenset per distinct set); past the cap a set is just checked again.
MAX_COVERED_SETS = 1024


def in_ranges(ranges: Sequence[tuple[int, int]]) -> Callable[[int], bool]:
    """Membership in ascending, disjoint inclusive ranges (`SeqSet.resolve`), by bisection:
    a client's UID set may hold thousands of ranges."""
    starts = [lo for lo, _ in ranges]

    def test(n: int) -> bool:
        j = bisect.bisect_right(starts, n) - 1
        return j >= 0 and n <= ranges[j][1]
    return test


class InvalidSequence(Exception):
    """A message sequence number beyond the mailbox (RFC 3501 §9: BAD)."""


class Watcher(Protocol):
    """Told of changes to a session's map as they happen (see the module's invariants)."""

    #: UIDs whose flags or MODSEQ changed or that entered the map since the watcher last looked.
    touched: set[int]

    def removing(self, indexes: list[int]) -> None:
        """These 0-based indexes (ascending) leave the map next; their numbers still hold."""


@dataclass(frozen=True, slots=True)
class Update:
    """Untagged news for the client, in the order to send it.

    `expunged` are sequence numbers, each valid at the moment it is sent (descending, so no
    renumbering is needed); `exists`/`recent` are None when unchanged; `flags` lists
    (seq, uid) pairs whose flags changed.
    """

    expunged: tuple[int, ...] = ()
    exists: int | None = None
    recent: int | None = None
    flags: tuple[tuple[int, int], ...] = ()
    #: The UIDs of `expunged`, ascending (VANISHED once QRESYNC is on, RFC 7162 §3.2.10).
    vanished: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.expunged or self.exists is not None or self.recent is not None
                    or self.flags)


class SelectedMailbox:
    """One session's view of one selected mailbox."""

    __slots__ = ("mailbox", "readonly", "uids", "flags", "sizes", "dates", "modseqs", "savedates", "modseq",
                 "synced_modseq",
                 "_recent", "_pending", "_own", "_recent_count", "_keywords", "_covered",
                 "keywords_stale", "watcher")

    def __init__(self, mailbox: Mailbox, *, readonly: bool) -> None:
        self.mailbox = mailbox
        self.readonly = readonly
        self.uids = array("I")
        self.flags: list[frozenset[str]] = []
        self.sizes = array("Q")
        self.dates = array("d")
        self.modseqs = array("Q")
        self.savedates = array("d")                # RFC 8514 save dates, unix seconds
        self.modseq = mailbox.highestmodseq
        self.synced_modseq = mailbox.highestmodseq
        self._recent: list[tuple[int, int]] = []   # inclusive UID ranges
        self._pending: set[int] = set()            # expunged, not yet announced
        self._own: dict[int, int] = {}             # uid → modseq this session reported already
        self._recent_count = 0
        self._keywords: set[str] = set()           # keywords announced (or due) in FLAGS
        self._covered: set[frozenset[str]] = set()  # flag sets with no unannounced keyword
        #: Keywords entered the map since the last `* FLAGS`: send it before any flags.
        self.keywords_stale = False
        #: The session's searches that follow this mailbox (RFC 5182 "$", RFC 5267 updates).
        self.watcher: Watcher | None = None

    # -- loading and queries -------------------------------------------------------------------

    def load(self, metas: Iterable[MessageMeta], *, recent_from: int | None,
             recent_to: int | None = None) -> None:
        """Fill the map from message values; UIDs in [`recent_from`, `recent_to`) are
        \\Recent to us (`recent_to` None: up to the last one loaded)."""
        for m in metas:
            self._append(m)
        self._mark_recent(recent_from, recent_to)

    def load_columns(self, uids: array, flags: list[frozenset[str]], sizes: array, dates: array, *,
                     modseqs: array, savedates: array, recent_from: int | None,
                     recent_to: int | None = None) -> None:
        """Fill the map from a store snapshot's columns (SELECT's fast path)."""
        self.uids = array("I", uids)
        self.flags = list(flags)
        self.sizes = array("Q", sizes)
        self.dates = array("d", dates)
        self.modseqs = array("Q", modseqs)
        self.savedates = array("d", savedates)
        for f in set(self.flags):
            self._note(f)
        self._mark_recent(recent_from, recent_to)

    def _mark_recent(self, recent_from: int | None, recent_to: int | None) -> None:
        if recent_from is not None:
            # A claim may reach past the snapshot: UIDs not in the map yet are this session's
            # \Recent ones when they arrive (ranges may hold UIDs the map does not).
            hi = recent_to - 1 if recent_to is not None else self.max_uid
            self._add_recent(recent_from, hi)
        self._recent_count = self.count_recent()

    def _append(self, m: MessageMeta) -> None:
        self._note(m.flags)
        self.uids.append(m.uid)
        self.flags.append(m.flags)
        self.sizes.append(m.size)
        self.dates.append(m.internaldate.timestamp())
        self.modseqs.append(m.modseq)
        self.savedates.append(m.savedate.timestamp())
        if self.watcher is not None:
            self.watcher.touched.add(m.uid)

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def is_recent(self, uid: int) -> bool:
        for lo, hi in self._recent:
            if lo <= uid <= hi:
                return True
        return False

    def count_recent(self) -> int:
        total = 0
        for lo, hi in self._recent:
            total += bisect.bisect_right(self.uids, hi) - bisect.bisect_left(self.uids, lo)
        return total

    def forget_recent(self) -> None:
        """Hold no \\Recent from now on: the session enabled IMAP4rev2, which has none (RFC
        9051 Appendix E); its sessions never claim any either (`handlers.sync`)."""
        self._recent.clear()
        self._recent_count = 0

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def flags_of(self, seq: int) -> frozenset[str]:
        return self.flags[seq - 1]

    def first_unseen(self) -> int | None:
        for i, f in enumerate(self.flags):
            if "\\Seen" not in f:
                return i + 1
        return None

    def keywords(self) -> list[str]:
        """Every keyword the map has held since SELECT (for the FLAGS response), sorted.
        Marks the list announced: the caller sends it."""
        self.keywords_stale = False
        return sorted(self._keywords)

    def _note(self, flags: frozenset[str]) -> None:
        """Record a flag set entering the map: a keyword not announced yet makes the FLAGS
        list stale. Costs a set lookup for a flag set seen before."""
        if flags in self._covered:
            return
        for f in flags:
            if f not in self._keywords and not f.startswith("\\"):
                self._keywords.add(f)
                self.keywords_stale = True
        if len(self._covered) < MAX_COVERED_SETS:
            self._covered.add(flags)

    def resolve(self, ranges: Sequence[tuple[int, int]], *, uid: bool) -> Iterator[int]:
        """0-based indexes for resolved ranges (see `SeqSet.resolve`), ascending.

        Raises:
            InvalidSequence: a message number past the end (UID sets never raise).
        """
        n = len(self.uids)
        for lo, hi in ranges:
            if uid:
                start = bisect.bisect_left(self.uids, lo)
                stop = bisect.bisect_right(self.uids, hi)
            else:
                if hi > n:
                    raise InvalidSequence("message sequence number out of range")
                start, stop = lo - 1, hi
            yield from range(start, stop)

    # -- changes made by this session ---------------------------------------------------------

    def set_flags(self, metas: Iterable[MessageMeta]) -> list[int]:
        """Record flags the session itself stored; returns the 0-based indexes updated."""
        out = []
        for m in metas:
            seq = self.seq_of(m.uid)
            if seq is None:
                continue
            self._note(m.flags)
            self.flags[seq - 1] = m.flags
            self.modseqs[seq - 1] = m.modseq
            self._own[m.uid] = m.modseq
            out.append(seq - 1)
            if self.watcher is not None:
                self.watcher.touched.add(m.uid)
        return out

    def expunge_now(self, uids: Iterable[int]) -> list[int]:
        """Remove UIDs this session expunged itself; returns seqs to send, descending."""
        gone = set(uids)
        self._pending -= gone
        return self._remove(gone)

    # -- changes from the store ----------------------------------------------------------------

    def apply(self, changes: MailboxChanges, *, allow_expunge: bool,
              recent_from: int | None = None, recent_to: int | None = None) -> Update:
        """Merge a `changes_since` result; return what to tell the client now.

        Args:
            allow_expunge: False while FETCH/STORE/SEARCH run (RFC 3501 §7.4.1).
            recent_from: first UID this session claimed as \\Recent, if it claimed any.
            recent_to: end (exclusive) of that claim; None: up to the last UID in `changes`.
        """
        exists_before = len(self.uids)
        max_uid = self.max_uid
        for uid in changes.expunged:
            if uid <= max_uid and self.seq_of(uid) is not None:
                self._pending.add(uid)
        flag_updates: list[tuple[int, int]] = []
        new: list[MessageMeta] = []
        for m in changes.changed:
            if m.uid > max_uid:
                new.append(m)
                continue
            seq = self.seq_of(m.uid)
            if seq is None or m.uid in self._pending:
                continue
            # A new MODSEQ alone (flags changed and changed back) can still change the
            # result of an updating search with a MODSEQ key.
            if self.watcher is not None and (self.flags[seq - 1] != m.flags
                                             or self.modseqs[seq - 1] != m.modseq):
                self.watcher.touched.add(m.uid)
            self.modseqs[seq - 1] = m.modseq
            self._note(m.flags)
            if self._own.get(m.uid) == m.modseq or self.flags[seq - 1] == m.flags:
                self.flags[seq - 1] = m.flags
                continue
            self.flags[seq - 1] = m.flags
            flag_updates.append((seq, m.uid))
        self._own.clear()
        gone = set(changes.expunged)
        for m in sorted(new, key=lambda m: m.uid):
            if m.uid not in gone:
                self._append(m)
        appended = len(self.uids) > exists_before
        if recent_from is not None:
            self._add_recent(max(recent_from, max_uid + 1),
                             recent_to - 1 if recent_to is not None else self.max_uid)
        self.modseq = max(self.modseq, changes.highestmodseq)
        expunged: list[int] = []
        vanished: list[int] = []
        if allow_expunge and self._pending:
            vanished = sorted(self._pending)
            expunged = self._remove(self._pending)
            self._pending = set()
            # Sequence numbers in `flag_updates` were computed before the removals.
            flag_updates = [(s, u) for s, u in ((self.seq_of(u), u) for _, u in flag_updates)
                            if s is not None]
        # Only expunges: the EXPUNGE responses say it all (RFC 3501 §7.4.1).
        exists = len(self.uids) if appended else None
        # RECENT accompanies EXISTS; an expunge lowers it implicitly (RFC 3501 §7.3.2).
        recent = self.count_recent()
        recent_changed = recent != self._recent_count
        self._recent_count = recent
        if not self._pending:
            self.synced_modseq = self.modseq
        return Update(tuple(expunged), exists,
                      recent if appended and (recent_changed or exists) else None,
                      tuple(flag_updates), tuple(vanished))

    def take_pending(self) -> Update:
        """Announce expunges that were held back during FETCH/STORE/SEARCH."""
        if not self._pending:
            return Update()
        vanished = tuple(sorted(self._pending))
        expunged = self._remove(self._pending)
        self._pending = set()
        self._recent_count = self.count_recent()
        self.synced_modseq = self.modseq
        return Update(tuple(expunged), vanished=vanished)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def is_pending(self, uid: int) -> bool:
        return uid in self._pending

    def _add_recent(self, lo: int, hi: int) -> None:
        if lo > hi:
            return
        if self._recent and self._recent[-1][1] + 1 >= lo:
            self._recent[-1] = (self._recent[-1][0], max(hi, self._recent[-1][1]))
        else:
            self._recent.append((lo, hi))
        if len(self._recent) > MAX_RECENT_RANGES:
            del self._recent[0]

    def _remove(self, uids: set[int]) -> list[int]:
        """Drop UIDs from the map; returns their seqs in descending order (each valid when
        sent in that order)."""
        seqs = sorted((s for s in (self.seq_of(u) for u in uids) if s is not None), reverse=True)
        if not seqs:
            return []
        if self.watcher is not None:
            self.watcher.removing([s - 1 for s in reversed(seqs)])
        if len(seqs) > 64:
            keep = [i for i in range(len(self.uids)) if self.uids[i] not in uids]
            self.uids = array("I", (self.uids[i] for i in keep))
            self.flags = [self.flags[i] for i in keep]
            self.sizes = array("Q", (self.sizes[i] for i in keep))
            self.dates = array("d", (self.dates[i] for i in keep))
            self.modseqs = array("Q", (self.modseqs[i] for i in keep))
            self.savedates = array("d", (self.savedates[i] for i in keep))
        else:
            for s in seqs:
                i = s - 1
                del self.uids[i]
                del self.flags[i]
                del self.sizes[i]
                del self.dates[i]
                del self.modseqs[i]
                del self.savedates[i]
        return seqs
