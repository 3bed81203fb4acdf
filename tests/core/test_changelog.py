"""The SQLite store's per-mailbox change log (core/sqlite/changelog.py) against what the
database would answer: for any history of changes and expunges, fed to the log in refreshes
of any size, and any MODSEQ from the log's floor on, ``since`` equals the database's rows."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.core.model import MessageMeta
from rmail.server.core.sqlite import changelog
from rmail.server.core.sqlite.changelog import ChangeLogs, MailboxLog

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def meta(uid: int, modseq: int) -> MessageMeta:
    return MessageMeta(uid, modseq, frozenset({f"k{modseq}"}), EPOCH, 10, f"b{uid}", EPOCH)


class Database:
    """The rows as the messages and expunged tables hold them."""

    def __init__(self) -> None:
        self.high = 1
        self.uidnext = 1
        self.rows: dict[int, MessageMeta] = {}
        self.expunged: dict[int, int] = {}

    def step(self, op: tuple[str, int]) -> None:
        kind, pick = op
        self.high += 1
        if kind == "append" or not self.rows:
            self.rows[self.uidnext] = meta(self.uidnext, self.high)
            self.uidnext += 1
            return
        uid = sorted(self.rows)[pick % len(self.rows)]
        if kind == "flag":
            self.rows[uid] = meta(uid, self.high)
        else:
            del self.rows[uid]
            self.expunged[uid] = self.high

    def since(self, modseq: int) -> tuple[tuple[MessageMeta, ...], tuple[int, ...]]:
        return (tuple(m for _, m in sorted(self.rows.items()) if m.modseq > modseq),
                tuple(sorted(u for u, ms in self.expunged.items() if ms > modseq)))

    def refresh(self, log: MailboxLog) -> None:
        log.add(self.high, self.uidnext, 1, log.commits + 1,
                [m for m in self.rows.values() if m.modseq > log.high],
                [(u, ms) for u, ms in self.expunged.items() if ms > log.high])


OPS = st.tuples(st.sampled_from(["append", "flag", "flag", "expunge"]), st.integers(0, 1000))


@settings(max_examples=300, deadline=None)
@given(before=st.lists(OPS, max_size=20), rounds=st.lists(st.lists(OPS, max_size=30), max_size=12),
       asks=st.lists(st.integers(0, 400), min_size=1, max_size=8), small=st.booleans())
def test_the_log_answers_as_the_database_does(before, rounds, asks, small) -> None:  # noqa: ANN001
    db = Database()
    for op in before:
        db.step(op)
    log = MailboxLog(7, db.high, db.uidnext, 1, 0)
    old_max = changelog.MAX_ENTRIES
    changelog.MAX_ENTRIES = 16 if small else old_max      # trimming often, or never
    try:
        for ops in rounds:
            for op in ops:
                db.step(op)
            db.refresh(log)
            assert (log.high, log.uidnext) == (db.high, db.uidnext)
            for ask in asks:
                modseq = min(ask, db.high + 2)
                found = log.since(modseq)
                if modseq < log.floor:
                    assert found is None
                else:
                    assert found == db.since(modseq)
    finally:
        changelog.MAX_ENTRIES = old_max


def test_trimming_raises_the_floor_and_keeps_what_is_above_it() -> None:
    log = MailboxLog(1, 10, 1, 1, 0)
    for n in range(changelog.MAX_ENTRIES + 1):
        log.add(11 + n, n + 2, 1, n + 1, [meta(n + 1, 11 + n)], [])
    assert log.floor > 10
    assert log.since(log.floor - 1) is None
    changed, expunged = log.since(log.floor)  # type: ignore[misc]
    assert [m.modseq for m in changed] == list(range(log.floor + 1, log.high + 1)) and expunged == ()


def test_the_least_recently_asked_mailbox_goes_first() -> None:
    logs = ChangeLogs()
    for mailbox_id in range(changelog.MAX_MAILBOXES):
        logs.start(mailbox_id, MailboxLog(1, 1, 1, 1, 0))
    assert logs.get(0) is not None                    # asked: now the most recent
    logs.start(10_000, MailboxLog(1, 1, 1, 1, 0))
    assert logs.get(1) is None and logs.get(0) is not None and logs.get(10_000) is not None
    logs.drop(0)
    assert logs.get(0) is None
