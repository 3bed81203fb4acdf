"""Recent changes of busy mailboxes, in memory, for `SqliteMailStore.changes_since`.

Every session on a mailbox asks what changed after each change there, each from its own
MODSEQ: twenty sessions meant twenty reads of mostly the same rows, and a row object built
for each of them. A log per mailbox holds the rows changed after some MODSEQ (its floor);
the first session to ask after a commit brings it up to date with one read of what that
commit changed (rows with a MODSEQ above the log's), the others are answered from memory
with the same row objects. The log answers exactly what the database would: it is built
from the same rows, and it is brought up to date whenever anything was committed since
(the database's commit count, which counts other processes' commits too).

Pure data: the reads are the store's.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from operator import itemgetter
from typing import Iterable

from ..model import MessageMeta

__all__ = ["ChangeLogs", "MailboxLog"]

#: Entries kept per mailbox; past it the older half goes and the floor rises.
MAX_ENTRIES = 512
#: Mailboxes with a log; the least recently asked about goes first.
MAX_MAILBOXES = 128

_first = itemgetter(0)


class MailboxLog:
    """Changes of one mailbox after ``floor``, as of ``commits`` (the database's count)."""

    __slots__ = ("uidvalidity", "floor", "high", "uidnext", "recent_uid", "commits", "_modseqs", "_entries")

    def __init__(self, uidvalidity: int, high: int, uidnext: int, recent_uid: int, commits: int) -> None:
        self.uidvalidity = uidvalidity
        self.floor = high                 #: answers for any MODSEQ from here on
        self.high = high                  #: the mailbox's HIGHESTMODSEQ when last brought up to date
        self.uidnext = uidnext
        self.recent_uid = recent_uid
        self.commits = commits
        self._modseqs: list[int] = []     # ascending, one per entry
        #: (uid, the row as it is now, or None once expunged), in MODSEQ order
        self._entries: list[tuple[int, MessageMeta | None]] = []

    def add(self, high: int, uidnext: int, recent_uid: int, commits: int,
            changed: Iterable[MessageMeta], expunged: Iterable[tuple[int, int]]) -> None:
        """What changed after ``self.high`` up to ``high``: rows with their MODSEQ, and
        (uid, MODSEQ) of expunges."""
        merged = sorted([(m.modseq, m.uid, m) for m in changed] + [(ms, uid, None) for uid, ms in expunged],
                        key=_first)
        for modseq, uid, meta in merged:
            self._modseqs.append(modseq)
            self._entries.append((uid, meta))
        self.high, self.uidnext, self.recent_uid, self.commits = high, uidnext, recent_uid, commits
        if len(self._entries) > MAX_ENTRIES:
            cut = len(self._entries) - MAX_ENTRIES // 2
            self.floor = self._modseqs[cut - 1]
            del self._modseqs[:cut], self._entries[:cut]

    def since(self, modseq: int) -> tuple[tuple[MessageMeta, ...], tuple[int, ...]] | None:
        """Rows changed after ``modseq`` (by UID) and UIDs expunged after it (ascending), or
        None when ``modseq`` is below the floor."""
        if modseq < self.floor:
            return None
        if modseq >= self.high:
            return (), ()
        # Later entries of a UID replace earlier ones; an expunge is its last.
        latest = dict(self._entries[bisect_right(self._modseqs, modseq):])
        ordered = sorted(latest.items(), key=_first)
        return (tuple(meta for _, meta in ordered if meta is not None),
                tuple(uid for uid, meta in ordered if meta is None))


class ChangeLogs:
    """The logs of the mailboxes asked about lately (at most MAX_MAILBOXES)."""

    def __init__(self) -> None:
        self._logs: OrderedDict[int, MailboxLog] = OrderedDict()

    def get(self, mailbox_id: int) -> MailboxLog | None:
        log = self._logs.get(mailbox_id)
        if log is not None:
            self._logs.move_to_end(mailbox_id)
        return log

    def start(self, mailbox_id: int, log: MailboxLog) -> None:
        self._logs[mailbox_id] = log
        self._logs.move_to_end(mailbox_id)
        while len(self._logs) > MAX_MAILBOXES:
            self._logs.popitem(last=False)

    def drop(self, mailbox_id: int) -> None:
        self._logs.pop(mailbox_id, None)
