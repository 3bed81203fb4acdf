"""Hypothesis properties of SORT and THREAD over generated mailboxes (no I/O: the pure
`imap.sort` and `imap.thread` with a stand-in for the session's map and the store).

SORT: the answer is a permutation of the search's; each adjacent pair is ordered by the
criteria, the sequence number breaking ties; REVERSE reverses a criterion's order but not
the tie-break (RFC 5256 §3).

THREAD: every matching message appears exactly once, in a well-formed answer; REFERENCES puts
a message under its parent (per References or In-Reply-To) whenever the parent matched too,
and orders every set of siblings by sent date; ORDEREDSUBJECT makes one thread per base
subject, threads and their messages in sent-date order, no grandchildren.
"""

from __future__ import annotations

import asyncio
from array import array
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.core.collation import unicode_casemap
from rmail.server.core.mime.parse import parse_message
from rmail.server.core.mime.subject import base_subject
from rmail.server.core.mime.text import header_str
from rmail.server.core.model import MessageInfo
from rmail.server.core.slicing import Slicer
from rmail.server.imap import commands as c
from rmail.server.imap.encode import THREAD_CLOSE, THREAD_OPEN
from rmail.server.imap.results import ResultList
from rmail.server.imap.sort import sort, sort_keys
from rmail.server.imap.thread import thread

settings.register_profile("rmail", max_examples=150, deadline=None)
settings.load_profile("rmail")

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SUBJECTS = ["hello", "Hello", "Re: hello", "[list] hello", "hello (fwd)", "[fwd: hello]", "",
            "bye", "Fwd: Bye", "=?utf-8?q?Re:_caf=C3=A9?=", "CAFÉ", "Ré: café", "_", "[x]"]
# (header value, first mailbox, display name) — None: no such field
ADDRESSES = [
    (None, "", ""),
    ("alice@example.com", "alice", "alice@example.com"),
    ("Zed <alice@example.com>", "alice", "Zed"),
    ("=?utf-8?q?=C3=89mile?= <emile@x.org>", "emile", "Émile"),
    ('"Doe, John" <john@x.org>, amy@x.org', "john", "Doe, John"),
    ("team: bob@x.org, carl@x.org;", "team", "team"),
    ("Bob <bob@x.org>", "bob", "Bob"),
    ("d", "d", "d"),
    ("undisclosed-recipients:;", "undisclosed-recipients", "undisclosed-recipients"),
]


@dataclass
class Msg:
    subject: int
    sent: int | None            # minutes after T0 in the Date: field; None: no field
    bad_date: bool
    arrival: int                # minutes after T0
    size: int
    from_: int
    to: int
    cc: int


msgs = st.builds(Msg, st.integers(0, len(SUBJECTS) - 1), st.one_of(st.none(), st.integers(0, 5)),
                 st.booleans(), st.integers(0, 5), st.integers(100, 104),
                 *[st.integers(0, len(ADDRESSES) - 1)] * 3)


class View:
    """What the sort and thread code read of the session's map."""

    def __init__(self, n: int, arrivals: Sequence[float], sizes: Sequence[int]) -> None:
        self.uids = array("I", [10 * (i + 1) for i in range(n)])
        self.dates = array("d", arrivals)
        self.sizes = array("Q", sizes)


def _raw(headers: list[tuple[str, str | None]]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers if v is not None)
    return (head + "\r\nbody\r\n").encode()


def _info(uid: int, raw: bytes) -> MessageInfo:
    p = parse_message(raw)
    return MessageInfo(uid, p.envelope, p.bodystructure, p.body, p.header_text, p.subject,
                       p.from_, p.to, p.cc, p.date, p.message_id, p.in_reply_to, p.references,
                       p.preview)


def _loader(infos: dict[int, MessageInfo]):  # noqa: ANN202
    async def load(uids: list[int]) -> dict[int, MessageInfo]:
        return {u: infos[u] for u in uids if u in infos}
    return load


def _date_header(m: Msg) -> str | None:
    if m.sent is None:
        return None
    if m.bad_date:
        return "yesterday at noon"
    return (T0 + timedelta(minutes=m.sent)).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _sort_mailbox(ms: list[Msg]) -> tuple[View, dict[int, MessageInfo]]:
    view = View(len(ms), [(T0 + timedelta(minutes=m.arrival)).timestamp() for m in ms],
                [m.size for m in ms])
    infos = {}
    for i, m in enumerate(ms):
        raw = _raw([("Subject", SUBJECTS[m.subject] or None), ("Date", _date_header(m)),
                    ("From", ADDRESSES[m.from_][0]), ("To", ADDRESSES[m.to][0]),
                    ("Cc", ADDRESSES[m.cc][0])])
        infos[view.uids[i]] = _info(view.uids[i], raw)
    return view, infos


def _model_value(key: str, m: Msg) -> Any:
    """The criterion's value for a message, from the generator's own model."""
    if key == "ARRIVAL":
        return m.arrival
    if key == "SIZE":
        return m.size
    if key == "DATE":
        return m.sent if m.sent is not None and not m.bad_date else m.arrival
    if key == "SUBJECT":
        return unicode_casemap(base_subject(header_str(SUBJECTS[m.subject].encode())).text)
    field = {"FROM": m.from_, "TO": m.to, "CC": m.cc, "DISPLAYFROM": m.from_,
             "DISPLAYTO": m.to}[key]
    _, mailbox, display = ADDRESSES[field]
    return unicode_casemap(display if key.startswith("DISPLAY") else mailbox)


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


criteria = st.lists(st.builds(c.SortCriterion, st.sampled_from(sorted(c.SORT_KEYS)),
                              st.booleans()), min_size=1, max_size=3)


@given(st.lists(msgs, max_size=25), criteria, st.data())
def test_sort_orders_the_search_result(ms: list[Msg], crits: list[c.SortCriterion],
                                       data: st.DataObject) -> None:
    view, infos = _sort_mailbox(ms)
    hits = sorted(data.draw(st.sets(st.integers(0, max(len(ms) - 1, 0)), max_size=len(ms)))
                  if ms else [])
    got = _run(sort(crits, hits, view, slicer=Slicer(), load_info=_loader(infos)))
    assert sorted(got) == hits  # a permutation of the search result

    def before(a: int, b: int) -> bool:
        for crit in crits:
            va, vb = _model_value(crit.key, ms[a]), _model_value(crit.key, ms[b])
            if va != vb:
                return (va < vb) != crit.reverse
        return a < b  # the sequence number, never reversed
    for a, b in zip(got, got[1:]):
        assert before(a, b), (crits, [(i, ms[i]) for i in (a, b)])


@given(st.lists(msgs, min_size=1, max_size=25), st.sampled_from(sorted(c.SORT_KEYS)))
def test_reverse_reverses_the_key_not_the_tiebreak(ms: list[Msg], key: str) -> None:
    view, infos = _sort_mailbox(ms)
    hits = list(range(len(ms)))
    forward = _run(sort([c.SortCriterion(key)], hits, view, slicer=Slicer(),
                        load_info=_loader(infos)))
    backward = _run(sort([c.SortCriterion(key, reverse=True)], hits, view, slicer=Slicer(),
                         load_info=_loader(infos)))
    runs: list[list[int]] = []
    for i in forward:
        if runs and _model_value(key, ms[runs[-1][0]]) == _model_value(key, ms[i]):
            runs[-1].append(i)
        else:
            runs.append([i])
    assert backward == [i for run in reversed(runs) for i in run]


@given(st.lists(msgs, max_size=25), criteria, st.data())
def test_sort_keys_place_later_matches_where_sort_would(ms: list[Msg],
                                                         crits: list[c.SortCriterion],
                                                         data: st.DataObject) -> None:
    """CONTEXT=SORT (RFC 5267 §4.3.3): a result made from some messages' keys, then given
    the others' keys computed separately (as messages that start matching later), holds the
    messages in SORT's order: keys compare across calls (REVERSE strings too) and ties by UID
    agree with SORT's tie by sequence number."""
    view, infos = _sort_mailbox(ms)
    everything = list(range(len(ms)))
    first = sorted(data.draw(st.sets(st.sampled_from(everything))) if ms else [])
    later = [i for i in everything if i not in first]

    async def keys(indexes: list[int]) -> list[Any]:
        return await sort_keys(crits, indexes, view, slicer=Slicer(), load_info=_loader(infos))

    result = ResultList([view.uids[i] for i in first], _run(keys(first)))
    later_keys = dict(zip((view.uids[i] for i in later), _run(keys(later))))
    result.add(list(later_keys), later_keys.__getitem__)
    expected = _run(sort(crits, everything, view, slicer=Slicer(), load_info=_loader(infos)))
    assert result.uids() == [view.uids[i] for i in expected]


# -- THREAD --------------------------------------------------------------------------------

@dataclass
class Node:
    msg: int | None
    children: list[Node]


def parse_tokens(tokens: list[int]) -> list[Node]:
    """The THREAD answer's tree (RFC 5256 §5 thread-list), checking its grammar on the way."""
    pos = 0

    def thread_list() -> Node:
        nonlocal pos
        assert tokens[pos] == THREAD_OPEN
        pos += 1
        top: Node | None = None
        last: Node | None = None
        while tokens[pos] >= 0:  # thread-members: a chain, parent before child
            node = Node(tokens[pos], [])
            if last is None:
                top = node
            else:
                last.children.append(node)
            last = node
            pos += 1
        nested = []
        while tokens[pos] == THREAD_OPEN:
            nested.append(thread_list())
        assert tokens[pos] == THREAD_CLOSE
        pos += 1
        if last is None:  # thread-nested alone: a parent that is not in the answer
            assert len(nested) >= 2, "thread-nested needs two thread-lists"
            return Node(None, nested)
        assert len(nested) != 1, "a single child belongs in the chain"
        last.children.extend(nested)
        assert top is not None
        return top

    roots = []
    while pos < len(tokens):
        roots.append(thread_list())
    return roots


def walk(roots: list[Node]) -> list[tuple[Node, Node | None]]:
    out: list[tuple[Node, Node | None]] = []
    stack: list[tuple[Node, Node | None]] = [(r, None) for r in roots]
    while stack:
        node, parent = stack.pop()
        out.append((node, parent))
        stack.extend((child, node) for child in node.children)
    return out


@dataclass
class TMsg:
    parent: int | None          # generated parent (any message, no cycles)
    style: int                  # 0: full References, 1: truncated References, 2: In-Reply-To
    subject: int
    sent: int | None
    arrival: int


def forests(n: int) -> st.SearchStrategy[list[TMsg]]:
    # A parent's position is drawn from a random permutation's earlier part, so the parent
    # may have a higher sequence number than its child, yet no cycle is possible.
    return st.permutations(range(n)).flatmap(lambda order: st.tuples(*[
        st.builds(TMsg, st.one_of(st.none(), st.sampled_from(order[:order.index(i)]))
                  if order.index(i) else st.none(),
                  st.integers(0, 2), st.integers(0, len(SUBJECTS) - 1),
                  st.one_of(st.none(), st.integers(0, 4)), st.integers(0, 4))
        for i in range(n)]).map(list))


def _thread_mailbox(ms: list[TMsg], *, unique_ids: bool = True,
                    ) -> tuple[View, dict[int, MessageInfo]]:
    view = View(len(ms), [(T0 + timedelta(minutes=m.arrival)).timestamp() for m in ms],
                [100] * len(ms))
    infos = {}
    for i, m in enumerate(ms):
        chain = []
        p = m.parent
        while p is not None:
            chain.append(f"<m{p}@x>")
            p = ms[p].parent
        chain.reverse()
        refs = irt = None
        if chain and m.style == 0:
            refs = " ".join(chain)
        elif chain and m.style == 1:
            refs = " ".join(chain[-2:])
        elif chain:
            irt = chain[-1]
        own = f"<m{i}@x>" if unique_ids else f"<m{i % 3}@x>"
        date = (None if m.sent is None else
                (T0 + timedelta(minutes=m.sent)).strftime("%a, %d %b %Y %H:%M:%S +0000"))
        raw = _raw([("Message-ID", own), ("References", refs), ("In-Reply-To", irt),
                    ("Subject", SUBJECTS[m.subject] or None), ("Date", date)])
        infos[view.uids[i]] = _info(view.uids[i], raw)
    return view, infos


def _sent(m: TMsg) -> int:
    return m.sent if m.sent is not None else m.arrival


def _first_key(node: Node, ms: list[TMsg]) -> tuple[int, int]:
    while node.msg is None:
        node = node.children[0]
    return _sent(ms[node.msg]), node.msg


@given(st.integers(0, 14).flatmap(lambda n: st.tuples(forests(n), st.data())))
def test_references_threads(case: tuple[list[TMsg], st.DataObject]) -> None:
    ms, data = case
    view, infos = _thread_mailbox(ms)
    hits = sorted(data.draw(st.sets(st.integers(0, max(len(ms) - 1, 0)))) if ms else [])
    tokens = _run(thread("REFERENCES", hits, view, slicer=Slicer(), load_info=_loader(infos)))
    roots = parse_tokens(tokens)
    pairs = walk(roots)
    shown = [node.msg for node, _ in pairs if node.msg is not None]
    assert sorted(shown) == hits  # every match exactly once
    parent_of = {node.msg: parent for node, parent in pairs if node.msg is not None}
    for i in hits:
        p = ms[i].parent
        if p is not None and p in parent_of:  # the parent matched too: it is the parent
            assert parent_of[i] is not None and parent_of[i].msg == p
    for siblings in [roots] + [node.children for node, _ in pairs]:
        keys = [_first_key(n, ms) for n in siblings]
        assert keys == sorted(keys)  # sent date, then sequence number


@given(st.lists(st.builds(TMsg, st.none(), st.just(0), st.integers(0, len(SUBJECTS) - 1),
                          st.one_of(st.none(), st.integers(0, 4)), st.integers(0, 4)),
                max_size=20), st.sampled_from(["REFERENCES", "ORDEREDSUBJECT"]))
def test_every_message_once_with_duplicate_ids(ms: list[TMsg], algorithm: str) -> None:
    view, infos = _thread_mailbox(ms, unique_ids=False)
    hits = list(range(len(ms)))
    tokens = _run(thread(algorithm, hits, view, slicer=Slicer(), load_info=_loader(infos)))
    shown = [node.msg for node, _ in walk(parse_tokens(tokens)) if node.msg is not None]
    assert sorted(shown) == hits


@given(st.lists(st.builds(TMsg, st.none(), st.just(0), st.integers(0, len(SUBJECTS) - 1),
                          st.one_of(st.none(), st.integers(0, 4)), st.integers(0, 4)),
                max_size=25), st.data())
def test_orderedsubject(ms: list[TMsg], data: st.DataObject) -> None:
    view, infos = _thread_mailbox(ms)
    hits = sorted(data.draw(st.sets(st.integers(0, max(len(ms) - 1, 0)))) if ms else [])
    tokens = _run(thread("ORDEREDSUBJECT", hits, view, slicer=Slicer(), load_info=_loader(infos)))
    roots = parse_tokens(tokens)

    def subject(i: int) -> str:
        return unicode_casemap(base_subject(header_str(SUBJECTS[ms[i].subject].encode())).text)
    threads = []
    for root in roots:
        assert root.msg is not None
        assert all(not child.children for child in root.children)  # no grandchildren
        threads.append([root.msg] + [child.msg for child in root.children])
    assert sorted(i for t in threads for i in t) == hits
    assert len({subject(t[0]) for t in threads}) == len(threads)  # one thread per subject
    for t in threads:
        assert {subject(i) for i in t} == {subject(t[0])}
        keys = [(_sent(ms[i]), i) for i in t]
        assert keys == sorted(keys)
    firsts = [(_sent(ms[t[0]]), t[0]) for t in threads]
    assert firsts == sorted(firsts)
