"""SEARCH (RFC 3501 §6.4.4), SORT and THREAD (RFC 5256, SORT=DISPLAY RFC 5957). A SEARCH
or SORT with RETURN options is answered through `esearch` (ESEARCH, SEARCHRES, CONTEXT=SEARCH;
ESORT and CONTEXT=SORT, RFC 5267).

Invariants:

- One SEARCH per user at a time (`Services.scans`): a user's parallel sessions share one slot,
  so they cannot multiply their share of the event loop.
- The evaluation (`..search`) yields the loop every few milliseconds and stops at the
  configured CPU budget with ``NO [LIMIT]`` (RFC 5530); writing the answer yields too but is
  not held to the budget.
- No EXPUNGE is sent while SEARCH runs (the session's flush knows, RFC 3501 §7.4.1), nor
  while SORT or THREAD run (RFC 5256 §3 allows them during UID SORT/THREAD; rmail holds them
  back there too, as for UID SEARCH).
- SORT and THREAD search with the same evaluation, then order (`..sort`) or thread
  (`..thread`) the matches, all under the one slot and the one CPU budget of the command.
- An extended SORT answers, saves and follows its result in sort order (`esearch.answer`);
  an updating one keeps each match's sort key, and messages that start matching later get
  theirs from the store when they do (`..sort.sort_keys`), under the SEARCH budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, Final, Iterable

from rmail.server.core.errors import RmailError
from rmail.server.core.slicing import Slicer

from .. import commands as c
from .. import context
from ..encode import Tagged, search_response
from ..encode import sort_response, thread_response
from ..search import search as evaluate
from ..search import uses_modseq
from ..search import uses_recent
from ..errors import CommandError
from ..search import store_loaders
from ..selected import SelectedMailbox
from ..sort import sort as order
from ..sort import sort_keys, sorted_sliced
from ..state import SessionState
from ..thread import thread as build_threads
from .esearch import answer, extended_search, refuse_reused_tag

__all__ = ["HANDLERS", "find"]


@asynccontextmanager
async def _scan(s: SessionState, what: str) -> AsyncIterator[Slicer]:
    """The user's one search slot, held for a command's evaluation, and the command's budget."""
    async with s.services.scans.lock(s.account.id):
        # Made only now, so the wait for the slot is not metered.
        yield Slicer(budget=s.services.search_budget, what=what)


def refuse_recent(s: SessionState, key: c.SearchKey) -> None:
    """RECENT, NEW and OLD are not IMAP4rev2 search keys (RFC 9051 Appendix E): BAD there."""
    if s.rev2 and uses_recent(key):
        raise CommandError("BAD", "RECENT, NEW and OLD are not IMAP4rev2 search keys")


#: What a plain SEARCH returns once IMAP4rev2 is on: ESEARCH with ALL (RFC 9051 §6.4.4,
#: §7.3.4: the SEARCH response is IMAP4rev1's; no RETURN is RETURN (ALL)).
_REV2_RETURN: Final = c.SearchReturn(all=True)


async def find(s: SessionState, key: c.SearchKey) -> list[int]:
    """The 0-based indexes of the selected mailbox's messages that match `key`, ascending:
    one evaluation per user at a time, within the SEARCH budget."""
    view = s.require_view()
    load_info, load_text, load_blob_ids = store_loaders(s.store, view.mailbox.id)
    async with _scan(s, "this SEARCH") as slicer:
        return await evaluate(key, view, slicer=slicer, load_info=load_info,
                              load_text=load_text, load_blob_ids=load_blob_ids)


async def _write(s: SessionState, pieces: Iterable[bytes]) -> None:
    """Write a long answer in one go, giving the loop back between its pieces."""
    writing = Slicer()  # the answer is found: writing it is not held to the budget
    out = []
    for piece in pieces:
        out.append(piece)
        await writing.tick()
    s.out.write(b"".join(out))


async def search(s: SessionState, cmd: c.Search) -> Tagged:
    view = s.require_view()
    refuse_recent(s, cmd.key)
    modseq_key = uses_modseq(cmd.key)
    if modseq_key:
        s.enable_condstore()    # RFC 7162 §3.1
    if cmd.returns is None and s.rev2:
        cmd = dataclasses.replace(cmd, returns=_REV2_RETURN)
    if cmd.returns is not None:  # RETURN (...): ESEARCH, SEARCHRES, CONTEXT=SEARCH
        # RFC 4731 §3.2: with a MODSEQ key the ESEARCH carries the MODSEQ item, taken from
        # the map (its MODSEQ column is what the search itself compared).
        return await extended_search(
            s, cmd, find, modseq_of=(lambda i: view.modseqs[i]) if modseq_key else None)
    hits = await find(s, cmd.key)
    numbers = [view.uids[i] for i in hits] if cmd.uid else [i + 1 for i in hits]
    # RFC 7162 §3.1.5: with a MODSEQ key, the highest MODSEQ of the messages found.
    highest = max((view.modseqs[i] for i in hits), default=None) if modseq_key else None
    await _write(s, search_response(numbers, highest))
    return Tagged(cmd.tag, "OK", "SEARCH completed")


async def sort(s: SessionState, cmd: c.Sort) -> Tagged:
    """[UID] SORT (RFC 5256 §3): the matches of the search, in the criteria's order."""
    if cmd.returns is not None:  # RETURN (...): ESORT, CONTEXT=SORT
        return await extended_sort(s, cmd, cmd.returns)
    view = s.require_view()
    refuse_recent(s, cmd.key)
    modseq_key = uses_modseq(cmd.key)
    if modseq_key:
        s.enable_condstore()    # RFC 7162 §3.1
    load_info, load_text, load_blob_ids = store_loaders(s.store, view.mailbox.id)
    async with _scan(s, "this SORT") as slicer:
        hits = await evaluate(cmd.key, view, slicer=slicer, load_info=load_info,
                              load_text=load_text, load_blob_ids=load_blob_ids)
        ordered = await order(cmd.criteria, hits, view, slicer=slicer, load_info=load_info)
    uids = view.uids
    numbers = [uids[i] for i in ordered] if cmd.uid else [i + 1 for i in ordered]
    # RFC 7162 §3.1.5: SORT with a MODSEQ key ends like SEARCH, in the highest MODSEQ found.
    highest = max((view.modseqs[i] for i in hits), default=None) if modseq_key else None
    await _write(s, sort_response(numbers, highest))
    return Tagged(cmd.tag, "OK", "SORT completed")


async def extended_sort(s: SessionState, cmd: c.Sort, returns: c.SearchReturn) -> Tagged:
    """SORT RETURN (...) (RFC 5267 §3): the sorted result answered with ESEARCH — MIN the
    first in sort order, MAX the last, ALL and PARTIAL in sort order — saved as "$" with SAVE
    (RFC 5182) and kept up to date with real positions with UPDATE (§4)."""
    view = s.require_view()
    refuse_reused_tag(s, cmd.tag, returns)
    refuse_recent(s, cmd.key)
    modseq_key = uses_modseq(cmd.key)
    if modseq_key:
        s.enable_condstore()    # RFC 7162 §3.1
    load_info, load_text, load_blob_ids = store_loaders(s.store, view.mailbox.id)
    keys = None
    try:
        async with _scan(s, "this SORT") as slicer:
            hits = await evaluate(cmd.key, view, slicer=slicer, load_info=load_info,
                                  load_text=load_text, load_blob_ids=load_blob_ids)
            if returns.update:
                # Keys that compare with later messages' (ties by UID, i.e. by number).
                found = await sort_keys(cmd.criteria, hits, view, slicer=slicer,
                                        load_info=load_info)
                rows = await sorted_sliced(list(zip(found, hits)), slicer)
                hits = [i for _, i in rows]
                keys = [k for k, _ in rows]
            else:
                hits = await order(cmd.criteria, hits, view, slicer=slicer, load_info=load_info)
    except RmailError:
        if returns.save:
            context.drop_saved(s)  # RFC 5182 §2.1: NO to a SAVE empties "$"
        raise
    loader = _key_loader(s, cmd.criteria, view) if keys is not None else None
    answer(s, cmd.tag, cmd.uid, cmd.key, returns, hits, order=loader, keys=keys,
           modseq_of=(lambda i: view.modseqs[i]) if modseq_key else None)
    return Tagged(cmd.tag, "OK", "SORT completed")


def _key_loader(s: SessionState, criteria: tuple[c.SortCriterion, ...],
                view: SelectedMailbox) -> context.OrderLoader:
    """The sort keys of messages that start matching an updating SORT (CONTEXT=SORT)."""
    load_info, _, _ = store_loaders(s.store, view.mailbox.id)
    budget = s.services.search_budget

    async def keys_of(uids: list[int]) -> dict[int, Hashable]:
        indexes = [n - 1 for n in map(view.seq_of, uids) if n is not None]
        slicer = Slicer(budget=budget, what="updating this SORT")
        found = await sort_keys(criteria, indexes, view, slicer=slicer, load_info=load_info)
        return {view.uids[i]: k for i, k in zip(indexes, found)}
    return keys_of


async def thread(s: SessionState, cmd: c.Thread) -> Tagged:
    """[UID] THREAD (RFC 5256 §3): the matches of the search, threaded by the algorithm."""
    view = s.require_view()
    refuse_recent(s, cmd.key)
    load_info, load_text, load_blob_ids = store_loaders(s.store, view.mailbox.id)
    async with _scan(s, "this THREAD") as slicer:
        hits = await evaluate(cmd.key, view, slicer=slicer, load_info=load_info,
                              load_text=load_text, load_blob_ids=load_blob_ids)
        tokens = await build_threads(cmd.algorithm, hits, view, slicer=slicer,
                                     load_info=load_info)
    # Message indexes to numbers; the markers (negative) stay.
    uids = view.uids
    numbers = ([uids[t] if t >= 0 else t for t in tokens] if cmd.uid
               else [t + 1 if t >= 0 else t for t in tokens])
    await _write(s, thread_response(numbers))
    return Tagged(cmd.tag, "OK", "THREAD completed")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.Search: search, c.Sort: sort, c.Thread: thread,
}
