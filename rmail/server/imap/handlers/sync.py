"""The selected mailbox and its news: SELECT, EXAMINE, NOOP, CHECK, CLOSE, UNSELECT (RFC 3501
§6.3.1–2, §6.1.2, §6.4.1–2; RFC 3691), IDLE (RFC 2177), and `flush`, which sends another
session's changes at the moments RFC 3501 allows; SELECT's CONDSTORE and QRESYNC parameters
(RFC 7162 §3.1.8, §3.2.5).

Invariants:

- A session subscribes to change notices before it reads its snapshot (DESIGN: the storage
  contract), so a commit in between rings the doorbell and is never lost.
- `flush` sends EXPUNGE only when the command allows it (never during FETCH, STORE or SEARCH,
  RFC 3501 §7.4.1); EXISTS and RECENT may go at any time; the grown `* FLAGS` goes before the
  first response that shows a new keyword (RFC 3501 §7.2.6).
- \\Recent goes to exactly one session: SELECT claims it, EXAMINE reports without claiming
  (docs/IMAP.md "Changes from elsewhere"); an IMAP4rev2 session (RFC 9051) neither claims
  nor shows it, and gets no RECENT response, no UNSEEN code, and a LIST response at SELECT.
- A selected mailbox deleted by someone else ends the session with BYE (IMAP4rev1 has no
  other way to say so); a renamed one stays selected under its new name.
- IDLE waits for the client's DONE and the doorbell together, and ends the session after the
  autologout time (RFC 3501 §5.4).
- Once QRESYNC is on, expunges go out as ``* VANISHED uid-set`` instead of ``* n EXPUNGE``
  (RFC 7162 §3.2.10), at the same moments; once CONDSTORE is on, every flag change the
  session reports carries UID and MODSEQ (§3.2).
- SELECT or EXAMINE while a mailbox is selected first says ``* OK [CLOSED]`` (RFC 7162 §7,
  required of a server offering CONDSTORE or QRESYNC), whether or not the new one opens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Final, Iterable, NoReturn

from rmail.server.core.errors import NotFound, TemporaryFailure
from rmail.server.core.events import Event, ExternalChange, MailboxChanged, MailboxesChanged

from .. import commands as c
from .. import context
from .. import objectid
from ..encode import (FLAGS_ORDER, Atom, Code, Continuation, Data, Numbered, Status, Tagged,
                      encode, encode_all, fetch_flags, numbered, vanished)
from ..listing import SEPARATOR
from ..errors import BYE_AUTOLOGOUT, BYE_DELETED, CommandError, SessionClosed
from ..protocol import State
from ..selected import SelectedMailbox, Update, in_ranges
from ..state import SessionState

__all__ = ["HANDLERS", "expunged_lines", "flag_lines", "flush"]

log = logging.getLogger("rmail.imap")

_ANY_KEYWORD: Final = Atom("\\*")
#: RFC 7162 §7: the responses before it were the closed mailbox's.
_CLOSED: Final = encode(Status("OK", "previous mailbox closed", Code("CLOSED")))


def flag_lines(view: SelectedMailbox) -> bytes:
    """``* FLAGS`` and ``* OK [PERMANENTFLAGS ...]`` listing every keyword the session's map
    has held (RFC 3501 §7.1, §7.2.6): sent at SELECT, and again before the first response
    that carries a keyword the client has not been told of (imaptest: "Keyword used without
    being in FLAGS"). Marks the list announced."""
    flags = tuple(Atom(f) for f in FLAGS_ORDER) + tuple(Atom(k) for k in view.keywords())
    permanent = () if view.readonly else flags + (_ANY_KEYWORD,)
    return encode_all([Data("FLAGS", (flags,)),
                       Status("OK", "flags permitted", Code("PERMANENTFLAGS", (permanent,)))])


async def flush(s: SessionState, *, allow_expunge: bool, force: bool = False) -> None:
    """Send the selected mailbox's news the client has not heard yet (RFC 3501 §7.3, §7.4.1).

    Args:
        allow_expunge: False while FETCH, STORE or SEARCH run.
        force: look at the store even if the doorbell has not rung (APPEND, IDLE).
    """
    view = s.selected
    if view is None:
        return
    bell = s.bell
    rung = bell is not None and bell.rung
    if not (rung or force):
        if allow_expunge and view.has_pending:
            _write_update(s, view, view.take_pending())
        await context.update(s)  # RFC 5267 ADDTO/REMOVEFROM, after the news they follow
        return
    if bell is not None:
        bell.clear()
    try:
        if s.check_mailbox:
            s.check_mailbox = False
            await _refresh_mailbox(s, view)
        changes = await s.store.changes_since(view.mailbox.id, view.modseq)
        recent: tuple[int | None, int | None] = (None, None)
        if (not s.rev2 and changes.recent_uid < changes.uidnext
                and any(m.uid > view.max_uid for m in changes.changed)):
            # A read-only session shows what is unclaimed as \Recent without claiming it.
            recent = ((changes.recent_uid, None) if view.readonly
                      else await _claim_recent(s, view.mailbox.id))
    except NotFound:
        await _mailbox_gone(s)
    _write_update(s, view, view.apply(changes, allow_expunge=allow_expunge,
                                      recent_from=recent[0], recent_to=recent[1]))
    await context.update(s)


async def _claim_recent(s: SessionState, mailbox_id: int) -> tuple[int | None, int | None]:
    """Claim \\Recent (a write); when the store cannot write (a full disk), go on without:
    \\Recent is advisory, and a user must still be able to open a mailbox to free space."""
    try:
        return await s.store.claim_recent_range(mailbox_id)
    except TemporaryFailure as exc:
        log.info("imap: \\Recent not claimed in mailbox %d: %s", mailbox_id, exc)
        return None, None


async def _refresh_mailbox(s: SessionState, view: SelectedMailbox) -> None:
    """Check the selected mailbox is still the one selected: DELETE removes it (or leaves a
    \\Noselect placeholder), and re-creating the name gives a new UIDVALIDITY; RENAME keeps it
    (same id and UIDs), so the session carries on under the new name.

    Raises:
        NotFound: the mailbox is gone.
    """
    for box in await s.store.list_mailboxes(s.account.id):
        if box.id == view.mailbox.id and box.uidvalidity == view.mailbox.uidvalidity:
            view.mailbox = box
            return
    raise NotFound("the selected mailbox no longer exists")


async def _mailbox_gone(s: SessionState) -> NoReturn:
    """Another session deleted the selected mailbox. IMAP4rev1 cannot say so and carry on, so
    the session ends with BYE (as Dovecot does), never with NO to every command; the client
    reconnects and sees the mailbox list as it is now."""
    s.send(BYE_DELETED)
    s.deselect()
    s.state = State.LOGOUT
    await s.out.drain()
    raise SessionClosed()


def expunged_lines(s: SessionState, view: SelectedMailbox, uids: list[int]) -> bytes:
    """Remove messages this session expunged from its map; the lines that say so: ``* n
    EXPUNGE`` each, or one ``* VANISHED uid-set`` once QRESYNC is on (RFC 7162 §3.2.10)."""
    if not s.qresync:
        return numbered(view.expunge_now(uids), "EXPUNGE")
    gone = sorted(u for u in set(uids) if view.seq_of(u) is not None)
    view.expunge_now(gone)
    return vanished(gone)


def _write_update(s: SessionState, view: SelectedMailbox, update: Update) -> None:
    if not (update or view.keywords_stale):
        return
    parts = [vanished(update.vanished) if s.qresync else numbered(update.expunged, "EXPUNGE")]
    if update.exists is not None:
        parts.append(encode(Numbered(update.exists, "EXISTS")))
    if update.recent is not None and not s.rev2:   # RFC 9051 has no RECENT response
        parts.append(encode(Numbered(update.recent, "RECENT")))
    if view.keywords_stale:
        # New keywords (another session's STORE, a delivery or APPEND with keywords): the
        # grown FLAGS list comes before any FETCH that shows them (RFC 3501 §7.2.6).
        parts.append(flag_lines(view))
    modseqs = view.modseqs if s.condstore else None
    for seq, uid in update.flags:
        parts.append(fetch_flags(seq, view.flags_of(seq), view.is_recent(uid), uid,
                                 None if modseqs is None else modseqs[seq - 1]))
    s.out.write(b"".join(parts))


async def select(s: SessionState, cmd: c.Select | c.Examine) -> Tagged:
    readonly = isinstance(cmd, c.Examine)
    if cmd.qresync is not None and not s.qresync:
        # RFC 7162 §3.2.5: BAD, and the command is not run (nothing is deselected).
        raise CommandError("BAD", "QRESYNC is not enabled (ENABLE QRESYNC first)")
    # RFC 3501 §6.3.1: SELECT first deselects, even when it then fails.
    if s.selected is not None:
        s.out.write(_CLOSED)
    s.deselect()
    if cmd.condstore or cmd.qresync is not None:
        s.enable_condstore()    # RFC 7162 §3.1: SELECT (CONDSTORE) enables it
    # Subscribe before reading the snapshot: a change committed after the read would otherwise
    # ring nobody and never be announced. Until the mailbox id is known, any change to this
    # user's mailboxes rings (a spurious ring costs one empty look).
    user_id = s.account.id
    watched: list[int] = []

    def wanted(event: Event) -> bool:
        if isinstance(event, MailboxChanged):
            return event.mailbox_id == watched[0] if watched else event.user_id == user_id
        if (isinstance(event, MailboxesChanged) and event.user_id == user_id) or \
                isinstance(event, ExternalChange):
            s.check_mailbox = True
            return True
        return False
    bell = s.services.bus.doorbell(wanted)
    try:
        snap = await s.store.snapshot(user_id, cmd.mailbox)
        watched.append(snap.mailbox.id)
        recent: tuple[int | None, int | None]
        if s.rev2:
            # RFC 9051 has no \Recent: the session neither shows nor claims it, so the
            # messages stay \Recent for the next IMAP4rev1 session.
            recent = (None, None)
        elif readonly:
            # RFC 3501 §6.3.2: EXAMINE reports \Recent but never claims it, so a later SELECT
            # still gets the messages no session has been told of (as Dovecot does).
            recent = (snap.recent_uid, None)
        else:
            # Only a write when some message is still unclaimed (RFC 3501 §2.3.2). The claim
            # may cover UIDs committed after the snapshot: they are recent here when they come.
            recent = (await _claim_recent(s, snap.mailbox.id) if snap.unclaimed_recent
                      else (snap.mailbox.uidnext, None))
        resync = cmd.qresync
        if resync is not None and resync.uidvalidity != snap.mailbox.uidvalidity:
            resync = None       # §3.2.5: another life of the mailbox; a plain SELECT
        gone = (await s.store.expunged_since(snap.mailbox.id, resync.modseq)
                if resync is not None else [])
    except BaseException:
        s.services.bus.unsubscribe(bell)
        s.check_mailbox = False
        raise
    mailbox = snap.mailbox
    view = SelectedMailbox(mailbox, readonly=readonly)
    view.load_columns(snap.uids, snap.flags, snap.sizes, snap.dates, modseqs=snap.modseqs,
                      savedates=snap.savedates, recent_from=recent[0], recent_to=recent[1])
    lines = _rev2_select_lines(s, view) if s.rev2 else _select_lines(s, view)
    if resync is not None:
        lines += _resync_lines(view, resync, gone)
    s.out.write(lines)
    s.selected = view
    s.bell = bell
    s.state = State.SELECTED
    if readonly:
        return Tagged(cmd.tag, "OK", "EXAMINE completed", Code("READ-ONLY"))
    return Tagged(cmd.tag, "OK", "SELECT completed", Code("READ-WRITE"))


def _select_lines(s: SessionState, view: SelectedMailbox) -> bytes:
    """RFC 3501 §6.3.1's untagged responses, written at once (one send for the client to read)."""
    mailbox = view.mailbox
    lines = [encode_all([Numbered(view.exists, "EXISTS"), Numbered(view.count_recent(), "RECENT")]),
             flag_lines(view)]
    unseen = view.first_unseen()
    if unseen is not None:
        lines.append(encode(Status("OK", "first unseen", Code("UNSEEN", (unseen,)))))
    lines.append(encode_all([
        Status("OK", "UIDs valid", Code("UIDVALIDITY", (mailbox.uidvalidity,))),
        Status("OK", "predicted next UID", Code("UIDNEXT", (mailbox.uidnext,)))]))
    if s.condstore:
        lines.append(encode(Status("OK", "highest mod-sequence",
                                   Code("HIGHESTMODSEQ", (mailbox.highestmodseq,)))))
    # RFC 8474 §4.2
    lines.append(encode(Status("OK", "mailbox id",
                               Code("MAILBOXID", ((Atom(objectid.mailbox_id(mailbox.id, mailbox.uidvalidity)),),)))))
    return b"".join(lines)


def _rev2_select_lines(s: SessionState, view: SelectedMailbox) -> bytes:
    """RFC 9051 §6.3.2's untagged responses, in its example's order: EXISTS, UIDVALIDITY,
    UIDNEXT, FLAGS, PERMANENTFLAGS, then LIST with the mailbox's name as this session spells
    it and its special use (attributes that are cheap to get right; §6.3.2 lets the rest go).
    No RECENT and no UNSEEN code (Appendix E); HIGHESTMODSEQ as for IMAP4rev1."""
    mailbox = view.mailbox
    attrs = (Atom(mailbox.special_use),) if mailbox.special_use else ()
    lines = [encode_all([
        Numbered(view.exists, "EXISTS"),
        Status("OK", "UIDs valid", Code("UIDVALIDITY", (mailbox.uidvalidity,))),
        Status("OK", "predicted next UID", Code("UIDNEXT", (mailbox.uidnext,)))]),
        flag_lines(view),
        encode(Data("LIST", (attrs, SEPARATOR, s.wire_mailbox(mailbox.name))))]
    if s.condstore:
        lines.append(encode(Status("OK", "highest mod-sequence",
                                   Code("HIGHESTMODSEQ", (mailbox.highestmodseq,)))))
    # RFC 8474 §4.2
    lines.append(encode(Status("OK", "mailbox id",
                               Code("MAILBOXID", ((Atom(objectid.mailbox_id(mailbox.id, mailbox.uidvalidity)),),)))))
    return b"".join(lines)


def _resync_lines(view: SelectedMailbox, resync: c.QResync, gone: list[int]) -> bytes:
    """QRESYNC's news for a client that knew the mailbox at `resync.modseq` (RFC 7162
    §3.2.5.1): ``* VANISHED (EARLIER)`` for its known UIDs expunged since, then a FETCH of
    UID, FLAGS and MODSEQ for each known message changed since (new ones included).

    The expunge records are exact for the mailbox's whole life, so the message sequence
    match data is not needed to narrow the answer (§3.2.5.2 lets a server ignore it). An
    expunge committed after the snapshot is left to the session's next flush: the UID is
    still in the map, and the client hears of it as ``* VANISHED`` then.
    """
    known = resync.known_uids
    ranges = known.resolve(view.mailbox.uidnext - 1) if known is not None else None
    is_known = in_ranges(ranges) if ranges is not None else lambda uid: True
    out = [vanished([u for u in gone if view.seq_of(u) is None and is_known(u)], earlier=True)]
    if ranges is None:
        indexes: Iterable[int] = range(view.exists)
    else:
        indexes = view.resolve(ranges, uid=True)
    since = resync.modseq
    modseqs, uids = view.modseqs, view.uids
    for i in indexes:
        if modseqs[i] > since:
            out.append(fetch_flags(i + 1, view.flags[i], view.is_recent(uids[i]), uids[i], modseqs[i]))
    return b"".join(out)


async def noop(s: SessionState, cmd: c.Noop | c.Check) -> Tagged:
    # The news is what NOOP is for: the session flushes it after every command.
    return Tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")


async def close(s: SessionState, cmd: c.Close | c.Unselect) -> Tagged:
    view = s.require_view()
    if isinstance(cmd, c.Close) and not view.readonly:
        # RFC 3501 §6.4.2: expunge silently, no EXPUNGE responses.
        await s.store.expunge(view.mailbox.id)
    s.deselect()
    return Tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")


async def idle(s: SessionState, cmd: c.Idle) -> Tagged:
    """RFC 2177: push news until the client sends DONE."""
    if s.read_line is None:
        raise CommandError("NO", "IDLE is not available")
    s.send(Continuation("idling"))
    await flush(s, allow_expunge=True)
    await s.out.drain()
    line_task = asyncio.ensure_future(s.read_line())
    try:
        while True:
            waiters: set[asyncio.Future[Any]] = {line_task}
            bell_task = None
            if s.bell is not None:
                bell_task = asyncio.ensure_future(s.bell.wait())
                waiters.add(bell_task)
            notifier = s.notifier   # NOTIFY (RFC 5465): other mailboxes' news, pushed too
            notify_task = asyncio.ensure_future(notifier.bell.wait()) if notifier else None
            if notify_task is not None:
                waiters.add(notify_task)
            done, _ = await asyncio.wait(waiters, timeout=s.services.autologout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if bell_task is not None and not bell_task.done():
                bell_task.cancel()
            if notify_task is not None and not notify_task.done():
                notify_task.cancel()
            if not done:
                s.send(BYE_AUTOLOGOUT)
                await s.out.drain()
                raise SessionClosed()
            if line_task in done:
                break
            await flush(s, allow_expunge=True, force=True)
            if notifier is not None and notifier is s.notifier:
                await notifier.push()
            await s.out.drain()
    finally:
        if not line_task.done():
            line_task.cancel()
    line = line_task.result()
    if line is None:
        raise SessionClosed()
    if line.strip().upper() != b"DONE":
        raise CommandError("BAD", "expected DONE")
    return Tagged(cmd.tag, "OK", "IDLE terminated")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.Select: select, c.Examine: select, c.Noop: noop, c.Check: noop, c.Close: close,
    c.Unselect: close, c.Idle: idle,
}
