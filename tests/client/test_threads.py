"""Threading by References / In-Reply-To."""

from __future__ import annotations

from rmail.client.model import MessageSummary
from rmail.client.threads import thread


def m(uid: int, mid: str, refs: tuple[str, ...] = (), irt: str = "", ts: float | None = None) -> MessageSummary:
    return MessageSummary(uid, frozenset(), 10, "", f"s{uid}", message_id=mid, references=refs, in_reply_to=irt,
                          timestamp=float(uid if ts is None else ts))


def order(rows) -> list[tuple[int, int]]:
    return [(r.summary.uid, r.depth) for r in rows]


def test_replies_nest_under_parents_oldest_first() -> None:
    msgs = [m(1, "<a>"), m(2, "<b>", ("<a>",)), m(3, "<c>"), m(4, "<d>", ("<a>", "<b>")), m(5, "<e>", irt="<a>")]
    # Thread <a> has the newest activity (uid 5), so it comes first.
    assert order(thread(msgs)) == [(1, 0), (2, 1), (4, 2), (5, 1), (3, 0)]


def test_missing_parent_links_to_nearest_present_ancestor() -> None:
    msgs = [m(1, "<a>"), m(2, "<c>", ("<a>", "<b-missing>"))]
    assert order(thread(msgs)) == [(1, 0), (2, 1)]


def test_cycles_and_self_references_do_not_hang_or_drop() -> None:
    msgs = [m(1, "<a>", ("<b>",)), m(2, "<b>", ("<a>",)), m(3, "<c>", ("<c>",))]
    rows = thread(msgs)
    assert sorted(r.summary.uid for r in rows) == [1, 2, 3]


def test_duplicate_message_ids_keep_every_message() -> None:
    msgs = [m(1, "<a>"), m(2, "<a>"), m(3, "", irt="<a>")]
    assert sorted(r.summary.uid for r in thread(msgs)) == [1, 2, 3]


def test_large_flat_list_is_fast_enough_and_complete() -> None:
    msgs = [m(k, f"<{k}>", (f"<{k - 1}>",) if k % 10 else ()) for k in range(1, 5001)]
    rows = thread(msgs)
    assert len(rows) == 5000 and max(r.depth for r in rows) == 9
