"""THREAD (RFC 5256 §3): the ORDEREDSUBJECT and REFERENCES algorithms over matching messages.

Both take the 0-based indexes of the messages a search matched (ascending, so an index's
order is its sequence number's) and return the answer as a flat token stream for
`encode.thread_response`: message indexes, `THREAD_OPEN` and `THREAD_CLOSE`. The handler turns
indexes into sequence numbers or UIDs.

Sent dates (RFC 5256 §2.2) order messages, the sequence number breaking ties; base subjects
(§2.1) are compared as i;unicode-casemap keys (§7), so "Re: Hello" and "HELLO" share one.

ORDEREDSUBJECT sorts by (base subject, sent date), cuts the list where the subject changes
and orders the threads by their first message; the second and later messages of a thread are
children of the first. REFERENCES follows §3 step by step (the comments carry the step
numbers); its msg-ids are normalised (quotes around the local part removed, whitespace
dropped) and compared case-sensitively.

Every loop here runs over lists and explicit stacks, never recursion: a thread ten thousand
messages deep is one more list. Work is proportional to the messages and their references
(a loop check walks up from the new parent only when the new child already has children), the
store's fields are read a chunk at a time and only the few values threading needs are kept
(from bounded stretches of each field: `ID_FIELD_CHARS`, `REFERENCES_CHARS`, `sort.subject_key`),
and the event loop is given back every few milliseconds (`Slicer`, with the command's budget).
This module does no I/O of its own: the handler passes a loader for the stored fields.
"""

from __future__ import annotations

import re
from collections import deque
from typing import AsyncIterator, Final, Sequence

from rmail.server.core.model import MessageInfo
from rmail.server.core.slicing import Slicer

from .encode import THREAD_CLOSE, THREAD_OPEN
from .search import CHUNK, InfoLoader
from .selected import SelectedMailbox
from .sort import sent_date, sorted_sliced, subject_key

__all__ = ["ID_FIELD_CHARS", "MAX_REFERENCES", "REFERENCES_CHARS", "msg_ids", "thread"]

#: References used per message: the last ones of a longer References field (the nearest
#: ancestors). Bounds the dummy nodes a message can add; RFC 5322 §3.6.4 expects agents to
#: trim long fields, and real ones stay far below this.
MAX_REFERENCES: Final = 1000

_MSG_ID: Final = re.compile(r"<([^<>]*)>")
_QUOTED_PAIR: Final = re.compile(r"\\(.)", re.S)
_WSP: Final = re.compile(r"[ \t\r\n]+")
#: Characters of a Message-ID or In-Reply-To field searched for its first msg-id, and of the
#: end of a References field searched for its last `MAX_REFERENCES` msg-ids: the store keeps
#: these fields whole, and one message must not hold the loop for long.
ID_FIELD_CHARS: Final = 4096
REFERENCES_CHARS: Final = 128 * MAX_REFERENCES
#: A node's `msg` when it stands for a message that was not searched (a dummy, §3 step 1.A).
_DUMMY: Final = -1


def _normalize(inner: str) -> str | None:
    """The msg-id between ``<`` and ``>`` in one spelling (§3 REFERENCES: ``<"x"@y>`` is
    ``<x@y>``), or None when it is not ``id-left@id-right``."""
    left, at, right = inner.rpartition("@")
    if not at:
        return None
    left = left.strip(" \t\r\n")
    if len(left) >= 2 and left[0] == '"' and left[-1] == '"':
        left = _QUOTED_PAIR.sub(r"\1", left[1:-1])
    else:
        left = _WSP.sub("", left)
    right = _WSP.sub("", right)
    if not left or not right:
        return None
    return f"{left}@{right}"


def msg_ids(value: str, limit: int | None = None) -> list[str]:
    """The valid msg-ids in a Message-ID, In-Reply-To or References value, in order; with
    `limit`, only the last `limit` of them."""
    found: deque[str] = deque(maxlen=limit)
    for m in _MSG_ID.finditer(value):
        normal = _normalize(m.group(1))
        if normal is not None:
            found.append(normal)
    return list(found)


def _first_id(value: str) -> list[str]:
    """The first valid msg-id of a Message-ID or In-Reply-To value, as a list of 0 or 1."""
    for m in _MSG_ID.finditer(value, 0, ID_FIELD_CHARS):
        normal = _normalize(m.group(1))
        if normal is not None:
            return [normal]
    return []


def _reference_ids(info: MessageInfo) -> list[str]:
    """§3: the References field's msg-ids, else the first valid one of In-Reply-To."""
    refs = msg_ids(info.references[-REFERENCES_CHARS:], MAX_REFERENCES) if info.references \
        else []
    if not refs and info.in_reply_to:
        return _first_id(info.in_reply_to)
    return refs


class _Node:
    """A message (its position among the matches) or a dummy, in a thread tree."""

    __slots__ = ("msg", "parent", "children")

    def __init__(self, msg: int = _DUMMY) -> None:
        self.msg = msg
        self.parent: _Node | None = None
        self.children: list[_Node] = []


def _link(parent: _Node, child: _Node) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: _Node) -> None:
    parent = child.parent
    if parent is not None:
        parent.children.remove(child)
        child.parent = None


def _loops(parent: _Node, child: _Node) -> bool:
    """Whether making `parent` the parent of `child` (which has none) would make a loop:
    `parent` is `child` or one of its descendants."""
    if parent is child:
        return True
    if not child.children:
        return False
    node: _Node | None = parent
    while node is not None:
        if node is child:
            return True
        node = node.parent
    return False


class _Run:
    """One THREAD command's data: per matching message its sent date and base subject key
    (and for REFERENCES whether it is a reply or forward), indexed by position in `hits`."""

    def __init__(self, hits: Sequence[int], view: SelectedMailbox, slicer: Slicer,
                 load_info: InfoLoader) -> None:
        self.hits = hits
        self.view = view
        self.slicer = slicer
        self.load_info = load_info
        self.dates: list[float] = []
        self.subjects: list[str] = []
        self.replies: list[bool] = []

    async def infos(self) -> AsyncIterator[list[tuple[int, MessageInfo | None]]]:
        """The matching messages' stored fields (None: expunged meanwhile), a chunk at a time,
        in sequence order."""
        uids, hits = self.view.uids, self.hits
        for start in range(0, len(hits), CHUNK):
            positions = range(start, min(start + CHUNK, len(hits)))
            infos = await self.slicer.wait(self.load_info([uids[hits[k]] for k in positions]))
            yield [(k, infos.get(uids[hits[k]])) for k in positions]

    def note(self, k: int, info: MessageInfo | None) -> None:
        """Keep what threading needs of message `k` (`info` None: expunged meanwhile)."""
        i = self.hits[k]
        self.dates.append(sent_date(info, self.view.dates[i]))
        base = subject_key(info.subject if info is not None else "")
        self.subjects.append(base.text)
        self.replies.append(base.reply_or_forward)

    def key(self, node: _Node) -> tuple[float, int]:
        """Sent date, then sequence: a dummy sorts as its first child (§3 steps 4 and 6)."""
        while node.msg == _DUMMY:
            node = node.children[0]
        return self.dates[node.msg], node.msg

    def subject(self, node: _Node) -> str:
        """§3 step 5.B.i: a thread's subject, a dummy's from its first child."""
        while node.msg == _DUMMY:
            node = node.children[0]
        return self.subjects[node.msg]

    async def sort_nodes(self, nodes: list[_Node]) -> list[_Node]:
        if len(nodes) < 2:
            return nodes
        rows = await sorted_sliced([(*self.key(n), n) for n in nodes], self.slicer)
        return [row[-1] for row in rows]


async def _ordered_subject(run: _Run) -> list[int]:
    """ORDEREDSUBJECT (§3): threads of equal base subject, by their first message's date."""
    slicer = run.slicer
    async for chunk in run.infos():
        for k, info in chunk:
            run.note(k, info)
            if slicer.due():
                await slicer.pause()
    rows = await sorted_sliced([(run.subjects[k], run.dates[k], k)
                                for k in range(len(run.hits))], slicer)
    threads: list[tuple[float, int, list[int]]] = []
    for subject, date, k in rows:
        if threads and run.subjects[threads[-1][1]] == subject:
            threads[-1][2].append(k)
        else:
            threads.append((date, k, [k]))
    threads = await sorted_sliced(threads, slicer)
    hits = run.hits
    tokens: list[int] = []
    for _, _, members in threads:
        tokens += (THREAD_OPEN, hits[members[0]])
        if len(members) == 2:
            tokens.append(hits[members[1]])
        else:
            for k in members[1:]:  # siblings under the first message
                tokens += (THREAD_OPEN, hits[k], THREAD_CLOSE)
        tokens.append(THREAD_CLOSE)
        if slicer.due():
            await slicer.pause()
    return tokens


async def _by_references(run: _Run) -> list[int]:
    """REFERENCES (§3 steps 1-6)."""
    slicer = run.slicer
    table: dict[str, _Node] = {}
    nodes: list[_Node] = []
    # (1) Link each message to its references, in sequence order.
    async for chunk in run.infos():
        for k, info in chunk:
            run.note(k, info)
            own = _first_id(info.message_id) if info is not None else []
            node = table.get(own[0]) if own else None
            if node is not None and node.msg == _DUMMY:
                node.msg = k  # the message a reference was waiting for
            else:
                # No msg-id, or a duplicate of an earlier message's: a unique one (1.A).
                node = _Node(k)
                nodes.append(node)
                if own and own[0] not in table:
                    table[own[0]] = node
            prev: _Node | None = None
            for ref in _reference_ids(info) if info is not None else ():
                ref_node = table.get(ref)
                if ref_node is None:
                    ref_node = table[ref] = _Node()
                    nodes.append(ref_node)
                # (1.A) Keep an existing parent (References may have been truncated).
                if prev is not None and ref_node.parent is None and not _loops(prev, ref_node):
                    _link(prev, ref_node)
                prev = ref_node
                if slicer.due():
                    await slicer.pause()
            # (1.B) The last reference is the parent, replacing any parent found so far.
            _unlink(node)
            if prev is not None and not _loops(prev, node):
                _link(prev, node)
            if slicer.due():
                await slicer.pause()
    del table
    # (2) The messages without a parent are the roots.
    roots = [n for n in nodes if n.parent is None]
    del nodes
    # (3) Prune dummies, children before their parents.
    order = await _preorder(roots, slicer)
    for node in reversed(order):
        if node.children:
            node.children = _prune(node.children, node, at_root=False)
    roots = _prune(roots, None, at_root=True)
    await slicer.tick()
    # (4) Sort the roots by sent date (a dummy's children first, to find its first child).
    for root in roots:
        if root.msg == _DUMMY:
            root.children = await run.sort_nodes(root.children)
    roots = await run.sort_nodes(roots)
    # (5) Gather roots with the same base subject.
    roots = await _merge_subjects(run, roots)
    # (6) Sort every set of siblings, the deepest first, then the roots.
    order = await _preorder(roots, slicer)
    for node in reversed(order):
        if len(node.children) > 1:
            node.children = await run.sort_nodes(node.children)
    roots = await run.sort_nodes(roots)
    return await _tokens(run, roots)


async def _preorder(roots: list[_Node], slicer: Slicer) -> list[_Node]:
    """Every node under `roots`, each before its children."""
    order: list[_Node] = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(node.children))
        if slicer.due():
            await slicer.pause()
    return order


def _prune(siblings: list[_Node], parent: _Node | None, *, at_root: bool) -> list[_Node]:
    """§3 step 3 on one set of siblings whose own children are pruned already: a dummy
    without children goes; a dummy with children gives them to this level, except at the
    root where it stays when it has more than one."""
    out: list[_Node] = []
    pending = list(reversed(siblings))
    while pending:
        node = pending.pop()
        if node.msg == _DUMMY:
            if not node.children:
                continue
            if not at_root or len(node.children) == 1:
                for child in reversed(node.children):
                    child.parent = parent
                    pending.append(child)
                node.children = []
                continue
        out.append(node)
    return out


async def _merge_subjects(run: _Run, roots: list[_Node]) -> list[_Node]:
    """§3 step 5: one thread per base subject among the roots, where the rules allow."""
    slicer = run.slicer
    replies = run.replies

    def is_reply(node: _Node) -> bool:
        return node.msg != _DUMMY and replies[node.msg]

    # (5.B) The subject table: per subject the root that others join.
    table: dict[str, _Node] = {}
    for root in roots:
        subject = run.subject(root)
        if not subject:
            continue
        held = table.get(subject)
        if held is None:
            table[subject] = root
        elif held.msg != _DUMMY and (root.msg == _DUMMY or (is_reply(held) and not is_reply(root))):
            table[subject] = root
        if slicer.due():
            await slicer.pause()
    # (5.C) Merge each root into its subject's entry.
    added: list[_Node] = []
    for root in roots:
        if root.parent is not None or (root.msg == _DUMMY and not root.children):
            continue  # merged already
        subject = run.subject(root)
        if not subject:
            continue
        held = table[subject]
        if held is root:
            continue
        if held.msg == _DUMMY and root.msg == _DUMMY:
            for child in root.children:
                _link(held, child)
            root.children = []
        elif held.msg == _DUMMY or (is_reply(root) and not is_reply(held)):
            _link(held, root)
        else:
            dummy = _Node()
            _link(dummy, held)
            _link(dummy, root)
            table[subject] = dummy
            added.append(dummy)
        if slicer.due():
            await slicer.pause()
    return [n for n in roots + added
            if n.parent is None and (n.msg != _DUMMY or n.children)]


async def _tokens(run: _Run, roots: list[_Node]) -> list[int]:
    """The thread-lists of `roots` (RFC 5256 §5 thread-list) as tokens of message indexes:
    a message's only child follows it in the same list, several children each open a list."""
    hits = run.hits
    tokens: list[int] = []
    stack: list[_Node | int] = []
    for root in reversed(roots):
        stack += (THREAD_CLOSE, root, THREAD_OPEN)
    while stack:
        item = stack.pop()
        if isinstance(item, int):
            tokens.append(item)
            continue
        node = item
        if node.msg != _DUMMY:
            tokens.append(hits[node.msg])
            while len(node.children) == 1:
                node = node.children[0]
                tokens.append(hits[node.msg])
        for child in reversed(node.children):
            stack += (THREAD_CLOSE, child, THREAD_OPEN)
        if run.slicer.due():
            await run.slicer.pause()
    return tokens


async def thread(algorithm: str, hits: Sequence[int], view: SelectedMailbox, *,
                 slicer: Slicer, load_info: InfoLoader) -> list[int]:
    """The THREAD answer for the message indexes `hits` (ascending) as a token stream of
    message indexes and `THREAD_OPEN`/`THREAD_CLOSE`.

    Args:
        algorithm: "ORDEREDSUBJECT" or "REFERENCES".

    Raises:
        LimitExceeded: the slicer's CPU budget ran out first.
    """
    run = _Run(hits, view, slicer, load_info)
    if algorithm == "ORDEREDSUBJECT":
        return await _ordered_subject(run)
    return await _by_references(run)
