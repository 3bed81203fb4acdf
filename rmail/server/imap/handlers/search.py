"""SEARCH (RFC 3501 §6.4.4); SORT and THREAD (RFC 5256) belong here too. A SEARCH with
RETURN options is answered by `esearch` (ESEARCH, SEARCHRES, CONTEXT=SEARCH).

Invariants:

- One SEARCH per user at a time (`Services.scans`): a user's parallel sessions share one slot,
  so they cannot multiply their share of the event loop.
- The evaluation (`..search`) yields the loop every few milliseconds and stops at the
  configured CPU budget with ``NO [LIMIT]`` (RFC 5530); writing the answer yields too but is
  not held to the budget.
- No EXPUNGE is sent while SEARCH runs (the session's flush knows, RFC 3501 §7.4.1).
"""

from __future__ import annotations

from typing import Awaitable, Callable, Final

from rmail.server.core.model import MessageInfo
from rmail.server.core.slicing import Slicer

from .. import commands as c
from ..encode import Tagged, search_response
from ..search import search as evaluate
from ..search import uses_modseq
from ..state import SessionState
from .esearch import extended_search

__all__ = ["HANDLERS"]


async def find(s: SessionState, key: c.SearchKey) -> list[int]:
    """The 0-based indexes of the selected mailbox's messages that match `key`, ascending:
    one evaluation per user at a time, within the SEARCH budget."""
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
        return await evaluate(key, view, slicer=slicer, load_info=load_info,
                              load_text=load_text)


async def search(s: SessionState, cmd: c.Search) -> Tagged:
    view = s.require_view()
    modseq_key = uses_modseq(cmd.key)
    if modseq_key:
        s.enable_condstore()    # RFC 7162 §3.1
    if cmd.returns is not None:  # RETURN (...): ESEARCH, SEARCHRES, CONTEXT=SEARCH
        # RFC 4731 §3.2: with a MODSEQ key the ESEARCH carries the MODSEQ item, taken from
        # the map (its MODSEQ column is what the search itself compared).
        return await extended_search(
            s, cmd, find, modseq_of=(lambda i: view.modseqs[i]) if modseq_key else None)
    hits = await find(s, cmd.key)
    numbers = [view.uids[i] for i in hits] if cmd.uid else [i + 1 for i in hits]
    # RFC 7162 §3.1.5: with a MODSEQ key, the highest MODSEQ of the messages found.
    highest = max((view.modseqs[i] for i in hits), default=None) if modseq_key else None
    writing = Slicer()  # the answer is found: writing it is not held to the budget
    out = []
    for piece in search_response(numbers, highest):
        out.append(piece)
        await writing.tick()
    s.out.write(b"".join(out))
    return Tagged(cmd.tag, "OK", "SEARCH completed")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {c.Search: search}
