"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS
(RFC 3501 §6.3) and NAMESPACE (RFC 2342).

Invariants:

- One personal namespace, hierarchy separator "/" (`SEPARATOR`); names travel in modified
  UTF-7 (RFC 3501 §5.1.3) and are Unicode everywhere else.
- What LIST and LSUB return is decided by `listing` (pure) over the names the store holds,
  `\\Noselect` placeholders included, and the user's subscription list.
- Subscriptions are names, not mailboxes (RFC 3501 §6.3.6): SUBSCRIBE takes any valid name,
  and CREATE, DELETE and RENAME leave the list alone (docs/IMAP.md).
- The store decides what may be created, renamed or deleted; its errors reach the client as
  ``NO [code]`` through the session.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Final

from rmail.server.core import mutf7
from rmail.server.core.errors import NotFound

from .. import commands as c
from ..encode import Atom, Data, Tagged, encode
from ..errors import CommandError
from ..listing import SEPARATOR, Entry, Hierarchy, list_entries, list_pattern, lsub_entries
from ..state import SessionState

__all__ = ["HANDLERS", "SEPARATOR"]

_NAMESPACE: Final = encode(Data("NAMESPACE", (((("", SEPARATOR),), None, None))))
#: RFC 3501 §6.3.8: LIST "" "" gives the hierarchy delimiter and the root name.
_ROOT: Final = encode(Data("LIST", ((Atom("\\Noselect"),), SEPARATOR, "")))


async def create(s: SessionState, cmd: c.Create) -> Tagged:
    name = cmd.mailbox.rstrip(SEPARATOR)  # RFC 3501 §6.3.3: a trailing separator is intent
    if name == "INBOX":
        raise CommandError("NO", "INBOX always exists", "ALREADYEXISTS")
    await s.store.create_mailbox(s.account.id, name)
    return Tagged(cmd.tag, "OK", "CREATE completed")


async def delete(s: SessionState, cmd: c.Delete) -> Tagged:
    view = s.selected
    own = False
    if view is not None:
        # By id, not name: the name may be spelt differently or renamed since SELECT.
        try:
            own = (await s.store.get_mailbox(s.account.id, cmd.mailbox)).id == view.mailbox.id
        except NotFound:
            pass
    await s.store.delete_mailbox(s.account.id, cmd.mailbox)
    if own:
        s.deselect()  # deleting one's own selected mailbox just leaves it
    return Tagged(cmd.tag, "OK", "DELETE completed")


async def rename(s: SessionState, cmd: c.Rename) -> Tagged:
    await s.store.rename_mailbox(s.account.id, cmd.mailbox, cmd.new_name)
    return Tagged(cmd.tag, "OK", "RENAME completed")


async def subscribe(s: SessionState, cmd: c.Subscribe | c.Unsubscribe) -> Tagged:
    await s.store.set_subscribed(s.account.id, cmd.mailbox, isinstance(cmd, c.Subscribe))
    return Tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")


async def _hierarchy(s: SessionState) -> Hierarchy:
    user_id = s.account.id
    boxes = await s.store.list_mailboxes(user_id)
    noselect = await s.store.list_noselect(user_id)
    subscribed = await s.store.list_subscriptions(user_id)
    return Hierarchy({b.name: b.special_use for b in boxes}, frozenset(noselect), frozenset(subscribed))


def _entry(verb: str, entry: Entry) -> Data:
    return Data(verb, (tuple(Atom(a) for a in entry.attributes), SEPARATOR, mutf7.encode(entry.name)))


async def list_(s: SessionState, cmd: c.List | c.Lsub) -> Tagged:
    lsub = isinstance(cmd, c.Lsub)
    verb = "LSUB" if lsub else "LIST"
    if cmd.matches_nothing:
        return Tagged(cmd.tag, "OK", f"{verb} completed")
    if cmd.pattern == "" and not lsub:
        s.out.write(_ROOT)
        return Tagged(cmd.tag, "OK", "LIST completed")
    pattern = list_pattern(cmd.reference, cmd.pattern)
    h = await _hierarchy(s)
    entries = lsub_entries(h, pattern) if lsub else list_entries(h, [pattern])
    if entries:
        s.send(*(_entry(verb, e) for e in entries))
    return Tagged(cmd.tag, "OK", f"{verb} completed")


async def status(s: SessionState, cmd: c.Status) -> Tagged:
    mailbox = await s.store.get_mailbox(s.account.id, cmd.mailbox)
    st = await s.store.status(mailbox.id)
    values = {"MESSAGES": st.messages, "RECENT": st.recent, "UIDNEXT": st.uidnext,
              "UIDVALIDITY": st.uidvalidity, "UNSEEN": st.unseen}
    items = tuple(v for item in cmd.items for v in (Atom(item), values[item]))
    s.send(Data("STATUS", (mutf7.encode(mailbox.name), items)))
    return Tagged(cmd.tag, "OK", "STATUS completed")


async def namespace(s: SessionState, cmd: c.Namespace) -> Tagged:
    s.out.write(_NAMESPACE)
    return Tagged(cmd.tag, "OK", "NAMESPACE completed")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.Create: create, c.Delete: delete, c.Rename: rename, c.Subscribe: subscribe,
    c.Unsubscribe: subscribe, c.List: list_, c.Lsub: list_, c.Status: status,
    c.Namespace: namespace,
}
