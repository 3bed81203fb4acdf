"""Message commands: FETCH, STORE, COPY, MOVE, EXPUNGE (RFC 3501 §6.4; UIDPLUS RFC 4315,
MOVE RFC 6851) and APPEND (RFC 3501 §6.3.11).

Invariants:

- Work proportional to the mailbox (FETCH, STORE of many messages) gives the event loop back
  every few milliseconds (`core.slicing`) and reads the store in batches of `FETCH_BATCH`.
- A message expunged by another session but not yet announced is left out of a FETCH, never
  answered with made-up data (RFC 3501 §7.4.1 keeps its number until then).
- A body the store keeps in a file is streamed chunk by chunk (`stream`), written only as fast
  as the client reads; one whose literal length is on the wire but whose bytes end early ends
  the session (`SessionClosed`): the client could not resynchronise.
- Every flag sent comes from the session's map, after the grown `* FLAGS` when a keyword is
  new to the client (RFC 3501 §7.2.6, `sync.flag_lines`).
- APPEND and COPY are checked against the user's quota; MOVE never is (usage stays the same).
- CONDSTORE (RFC 7162): MODSEQ comes from the session's map; CHANGEDSINCE filters on it;
  UNCHANGEDSINCE is decided by the store inside the write, never from the map; a message the
  session's own STORE changed is reported with UID and MODSEQ once CONDSTORE is on, .SILENT
  or not, as is every message a conditional STORE passed (§3.1.3).
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Final, Iterable

from rmail.server.core.errors import NotFound
from rmail.server.core.events import MessageReceived
from rmail.server.core.model import MessageInfo
from rmail.server.core.slicing import Slicer
from rmail.server.core.storage.mail import NewMessage
from rmail.server.core.storage.body import MessageBody

from .. import commands as c
from .. import catenate, stream
from ..encode import (CRLF, Code, Status, Tagged, fetch_flags, fetch_head, fetch_modseq,
                      fetch_response, sequence_set, vanished)
from ..errors import CommandError, SessionClosed
from ..fetch import FetchPlan, FileRange, file_items, message_items
from ..selected import InvalidSequence, SelectedMailbox, in_ranges
from ..state import SessionState
from ..stream import StreamBroken
from .sync import expunged_lines, flag_lines, flush

__all__ = ["FETCH_BATCH", "HANDLERS"]

log = logging.getLogger("rmail.imap")

#: Messages per FETCH batch: bounds memory (infos, bodies) and lets other sessions run.
FETCH_BATCH: Final = 500
#: FETCH responses with message bodies written before waiting for the client to read them.
_BODIES_PER_WRITE: Final = 16
_STORE_MODES: Final = {c.StoreMode.REPLACE: "set", c.StoreMode.ADD: "add",
                       c.StoreMode.REMOVE: "remove"}

_DELETED: Final = "\\Deleted"


def _indexes(s: SessionState, seqset: c.SeqSet, uid: bool) -> list[int]:
    """0-based indexes into the session's map of a sequence or UID set.

    Raises:
        InvalidSequence: a message number past the end, or any in an empty mailbox.
    """
    view = s.require_view()
    if not uid and view.exists == 0:
        raise InvalidSequence("the mailbox is empty")
    ranges = seqset.resolve(view.max_uid if uid else view.exists)
    return list(view.resolve(ranges, uid=uid))


async def fetch(s: SessionState, cmd: c.Fetch) -> Tagged:
    view = s.require_view()
    if cmd.vanished and not s.qresync:
        raise CommandError("BAD", "VANISHED needs ENABLE QRESYNC first")  # RFC 7162 §3.2.6
    indexes = _indexes(s, cmd.seqset, cmd.uid)
    atts = cmd.attributes
    if cmd.changed_since is not None or any(a.name == "MODSEQ" for a in atts):
        s.enable_condstore()    # RFC 7162 §3.1
    if cmd.changed_since is not None:
        since = cmd.changed_since
        indexes = [i for i in indexes if view.modseqs[i] > since]
    if s.qresync and all(a.name != "UID" for a in atts):
        # Once QRESYNC is on, every FETCH response names its UID: message numbers alone
        # cannot be matched with VANISHED's UIDs (imaptest checks it).
        atts = (c.FetchAtt("UID"),) + atts
    if s.condstore and not view.readonly and any(a.sets_seen for a in atts):
        # RFC 7162 §3.2: \Seen set by this FETCH is reported with UID and MODSEQ.
        atts += tuple(c.FetchAtt(n) for n in ("UID", "MODSEQ") if all(a.name != n for a in atts))
    plan = FetchPlan(atts)
    mailbox_id = view.mailbox.id
    store = s.store
    slicer = Slicer()  # FETCH 1:* FLAGS on 100,000 messages needs no store read to yield
    seen_now: set[int] = set()
    if plan.sets_seen and not view.readonly:
        unseen = [view.uids[i] for i in indexes if "\\Seen" not in view.flags[i]]
        if unseen:
            metas = await store.store_flags(mailbox_id, unseen, "add", ["\\Seen"])
            view.set_flags(metas)
            seen_now = {m.uid for m in metas}
    if view.keywords_stale:
        s.out.write(flag_lines(view))  # every flag sent below comes from the map
    if cmd.vanished:
        s.out.write(await _vanished_earlier(s, view, cmd))
    for start in range(0, len(indexes), FETCH_BATCH):
        batch = indexes[start:start + FETCH_BATCH]
        uids = [view.uids[i] for i in batch]
        infos = await store.fetch_info(mailbox_id, uids) if plan.needs_info else {}
        blob_ids: dict[int, str] = {}
        if plan.needs_blob or plan.needs_blob_id:
            blob_ids = await store.message_blobs(mailbox_id, uids)
        out: list[bytes] = []
        for i, u in zip(batch, uids):
            data = None
            if plan.needs_info and u not in infos:
                continue  # expunged by another session, not yet announced: no made-up data
            if plan.needs_blob_id and u not in blob_ids:
                continue  # the same, seen by EMAILID
            if plan.needs_blob:
                blob_id = blob_ids.get(u)
                if blob_id is None:
                    continue  # expunged by another session, not yet announced
                try:
                    body = await store.open_message(blob_id)
                except NotFound:
                    continue  # expunged by another session meanwhile
                data = body.inline
                if data is None:
                    # A large message the store does not hold in memory: stream it (or read
                    # it whole when a section needs the MIME tree).
                    s.out.write(b"".join(out))
                    out.clear()
                    data = await _fetch_streamed(s, plan, view, i, u, body, infos.get(u),
                                                 force_flags=u in seen_now,
                                                 blob_id=blob_ids.get(u))
                    if data is None:
                        continue
            out.append(fetch_response(i + 1, message_items(
                plan, uid=u, flags=view.flags[i], recent=view.is_recent(u),
                size=view.sizes[i], date=view.dates[i], info=infos.get(u), data=data,
                force_flags=u in seen_now, blob_id=blob_ids.get(u), modseq=view.modseqs[i],
                savedate=view.savedates[i], headers=s.services.headers)))
            if plan.needs_blob and len(out) >= _BODIES_PER_WRITE:
                s.out.write(b"".join(out))
                out.clear()
                await s.out.drain()
            if slicer.due():
                await slicer.pause()
        s.out.write(b"".join(out))
        await s.out.drain()
    return Tagged(cmd.tag, "OK", "FETCH completed")


async def _fetch_streamed(s: SessionState, plan: FetchPlan, view: SelectedMailbox, i: int,
                          uid: int, body: MessageBody, info: MessageInfo | None, *,
                          force_flags: bool, blob_id: str | None = None) -> bytes | None:
    """Send one large message's FETCH response, streaming its body literals; or return the
    whole message when the plan needs more than header and byte ranges. Returns None once
    the response is sent. Closes ``body``."""
    try:
        pieces = None
        if plan.streamable:
            head = await stream.head(body) if plan.needs_head else b""
            pieces = file_items(plan, uid=uid, flags=view.flags[i], recent=view.is_recent(uid),
                                size=view.sizes[i], date=view.dates[i], info=info,
                                file_size=body.size, head=head, force_flags=force_flags,
                                blob_id=blob_id, modseq=view.modseqs[i], savedate=view.savedates[i])
        if pieces is None:
            return await stream.read_all(body)
        s.out.write(fetch_head(i + 1))
        for piece in pieces:
            if isinstance(piece, FileRange):
                await stream.send(body, s.out, piece.start, piece.length)
            else:
                s.out.write(piece)
        s.out.write(CRLF)
        await s.out.drain()
        return None
    except StreamBroken:
        # The literal's length is on the wire already: the session cannot continue.
        log.error("imap: message of uid %d is shorter than its size", uid)
        raise SessionClosed() from None
    finally:
        await body.close()


async def _vanished_earlier(s: SessionState, view: SelectedMailbox, cmd: c.Fetch) -> bytes:
    """UID FETCH (CHANGEDSINCE n VANISHED): ``* VANISHED (EARLIER)`` for the UIDs of the set
    expunged since n (RFC 7162 §3.2.6). A UID still in the map (an expunge not announced yet)
    is left to the ``* VANISHED`` that announces it."""
    assert cmd.changed_since is not None
    wanted = in_ranges(cmd.seqset.resolve(view.max_uid))
    gone = [u for u in await s.store.expunged_since(view.mailbox.id, cmd.changed_since)
            if view.seq_of(u) is None and wanted(u)]
    return vanished(gone, earlier=True)


async def store(s: SessionState, cmd: c.Store) -> Tagged:
    conditional = cmd.unchanged_since is not None
    if conditional:
        s.enable_condstore()    # RFC 7162 §3.1
    view = s.require_writable()
    indexes = _indexes(s, cmd.seqset, cmd.uid)
    uids = [view.uids[i] for i in indexes]
    before = {view.uids[i]: view.modseqs[i] for i in indexes} if s.condstore else {}
    metas = await s.store.store_flags(view.mailbox.id, uids, _STORE_MODES[cmd.mode], cmd.flags,
                                      unchanged_since=cmd.unchanged_since)
    slicer = Slicer()  # STORE 1:* on a large mailbox: record and answer in slices
    changed: list[int] = []
    for start in range(0, len(metas), FETCH_BATCH):
        changed += view.set_flags(metas[start:start + FETCH_BATCH])
        await slicer.tick()
    if view.keywords_stale:
        # A keyword new to the mailbox: FLAGS grows first, even for .SILENT (a later FETCH
        # would show it), as Dovecot does (RFC 3501 §7.2.6).
        s.out.write(flag_lines(view))
    condstore = s.condstore
    out = []
    for i in changed:
        u = view.uids[i]
        if not cmd.silent:
            out.append(fetch_flags(i + 1, view.flags[i], view.is_recent(u),
                                   u if cmd.uid or condstore else None,
                                   view.modseqs[i] if condstore else None))
        elif conditional or (condstore and view.modseqs[i] != before.get(u)):
            # RFC 7162 §3.1.3: .SILENT still reports the MODSEQ the client must cache.
            out.append(fetch_modseq(i + 1, u, view.modseqs[i]))
        if slicer.due():
            s.out.write(b"".join(out))
            out.clear()
            await slicer.pause()
    s.out.write(b"".join(out))
    if conditional and len(metas) < len(uids):
        # Left alone: changed since UNCHANGEDSINCE (or expunged meanwhile, the largest change).
        done = {m.uid for m in metas}
        failed = [(view.uids[i] if cmd.uid else i + 1) for i in indexes if view.uids[i] not in done]
        return Tagged(cmd.tag, "OK", "conditional STORE failed",
                      Code("MODIFIED", (sequence_set(failed),)))
    return Tagged(cmd.tag, "OK", "STORE completed")


async def copy(s: SessionState, cmd: c.Copy | c.Move) -> Tagged:
    move = isinstance(cmd, c.Move)
    view = s.require_writable() if move else s.require_view()
    indexes = _indexes(s, cmd.seqset, cmd.uid)
    uids = [view.uids[i] for i in indexes]
    try:
        dest = await s.store.get_mailbox(s.account.id, cmd.mailbox)
    except NotFound:
        raise CommandError("NO", "no such mailbox", "TRYCREATE") from None
    verb = "MOVE" if move else "COPY"
    if not uids:
        return Tagged(cmd.tag, "OK", f"{verb} completed")
    if move:
        # MOVE between one's own mailboxes leaves usage as it was: never refused for quota.
        pairs = await s.store.move(view.mailbox.id, uids, dest.id)
    else:
        if s.services.quotas is not None:
            await s.services.quotas.check(s.account, sum(view.sizes[i] for i in indexes))
        pairs = await s.store.copy(view.mailbox.id, uids, dest.id)
    pairs.sort()
    code = Code("COPYUID", (dest.uidvalidity, sequence_set([p[0] for p in pairs]),
                            sequence_set([p[1] for p in pairs]))) if pairs else None
    if not move:
        return Tagged(cmd.tag, "OK", "COPY completed", code)
    # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs (or VANISHED).
    if code is not None:
        s.send(Status("OK", "moved", code))
    s.out.write(expunged_lines(s, view, [p[0] for p in pairs]))
    return Tagged(cmd.tag, "OK", "MOVE completed")


async def expunge(s: SessionState, cmd: c.Expunge | c.UidExpunge) -> Tagged:
    view = s.require_writable()
    # With every change this session has been told of applied, a mailbox with nothing marked
    # \Deleted needs no write (most EXPUNGEs of a client that expunges on every sync).
    await flush(s, allow_expunge=True)
    indexes: Iterable[int] = range(len(view.uids))
    uids = None
    if isinstance(cmd, c.UidExpunge):
        indexes = list(view.resolve(cmd.seqset.resolve(view.max_uid), uid=True))
        uids = [view.uids[i] for i in indexes]
    if not any(_DELETED in view.flags[i] for i in indexes):
        removed: list[int] = []
    else:
        removed = await s.store.expunge(view.mailbox.id, uids)
    s.out.write(expunged_lines(s, view, removed))
    if s.qresync:
        # RFC 7162 §3.2.10: VANISHED carries no MODSEQ, so the tagged OK tells the client
        # the HIGHESTMODSEQ it now has everything up to (after this session's news).
        await flush(s, allow_expunge=True, force=True)
        return Tagged(cmd.tag, "OK", "EXPUNGE completed",
                      Code("HIGHESTMODSEQ", (view.synced_modseq,)))
    return Tagged(cmd.tag, "OK", "EXPUNGE completed")


async def _append_bytes(s: SessionState, msg: c.AppendMessage) -> bytes:
    """One APPEND message's bytes: a CATENATE built (RFC 4469), a literal8's binary parts
    re-encoded as base64 (RFC 3516 §4.4), or the literal as sent."""
    if msg.catenate is not None:
        return await catenate.build(s, msg.catenate, s.services.max_message)
    return await catenate.made_storable(msg.message) if msg.binary else msg.message


async def append(s: SessionState, cmd: c.Append) -> Tagged:
    try:
        mailbox = await s.store.get_mailbox(s.account.id, cmd.mailbox)
    except NotFound:
        raise CommandError("NO", "no such mailbox", "TRYCREATE") from None
    items = cmd.messages()
    # Every message is built before any is stored: MULTIAPPEND is all or nothing (RFC 3502
    # §6.3.11), a bad CATENATE URL in the last message stores none of them.
    datas = [await _append_bytes(s, m) for m in items]
    total = sum(len(d) for d in datas)
    if s.services.quotas is not None:
        await s.services.quotas.check(s.account, total)  # NO [OVERQUOTA]
    if len(items) == 1:
        uids = [await s.store.append(mailbox.id, datas[0], items[0].flags,
                                     items[0].internal_date)]
    else:
        uids = await s.store.append_many(mailbox.id, [
            NewMessage(d, m.flags, m.internal_date) for d, m in zip(datas, items)])
    s.services.bus.publish(MessageReceived("imap", s.account.address, len(uids), 0, total))
    if s.selected is not None and s.selected.mailbox.id == mailbox.id:
        # RFC 3501 §6.3.11: a selected mailbox hears of the new message right away.
        await flush(s, allow_expunge=True, force=True)
    # RFC 4315 §3: a MULTIAPPEND's APPENDUID carries the UID set, in the messages' order.
    return Tagged(cmd.tag, "OK", "APPEND completed",
                  Code("APPENDUID", (mailbox.uidvalidity, sequence_set(uids))))


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.Fetch: fetch, c.Store: store, c.Copy: copy, c.Move: copy, c.Expunge: expunge,
    c.UidExpunge: expunge, c.Append: append,
}
