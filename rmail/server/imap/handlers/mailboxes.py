"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS
(RFC 3501 §6.3) and NAMESPACE (RFC 2342).

Invariants:

- One personal namespace, hierarchy separator "/" (`SEPARATOR`); names travel in modified
  UTF-7 (RFC 3501 §5.1.3), or as UTF-8 once UTF8=ACCEPT is enabled (RFC 6855,
  `SessionState.wire_mailbox`), and are Unicode everywhere else.
- What LIST and LSUB return is decided by `listing` (pure) over the names the store holds,
  `\\Noselect` placeholders included, and the user's subscription list.
- Subscriptions are names, not mailboxes (RFC 3501 §6.3.6): SUBSCRIBE takes any valid name,
  and CREATE, DELETE and RENAME leave the list alone (docs/IMAP.md).
- The store decides what may be created, renamed or deleted; its errors reach the client as
  ``NO [code]`` through the session.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Final

from rmail.server.core.errors import NotFound
from rmail.server.core.model import DEFAULT_MAILBOXES, MailboxStatus

from .. import commands as c
from .. import objectid
from ..encode import Atom, Code, Data, Response, Tagged, Value, encode
from ..errors import CommandError
from ..listing import SEPARATOR, Entry, Hierarchy, list_entries, list_pattern, lsub_entries
from ..state import SessionState
from .quota import deleted_status

__all__ = ["HANDLERS", "SEPARATOR"]

_NAMESPACE: Final = encode(Data("NAMESPACE", (((("", SEPARATOR),), None, None))))
#: RFC 3501 §6.3.8: LIST "" "" gives the hierarchy delimiter and the root name.
_ROOT: Final = encode(Data("LIST", ((Atom("\\Noselect"),), SEPARATOR, "")))


#: Special uses a CREATE may give (RFC 6154 §3): one per mailbox, the ones rmail's defaults
#: have. \\All and \\Flagged would be virtual mailboxes, which rmail does not have.
CREATE_SPECIAL_USES: Final = {special.value.lower(): special.value for _, special in DEFAULT_MAILBOXES if special}


async def create(s: SessionState, cmd: c.Create) -> Tagged:
    name = cmd.mailbox.rstrip(SEPARATOR)  # RFC 3501 §6.3.3: a trailing separator is intent
    if name == "INBOX":
        raise CommandError("NO", "INBOX always exists", "ALREADYEXISTS")
    special = None
    if cmd.use:
        # RFC 6154 §3: a use that cannot be given refuses the CREATE with NO [USEATTR].
        unknown = [u for u in cmd.use if u.lower() not in CREATE_SPECIAL_USES]
        if unknown:
            raise CommandError("NO", f"{unknown[0][:40]} not supported", "USEATTR")
        if len(cmd.use) > 1:
            raise CommandError("NO", "a mailbox has at most one special use here", "USEATTR")
        special = CREATE_SPECIAL_USES[cmd.use[0].lower()]
    created = await s.store.create_mailbox(s.account.id, name, special)
    # RFC 8474 §4.1: the new mailbox's id in the tagged OK.
    return Tagged(cmd.tag, "OK", "CREATE completed",
                  Code("MAILBOXID", ((Atom(objectid.mailbox_id(created.id, created.uidvalidity)),),)))


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


def _entry(s: SessionState, verb: str, entry: Entry, attributes: tuple[str, ...] | None = None) -> Data:
    attrs = entry.attributes if attributes is None else attributes
    values: tuple[Value, ...] = (tuple(Atom(a) for a in attrs), SEPARATOR, s.wire_mailbox(entry.name))
    if entry.childinfo:
        # RFC 5258 §3.5: the selection options that caused it, always quoted; the tag as an
        # atom, as RFC 5819 §3 and Dovecot write it (either form is valid).
        values += ((Atom("CHILDINFO"), entry.childinfo),)
    return Data(verb, values)


def refuse_recent_item(s: SessionState, items: tuple[str, ...]) -> None:
    """STATUS RECENT is not IMAP4rev2's (RFC 9051 §6.3.11, Appendix E): BAD there, before any
    work (STATUS and LIST RETURN (STATUS ...))."""
    if s.rev2 and "RECENT" in items:
        raise CommandError("BAD", "RECENT is not an IMAP4rev2 STATUS item")


async def status_values(s: SessionState, mailbox_id: int, st: MailboxStatus,
                        items: tuple[str, ...]) -> tuple[Value, ...]:
    """The ``(name value ...)`` list of a STATUS response (RFC 3501 §6.3.10), items in the
    client's order."""
    values: dict[str, Value] = {
        "MESSAGES": st.messages, "RECENT": st.recent, "UIDNEXT": st.uidnext,
        "UIDVALIDITY": st.uidvalidity, "UNSEEN": st.unseen,
        # RFC 8438 §3: the sum of RFC822.SIZE, which is what rmail stores and counts.
        "SIZE": st.size,
        # RFC 7889 §3.1: the same for every mailbox; NIL when no limit applies.
        "APPENDLIMIT": s.services.append_limit,
        "HIGHESTMODSEQ": st.highestmodseq,
        # RFC 8474 §4.3: the id CREATE and SELECT give, as a parenthesized objectid.
        "MAILBOXID": (Atom(objectid.mailbox_id(mailbox_id, st.uidvalidity)),)}
    if "HIGHESTMODSEQ" in items:
        s.enable_condstore()    # RFC 7162 §3.1: STATUS HIGHESTMODSEQ enables CONDSTORE
    if "DELETED" in items or "DELETED-STORAGE" in items:   # RFC 9208 §4.2
        values["DELETED"], values["DELETED-STORAGE"] = await deleted_status(s.store, mailbox_id)
    return tuple(v for item in items for v in (Atom(item), values[item]))


async def list_(s: SessionState, cmd: c.List | c.Lsub) -> Tagged:
    lsub = isinstance(cmd, c.Lsub)
    verb = "LSUB" if lsub else "LIST"
    if cmd.matches_nothing:
        return Tagged(cmd.tag, "OK", f"{verb} completed")
    if isinstance(cmd, c.Lsub):
        entries = lsub_entries(await _hierarchy(s), list_pattern(cmd.reference, cmd.pattern))
        if entries:
            s.send(*(_entry(s, verb, e) for e in entries))
        return Tagged(cmd.tag, "OK", f"{verb} completed")
    if cmd.pattern == "" and not cmd.extended:
        s.out.write(_ROOT)
        return Tagged(cmd.tag, "OK", "LIST completed")
    refuse_recent_item(s, cmd.status_items)
    patterns = [list_pattern(cmd.reference, p) for p in (cmd.pattern, *cmd.more_patterns)]
    h = await _hierarchy(s)
    entries = list_entries(h, patterns, select=cmd.select, returns=cmd.returns, extended=cmd.extended)
    if "STATUS" not in cmd.returns:
        if entries:
            s.send(*(_entry(s, verb, e) for e in entries))
        return Tagged(cmd.tag, "OK", "LIST completed")
    await _list_status(s, h, entries, cmd.status_items)
    return Tagged(cmd.tag, "OK", "LIST completed")


async def _list_status(s: SessionState, h: Hierarchy, entries: list[Entry], items: tuple[str, ...]) -> None:
    """RFC 5819 §2: each selectable listed mailbox's LIST followed by its STATUS. One that is
    gone by the time its STATUS is read gets \\Noselect and no STATUS."""
    wanted = [e.name for e in entries if e.status]
    ids = {b.name: b.id for b in await s.store.list_mailboxes(s.account.id) if b.name in set(wanted)}
    try:
        found = await s.store.status_many(list(ids.values()))
    except NotFound:   # one went meanwhile: ask one by one
        found = {}
        for box_id in ids.values():
            try:
                found[box_id] = await s.store.status(box_id)
            except NotFound:
                pass
    out: list[Response] = []
    for e in entries:
        st = found.get(ids.get(e.name, -1)) if e.status else None
        if e.status and st is None:
            out.append(_entry(s, "LIST", e, ("\\Noselect", *e.attributes)))
            continue
        out.append(_entry(s, "LIST", e))
        if st is not None:
            out.append(Data("STATUS", (s.wire_mailbox(e.name), await status_values(s, ids[e.name], st, items))))
    if out:
        s.send(*out)


async def status(s: SessionState, cmd: c.Status) -> Tagged:
    refuse_recent_item(s, cmd.items)
    mailbox = await s.store.get_mailbox(s.account.id, cmd.mailbox)
    st = await s.store.status(mailbox.id)
    s.send(Data("STATUS", (s.wire_mailbox(mailbox.name), await status_values(s, mailbox.id, st, cmd.items))))
    return Tagged(cmd.tag, "OK", "STATUS completed")


async def namespace(s: SessionState, cmd: c.Namespace) -> Tagged:
    s.out.write(_NAMESPACE)
    return Tagged(cmd.tag, "OK", "NAMESPACE completed")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.Create: create, c.Delete: delete, c.Rename: rename, c.Subscribe: subscribe,
    c.Unsubscribe: subscribe, c.List: list_, c.Lsub: list_, c.Status: status,
    c.Namespace: namespace,
}
