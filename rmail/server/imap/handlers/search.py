"""SEARCH (RFC 3501 §6.4.4), SORT and THREAD (RFC 5256, SORT=DISPLAY RFC 5957). A SEARCH
with RETURN options is answered by `esearch` (ESEARCH, SEARCHRES, CONTEXT=SEARCH).

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
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, Final, Iterable

from rmail.server.core.slicing import Slicer

from .. import commands as c
from ..encode import Tagged, search_response
from ..encode import sort_response, thread_response
from ..search import search as evaluate
from ..search import store_loaders
from ..sort import sort as order
from ..state import SessionState
from ..thread import thread as build_threads
from .esearch import extended_search

__all__ = ["HANDLERS", "find"]


@asynccontextmanager
async def _scan(s: SessionState, what: str) -> AsyncIterator[Slicer]:
    """The user's one search slot, held for a command's evaluation, and the command's budget."""
    async with s.services.scans.lock(s.account.id):
        # Made only now, so the wait for the slot is not metered.
        yield Slicer(budget=s.services.search_budget, what=what)


async def find(s: SessionState, key: c.SearchKey) -> list[int]:
    """The 0-based indexes of the selected mailbox's messages that match `key`, ascending:
    one evaluation per user at a time, within the SEARCH budget."""
    view = s.require_view()
    load_info, load_text = store_loaders(s.store, view.mailbox.id)
    async with _scan(s, "this SEARCH") as slicer:
        return await evaluate(key, view, slicer=slicer, load_info=load_info,
                              load_text=load_text)


async def _write(s: SessionState, pieces: Iterable[bytes]) -> None:
    """Write a long answer in one go, giving the loop back between its pieces."""
    writing = Slicer()  # the answer is found: writing it is not held to the budget
    out = []
    for piece in pieces:
        out.append(piece)
        await writing.tick()
    s.out.write(b"".join(out))


async def search(s: SessionState, cmd: c.Search) -> Tagged:
    if cmd.returns is not None:  # RETURN (...): ESEARCH, SEARCHRES, CONTEXT=SEARCH
        return await extended_search(s, cmd, find)
    view = s.require_view()
    hits = await find(s, cmd.key)
    numbers = [view.uids[i] for i in hits] if cmd.uid else [i + 1 for i in hits]
    await _write(s, search_response(numbers))
    return Tagged(cmd.tag, "OK", "SEARCH completed")


async def sort(s: SessionState, cmd: c.Sort) -> Tagged:
    """[UID] SORT (RFC 5256 §3): the matches of the search, in the criteria's order."""
    view = s.require_view()
    load_info, load_text = store_loaders(s.store, view.mailbox.id)
    async with _scan(s, "this SORT") as slicer:
        hits = await evaluate(cmd.key, view, slicer=slicer, load_info=load_info,
                              load_text=load_text)
        ordered = await order(cmd.criteria, hits, view, slicer=slicer, load_info=load_info)
    uids = view.uids
    numbers = [uids[i] for i in ordered] if cmd.uid else [i + 1 for i in ordered]
    await _write(s, sort_response(numbers))
    return Tagged(cmd.tag, "OK", "SORT completed")


async def thread(s: SessionState, cmd: c.Thread) -> Tagged:
    """[UID] THREAD (RFC 5256 §3): the matches of the search, threaded by the algorithm."""
    view = s.require_view()
    load_info, load_text = store_loaders(s.store, view.mailbox.id)
    async with _scan(s, "this THREAD") as slicer:
        hits = await evaluate(cmd.key, view, slicer=slicer, load_info=load_info,
                              load_text=load_text)
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
