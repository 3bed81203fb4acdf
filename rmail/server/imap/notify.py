"""NOTIFY (RFC 5465) as data: which NOTIFY SET is valid, which mailboxes and events it
watches, what a change to a watched mailbox is worth telling, and the LIST news of a changed
mailbox list. Pure code; `handlers.notify` reads the store and writes.

Invariants:

- A NOTIFY SET is checked whole before it replaces the one in force (§3.1): an unsupported
  event is ``NO [BADEVENT (supported...)]`` (§4), a malformed combination is BAD and the old
  setting stays.
- The selected mailbox's events come only from a SELECTED or SELECTED-DELAYED group (at most
  one); every other group is about the other mailboxes, and the selected mailbox is never
  reported with STATUS (§5: it has EXISTS, EXPUNGE and FETCH).
- A change is judged from two STATUS snapshots of a mailbox (`happened`): "look again" is
  what the event bus says, and the counts are what the store holds. Several changes between
  two looks are one notification (coalesced): a new message and a flag change seen in one
  look count as the new message (the MODSEQ advance is its).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Iterable, Mapping

from rmail.server.core.model import MailboxStatus

from . import commands as c
from .errors import CommandError
from .listing import SEPARATOR, Hierarchy

__all__ = ["BadEvent", "MESSAGE_EVENTS", "NAME_EVENTS", "SUPPORTED", "ListChange", "NotifySpec", "Watch",
           "attributes", "happened", "list_changes", "parse_spec", "status_items"]

#: What rmail reports, in RFC 5465's spelling and order (BADEVENT lists them, §4).
SUPPORTED: Final = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
                    "SubscriptionChange")
MESSAGE_EVENTS: Final = frozenset({"MessageNew", "MessageExpunge", "FlagChange"})
NAME_EVENTS: Final = frozenset({"MailboxName", "SubscriptionChange"})
#: Message events RFC 5465 names that rmail does not report (no ANNOTATE, METADATA).
_SELECTED_ALLOWED: Final = MESSAGE_EVENTS | {"AnnotationChange"}


@dataclass(frozen=True, slots=True)
class Watch:
    """One group about other mailboxes: its filter, names and events."""

    filter: str
    names: tuple[str, ...]
    events: frozenset[str]

    def matches(self, name: str, subscribed: frozenset[str]) -> bool:
        kind = self.filter
        if kind == "PERSONAL":
            return True     # one personal namespace holds every mailbox (§6)
        if kind == "INBOXES":
            return name == "INBOX"  # mail is delivered to INBOX only (no Sieve fileinto)
        if kind == "SUBSCRIBED":
            return name in subscribed
        if kind == "MAILBOXES":
            return name in self.names
        # SUBTREE: each name and every mailbox below it.
        return any(name == root or name.startswith(root + SEPARATOR) for root in self.names)


@dataclass(frozen=True, slots=True)
class NotifySpec:
    """A valid NOTIFY SET (§3.1)."""

    watches: tuple[Watch, ...]
    #: The selected mailbox's events (empty: SELECTED NONE or no such group).
    selected: frozenset[str]
    #: SELECTED-DELAYED: expunges of the selected mailbox wait for a command that may report
    #: them (§5.3, RFC 3501 §7.4.1); SELECTED: they may go at any time.
    delayed: bool
    #: MessageNew's fetch-att for the selected mailbox (§5.2); BODY is made BODY.PEEK.
    fetch: tuple[c.FetchAtt, ...]
    #: NOTIFY SET STATUS: the matched mailboxes' STATUS at once (§3.1).
    status: bool

    @property
    def has_selected(self) -> bool:
        return bool(self.selected)

    def events_for(self, name: str, subscribed: frozenset[str]) -> frozenset[str]:
        """The events wanted for another mailbox `name` (the union of matching groups)."""
        out: frozenset[str] = frozenset()
        for w in self.watches:
            if w.matches(name, subscribed):
                out |= w.events
        return out

    @property
    def wants_names(self) -> bool:
        return any(w.events & NAME_EVENTS for w in self.watches)

    @property
    def wants_subscriptions(self) -> bool:
        return any(w.filter == "SUBSCRIBED" for w in self.watches)


class BadEvent(Exception):
    """NOTIFY named events rmail does not report: ``NO [BADEVENT (supported...)]`` (§4)."""

    def __init__(self, events: list[str]) -> None:
        super().__init__("unsupported NOTIFY events: " + " ".join(e[:40] for e in events))


def _bad(text: str) -> CommandError:
    return CommandError("BAD", text)


def parse_spec(cmd: c.Notify) -> NotifySpec | None:
    """The setting NOTIFY asks for; None for NOTIFY NONE.

    Raises:
        CommandError: BAD for an invalid combination.
        BadEvent: events rmail does not support.
    """
    if cmd.groups is None:
        return None
    asked = {e for g in cmd.groups for e in g.events}
    unsupported = asked - set(SUPPORTED)
    if unsupported:
        raise BadEvent(sorted(unsupported))
    watches: list[Watch] = []
    selected: frozenset[str] = frozenset()
    delayed = False
    fetch: tuple[c.FetchAtt, ...] = ()
    seen_selected = False
    for g in cmd.groups:
        events = frozenset(g.events)
        if g.filter in ("SELECTED", "SELECTED-DELAYED"):
            if seen_selected:
                raise _bad("SELECTED or SELECTED-DELAYED may be given once")
            seen_selected = True
            if events - _SELECTED_ALLOWED:
                raise _bad("only message events apply to the selected mailbox")
            new_or_gone = events & {"MessageNew", "MessageExpunge"}
            if len(new_or_gone) == 1:
                # §5.2, §5.3: one without the other would let the client's message numbers
                # drift from the server's.
                raise _bad("MessageNew and MessageExpunge go together for the selected mailbox")
            if events & {"FlagChange"} and not new_or_gone:
                raise _bad("FlagChange needs MessageNew and MessageExpunge")
            selected, delayed = events, g.filter == "SELECTED-DELAYED"
            fetch = tuple(c.FetchAtt(a.name, a.section, a.partial, peek=True)
                          if a.name == "BODY" else a for a in g.fetch)
            continue
        if g.fetch:
            raise _bad("fetch attributes apply to the selected mailbox only (SELECTED)")
        if events:
            watches.append(Watch(g.filter, g.mailboxes, events))
    return NotifySpec(tuple(watches), selected, delayed, fetch, cmd.status)


def status_items(events: Iterable[str]) -> tuple[str, ...]:
    """The STATUS items that tell of `events` in another mailbox (§5.2–5.4): MessageNew →
    MESSAGES UIDNEXT UIDVALIDITY; MessageExpunge → MESSAGES; FlagChange → UIDVALIDITY
    HIGHESTMODSEQ (rmail always has CONDSTORE, RFC 7162; as Dovecot and imaptest, whether or
    not the session enabled it: asking for FlagChange is asking for it)."""
    ev = set(events)
    items: list[str] = []
    if ev & {"MessageNew", "MessageExpunge"}:
        items.append("MESSAGES")
    if "MessageNew" in ev:
        items += ["UIDNEXT", "UIDVALIDITY"]
    if "FlagChange" in ev:
        if "UIDVALIDITY" not in items:
            items.append("UIDVALIDITY")
        items.append("HIGHESTMODSEQ")
    return tuple(items)


def happened(old: MailboxStatus, new: MailboxStatus) -> frozenset[str]:
    """The message events between two looks at one mailbox (see the module's invariants)."""
    if old.uidvalidity != new.uidvalidity:
        return MESSAGE_EVENTS   # another life of the name: everything changed
    added = max(new.uidnext - old.uidnext, 0)
    out = set()
    if added:
        out.add("MessageNew")
    if new.messages < old.messages + added:
        out.add("MessageExpunge")
    if not out and (new.highestmodseq != old.highestmodseq or new.unseen != old.unseen):
        out.add("FlagChange")
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class ListChange:
    """One ``* LIST`` of a changed mailbox list (§5.4, §5.5)."""

    name: str
    event: str                  # MailboxName or SubscriptionChange
    old_name: str | None = None  # a rename: the OLDNAME extended data (RFC 5258 §3.4)


def list_changes(old_ids: Mapping[str, int], new_ids: Mapping[str, int],
                 old_subscribed: frozenset[str], new_subscribed: frozenset[str]) -> list[ListChange]:
    """What changed between two looks at a user's mailbox list: renames (a mailbox id under a
    new name), deletions, creations, then subscription changes, each in name order."""
    old_by_id = {i: n for n, i in old_ids.items()}
    new_by_id = {i: n for n, i in new_ids.items()}
    out: list[ListChange] = []
    for i in sorted(set(old_by_id) & set(new_by_id), key=new_by_id.__getitem__):
        if old_by_id[i] != new_by_id[i]:
            out.append(ListChange(new_by_id[i], "MailboxName", old_by_id[i]))
    out += [ListChange(old_by_id[i], "MailboxName")
            for i in sorted(set(old_by_id) - set(new_by_id), key=old_by_id.__getitem__)]
    out += [ListChange(new_by_id[i], "MailboxName")
            for i in sorted(set(new_by_id) - set(old_by_id), key=new_by_id.__getitem__)]
    out += [ListChange(n, "SubscriptionChange")
            for n in sorted(new_subscribed ^ old_subscribed)]
    return out


def attributes(h: Hierarchy, name: str, *, subscribed: bool) -> tuple[str, ...]:
    """A LIST notification's attributes: as LIST shows the name now (\\NonExistent once gone,
    RFC 5258 §3.4), with \\Subscribed when `subscribed` asks and the name is subscribed."""
    attrs: list[str] = []
    if not h.exists(name):
        attrs.append("\\NonExistent")
    else:
        if name in h.noselect:
            attrs.append("\\Noselect")
        attrs.append("\\HasChildren" if name in h.parents else "\\HasNoChildren")
    if subscribed and name in h.subscribed:
        attrs.append("\\Subscribed")
    special = h.mailboxes.get(name)
    if special is not None:
        attrs.append(special)
    return tuple(attrs)
