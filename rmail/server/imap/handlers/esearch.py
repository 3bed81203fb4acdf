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

from collections.abc import Hashable
from typing import Awaitable, Callable, Final

from rmail.server.core.errors import RmailError

from .. import commands as c
from .. import context
from ..encode import Tagged, esearch_response
from ..errors import CommandError
from ..results import modseq_items, return_data, saved_items
from ..state import SessionState

__all__ = ["HANDLERS", "Finder", "answer", "extended_search", "refuse_reused_tag"]

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
    s.require_view()
    refuse_reused_tag(s, cmd.tag, returns)
    try:
        hits = await find(s, cmd.key)
    except RmailError:
        if returns.save:
            context.drop_saved(s)  # RFC 5182 §2.1: NO to a SAVE empties "$"
        raise
    answer(s, cmd.tag, cmd.uid, cmd.key, returns, hits, modseq_of=modseq_of)
    return Tagged(cmd.tag, "OK", "SEARCH completed")


def refuse_reused_tag(s: SessionState, tag: str, returns: c.SearchReturn) -> None:
    """RETURN (UPDATE) under the tag of a live updating search is BAD (RFC 5267 §4.3)."""
    if returns.update and context.is_updating(s, tag):
        raise CommandError("BAD", "this tag names an updating search already; "
                                  "use a new tag (RFC 5267 4.3)")


def answer(s: SessionState, tag: str, uid: bool, key: c.SearchKey, returns: c.SearchReturn,
           hits: list[int], *, modseq_of: Callable[[int], int] | None = None,
           order: context.OrderLoader | None = None, keys: list[Hashable] | None = None) -> None:
    """Save, answer and follow a searching command's result (RFC 4731, 5182, 5267 §4):
    "$" when SAVE, the one ESEARCH response (none for SAVE alone), and the updating context
    when UPDATE.

    Args:
        hits: the result as 0-based indexes in the requested order: ascending for SEARCH, the
            sort order for an extended SORT (ESORT).
        order, keys: for a sorted result, the sort-key loader of new matches and the keys of
            `hits` (CONTEXT=SORT); None for mailbox order.
    """
    uids = s.require_view().uids
    if returns.save:
        context.save(s, [uids[i] for i in saved_items(hits, returns)])
    if returns != c.SearchReturn(save=True):
        numbers = [uids[i] for i in hits] if uid else [i + 1 for i in hits]
        modseq = None
        if modseq_of is not None and hits:
            modseq = max(modseq_of(i) for i in modseq_items(hits, returns))
        s.out.write(esearch_response(tag, uid, return_data(numbers, returns, modseq=modseq)))
    if returns.update:
        context.start(s, tag, key, uid, [uids[i] for i in hits], order=order, keys=keys)


async def cancel_update(s: SessionState, cmd: c.CancelUpdate) -> Tagged:
    s.require_view()
    unknown = context.cancel(s, cmd.tags)
    if unknown:
        raise CommandError("BAD", f"no updating search has the tag {unknown[0][:64]}")
    return Tagged(cmd.tag, "OK", "CANCELUPDATE completed, no further updates")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.CancelUpdate: cancel_update,
}
