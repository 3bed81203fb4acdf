"""Parsed IMAP commands as frozen values named after the RFC (RFC 3501 §6, §9).

What the parser (`parser`) produces and everything above it consumes: handlers import these
classes, never the parser. Also the commands and arguments of the extensions rmail
advertises (each class names its RFC; docs/IMAP.md lists them all).

Invariants of a value built by the parser:

- Mailbox names are Unicode (modified UTF-7 decoded, or UTF-8 as sent once the session has
  enabled UTF8=ACCEPT) and `normalize_mailbox`d: INBOX is always spelt "INBOX".
- Flags are canonical: system flags spelt as in RFC 3501 §2.3.2 ("\\Seen"), keywords as sent;
  a flag list holds each flag once, in the client's order.
- FETCH macros are expanded, each item once; a UID FETCH lists UID (RFC 3501 §6.4.8).
- A `SeqSet` keeps the client's ranges; `STAR` (0) stands for "*"; `SAVED_RESULT` stands for
  "$" (RFC 5182), which the session replaces with the saved result before a handler sees it.
- Secrets (LOGIN's password, APPEND's message) stay out of `repr`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Final, Union

__all__ = [
    "Append", "Authenticate", "Capability", "Check", "Close", "Command", "Copy", "Create",
    "Delete", "Enable", "Examine", "Expunge", "Fetch", "FetchAtt", "Id", "Idle", "List",
    "Login", "Logout", "Lsub", "Move", "Namespace", "Noop", "Rename", "STAR", "SearchAll",
    "SearchAnd", "SearchBody", "SearchDate", "SearchFlag", "SearchHeader", "SearchKey",
    "SearchNot", "SearchOr", "SearchRecent", "SearchSeq", "SearchSize", "Search", "Section",
    "Select", "SeqSet", "StartTLS", "Status", "Store", "StoreMode", "Subscribe", "UidExpunge",
    "Unselect", "Unsubscribe", "normalize_mailbox",
    "QResync", "SearchModseq",
    "SORT_KEYS", "Sort", "SortCriterion", "THREAD_ALGORITHMS", "Thread",
    "SAVED_RESULT", "CancelUpdate", "SearchAge", "SearchReturn",
    "Compress", "GetQuota", "GetQuotaRoot", "SetQuota",
    "Notify", "NotifyGroup",
]
# BINARY, MULTIAPPEND, CATENATE, URLAUTH, OBJECTID (RFC 3516, 3502, 4469, 4467, 8474).
__all__ += ["any_key"]
__all__ += ["AppendMessage", "CatPart", "GenUrlAuth", "ResetKey", "SearchObjectId", "UrlFetch",
            "UrlFetchItem"]
# SAVEDATE (RFC 8514).
__all__ += ["SearchSaveDate"]

#: `*` in a sequence set; 0 is never a valid message number or UID.
STAR: Final = 0


def normalize_mailbox(name: str, *, pattern: bool = False) -> str:
    """INBOX is case-insensitive, alone and as the first level of a hierarchy (RFC 3501 §5.1);
    in a LIST pattern (`pattern`) also before a wildcard ("inbox*", "Inbox%")."""
    if name[:5].upper() == "INBOX" and (len(name) == 5 or name[5] in ("/*%" if pattern else "/")):
        return "INBOX" + name[5:]
    return name


# -- values ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SeqSet:
    """A sequence set (RFC 3501 §9 sequence-set); `STAR` (0) stands for "*".

    Ranges are kept as written, so `str()` gives the client's spelling back.
    """

    ranges: tuple[tuple[int, int], ...]
    #: "$", the saved SEARCH result (RFC 5182 §2.1); `ranges` is empty then.
    saved: bool = False

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ascending, merged, inclusive (low, high) ranges with "*" replaced by `largest`.

        RFC 3501 §6.4.8: "n:*" includes `largest` even when n > largest, so a range is
        only ordered, never dropped. With an empty mailbox (largest == 0) "*" matches nothing.
        """
        out: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            lo = largest if lo == STAR else lo
            hi = largest if hi == STAR else hi
            if lo > hi:
                lo, hi = hi, lo
            if hi <= 0:
                continue
            out.append((max(lo, 1), hi))
        out.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in out:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def contains(self, n: int, largest: int) -> bool:
        for lo, hi in self.ranges:
            lo = largest if lo == STAR else lo
            hi = largest if hi == STAR else hi
            if min(lo, hi) <= n <= max(lo, hi):
                return True
        return False

    @property
    def has_star(self) -> bool:
        return any(STAR in r for r in self.ranges)

    def max_number(self) -> int:
        """The largest explicit number in the set (0 when only "*" is used)."""
        return max(max(r) for r in self.ranges)

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def one(n: int) -> str:
            return "*" if n == STAR else str(n)
        return ",".join(one(lo) if lo == hi else f"{one(lo)}:{one(hi)}"
                        for lo, hi in self.ranges)


#: "$" in place of a sequence set: the last SEARCH result saved with RETURN (SAVE) (RFC 5182).
SAVED_RESULT: Final = SeqSet((), saved=True)


@dataclass(frozen=True, slots=True)
class Section:
    """A BODY[...] section (RFC 3501 §6.4.5): part path plus optional text specifier.

    `text` is None (whole part), "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or
    "MIME" (MIME only with a part path); `fields` holds HEADER.FIELDS names as sent.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(str(p) for p in self.part)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One FETCH data item (RFC 3501 §6.4.5).

    `name` is FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, UID, MODSEQ (RFC
    7162), RFC822, RFC822.HEADER, RFC822.TEXT, or BODY — BODY with `section` None is the body structure
    without extension data; with a section it is BODY[section]<partial>. Also PREVIEW
    (RFC 8970), EMAILID and THREADID (RFC 8474), SAVEDATE (RFC 8514); BINARY and BINARY.SIZE
    (RFC 3516 §4.2) always have a section, of part numbers only.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    @property
    def response_name(self) -> str:
        """The item name in the FETCH response: no .PEEK, only the partial's origin (§7.4.2)."""
        if self.section is None:
            return self.name
        origin = f"<{self.partial[0]}>" if self.partial is not None else ""
        if self.name in ("BINARY", "BINARY.SIZE"):
            return f"{self.name}[{self.section}]{origin}"
        return f"BODY[{self.section}]{origin}"

    @property
    def sets_seen(self) -> bool:
        """Non-PEEK body fetches set \\Seen (RFC 3501 §6.4.5; BINARY too, RFC 3516 §4.2)."""
        if self.name == "BINARY.SIZE":
            return False
        if self.section is not None:
            return not self.peek
        return self.name in ("RFC822", "RFC822.TEXT")


class StoreMode(enum.Enum):
    """How STORE combines the given flags with the message's flags (RFC 3501 §6.4.6)."""

    #: FLAGS: replace the flag set.
    REPLACE = ""
    #: +FLAGS: add to the flag set.
    ADD = "+"
    #: -FLAGS: remove from the flag set.
    REMOVE = "-"


# -- search keys (RFC 3501 §6.4.4) --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SearchAll:
    """ALL."""


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """A flag or keyword present (SEEN, KEYWORD x) or absent (UNSEEN, UNKEYWORD x)."""

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class SearchRecent:
    """RECENT (NEW is RECENT UNSEEN, OLD is NOT RECENT)."""


@dataclass(frozen=True, slots=True)
class SearchSeq:
    """A sequence set (message numbers) or UID set."""

    seqset: SeqSet
    uid: bool


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """FROM/TO/CC/BCC/SUBJECT/HEADER: substring of a header field; field lower-cased.
    `address`: FROM/TO/CC/BCC, which match the field's parsed addresses and display names
    rather than its raw text."""

    field: str
    value: str
    address: bool = False


@dataclass(frozen=True, slots=True)
class SearchBody:
    """BODY (body text only) or TEXT (header and body)."""

    value: str
    text: bool


@dataclass(frozen=True, slots=True)
class SearchDate:
    """BEFORE/ON/SINCE (internal date) and SENTBEFORE/SENTON/SENTSINCE (Date: header)."""

    relation: str  # "before", "on" or "since"
    day: date
    sent: bool


@dataclass(frozen=True, slots=True)
class SearchSize:
    """LARGER n / SMALLER n on RFC822.SIZE."""

    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class SearchModseq:
    """MODSEQ [entry-name entry-type] n (RFC 7162 §3.1.5): messages whose MODSEQ is at least
    `modseq`. rmail keeps one MODSEQ per message, so the optional flag entry is checked for
    syntax and then answers like the message's MODSEQ (as the RFC allows)."""

    modseq: int


@dataclass(frozen=True, slots=True)
class SearchAge:
    """OLDER n / YOUNGER n (RFC 5032): INTERNALDATE at most / at least `seconds` before now."""

    older: bool
    seconds: int


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """Juxtaposed keys or a parenthesised list: all must match."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class SearchOr:
    """OR key key."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchNot:
    """NOT key."""

    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchObjectId:
    """EMAILID / THREADID objectid (RFC 8474 §6); `kind` upper-cased, `value` as sent."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchSaveDate:
    """SAVEDBEFORE/SAVEDON/SAVEDSINCE date (RFC 8514 §4.3): the save date's day, compared as
    BEFORE/ON/SINCE compare the internal date's."""

    relation: str  # "before", "on" or "since"
    day: date


SearchKey = Union[SearchAll, SearchFlag, SearchRecent, SearchSeq, SearchHeader, SearchBody,
                  SearchDate, SearchSize, SearchAge, SearchAnd, SearchOr, SearchNot, SearchModseq,
                  SearchObjectId, SearchSaveDate]


def any_key(key: SearchKey, test: Callable[[SearchKey], bool]) -> bool:
    """Whether ``test`` holds for ``key`` or for any key inside it (under AND, OR and NOT)."""
    stack = [key]
    while stack:
        k = stack.pop()
        if test(k):
            return True
        if isinstance(k, SearchAnd):
            stack.extend(k.keys)
        elif isinstance(k, SearchOr):
            stack += (k.left, k.right)
        elif isinstance(k, SearchNot):
            stack.append(k.key)
    return False


@dataclass(frozen=True, slots=True)
class SearchReturn:
    """``RETURN (...)`` of an extended SEARCH (RFC 4466 §2.6): which result items to send in
    one ESEARCH response instead of ``* SEARCH``.

    An empty list means ALL (RFC 4731 §3.1). SAVE keeps the result as "$" and alone sends
    nothing (RFC 5182 §2.4); UPDATE keeps it up to date with ADDTO/REMOVEFROM, CONTEXT is a
    hint rmail takes no action on, PARTIAL is a 1-based ordered range of the result (RFC 5267
    §4.2–4.4).
    """

    min: bool = False
    max: bool = False
    all: bool = False
    count: bool = False
    save: bool = False
    update: bool = False
    context: bool = False
    #: (first, last) positions, first <= last, both >= 1.
    partial: tuple[int, int] | None = None


# -- commands ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Command:
    """Base of every command; `tag` is the client's tag."""

    tag: str


@dataclass(frozen=True, slots=True)
class Capability(Command):
    """CAPABILITY (RFC 3501 §6.1.1)."""


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """NOOP (RFC 3501 §6.1.2)."""


@dataclass(frozen=True, slots=True)
class Logout(Command):
    """LOGOUT (RFC 3501 §6.1.3)."""


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    """STARTTLS (RFC 3501 §6.2.1)."""


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """AUTHENTICATE mechanism [initial-response] (RFC 3501 §6.2.2, RFC 4959)."""

    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login(Command):
    """LOGIN userid password (RFC 3501 §6.2.3)."""

    userid: str
    password: str

    def __repr__(self) -> str:  # never put a password in a log line
        return f"Login(tag={self.tag!r}, userid={self.userid!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class QResync:
    """SELECT/EXAMINE's QRESYNC parameter (RFC 7162 §3.2.5): what the client last knew of the
    mailbox. `known_uids` None stands for 1:(UIDNEXT-1); `seq_match` pairs message numbers
    with the UIDs the client has for them (equal lengths, checked by the parser)."""

    uidvalidity: int
    modseq: int
    known_uids: SeqSet | None = None
    seq_match: tuple[SeqSet, SeqSet] | None = None


@dataclass(frozen=True, slots=True)
class Select(Command):
    """SELECT mailbox [(CONDSTORE | QRESYNC (...))] (RFC 3501 §6.3.1, RFC 7162 §3.1.8, §3.2.5)."""

    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Examine(Command):
    """EXAMINE mailbox [(CONDSTORE | QRESYNC (...))] (RFC 3501 §6.3.2, RFC 7162)."""

    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Create(Command):
    """CREATE mailbox [(USE (attrs))] (RFC 3501 §6.3.3; RFC 6154 §3, CREATE-SPECIAL-USE):
    `use` holds the special-use attributes asked for, as sent."""

    mailbox: str
    use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete(Command):
    """DELETE mailbox (RFC 3501 §6.3.4)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename(Command):
    """RENAME existing new (RFC 3501 §6.3.5)."""

    mailbox: str
    new_name: str


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    """SUBSCRIBE mailbox (RFC 3501 §6.3.6)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    """UNSUBSCRIBE mailbox (RFC 3501 §6.3.7)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class List(Command):
    """LIST [(select-opts)] reference pattern(s) [RETURN (return-opts)] (RFC 3501 §6.3.8,
    RFC 5258, RFC 5819). `matches_nothing`: the reference or every pattern is not modified
    UTF-7 (or, extended, empty), so no mailbox name matches.

    `pattern` is the first pattern and `more_patterns` the rest of a list (RFC 5258 §3), each
    matched with `reference`; patterns that match nothing are left out. `select` and `returns`
    hold the options upper-cased (RFC 5258 §3.1–3.2, RFC 6154 §5.2, RFC 5819), `status_items`
    the items of RETURN (STATUS (...)). `extended`: the RFC 5258 syntax was used, so "" is an
    ordinary pattern and extended data items may be returned.
    """

    reference: str
    pattern: str
    matches_nothing: bool = False
    more_patterns: tuple[str, ...] = ()
    select: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    """LSUB reference pattern (RFC 3501 §6.3.9); `matches_nothing` as for LIST."""

    reference: str
    pattern: str
    matches_nothing: bool = False


@dataclass(frozen=True, slots=True)
class Status(Command):
    """STATUS mailbox (items) (RFC 3501 §6.3.10); items upper-cased, in client order."""

    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CatPart:
    """One part of a CATENATE (RFC 4469 §5): TEXT literal (`text`, `binary` when a literal8)
    or URL (`url`, as sent)."""

    text: bytes | None = None
    url: str | None = None
    binary: bool = False

    def __repr__(self) -> str:
        if self.text is not None:
            return f"CatPart(text=<{len(self.text)} bytes>)"
        return f"CatPart(url={self.url!r})"


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND: [flags] [date-time] and a literal (`message`, `binary` when a
    literal8, RFC 3516 §4.4) or CATENATE parts (`catenate`, RFC 4469; `message` is empty)."""

    flags: tuple[str, ...]
    internal_date: datetime | None
    message: bytes
    binary: bool = False
    catenate: tuple[CatPart, ...] | None = None

    def __repr__(self) -> str:
        return (f"AppendMessage(flags={self.flags!r}, internal_date={self.internal_date!r}, "
                f"message=<{len(self.message)} bytes>, catenate={self.catenate!r})")


@dataclass(frozen=True, slots=True)
class Append(Command):
    """APPEND mailbox [flags] [date-time] literal (RFC 3501 §6.3.11); `binary`: the message
    came as a literal8 (RFC 3516 §4.4) and may hold binary parts; `catenate`: the message is
    built from these parts instead (RFC 4469, `message` is empty); `more`: the messages after
    the first (MULTIAPPEND, RFC 3502)."""

    mailbox: str
    flags: tuple[str, ...]
    internal_date: datetime | None
    message: bytes
    binary: bool = False
    catenate: tuple[CatPart, ...] | None = None
    more: tuple[AppendMessage, ...] = ()

    def messages(self) -> tuple[AppendMessage, ...]:
        """Every message of the command, the first one included, in order."""
        first = AppendMessage(self.flags, self.internal_date, self.message, self.binary,
                              self.catenate)
        return (first, *self.more)

    def __repr__(self) -> str:
        return (f"Append(tag={self.tag!r}, mailbox={self.mailbox!r}, flags={self.flags!r}, "
                f"internal_date={self.internal_date!r}, message=<{len(self.message)} bytes>, "
                f"catenate={self.catenate!r}, more={self.more!r})")


@dataclass(frozen=True, slots=True)
class GenUrlAuth(Command):
    """GENURLAUTH (url-rump mechanism)... (RFC 4467 §6.1); mechanisms upper-cased."""

    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ResetKey(Command):
    """RESETKEY [mailbox mechanism...] (RFC 4467 §6.2); no mailbox: every mailbox."""

    mailbox: str | None
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UrlFetchItem:
    """One URL of URLFETCH: `params` None for the plain form (RFC 4467 §6.3), else the
    upper-cased BODY / BINARY / BODYPARTSTRUCTURE asked for (RFC 5524 §3)."""

    url: str
    params: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class UrlFetch(Command):
    """URLFETCH url... (RFC 4467 §6.3, RFC 5524)."""

    items: tuple[UrlFetchItem, ...]


@dataclass(frozen=True, slots=True)
class Check(Command):
    """CHECK (RFC 3501 §6.4.1)."""


@dataclass(frozen=True, slots=True)
class Close(Command):
    """CLOSE (RFC 3501 §6.4.2)."""


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """EXPUNGE (RFC 3501 §6.4.3)."""


@dataclass(frozen=True, slots=True)
class UidExpunge(Command):
    """UID EXPUNGE uid-set (RFC 4315 §2.1)."""

    seqset: SeqSet


@dataclass(frozen=True, slots=True)
class Search(Command):
    """[UID] SEARCH [CHARSET c] keys (RFC 3501 §6.4.4); keys AND-ed in `key`."""

    charset: str | None
    key: SearchKey
    uid: bool = False
    #: RETURN options (ESEARCH); None: a plain SEARCH answered with ``* SEARCH``.
    returns: SearchReturn | None = None


#: Sort keys (RFC 5256 §3; DISPLAYFROM and DISPLAYTO from RFC 5957 §3).
SORT_KEYS: Final = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                              "DISPLAYFROM", "DISPLAYTO"})
#: Threading algorithms (RFC 5256 §3).
THREAD_ALGORITHMS: Final = frozenset({"ORDEREDSUBJECT", "REFERENCES"})


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """One sort criterion (RFC 5256 §3, RFC 5957 §3): a key ("ARRIVAL", "DISPLAYFROM", ...,
    upper case) and whether REVERSE precedes it."""

    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """[UID] SORT [RETURN (...)] (criteria) charset keys (RFC 5256 §3, RFC 5267 §3); keys
    AND-ed in `key`."""

    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchKey
    uid: bool = False
    #: RETURN options (ESORT, CONTEXT=SORT); None: a plain SORT answered with ``* SORT``.
    returns: SearchReturn | None = None


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """[UID] THREAD algorithm charset keys (RFC 5256 §3); `algorithm` is "ORDEREDSUBJECT" or
    "REFERENCES"; keys AND-ed in `key`."""

    algorithm: str
    charset: str
    key: SearchKey
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    """[UID] FETCH set items [(CHANGEDSINCE n [VANISHED])] (RFC 3501 §6.4.5, §6.4.8; RFC 7162
    §3.1.4, §3.2.6); macros already expanded, MODSEQ listed when CHANGEDSINCE is given."""

    seqset: SeqSet
    attributes: tuple[FetchAtt, ...]
    uid: bool = False
    changed_since: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class Store(Command):
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags (RFC 3501 §6.4.6,
    RFC 7162 §3.1.3)."""

    seqset: SeqSet
    mode: StoreMode
    silent: bool
    flags: tuple[str, ...]
    uid: bool = False
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class Copy(Command):
    """[UID] COPY set mailbox (RFC 3501 §6.4.7)."""

    seqset: SeqSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Move(Command):
    """[UID] MOVE set mailbox (RFC 6851 §3)."""

    seqset: SeqSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    """UNSELECT (RFC 3691 §2)."""


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    """NAMESPACE (RFC 2342 §5)."""


@dataclass(frozen=True, slots=True)
class Idle(Command):
    """IDLE (RFC 2177 §3)."""


@dataclass(frozen=True, slots=True)
class Id(Command):
    """ID (params) / ID NIL (RFC 2971 §3.1); params None for NIL."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Enable(Command):
    """ENABLE capability... (RFC 5161 §3.1); names upper-cased."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """CANCELUPDATE "tag"... (RFC 5267 §4.3.5): stop the updates of those searches."""

    tags: tuple[str, ...]
# -- session-level extensions: COMPRESS (RFC 4978), QUOTA (RFC 9208) ---------------------------

@dataclass(frozen=True, slots=True)
class Compress(Command):
    """COMPRESS mechanism (RFC 4978 §3); the mechanism upper-cased, checked by the handler."""

    mechanism: str


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """GETQUOTA quota-root (RFC 9208 §4.1.1)."""

    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """GETQUOTAROOT mailbox (RFC 9208 §4.1.2)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """SETQUOTA quota-root (resource limit ...) (RFC 9208 §4.1.3); names upper-cased."""

    root: str
    limits: tuple[tuple[str, int], ...]


# -- NOTIFY (RFC 5465) ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """One event-group of NOTIFY SET (RFC 5465 §6): its filter (upper-cased: SELECTED,
    SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES), the names SUBTREE and
    MAILBOXES give, its events in the RFC's spelling (empty: NONE), and MessageNew's fetch-att
    list (empty: none given)."""

    filter: str
    mailboxes: tuple[str, ...]
    events: tuple[str, ...]
    fetch: tuple[FetchAtt, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """NOTIFY NONE, or NOTIFY SET [STATUS] event-group... (RFC 5465 §3); `groups` is None for
    NONE. Parsed for syntax only: which combinations are valid is `notify`'s to say."""

    groups: tuple[NotifyGroup, ...] | None
    status: bool = False
