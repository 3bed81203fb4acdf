"""Which names LIST and LSUB return, with which attributes (RFC 3501 §6.3.8–9, RFC 5258,
RFC 6154 §2, RFC 3348): pure code over the user's mailbox names and subscription list.

Invariants:

- The hierarchy is what the store holds: selectable mailboxes and `\\Noselect` placeholders
  (names deleted while they had children). A subscribed name that is neither is
  `\\NonExistent` (RFC 5258 §3) and never has `\\HasChildren` of its own making: children are
  mailboxes, not subscriptions.
- A name is returned at most once, however many patterns it matches (RFC 5258 §3.3 rule 1);
  INBOX first, then by name.
- A name that does not meet the selection criteria is returned only under RECURSIVEMATCH and
  only when one of its descendants meets them without matching any pattern (RFC 5258 §3.3
  rule 2B): CHILDINFO is never redundant for it (§3.5), as Dovecot and imaptest expect.
- LSUB keeps RFC 3501's meaning: subscribed names, and under "%" the unsubscribed parents of
  hidden subscribed children flagged `\\Noselect` (§6.3.9). A subscribed name no mailbox has
  is listed without attributes (as Dovecot): `\\Noselect` would claim it is a parent only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Iterable, Mapping, Sequence

from . import commands as c

__all__ = ["Entry", "Hierarchy", "SEPARATOR", "Wildcard", "list_entries", "list_pattern", "lsub_entries",
           "lsub_hidden_parents"]

#: The hierarchy separator (RFC 3501 §5.1.1).
SEPARATOR: Final = "/"

#: LIST selection options that restrict the names (RFC 5258 §3.1, RFC 6154 §5.2): each one
#: a name must meet, and the name CHILDINFO reports it by.
BASE_SELECTIONS: Final = ("SUBSCRIBED", "SPECIAL-USE")


class Wildcard:
    """A LIST pattern compiled for matching whole names (RFC 3501 §6.3.8): "*" matches
    anything, "%" anything but the hierarchy separator, every other character itself.

    Matching simulates the pattern's automaton with one integer as the set of states (bit i:
    the first i tokens matched), a few integer operations per character of the name. A
    regular expression would backtrack: "*a*a*a*a*a*b" against a 100-character name took
    0.6 s, and each further "*a" multiplies that. Here the cost is linear in the name.
    """

    __slots__ = ("_accept", "_literals", "_percent", "_star", "_wild")

    def __init__(self, pattern: str) -> None:
        tokens: list[str] = []
        for ch in pattern:
            if ch in "*%" and tokens and tokens[-1] in "*%":
                # Adjacent wildcards are one: "*" absorbs "%", "%%" is "%".
                tokens[-1] = "*" if "*" in (ch, tokens[-1]) else "%"
            else:
                tokens.append(ch)
        self._literals: dict[str, int] = {}
        self._star = self._percent = 0
        for i, tok in enumerate(tokens):
            if tok == "*":
                self._star |= 1 << i
            elif tok == "%":
                self._percent |= 1 << i
            else:
                self._literals[tok] = self._literals.get(tok, 0) | 1 << i
        self._wild = self._star | self._percent
        self._accept = 1 << len(tokens)

    def fullmatch(self, name: str) -> bool:
        wild, star = self._wild, self._star
        states = 1 | (1 & wild) << 1            # a leading wildcard may match nothing
        literals = self._literals
        for ch in name:
            stay = star if ch == SEPARATOR else wild    # "%" never consumes the separator
            states = (states & literals.get(ch, 0)) << 1 | (states & stay)
            if not states:
                return False
            states |= (states & wild) << 1      # a wildcard may end here
        return bool(states & self._accept)


def list_pattern(reference: str, pattern: str) -> Wildcard:
    """RFC 3501 §6.3.8: the reference and pattern joined, "*" matching anything and "%"
    anything but the hierarchy separator; "inbox" in any case is INBOX."""
    return Wildcard(c.normalize_mailbox(reference + pattern, pattern=True))


def _ancestors(name: str) -> Iterable[str]:
    parts = name.split(SEPARATOR)
    for depth in range(1, len(parts)):
        yield SEPARATOR.join(parts[:depth])


def lsub_hidden_parents(subscribed: Iterable[str], pattern: Wildcard) -> list[str]:
    """RFC 3501 §6.3.9: when "%" hides a subscribed "foo/bar" and "foo" is not subscribed,
    LSUB returns "foo" flagged \\Noselect (whether or not "foo" exists)."""
    names = set(subscribed)
    out: set[str] = set()
    for name in names:
        if pattern.fullmatch(name):
            continue
        for parent in _ancestors(name):
            if parent not in names and pattern.fullmatch(parent):
                out.add(parent)
    return sorted(out)


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """One user's names, as one LIST needs them (read from the store just before)."""

    #: Selectable mailboxes: name → special-use attribute (or None).
    mailboxes: Mapping[str, str | None]
    #: `\\Noselect` placeholders kept for their children.
    noselect: frozenset[str]
    #: The subscription list (names, existing or not).
    subscribed: frozenset[str]
    #: Every name with a mailbox or placeholder below it.
    parents: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        parents = {p for n in (*self.mailboxes, *self.noselect) for p in _ancestors(n)}
        object.__setattr__(self, "parents", frozenset(parents))

    def exists(self, name: str) -> bool:
        return name in self.mailboxes or name in self.noselect


@dataclass(frozen=True, slots=True)
class Entry:
    """One LIST/LSUB response: the name, its attributes in order, the CHILDINFO selection
    names (RFC 5258 §3.5; empty: none), and whether it gets a STATUS (RFC 5819 §2)."""

    name: str
    attributes: tuple[str, ...]
    childinfo: tuple[str, ...] = ()
    status: bool = False


def _order(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda n: (n != "INBOX", n))


def list_entries(h: Hierarchy, patterns: Sequence[Wildcard], *,
                 select: frozenset[str] = frozenset(), returns: frozenset[str] = frozenset(),
                 extended: bool = False) -> list[Entry]:
    """The LIST responses for `patterns` (any of them matching) under RFC 5258's options.

    Args:
        select: selection options (SUBSCRIBED, SPECIAL-USE, RECURSIVEMATCH, REMOTE).
        returns: return options (SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS).
        extended: the extended syntax was used. A plain LIST reports children
            (`\\HasChildren`/`\\HasNoChildren`) and special uses always, an extended one
            only when asked (RETURN (CHILDREN), RFC 5258 §4; SPECIAL-USE, RFC 6154 §2), as
            Dovecot does.
    """
    def matches(name: str) -> bool:
        return any(p.fullmatch(name) for p in patterns)

    criteria = [s for s in BASE_SELECTIONS if s in select]

    def meets(name: str) -> bool:
        if "SUBSCRIBED" in criteria and name not in h.subscribed:
            return False
        if "SPECIAL-USE" in criteria and h.mailboxes.get(name) is None:
            return False
        return True

    if "SUBSCRIBED" in criteria:
        universe: Iterable[str] = h.subscribed
    elif "SPECIAL-USE" in criteria:
        universe = (n for n, use in h.mailboxes.items() if use is not None)
    else:
        universe = (*h.mailboxes, *h.noselect)
    chosen = {n for n in universe if meets(n)}
    listed = {n for n in chosen if matches(n)}
    # RFC 5258 §3.5: the names of the ancestors of every chosen name, for CHILDINFO.
    with_chosen_child: set[str] = set()
    extra: set[str] = set()
    if "RECURSIVEMATCH" in select:
        for name in chosen:
            hidden = name not in listed
            for parent in _ancestors(name):
                with_chosen_child.add(parent)
                if hidden and parent not in chosen and matches(parent):
                    extra.add(parent)
    show_children = not extended or "CHILDREN" in returns
    show_subscribed = "SUBSCRIBED" in returns or "SUBSCRIBED" in select
    # RFC 6154 §2: a plain LIST may carry special-use attributes, an extended one must when
    # asked; like Dovecot, an extended LIST carries them only when asked.
    show_special = not extended or "SPECIAL-USE" in returns or "SPECIAL-USE" in select
    out = []
    for name in _order(listed | extra):
        attrs = []
        exists = h.exists(name)
        if name in h.noselect:
            attrs.append("\\Noselect")
        if show_children:
            attrs.append("\\HasChildren" if name in h.parents else "\\HasNoChildren")
        if show_subscribed and name in h.subscribed:
            attrs.append("\\Subscribed")
        if not exists:
            attrs.append("\\NonExistent")   # implies \Noselect (RFC 5258 §3.4)
        special = h.mailboxes.get(name) if show_special else None
        if special is not None:
            attrs.append(special)
        childinfo = tuple(criteria) if name in with_chosen_child else ()
        out.append(Entry(name, tuple(attrs), childinfo,
                         status=name in listed and name in h.mailboxes))
    return out


def lsub_entries(h: Hierarchy, pattern: Wildcard) -> list[Entry]:
    """LSUB (RFC 3501 §6.3.9): subscribed names matching `pattern` (with the special-use
    attribute of a mailbox that has the name), plus hidden parents as `\\Noselect`."""
    names = {n for n in h.subscribed if pattern.fullmatch(n)}
    entries = {n: Entry(n, (h.mailboxes[n],) if h.mailboxes.get(n) else ()) for n in names}
    for parent in lsub_hidden_parents(h.subscribed, pattern):
        entries[parent] = Entry(parent, ("\\Noselect",))
    return [entries[n] for n in _order(entries)]
