"""NOTIFY (RFC 5465): the command, and the subscription that pushes other mailboxes' STATUS
and the mailbox list's LIST news, and the selected mailbox's news, without being asked.

Invariants:

- One `Notifier` per session at most; NOTIFY SET replaces it whole, NOTIFY NONE and the end
  of the connection stop it (its bus subscription and its task go together).
- A change is a "look again" from the bus; the notifier only marks what to look at (the
  mailbox ids, "the list") and a task looks when no command runs (`SessionState.writing`),
  or IDLE does (`handlers.sync.idle`). So what waits for a slow client is at most one mark
  per watched mailbox, never a queue of responses: the task writes, waits for the client to
  read (`drain`), then looks again at whatever has been marked meanwhile.
- At most `MAX_WATCHED` mailboxes per session, and one STATUS read per push for all those
  marked; a SET matching more is refused ``NO [NOTIFICATIONOVERFLOW]``, and a hierarchy that
  grows past it later ends the notifications with ``* OK [NOTIFICATIONOVERFLOW]`` (§4).
- The selected mailbox: with SELECTED (or SELECTED-DELAYED) events its news is pushed as it
  happens, with EXPUNGE only under SELECTED (§5.3), and MessageNew's fetch attributes for
  every new message (§5.2); without, it is reported at RFC 3501's moments, as before NOTIFY.
  It never gets a STATUS (§5). While a mailbox-list change is unchecked (it may be gone)
  its news waits for the next command, which can end the session with BYE.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Final

from rmail.server.core.errors import NotFound, RmailError
from rmail.server.core.events import Event, ExternalChange, MailboxChanged, MailboxesChanged
from rmail.server.core.model import MailboxStatus

from .. import commands as c
from ..encode import Atom, Code, Data, Response, Status, Tagged, Value
from ..errors import CommandError, SessionClosed
from ..listing import SEPARATOR, Hierarchy
from ..notify import (BadEvent, NotifySpec, SUPPORTED, attributes, happened, list_changes,
                      parse_spec, status_items)
from ..state import SessionState
from .messages import fetch
from .sync import flush

__all__ = ["HANDLERS", "MAX_WATCHED", "Notifier"]

log = logging.getLogger("rmail.imap")

#: Mailboxes one session's NOTIFY may watch: each costs a STATUS snapshot in memory and a
#: share of a STATUS read when it changes. Far above any real hierarchy a client shows.
MAX_WATCHED: Final = 2000

_OVERFLOW: Final = Status("OK", "too many mailboxes to watch; NOTIFY is off",
                          Code("NOTIFICATIONOVERFLOW"))


class Notifier:
    """One session's NOTIFY SET in force (see the module's invariants)."""

    def __init__(self, s: SessionState, spec: NotifySpec) -> None:
        self.s = s
        self.spec = spec
        self.user_id = s.account.id
        #: Watched mailbox id → (name, events); their last STATUS as the client knows it.
        self.watched: dict[int, tuple[str, frozenset[str]]] = {}
        self.last: dict[int, MailboxStatus] = {}
        #: The mailbox list as last seen (names → ids, subscriptions), for LIST news.
        self.ids: dict[str, int] = {}
        self.subscribed: frozenset[str] = frozenset()
        self.dirty: set[int] = set()
        #: Newly watched mailboxes whose next look only sets their baseline.
        self._baseline: set[int] = set()
        self._new_ids: dict[str, int] = {}
        self.list_dirty = False
        self.selected_dirty = False
        #: The highest UID of the selected mailbox whose fetch attributes were sent (§5.2).
        self.fetched: tuple[int, int] | None = None    # (mailbox id, uid)
        self.bell = s.services.bus.doorbell(self._wanted)
        self.task: asyncio.Task[None] | None = None

    def _wanted(self, event: Event) -> bool:
        if isinstance(event, MailboxChanged):
            if event.user_id != self.user_id:
                return False
            if event.mailbox_id in self.watched:
                self.dirty.add(event.mailbox_id)
                return True
            view = self.s.selected
            if self.spec.has_selected and view is not None and view.mailbox.id == event.mailbox_id:
                self.selected_dirty = True
                return True
            return False
        if (isinstance(event, MailboxesChanged) and event.user_id == self.user_id) or \
                isinstance(event, ExternalChange):
            self.list_dirty = True
            if isinstance(event, ExternalChange):
                self.dirty.update(self.watched)
                self.selected_dirty = self.spec.has_selected
            return True
        return False

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Learn the mailbox list and the watched mailboxes' STATUS (the bell is already
        subscribed, so nothing committed meanwhile is lost).

        Raises:
            CommandError: NO [NOTIFICATIONOVERFLOW] when too many mailboxes match.
        """
        h = await self._read_list()
        if not self._resolve(h):
            raise CommandError("NO", f"NOTIFY watches at most {MAX_WATCHED} mailboxes",
                               "NOTIFICATIONOVERFLOW")
        self._baseline.clear()
        self.dirty.clear()
        self.last = await self._statuses(list(self.watched))
        view = self.s.selected
        if view is not None:
            self.fetched = (view.mailbox.id, view.max_uid)

    def run(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._pump(), name="imap-notify")

    def stop(self) -> None:
        self.s.services.bus.unsubscribe(self.bell)
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self.task = None

    async def _pump(self) -> None:
        """Push news between commands; each round writes what was marked, then waits for the
        client to read it before looking again."""
        s = self.s
        try:
            while True:
                await self.bell.wait()
                async with s.writing:
                    if s.notifier is not self:
                        return
                    await self.push()
                await s.out.drain()
        except SessionClosed:
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a bug: log it, stop notifying, keep the session
            log.exception("imap: NOTIFY failed")
            self.s.services.bus.unsubscribe(self.bell)

    # -- what to say ------------------------------------------------------------------------

    async def push(self) -> None:
        """Write the news marked so far (called with no command writing)."""
        s = self.s
        out: list[Response] = []
        if self.list_dirty:
            self.list_dirty = False
            h = await self._read_list()
            if self.spec.wants_names:
                out += self._list_news(h)
            if not self._resolve(h):
                s.send(*out, _OVERFLOW)
                self._give_up()
                return
        if self.dirty:
            ids = [i for i in self.dirty if i in self.watched]
            self.dirty = set()
            out += await self._status_news(ids)
        if out:
            s.send(*out)
        if self.selected_dirty and s.selected is not None and not s.check_mailbox:
            self.selected_dirty = False
            await flush(s, allow_expunge=not self.spec.delayed)
            await self._fetch_new()

    def _give_up(self) -> None:
        """RFC 5465 §4: after NOTIFICATIONOVERFLOW the session is as after NOTIFY NONE."""
        self.stop()
        if self.s.notifier is self:
            self.s.notifier = None

    async def _read_list(self) -> Hierarchy:
        store, uid = self.s.store, self.user_id
        boxes = await store.list_mailboxes(uid)
        noselect = await store.list_noselect(uid)
        subscribed = await store.list_subscriptions(uid)
        h = Hierarchy({b.name: b.special_use for b in boxes}, frozenset(noselect),
                      frozenset(subscribed))
        self._new_ids = {b.name: b.id for b in boxes}
        return h

    def _resolve(self, h: Hierarchy) -> bool:
        """Recompute the watched mailboxes from the list just read; False past the cap."""
        ids = self._new_ids
        watched: dict[int, tuple[str, frozenset[str]]] = {}
        for name, box_id in ids.items():
            events = self.spec.events_for(name, h.subscribed) & {
                "MessageNew", "MessageExpunge", "FlagChange"}
            if events:
                watched[box_id] = (name, events)
                if len(watched) > MAX_WATCHED:
                    return False
        fresh = [i for i in watched if i not in self.watched]
        self.watched = watched
        self.ids, self.subscribed = ids, h.subscribed
        self.last = {i: st for i, st in self.last.items() if i in watched}
        # A mailbox that starts to be watched is known from now on: its baseline is read at
        # the next look (marked), without a notification of its own.
        self._baseline.update(fresh)
        self.dirty.update(fresh)
        return True

    async def _statuses(self, ids: list[int]) -> dict[int, MailboxStatus]:
        if not ids:
            return {}
        try:
            return await self.s.store.status_many(ids)
        except NotFound:    # one went meanwhile: the list news will say so
            found = {}
            for box_id in ids:
                try:
                    found[box_id] = await self.s.store.status(box_id)
                except NotFound:
                    pass
            return found

    async def _status_news(self, ids: list[int]) -> list[Response]:
        s = self.s
        view = s.selected
        now = await self._statuses(ids)
        out: list[Response] = []
        for box_id in sorted(ids, key=lambda i: self.watched[i][0]):
            st = now.get(box_id)
            if st is None:
                continue
            before = self.last.get(box_id)
            self.last[box_id] = st
            if box_id in self._baseline:
                self._baseline.discard(box_id)
                continue
            if before is None or (view is not None and view.mailbox.id == box_id):
                continue
            name, wanted = self.watched[box_id]
            items = status_items(happened(before, st) & wanted)
            if items:
                out.append(_status(s, name, st, items))
        return out

    def _list_news(self, h: Hierarchy) -> list[Response]:
        s = self.s
        out: list[Response] = []
        for change in list_changes(self.ids, self._new_ids, self.subscribed, h.subscribed):
            names = (change.name,) if change.old_name is None else (change.name, change.old_name)
            if not any(change.event in self.spec.events_for(n, h.subscribed | self.subscribed)
                       for n in names):
                continue
            attrs = attributes(h, change.name, subscribed=change.event == "SubscriptionChange")
            values: tuple[Value, ...] = (tuple(Atom(a) for a in attrs), SEPARATOR,
                                         s.wire_mailbox(change.name))
            if change.old_name is not None:
                # RFC 5465 §5.4 with RFC 5258's extended data: the name it had before.
                values += (("OLDNAME", (s.wire_mailbox(change.old_name),)),)
            out.append(Data("LIST", values))
        return out

    async def _fetch_new(self) -> None:
        """MessageNew's fetch attributes for the selected mailbox's new messages (§5.2)."""
        s = self.s
        view = s.selected
        if view is None or not self.spec.fetch:
            return
        done = self.fetched
        start = done[1] + 1 if done is not None and done[0] == view.mailbox.id else view.max_uid + 1
        self.fetched = (view.mailbox.id, max(view.max_uid, start - 1))
        if start > view.max_uid:
            return
        atts = self.spec.fetch
        if not any(a.name == "UID" for a in atts):
            atts = (c.FetchAtt("UID"), *atts)     # the new messages named by UID too
        cmd = c.Fetch("*", c.SeqSet(((start, view.max_uid),)), atts, uid=True)
        try:
            await fetch(s, cmd)
        except (CommandError, RmailError) as exc:
            log.info("imap: NOTIFY fetch of new messages failed: %s", exc)


def _status(s: SessionState, name: str, st: MailboxStatus, items: tuple[str, ...]) -> Data:
    values = {"MESSAGES": st.messages, "UIDNEXT": st.uidnext, "UIDVALIDITY": st.uidvalidity,
              "UNSEEN": st.unseen, "HIGHESTMODSEQ": st.highestmodseq}
    return Data("STATUS", (s.wire_mailbox(name),
                           tuple(v for i in items for v in (Atom(i), values[i]))))


async def notify(s: SessionState, cmd: c.Notify) -> Tagged:
    try:
        spec = parse_spec(cmd)
    except BadEvent as exc:
        return Tagged(cmd.tag, "NO", str(exc),
                      Code("BADEVENT", (tuple(Atom(e) for e in SUPPORTED),)))
    old = s.notifier
    if spec is None:
        if old is not None:
            old.stop()
        s.notifier = None
        return Tagged(cmd.tag, "OK", "NOTIFY completed")
    notifier = Notifier(s, spec)
    try:
        await notifier.start()
    except BaseException:
        notifier.stop()
        raise
    if old is not None:
        old.stop()
    s.notifier = notifier
    if spec.status:
        view = s.selected
        out: list[Response] = []
        for box_id, (name, events) in sorted(notifier.watched.items(), key=lambda kv: kv[1][0]):
            st = notifier.last.get(box_id)
            if st is None or (view is not None and view.mailbox.id == box_id):
                continue
            out.append(_status(s, name, st, status_items(events)))
        if out:
            s.send(*out)
    notifier.run()
    return Tagged(cmd.tag, "OK", "NOTIFY completed")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {c.Notify: notify}
