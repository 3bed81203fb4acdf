"""SEARCH with RETURN options, answered with ESEARCH (RFC 4731), "$" saved with RETURN (SAVE)
(RFC 5182), results kept up to date with RETURN (UPDATE) and cut with PARTIAL (RFC 5267 §4),
and CANCELUPDATE (RFC 5267 §4.3.5).

The evaluation is the plain SEARCH's (`handlers.search` passes its `find`); what is answered,
saved and followed comes from `results` and `context`, which an extended SORT shares.

Invariants:

- One ESEARCH response per command, even when nothing matched (RFC 4731 §3.1), except for
  RETURN (SAVE) alone, which answers nothing but the tagged OK (RFC 5182 §1).
- "$" changes only on a SEARCH with SAVE: set on OK, emptied on NO; a BAD leaves it alone
  (RFC 5182 §2.1). The parser empties it for a NO it gives itself (BADCHARSET, too many keys).
- RETURN (UPDATE) with a tag that names a live updating search is BAD before any work
  (RFC 5267 §4.3).
"""

from __future__ import annotations

from typing import Awaitable, Callable, Final

from rmail.server.core.errors import RmailError

from .. import commands as c
from .. import context
from ..encode import Tagged, esearch_response
from ..errors import CommandError
from ..results import modseq_items, return_data, saved_items
from ..state import SessionState

__all__ = ["HANDLERS", "Finder", "extended_search"]

#: Evaluates a key over the selected mailbox: matching 0-based indexes, ascending.
Finder = Callable[[SessionState, c.SearchKey], Awaitable[list[int]]]


async def extended_search(s: SessionState, cmd: c.Search, find: Finder, *,
                          modseq_of: Callable[[int], int] | None = None) -> Tagged:
    """Answer a SEARCH that has RETURN options.

    Args:
        find: the SEARCH evaluation (budgeted, one per user at a time).
        modseq_of: CONDSTORE's hook: the MODSEQ of a message (0-based index), given when the
            key holds a MODSEQ criterion; the response then carries the MODSEQ item of
            RFC 4731 §3.2.
    """
    returns = cmd.returns
    assert returns is not None
    view = s.require_view()
    if returns.update and context.is_updating(s, cmd.tag):
        raise CommandError("BAD", "this tag names an updating search already; "
                                  "use a new tag (RFC 5267 4.3)")
    try:
        hits = await find(s, cmd.key)
    except RmailError:
        if returns.save:
            context.drop_saved(s)
        raise
    uids = view.uids
    if returns.save:
        context.save(s, [uids[i] for i in saved_items(hits, returns)])
    if returns != c.SearchReturn(save=True):
        numbers = [uids[i] for i in hits] if cmd.uid else [i + 1 for i in hits]
        modseq = None
        if modseq_of is not None and hits:
            modseq = max(modseq_of(i) for i in modseq_items(hits, returns))
        s.out.write(esearch_response(cmd.tag, cmd.uid,
                                     return_data(numbers, returns, modseq=modseq)))
    if returns.update:
        context.start(s, cmd, [uids[i] for i in hits])
    return Tagged(cmd.tag, "OK", "SEARCH completed")


async def cancel_update(s: SessionState, cmd: c.CancelUpdate) -> Tagged:
    s.require_view()
    unknown = context.cancel(s, cmd.tags)
    if unknown:
        raise CommandError("BAD", f"no updating search has the tag {unknown[0][:64]}")
    return Tagged(cmd.tag, "OK", "CANCELUPDATE completed, no further updates")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.CancelUpdate: cancel_update,
}
