"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS
(RFC 3501 §6.3) and NAMESPACE (RFC 2342).

Invariants:

- One personal namespace, hierarchy separator "/" (`SEPARATOR`); names travel in modified
  UTF-7 (RFC 3501 §5.1.3) and are Unicode everywhere else.
- LIST and LSUB match with RFC 3501 §6.3.8's wildcards over the names the store holds,
  `\\Noselect` placeholders included; INBOX is matched case-insensitively and listed first.
- A subscription belongs to an existing mailbox (docs/IMAP.md): LSUB lists subscribed
  mailboxes, plus, under "%", the unsubscribed parents of hidden subscribed children
  (RFC 3501 §6.3.9).
- The store decides what may be created, renamed or deleted; its errors reach the client as
  ``NO [code]`` through the session.
"""

from __future__ import annotations

import re
from typing import Awaitable, Callable, Final

from rmail.server.core import mutf7
from rmail.server.core.errors import NotFound

from .. import commands as c
from ..encode import Atom, Data, Tagged, encode
from ..errors import CommandError
from ..state import SessionState

__all__ = ["HANDLERS", "SEPARATOR", "list_pattern", "lsub_hidden_parents"]

#: The hierarchy separator (RFC 3501 §5.1.1).
SEPARATOR: Final = "/"
_NAMESPACE: Final = encode(Data("NAMESPACE", (((("", SEPARATOR),), None, None))))
#: RFC 3501 §6.3.8: LIST "" "" gives the hierarchy delimiter and the root name.
_ROOT: Final = encode(Data("LIST", ((Atom("\\Noselect"),), SEPARATOR, "")))
_ONE_LEVEL: Final = "[^" + re.escape(SEPARATOR) + "]*"


def list_pattern(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 3501 §6.3.8: the reference and pattern joined, "*" matching anything and "%"
    anything but the hierarchy separator; "inbox" in any case is INBOX."""
    out = []
    for ch in c.normalize_mailbox(reference + pattern, pattern=True):
        out.append(".*" if ch == "*" else _ONE_LEVEL if ch == "%" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def lsub_hidden_parents(subscribed: list[str], pattern: re.Pattern[str]) -> list[str]:
    """RFC 3501 §6.3.9: when "%" hides a subscribed "foo/bar" and "foo" is not subscribed,
    LSUB returns "foo" flagged \\Noselect (whether or not "foo" exists)."""
    names = set(subscribed)
    out: set[str] = set()
    for name in subscribed:
        if pattern.fullmatch(name):
            continue
        parts = name.split(SEPARATOR)
        for depth in range(1, len(parts)):
            parent = SEPARATOR.join(parts[:depth])
            if parent not in names and pattern.fullmatch(parent):
                out.add(parent)
    return sorted(out)


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


async def list_(s: SessionState, cmd: c.List | c.Lsub) -> Tagged:
    lsub = isinstance(cmd, c.Lsub)
    verb = "LSUB" if lsub else "LIST"
    if cmd.matches_nothing:
        return Tagged(cmd.tag, "OK", f"{verb} completed")
    if cmd.pattern == "" and not lsub:
        s.out.write(_ROOT)
        return Tagged(cmd.tag, "OK", "LIST completed")
    pattern = list_pattern(cmd.reference, cmd.pattern)
    user_id = s.account.id
    boxes = await s.store.list_mailboxes(user_id)
    noselect = await s.store.list_noselect(user_id)
    names = {b.name for b in boxes} | set(noselect)
    parents = {n.rsplit(SEPARATOR, 1)[0] for n in names if SEPARATOR in n}
    entries: list[tuple[str, list[str]]] = []
    for box in boxes:
        if lsub and not box.subscribed:
            continue
        attrs = []
        if not lsub:
            attrs.append("\\HasChildren" if box.name in parents else "\\HasNoChildren")
        if box.special_use:
            attrs.append(box.special_use)
        entries.append((box.name, attrs))
    if lsub:
        entries += [(n, ["\\Noselect"]) for n in lsub_hidden_parents(
            [name for name, _ in entries], pattern)]
    else:
        entries += [(n, ["\\Noselect", "\\HasChildren" if n in parents else "\\HasNoChildren"])
                    for n in noselect]
    entries.sort(key=lambda e: (e[0] != "INBOX", e[0]))
    s.send(*(Data(verb, (tuple(Atom(a) for a in attrs), SEPARATOR, mutf7.encode(name)))
             for name, attrs in entries if pattern.fullmatch(name)))
    return Tagged(cmd.tag, "OK", f"{verb} completed")


async def status(s: SessionState, cmd: c.Status) -> Tagged:
    mailbox = await s.store.get_mailbox(s.account.id, cmd.mailbox)
    st = await s.store.status(mailbox.id)
    values = {"MESSAGES": st.messages, "RECENT": st.recent, "UIDNEXT": st.uidnext,
              "UIDVALIDITY": st.uidvalidity, "UNSEEN": st.unseen}
    if "HIGHESTMODSEQ" in cmd.items:
        values["HIGHESTMODSEQ"] = st.highestmodseq
        s.enable_condstore()    # RFC 7162 §3.1: STATUS HIGHESTMODSEQ enables CONDSTORE
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
