"""The selected-mailbox view (pure): when expunges may be told, flag news, \\Recent."""

from __future__ import annotations

from datetime import datetime, timezone

from rmail.server.core.model import Mailbox, MailboxChanges, MessageMeta
from rmail.server.imap.selected import InvalidSequence, SelectedMailbox

import pytest

T = datetime(2024, 3, 5, tzinfo=timezone.utc)


def meta(uid: int, modseq: int = 1, *flags: str) -> MessageMeta:
    return MessageMeta(uid, modseq, frozenset(flags), T, 100 + uid, f"b{uid}", T)


def view(uids: list[int], recent_from: int | None = None) -> SelectedMailbox:
    v = SelectedMailbox(Mailbox(1, 1, "INBOX", None, 7, max(uids, default=0) + 1, 5),
                        readonly=False)
    v.load([meta(u) for u in uids], recent_from=recent_from)
    return v


def test_expunge_held_back_during_fetch_then_told() -> None:
    v = view([1, 2, 3, 4])
    held = v.apply(MailboxChanges(6, 5, (), (2, 4)), allow_expunge=False)
    assert not held and v.exists == 4 and v.has_pending
    assert v.take_pending().expunged == (4, 2)   # descending: each number valid when sent
    assert list(v.uids) == [1, 3]


def test_new_messages_flags_and_recent() -> None:
    v = view([1, 2], recent_from=2)
    assert v.count_recent() == 1
    update = v.apply(MailboxChanges(8, 5, (meta(1, 7, "\\Seen"), meta(3, 8), meta(4, 8)), ()),
                     allow_expunge=True, recent_from=3)
    assert update.exists == 4 and update.recent == 3 and update.flags == ((1, 1),)
    assert v.is_recent(4) and not v.is_recent(1)


def test_own_store_is_not_echoed() -> None:
    v = view([1, 2])
    v.set_flags([meta(2, 9, "\\Flagged")])
    assert not v.apply(MailboxChanges(9, 3, (meta(2, 9, "\\Flagged"),), ()), allow_expunge=True)


def test_flag_news_renumbered_after_expunge() -> None:
    v = view([1, 2, 3])
    update = v.apply(MailboxChanges(9, 4, (meta(3, 9, "\\Seen"),), (1,)), allow_expunge=True)
    assert update.expunged == (1,) and update.flags == ((2, 3),) and update.exists is None


def test_resolve_sequence_and_uid_sets() -> None:
    v = view([3, 5, 9])
    assert list(v.resolve([(2, 3)], uid=False)) == [1, 2]
    assert list(v.resolve([(4, 9)], uid=True)) == [1, 2]
    with pytest.raises(InvalidSequence):
        list(v.resolve([(1, 4)], uid=False))


def test_keywords_go_stale_only_when_a_new_one_enters_the_map() -> None:
    v = SelectedMailbox(Mailbox(1, 1, "INBOX", None, 7, 3, 5), readonly=False)
    v.load([meta(1, 1, "$A"), meta(2, 1, "\\Seen", "$B")], recent_from=None)
    assert v.keywords() == ["$A", "$B"] and not v.keywords_stale  # SELECT announced them
    # Known keywords and system flags, from this session or another: nothing to announce.
    v.set_flags([meta(1, 2, "$A", "$B", "\\Flagged")])
    v.apply(MailboxChanges(3, 3, (meta(2, 3, "$A"),), ()), allow_expunge=True)
    assert not v.keywords_stale
    # A new keyword through another session's change, a new message, or the session's STORE.
    v.apply(MailboxChanges(4, 3, (meta(2, 4, "$C"),), ()), allow_expunge=True)
    assert v.keywords_stale and v.keywords() == ["$A", "$B", "$C"] and not v.keywords_stale
    v.apply(MailboxChanges(5, 4, (meta(3, 5, "$D"),), ()), allow_expunge=True)
    assert v.keywords() == ["$A", "$B", "$C", "$D"]
    v.set_flags([meta(1, 6, "$E")])
    assert v.keywords_stale and v.keywords()[-1] == "$E"
    # Expunging every message that had a keyword does not shrink the list (as Dovecot).
    v.expunge_now([1, 2, 3])
    assert v.keywords() == ["$A", "$B", "$C", "$D", "$E"] and not v.keywords_stale


def test_keywords_of_a_message_gone_before_it_was_seen_are_not_announced() -> None:
    v = view([1])
    v.keywords()
    v.apply(MailboxChanges(4, 3, (meta(2, 4, "$Gone"),), (2,)), allow_expunge=False)
    assert not v.keywords_stale and v.keywords() == []


def test_recent_never_spreads_to_messages_other_sessions_claimed() -> None:
    """RFC 3501 §2.3.2: \\Recent goes to one session only. Sessions sharing a busy mailbox
    claim every other message; past the bound on remembered ranges the oldest claims are
    forgotten (the message just stops being \\Recent here), never merged across the UIDs
    in between, which other sessions hold (imaptest: "\\Recent flag in multiple sessions")."""
    v = view([])
    for uid in range(1, 200, 2):      # this session claims the odd UIDs, another the even
        v.apply(MailboxChanges(uid + 1, uid + 2, (meta(uid, uid + 1), meta(uid + 1, uid + 1)), ()),
                allow_expunge=True, recent_from=uid, recent_to=uid + 1)
    assert not any(v.is_recent(uid) for uid in range(2, 201, 2))
    assert all(v.is_recent(uid) for uid in range(199 - 2 * 20, 200, 2))   # the latest kept
