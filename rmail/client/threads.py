"""Conversation threading by References / In-Reply-To (pure; RFC 5256 §2.2 REFERENCES, simplified).

Only messages present in the list are linked: a message's parent is the nearest ancestor in its
References chain (else In-Reply-To) that is present. No subject grouping, so unrelated mails
with equal subjects stay apart. Cycles created by bad headers are broken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rmail.client.model import MessageSummary


@dataclass(frozen=True, slots=True)
class ThreadRow:
    """One message in thread order with its depth below the thread root."""

    summary: MessageSummary
    depth: int


def _parent(m: MessageSummary, by_id: dict[str, MessageSummary]) -> MessageSummary | None:
    chain = list(m.references)
    if m.in_reply_to and (not chain or chain[-1] != m.in_reply_to):
        chain.append(m.in_reply_to)
    for ref in reversed(chain):
        candidate = by_id.get(ref)
        if candidate is not None and candidate.uid != m.uid:
            return candidate
    return None


def thread(summaries: Sequence[MessageSummary]) -> list[ThreadRow]:
    """Order messages as threads: newest-active thread first, replies oldest first below.

    Every input message appears exactly once in the output.
    """
    by_id: dict[str, MessageSummary] = {}
    for m in summaries:
        if m.message_id and m.message_id not in by_id:
            by_id[m.message_id] = m
    parent: dict[int, int] = {}
    for m in summaries:
        p = _parent(m, by_id)
        if p is None:
            continue
        # Refuse a link that would close a cycle (walk up from the proposed parent).
        node, hops = p.uid, 0
        while node in parent and node != m.uid and hops <= len(summaries):
            node, hops = parent[node], hops + 1
        if node != m.uid:
            parent[m.uid] = p.uid
    children: dict[int, list[MessageSummary]] = {}
    roots: list[MessageSummary] = []
    for m in summaries:
        if m.uid in parent:
            children.setdefault(parent[m.uid], []).append(m)
        else:
            roots.append(m)

    def key(m: MessageSummary) -> tuple[float, int]:
        return (m.timestamp, m.uid)

    latest: dict[int, tuple[float, int]] = {}

    def newest(m: MessageSummary) -> tuple[float, int]:
        if m.uid not in latest:
            best = key(m)
            stack = list(children.get(m.uid, ()))
            while stack:
                c = stack.pop()
                best = max(best, key(c))
                stack.extend(children.get(c.uid, ()))
            latest[m.uid] = best
        return latest[m.uid]

    rows: list[ThreadRow] = []
    for root in sorted(roots, key=newest, reverse=True):
        stack = [(root, 0)]
        while stack:
            m, depth = stack.pop()
            rows.append(ThreadRow(m, depth))
            kids = sorted(children.get(m.uid, ()), key=key, reverse=True)
            stack.extend((k, depth + 1) for k in kids)
    return rows
