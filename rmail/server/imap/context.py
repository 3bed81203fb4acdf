"""What a session remembers of its searches in the selected mailbox: the saved result "$"
(SEARCHRES, RFC 5182) and the searches kept up to date (CONTEXT=SEARCH, RFC 5267 §4.3).

Both live in one `SearchMemory`, the selected mailbox's `Watcher` (`selected`), created on the
first RETURN (SAVE) or RETURN (UPDATE) and gone with the mailbox: a new SELECT or EXAMINE starts
with "$" empty and no updates (RFC 5182 §2.1, RFC 5267 §4.3), and so do UNSELECT and CLOSE.

Invariants:

- "$" is kept as UIDs, so an expunged message drops out of it by itself (RFC 5182 §2.1) and
  the same "$" serves FETCH (numbers) and UID FETCH (UIDs) alike. Before a handler runs, the
  session replaces "$" in its command by the messages it holds (`with_saved_result`): a plain
  set for FETCH/STORE/COPY/MOVE/UID EXPUNGE, a UID set in a SEARCH key. An empty "$" is a
  valid set that matches nothing, never an error (RFC 5182 §2.1).
- An updating context's key is frozen when it is made: message numbers and "$" in it become
  the UIDs they meant then (RFC 5267 §4.3, after RFC 3501's errata), so later renumbering
  never changes what it matches.
- A message that leaves the mailbox leaves every result before its EXPUNGE is written: the
  map shows `removing` the messages while their numbers still hold, and REMOVEFROM goes out
  at once (§4.3.4). Changed and new messages are tried against each context's key when the
  session flushes its news, after EXISTS (ADDTO's numbers must be valid, §4.3.3) and under
  the same RFC 3501 §7.4.1 moments as FETCH and EXISTS.
- A key with OLDER or YOUNGER (RFC 5032) changes its result as time passes, with no change
  to any message: such a context is tried on the whole mailbox again at the first flush
  `AGE_RECHECK` seconds after its last full try (RFC 5032 §2 lets updates of these come late).
- At most `MAX_UPDATE_CONTEXTS` per session; one more is refused with ``* NO [NOUPDATE
  "tag"]`` while its other return items are still answered (§4.3.1). A context whose update
  would overrun the SEARCH budget, or meets a store error, is dropped the same way.

SORT plugs in through `UpdateContext.order` (see `results.ResultList`): a context made by an
extended SORT keeps its result in sort order and reports real positions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Final

from rmail.server.core.errors import RmailError
from rmail.server.core.slicing import Slicer

from . import commands as c
from .encode import Atom, Code, Status, Value, encode, esearch_response, sequence_set
from .results import Pair, ResultList
from .search import search as evaluate
from .search import store_loaders
from .selected import SelectedMailbox
from .state import Output, SessionState

__all__ = ["AGE_RECHECK", "MAX_UPDATE_CONTEXTS", "OrderLoader", "SearchMemory", "UpdateContext",
           "cancel", "drop_saved", "freeze", "is_updating", "memory", "save", "saved_uids",
           "start", "update", "with_saved_result"]

log = logging.getLogger("rmail.imap")

#: Updating searches one session may keep (RFC 5267 §4.3.1 asks for at least one). Each costs
#: a result (a set of UIDs) and a try of its key on every changed message; a client keeps one
#: per live view it shows (a virtual folder, an unread count), and ten is more than any uses.
MAX_UPDATE_CONTEXTS: Final = 10

#: Seconds between two full tries of an updating search whose key has OLDER or YOUNGER: their
#: results drift by the clock, and a minute late is what a mail list shows anyway.
AGE_RECHECK: Final = 60.0

#: Sort keys of some UIDs, for a context in sort order (ESORT / CONTEXT=SORT).
OrderLoader = Callable[[list[int]], Awaitable[dict[int, Hashable]]]


@dataclass(slots=True)
class UpdateContext:
    """One searching command with RETURN (UPDATE): its frozen key and its current result."""

    tag: str
    key: c.SearchKey
    uid: bool
    result: ResultList
    #: None: mailbox order (SEARCH), ADDTO/REMOVEFROM at position 0. Otherwise the sort keys
    #: of new matches (SORT), and the result reports real positions.
    order: OrderLoader | None = None
    #: When the key depends on the clock (OLDER/YOUNGER): the monotonic time of the next try
    #: on every message; None otherwise.
    recheck_at: float | None = None


@dataclass(slots=True)
class SearchMemory:
    """The searches one session keeps for its selected mailbox (a `selected.Watcher`)."""

    view: SelectedMailbox
    out: Output
    #: "$" as UIDs, ascending (may hold UIDs since expunged: `saved_uids` skips them).
    saved: list[int] = field(default_factory=list)
    contexts: dict[str, UpdateContext] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)

    def removing(self, indexes: list[int]) -> None:
        """REMOVEFROM for results that hold these messages, before their EXPUNGE."""
        if not self.contexts:
            return
        uids = [self.view.uids[i] for i in indexes]
        seq_of = {u: i + 1 for u, i in zip(uids, indexes)}
        out = []
        for ctx in self.contexts.values():
            pairs = ctx.result.remove(uids)
            if pairs:
                out.append(_esearch(ctx, [Atom("REMOVEFROM"), _payload(ctx, pairs, seq_of.get)]))
        self.touched.difference_update(uids)
        if out:
            self.out.write(b"".join(out))


def memory(s: SessionState) -> SearchMemory:
    """The selected mailbox's search memory, made on first use."""
    view = s.require_view()
    watcher = view.watcher
    if isinstance(watcher, SearchMemory):
        return watcher
    mem = SearchMemory(view, s.out)
    view.watcher = mem
    return mem


def saved_uids(view: SelectedMailbox) -> list[int]:
    """The messages of "$" still in the mailbox, as UIDs ascending (empty when none saved)."""
    mem = view.watcher
    if not isinstance(mem, SearchMemory):
        return []
    return [u for u in mem.saved if view.seq_of(u) is not None]


def _ranges(numbers: list[int]) -> c.SeqSet:
    """Ascending numbers as a sequence set of runs (empty numbers: a set matching nothing)."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return c.SeqSet(tuple(out))


def _replace_saved(key: c.SearchKey, saved: Callable[[], c.SeqSet]) -> c.SearchKey:
    if isinstance(key, c.SearchSeq):
        return c.SearchSeq(saved(), uid=True) if key.seqset.saved else key
    if isinstance(key, c.SearchAnd):
        return c.SearchAnd(tuple(_replace_saved(k, saved) for k in key.keys))
    if isinstance(key, c.SearchOr):
        return c.SearchOr(_replace_saved(key.left, saved), _replace_saved(key.right, saved))
    if isinstance(key, c.SearchNot):
        return c.SearchNot(_replace_saved(key.key, saved))
    return key


def _uses_saved(key: c.SearchKey) -> bool:
    return c.any_key(key, lambda k: isinstance(k, c.SearchSeq) and k.seqset.saved)


def with_saved_result(s: SessionState, cmd: c.Command) -> c.Command:
    """`cmd` with "$" replaced by the messages it holds (RFC 5182 §2.1); `cmd` itself when it
    does not use "$". Only called in the selected state."""
    view = s.selected
    if view is None:
        return cmd
    if isinstance(cmd, (c.Search, c.Sort, c.Thread)):  # any search program (RFC 5182 §2)
        if not _uses_saved(cmd.key):
            return cmd
        uid_set = _ranges(saved_uids(view))
        return replace(cmd, key=_replace_saved(cmd.key, lambda: uid_set))
    if isinstance(cmd, (c.Fetch, c.Store, c.Copy, c.Move, c.UidExpunge)) and cmd.seqset.saved:
        uids = saved_uids(view)
        if isinstance(cmd, c.UidExpunge):
            return replace(cmd, seqset=_ranges(uids))
        if cmd.uid or not uids:
            # An empty "$" matches nothing, even in an empty mailbox where a message number
            # would be BAD: as a UID set it does, and there is nothing to answer either way.
            return replace(cmd, seqset=_ranges(uids), uid=True)
        seqs = [view.seq_of(u) for u in uids]
        return replace(cmd, seqset=_ranges([n for n in seqs if n is not None]))
    return cmd


def save(s: SessionState, uids: list[int]) -> None:
    """Set "$" (RFC 5182 §2.1: a successful SEARCH with SAVE, or empty after a NO)."""
    memory(s).saved = sorted(uids)


def drop_saved(s: SessionState) -> None:
    """Empty "$" after a SEARCH RETURN (SAVE) answered NO (RFC 5182 §2.1)."""
    view = s.selected
    if view is not None and isinstance(view.watcher, SearchMemory):
        view.watcher.saved = []


def freeze(key: c.SearchKey, view: SelectedMailbox) -> c.SearchKey:
    """`key` with message-number sets turned into the UIDs they name now, for a context that
    re-evaluates it later (RFC 5267 §4.3: numbers are evaluated when the command is received).
    "$" must have been replaced already (`with_saved_result`)."""
    if isinstance(key, c.SearchSeq):
        if key.uid:
            return key
        ranges = key.seqset.resolve(view.exists)
        uids = [view.uids[i] for lo, hi in ranges if lo <= view.exists
                for i in range(lo - 1, min(hi, view.exists))]
        return c.SearchSeq(_ranges(uids), uid=True)
    if isinstance(key, c.SearchAnd):
        return c.SearchAnd(tuple(freeze(k, view) for k in key.keys))
    if isinstance(key, c.SearchOr):
        return c.SearchOr(freeze(key.left, view), freeze(key.right, view))
    if isinstance(key, c.SearchNot):
        return c.SearchNot(freeze(key.key, view))
    return key


def _uses_age(key: c.SearchKey) -> bool:
    return c.any_key(key, lambda k: isinstance(k, c.SearchAge))


def start(s: SessionState, tag: str, key: c.SearchKey, uid: bool, hit_uids: list[int], *,
          order: OrderLoader | None = None, keys: list[Hashable] | None = None) -> bool:
    """Keep a searching command's result up to date from now on; False (and ``* NO
    [NOUPDATE]`` written) when the session has all the contexts it may have (RFC 5267 §4.3.1).

    Args:
        tag, key, uid: the command's tag, its search key ("$" already replaced) and whether
            it was a UID command (updates then carry UIDs).
        hit_uids: the result as UIDs, in the requested order.
        order, keys: for a sorted result, the sort-key loader and the keys of `hit_uids`.
    """
    mem = memory(s)
    if len(mem.contexts) >= MAX_UPDATE_CONTEXTS:
        s.send(Status("NO", f"too many updating searches (at most {MAX_UPDATE_CONTEXTS}); "
                      "this one is not updated", Code("NOUPDATE", (tag,))))
        return False
    recheck_at = time.monotonic() + AGE_RECHECK if _uses_age(key) else None
    mem.contexts[tag] = UpdateContext(tag, freeze(key, mem.view), uid,
                                      ResultList(hit_uids, keys), order, recheck_at)
    return True


def is_updating(s: SessionState, tag: str) -> bool:
    """Whether `tag` names a live updating search (RFC 5267 §4.3: its reuse is BAD)."""
    view = s.selected
    return (view is not None and isinstance(view.watcher, SearchMemory)
            and tag in view.watcher.contexts)


def cancel(s: SessionState, tags: tuple[str, ...]) -> list[str]:
    """Stop the updates of these searches (RFC 5267 §4.3.5); returns the tags that named no
    updating search (then nothing is cancelled)."""
    view = s.selected
    contexts = view.watcher.contexts if view is not None and isinstance(
        view.watcher, SearchMemory) else {}
    unknown = [t for t in tags if t not in contexts]
    if not unknown:
        for t in tags:
            del contexts[t]
    return unknown


def _esearch(ctx: UpdateContext, data: list[Value]) -> bytes:
    return esearch_response(ctx.tag, ctx.uid, data)


def _payload(ctx: UpdateContext, pairs: list[Pair],
             seq_of: Callable[[int], int | None]) -> tuple[Value, ...]:
    """ADDTO/REMOVEFROM's ``(position set ...)`` with UIDs or message numbers."""
    out: list[Value] = []
    for position, uids in pairs:
        numbers = uids if ctx.uid else [n for n in map(seq_of, uids) if n is not None]
        out += [position, sequence_set(numbers)]
    return tuple(out)


async def update(s: SessionState) -> None:
    """Send ADDTO/REMOVEFROM for messages whose flags changed or that arrived since the last
    look, and for clock-driven keys whose time has come (RFC 5267 §4.3.3–4.3.4). Called where
    the session sends FETCH and EXISTS news (`handlers.sync.flush`), after them."""
    view = s.selected
    mem = view.watcher if view is not None else None
    if view is None or not isinstance(mem, SearchMemory):
        return
    touched, mem.touched = mem.touched, set()
    if not mem.contexts:
        return
    now = time.monotonic()
    if not touched and not any(ctx.recheck_at is not None and ctx.recheck_at <= now
                               for ctx in mem.contexts.values()):
        return
    changed = sorted(i - 1 for i in (view.seq_of(u) for u in touched) if i is not None)
    load_info, load_text, load_blob_ids = store_loaders(s.store, view.mailbox.id)
    out: list[bytes] = []
    for ctx in list(mem.contexts.values()):
        indexes: list[int] | range = changed
        if ctx.recheck_at is not None and ctx.recheck_at <= now:
            indexes = range(view.exists)
            ctx.recheck_at = now + AGE_RECHECK
        if not indexes:
            continue
        slicer = Slicer(budget=s.services.search_budget, what="updating this search")
        try:
            hits = await evaluate(ctx.key, view, slicer=slicer, load_info=load_info,
                                  load_text=load_text, load_blob_ids=load_blob_ids,
                                  among=indexes)
            matched = {view.uids[i] for i in hits}
            candidates = [view.uids[i] for i in indexes]
            removed = [u for u in candidates if u not in matched and u in ctx.result]
            added = [u for u in candidates if u in matched and u not in ctx.result]
            keys = await ctx.order(added) if ctx.order is not None and added else {}
        except RmailError as exc:
            # The result can no longer be kept right: stop updating it, and say so (§4.3.1).
            log.info("imap: updates of search %s stopped: %s", ctx.tag, exc)
            del mem.contexts[ctx.tag]
            out.append(encode(Status("NO", f"search no longer updated: {exc}",
                                     Code("NOUPDATE", (ctx.tag,)))))
            continue
        data: list[Value] = []
        pairs = ctx.result.remove(removed)
        if pairs:
            data += [Atom("REMOVEFROM"), _payload(ctx, pairs, view.seq_of)]
        pairs = ctx.result.add(added, keys.__getitem__ if ctx.order is not None else None)
        if pairs:
            data += [Atom("ADDTO"), _payload(ctx, pairs, view.seq_of)]
        if data:
            out.append(_esearch(ctx, data))
    if out:
        s.out.write(b"".join(out))
