"""SEARCH (RFC 3501 §6.4.4), SORT and THREAD (RFC 5256, SORT=DISPLAY RFC 5957).

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

from typing import Awaitable, Callable, Final, Iterable

from rmail.server.core.model import MessageInfo
from rmail.server.core.slicing import Slicer

from .. import commands as c
from ..encode import Tagged, search_response
from ..encode import sort_response, thread_response
from ..search import search as evaluate
from ..selected import SelectedMailbox
from ..sort import sort as order
from ..state import SessionState
from ..thread import thread as build_threads

__all__ = ["HANDLERS"]


async def search(s: SessionState, cmd: c.Search) -> Tagged:
    view = s.require_view()
    mailbox_id = view.mailbox.id
    store = s.store

    async def load_info(uids: list[int]) -> dict[int, MessageInfo]:
        return await store.fetch_info(mailbox_id, uids)

    async def load_text(uids: list[int]) -> dict[int, str]:
        return await store.search_text(mailbox_id, uids)

    async with s.services.scans.lock(s.account.id):
        # Made only now, so the wait for the slot is not metered.
        slicer = Slicer(budget=s.services.search_budget, what="this SEARCH")
        hits = await evaluate(cmd.key, view, slicer=slicer, load_info=load_info,
                              load_text=load_text)
    numbers = [view.uids[i] for i in hits] if cmd.uid else [i + 1 for i in hits]
    writing = Slicer()  # the answer is found: writing it is not held to the budget
    out = []
    for piece in search_response(numbers):
        out.append(piece)
        await writing.tick()
    s.out.write(b"".join(out))
    return Tagged(cmd.tag, "OK", "SEARCH completed")


def _loaders(s: SessionState, view: SelectedMailbox) -> tuple[
        Callable[[list[int]], Awaitable[dict[int, MessageInfo]]],
        Callable[[list[int]], Awaitable[dict[int, str]]]]:
    """The store reads a search (and SORT's keys, THREAD's fields) needs, for `view`."""
    mailbox_id = view.mailbox.id
    store = s.store

    async def load_info(uids: list[int]) -> dict[int, MessageInfo]:
        return await store.fetch_info(mailbox_id, uids)

    async def load_text(uids: list[int]) -> dict[int, str]:
        return await store.search_text(mailbox_id, uids)
    return load_info, load_text


async def _write(s: SessionState, pieces: Iterable[bytes]) -> None:
    """Write a long answer in one go, giving the loop back between its pieces."""
    writing = Slicer()  # the answer is found: writing it is not held to the budget
    out = []
    for piece in pieces:
        out.append(piece)
        await writing.tick()
    s.out.write(b"".join(out))


async def sort(s: SessionState, cmd: c.Sort) -> Tagged:
    """[UID] SORT (RFC 5256 §3): the matches of the search, in the criteria's order."""
    view = s.require_view()
    load_info, load_text = _loaders(s, view)
    async with s.services.scans.lock(s.account.id):
        slicer = Slicer(budget=s.services.search_budget, what="this SORT")
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
    load_info, load_text = _loaders(s, view)
    async with s.services.scans.lock(s.account.id):
        slicer = Slicer(budget=s.services.search_budget, what="this THREAD")
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
