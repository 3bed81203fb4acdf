"""IMAP command parser: frames from `wire` → `commands` values (RFC 3501 §9).

Pure code: no I/O, no store. Bounded work: search nesting (`MAX_SEARCH_DEPTH`), search keys
(`MAX_SEARCH_KEYS`), section depth, ID pairs, name and keyword lengths; each limit says why.

Every failure is a `ParseError` carrying the tag (when one could be read) and the reply it
deserves (BAD for syntax, NO [BADCHARSET] for an unsupported SEARCH charset, NO [LIMIT] for
too many search keys).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Final

from rmail.server.core import mutf7
from rmail.server.core.model import SYSTEM_FLAGS as _STORED_FLAGS
from rmail.server.core.storage.flags import MAX_KEYWORD_LENGTH as MAX_KEYWORD

from .commands import QResync, SearchModseq
from .commands import (STAR, Append, Authenticate, Capability, Check, Close, Command, Copy,
                       Create, Delete, Enable, Examine, Expunge, Fetch, FetchAtt, Id, Idle, List,
                       Login, Logout, Lsub, Move, Namespace, Noop, Rename, Search, SearchAll,
                       SearchAnd, SearchBody, SearchDate, SearchFlag, SearchHeader, SearchKey,
                       SearchNot, SearchOr, SearchRecent, SearchSeq, SearchSize, Section, Select,
                       SeqSet, StartTLS, Status, Store, StoreMode, Subscribe, UidExpunge, Unselect,
                       Unsubscribe, normalize_mailbox)
from .commands import (AppendMessage, CatPart, GenUrlAuth, ResetKey, SearchObjectId, UrlFetch,
                       UrlFetchItem)
from .commands import SORT_KEYS, THREAD_ALGORITHMS, Sort, SortCriterion, Thread
from .commands import SAVED_RESULT, CancelUpdate, SearchAge, SearchReturn
from .commands import SearchSaveDate
from .commands import Compress, GetQuota, GetQuotaRoot, SetQuota
from .commands import Notify, NotifyGroup
from .wire import MAX_TAG, Frame, ReplyError

__all__ = ["MAX_ID_PAIRS", "MAX_SEARCH_DEPTH", "MAX_SEARCH_KEYS", "ParseError", "parse_command",
           "parse_seqset"]

#: Deepest nesting of parentheses/NOT/OR in SEARCH; bounds recursion (Python's stack) and
#: work. Real clients nest a handful of levels.
MAX_SEARCH_DEPTH: Final = 32
#: Most search keys in one SEARCH, counting every key as written (NOT x is two, OR x y three).
#: Bounds the parse (a 25 MiB command could otherwise hold millions of keys) and the tree the
#: evaluator walks per message chunk; the configurable CPU budget ([limits] search_budget)
#: bounds what the keys cost. Real clients send a few dozen at most.
MAX_SEARCH_KEYS: Final = 1000
#: Largest nz-number (RFC 3501 §9: "nz-number ... 4,294,967,295").
MAX_NUMBER: Final = 0xFFFFFFFF
#: RFC 2971 §3.3: at most 30 field/value pairs, fields ≤ 30 octets, values ≤ 1024 octets.
MAX_ID_PAIRS: Final = 30
#: Longest mailbox name on the wire, in (modified UTF-7) octets: bounds the decoder's work. The
#: store has its own cap on the decoded name (storage/names.py, 512 characters).
MAX_MAILBOX_NAME: Final = 1024

#: Largest mod-sequence value (RFC 7162 §7: a positive unsigned 63-bit integer).
MAX_MODSEQ: Final = 2**63 - 1
#: SEARCH MODSEQ's entry types (RFC 7162 §3.1.5: "priv", "shared" or "all").
_ENTRY_TYPES: Final = frozenset({"PRIV", "SHARED", "ALL"})

#: System flags by their lower-cased name: the ones the store keeps (RFC 3501 §2.3.2).
SYSTEM_FLAGS: Final = {f.lower(): f for f in _STORED_FLAGS}


class ParseError(ReplyError):
    """A command that cannot be parsed: "BAD" for syntax, "NO" for a well-formed request that
    is refused (e.g. BADCHARSET)."""

    #: A SEARCH RETURN (SAVE) refused with NO: RFC 5182 §2.1 empties the saved result ("$").
    drops_saved_result = False


# -- tokens ---------------------------------------------------------------------------------

# RFC 3501 §9: ATOM-CHAR is any CHAR except atom-specials: ( ) { SP CTL % * " \ ]
_ATOM = re.compile(rb'[^\x00-\x20(){%*"\\\]\x7f-\xff]+')
_ASTRING = re.compile(rb'[^\x00-\x20(){%*"\\\x7f-\xff]+')          # ATOM-CHAR / "]"
_LIST_CHARS = re.compile(rb'[^\x00-\x20(){"\\\x7f-\xff]+')         # + list-wildcards
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_TAG = re.compile(rb'[^\x00-\x20(){%*"\\+\x7f-\xff]+')             # ASTRING-CHAR but "+"
_SEQSET = re.compile(rb'(?:\d+|\*)(?::(?:\d+|\*))?(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*')
_NUMBER = re.compile(rb'\d+')
_ITEM = re.compile(rb'[A-Za-z0-9.]+')
_SECTION_SPEC = re.compile(rb'[A-Za-z0-9.]*')
_BASE64 = re.compile(rb'=|(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?')
#: RFC 6855 §3: what a UTF-8 mailbox name must not contain (C0 and C1 controls, DEL, U+2028,
#: U+2029).
_UTF8_NAME_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MONTHS: Final = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_DATE = re.compile(rb'(\d{1,2})-([A-Za-z]{3})-(\d{4})')
# RFC 3501 §9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", day space-padded or two digits.
_DATE_TIME = re.compile(rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')


class _Reader:
    """Cursor over a frame's line pieces and literals."""

    __slots__ = ("parts", "idx", "line", "pos", "search_keys", "refusal", "utf8", "pieces")

    def __init__(self, parts: tuple[bytes, ...], *, utf8: bool = False) -> None:
        self.parts = parts
        #: The session has enabled UTF8=ACCEPT (RFC 6855): mailbox names are UTF-8 as sent.
        self.utf8 = utf8
        self.idx = 0
        self.line = parts[0]
        self.pos = 0
        self.search_keys = 0
        self.pieces = 0  # APPEND messages and CATENATE parts (MAX_APPEND_PIECES)
        #: A well-formed argument the command must be refused for (NO), raised by `end` once
        #: the rest of the command has proved well-formed (a syntax error is still BAD).
        self.refusal: ParseError | None = None

    def fail(self, text: str) -> ParseError:
        return ParseError(text)

    def peek(self) -> int | None:
        return self.line[self.pos] if self.pos < len(self.line) else None

    def at_literal(self) -> bool:
        return self.pos == len(self.line) and self.idx + 1 < len(self.parts)

    def at_end(self) -> bool:
        return self.pos == len(self.line) and self.idx + 1 == len(self.parts)

    def take_literal(self) -> bytes:
        data = self.parts[self.idx + 1]
        self.idx += 2
        self.line = self.parts[self.idx]
        self.pos = 0
        return data

    def match(self, pattern: re.Pattern[bytes]) -> bytes | None:
        m = pattern.match(self.line, self.pos)
        if m is None or m.end() == self.pos:
            return None
        self.pos = m.end()
        return m.group(0)

    def expect(self, token: bytes, what: str | None = None) -> None:
        if self.line.startswith(token, self.pos):
            self.pos += len(token)
            return
        raise self.fail(f"expected {what or token.decode()!s}")

    def accept(self, token: bytes) -> bool:
        if self.line.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def accept_word(self, word: bytes) -> bool:
        """Accept a case-insensitive keyword followed by a delimiter (or the end)."""
        end = self.pos + len(word)
        if self.line[self.pos:end].upper() == word:
            nxt = self.line[end:end + 1]
            if nxt in (b"", b" ", b")", b"(", b"["):
                self.pos = end
                return True
        return False

    def sp(self) -> None:
        self.expect(b" ", "SP")

    def end(self) -> None:
        if not self.at_end():
            raise self.fail("unexpected characters at end of command")
        if self.refusal is not None:
            raise self.refusal

    def atom(self) -> str:
        tok = self.match(_ATOM)
        if tok is None:
            raise self.fail("expected atom")
        return tok.decode("ascii")

    def number(self, *, nonzero: bool = False) -> int:
        tok = self.match(_NUMBER)
        if tok is None or len(tok) > 10:
            raise self.fail("expected number")
        value = int(tok)
        if value > MAX_NUMBER or (nonzero and value == 0):
            raise self.fail("number out of range")
        return value

    def modseq(self, *, zero: bool = False) -> int:
        """A mod-sequence-value (RFC 7162 §7), or mod-sequence-valzer when `zero`."""
        tok = self.match(_NUMBER)
        if tok is None or len(tok) > 19:
            raise self.fail("expected mod-sequence")
        value = int(tok)
        if value > MAX_MODSEQ or (value == 0 and not zero):
            raise self.fail("mod-sequence out of range")
        return value

    def quoted(self) -> bytes | None:
        m = _QUOTED.match(self.line, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        raw = m.group(1)
        if b"\\" in raw:
            raw = raw.replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        return raw

    def string(self) -> bytes:
        if self.at_literal():
            return self.take_literal()
        if self.peek() == 0x22:
            value = self.quoted()
            if value is None:
                raise self.fail("malformed quoted string")
            return value
        raise self.fail("expected string")

    def astring(self) -> bytes:
        if self.at_literal() or self.peek() == 0x22:
            return self.string()
        tok = self.match(_ASTRING)
        if tok is None:
            raise self.fail("expected atom or string")
        return tok

    def nstring(self) -> bytes | None:
        if self.accept_word(b"NIL"):
            return None
        return self.string()

    def text(self, raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8") from None

    def mailbox(self) -> str:
        """An existing mailbox's name. One that is not modified UTF-7 is a valid astring that
        names no mailbox (none can be created under it): the command is refused with NO."""
        raw = self.astring()
        name = self._mailbox_text(raw)
        if name is None:
            self._refuse("NONEXISTENT", "no mailbox has a name that is not modified UTF-7")
            return raw.decode("ascii")  # never used: `end` raises the refusal
        return normalize_mailbox(name)

    def new_mailbox(self) -> str:
        """A name to create (CREATE, RENAME's new name): modified UTF-7 only, unless the
        session has enabled UTF8=ACCEPT (RFC 6855 §3). RFC 3501 §5.1.3 forbids 8-bit names,
        so without it a raw UTF-8 name is refused; NO [CANNOT] (§6.3.3: "can't create
        mailbox with that name"), not BAD, since a literal may carry 8-bit octets and the
        syntax is valid."""
        raw = self.astring()
        name = self._mailbox_text(raw) if raw.isascii() or self.utf8 else None
        if name is None:
            self._refuse("CANNOT", "mailbox names must be modified UTF-7 (RFC 3501 5.1.3)")
            return ""  # never used: `end` raises the refusal
        return normalize_mailbox(name)

    def list_mailbox(self) -> str | None:
        """A LIST/LSUB pattern; None when it is not modified UTF-7 (it matches no name)."""
        if self.at_literal() or self.peek() == 0x22:
            raw = self.string()
        else:
            tok = self.match(_LIST_CHARS)
            if tok is None:
                raise self.fail("expected mailbox pattern")
            raw = tok
        return self._mailbox_text(raw)

    def _refuse(self, code: str, text: str) -> None:
        if self.refusal is None:
            self.refusal = ParseError(text, status="NO", code=code)

    def _mailbox_text(self, raw: bytes) -> str | None:
        """The Unicode name `raw` stands for; None when it is ASCII but not modified UTF-7."""
        if len(raw) > MAX_MAILBOX_NAME:
            raise self.fail("mailbox name too long")
        if self.utf8:
            # RFC 6855 §3: names are UTF-8 as sent, without control characters, U+2028 or
            # U+2029 (RFC 5198 §2); modified UTF-7 is not decoded, so "&" is itself.
            text = self.text(raw, "mailbox name")
            return None if _UTF8_NAME_FORBIDDEN.search(text) else text
        try:
            return mutf7.decode(raw.decode("ascii"))
        except UnicodeDecodeError:
            # RFC 3501 §5.1.3: 8-bit names are not allowed; looking one up as UTF-8 (as RFC
            # 9051 does) finds what was created under its modified UTF-7 form.
            text = self.text(raw, "mailbox name")
            if any(c < " " or c == "\x7f" for c in text):
                raise self.fail("invalid mailbox name") from None
            return text
        except mutf7.MUTF7Error:
            return None

    def seqset(self) -> SeqSet:
        if self.peek() == 0x24:  # "$": the saved SEARCH result, alone (RFC 5182 §3)
            self.pos += 1
            if self.peek() not in (None, 0x20, 0x29):
                raise self.fail("expected sequence set")
            return SAVED_RESULT
        tok = self.match(_SEQSET)
        if tok is None:
            raise self.fail("expected sequence set")
        return _seqset_from(tok)

    def flag(self) -> str:
        if self.accept(b"\\"):
            name = self.match(_ATOM)
            if name is None:
                raise self.fail("expected flag")
            flag = SYSTEM_FLAGS.get("\\" + name.decode("ascii").lower())
            if flag is None:
                raise self.fail("invalid system flag")
            return flag
        kw = self.atom()
        if len(kw) > MAX_KEYWORD:
            raise self.fail("keyword too long")
        return kw

    def flag_list(self) -> tuple[str, ...]:
        self.expect(b"(")
        flags: list[str] = []
        if not self.accept(b")"):
            flags.append(self.flag())
            while not self.accept(b")"):
                self.sp()
                flags.append(self.flag())
        return tuple(dict.fromkeys(flags))


def _seqset_from(tok: bytes) -> SeqSet:
    ranges: list[tuple[int, int]] = []
    for item in tok.split(b","):
        ends = item.split(b":")
        nums: list[int] = []
        for e in ends:
            if e == b"*":
                nums.append(STAR)
                continue
            if len(e) > 10 or int(e) == 0 or int(e) > MAX_NUMBER:
                raise ParseError("invalid number in sequence set")
            nums.append(int(e))
        ranges.append((nums[0], nums[-1]))
    return SeqSet(tuple(ranges))


def parse_seqset(text: str | bytes) -> SeqSet:
    """Parse a sequence set written alone, e.g. "1:3,7,9:*".

    Raises:
        ParseError: not a valid sequence set.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    m = _SEQSET.fullmatch(raw)
    if m is None:
        raise ParseError("expected sequence set")
    return _seqset_from(raw)



# -- command parsers --------------------------------------------------------------------------

def _no_args(cls: type[Command]) -> Callable[[_Reader, str, bool], Command]:
    def parse(r: _Reader, tag: str, uid: bool) -> Command:
        r.end()
        return cls(tag)
    return parse


def _one_mailbox(cls: Callable[[str, str], Command]) -> Callable[[_Reader, str, bool], Command]:
    def parse(r: _Reader, tag: str, uid: bool) -> Command:
        r.sp()
        mailbox = r.mailbox()
        r.end()
        return cls(tag, mailbox)
    return parse


#: Most special-use attributes in one CREATE ... (USE (...)) (RFC 6154 defines seven).
MAX_USE_ATTRIBUTES: Final = 16


def _select(cls: type[Select] | type[Examine]) -> Callable[[_Reader, str, bool], Command]:
    """SELECT/EXAMINE mailbox [(select-param ...)] (RFC 4466 §2.1): CONDSTORE and QRESYNC
    (RFC 7162 §3.1.8, §3.2.5)."""
    def parse(r: _Reader, tag: str, uid: bool) -> Command:
        r.sp()
        mailbox = r.mailbox()
        condstore = False
        qresync = None
        if r.accept(b" "):
            r.expect(b"(")
            while True:
                name = r.atom().upper()
                if name == "CONDSTORE" and not condstore:
                    condstore = True
                elif name == "QRESYNC" and qresync is None:
                    r.sp()
                    qresync = _qresync(r)
                else:
                    raise r.fail(f"unknown or repeated SELECT parameter {name[:32]}")
                if r.accept(b")"):
                    break
                r.sp()
        r.end()
        return cls(tag, mailbox, condstore, qresync)
    return parse


def _known_set(r: _Reader, what: str) -> SeqSet:
    """A sequence set without "*" (RFC 7162 §7: known-uids, known-sequence-set, known-uid-set)."""
    seqset = r.seqset()
    if seqset.has_star:
        raise r.fail(f'"*" is not allowed in {what}')
    return seqset


def _count(seqset: SeqSet) -> int:
    return sum(abs(hi - lo) + 1 for lo, hi in seqset.ranges)


def _qresync(r: _Reader) -> QResync:
    """(uidvalidity mod-sequence [known-uids [(known-sequence-set known-uid-set)]])."""
    r.expect(b"(")
    uidvalidity = r.number(nonzero=True)
    r.sp()
    modseq = r.modseq()
    known = None
    seq_match = None
    if r.accept(b" "):
        known = _known_set(r, "known UIDs")
        if r.accept(b" "):
            r.expect(b"(")
            seqs = _known_set(r, "the known sequence set")
            r.sp()
            uids = _known_set(r, "the known UID set")
            r.expect(b")")
            # RFC 7162 §3.2.5.2: the two sets pair up one to one.
            if _count(seqs) != _count(uids):
                raise r.fail("message sequence match data sets differ in size")
            seq_match = (seqs, uids)
    r.expect(b")")
    return QResync(uidvalidity, modseq, known, seq_match)


def _create(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.new_mailbox()
    use: list[str] = []
    if r.accept(b" "):
        # RFC 4466 §2.2 create-params; RFC 6154 §3 defines the only one, USE.
        r.expect(b"(")
        if not r.accept_word(b"USE"):
            raise r.fail("unknown CREATE parameter")
        r.sp()
        r.expect(b"(")
        while not r.accept(b")"):
            if use:
                r.sp()
            r.expect(b"\\", "special-use attribute")
            use.append("\\" + r.atom())
            if len(use) > MAX_USE_ATTRIBUTES:
                raise r.fail("too many special-use attributes")
        r.expect(b")")
    r.end()
    return Create(tag, mailbox, tuple(dict.fromkeys(use)))


def _authenticate(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    mech = r.atom().upper()
    initial = None
    if r.accept(b" "):
        tok = r.match(_BASE64)
        if tok is None or not r.at_end():
            raise r.fail("invalid base64 initial response")
        initial = tok
    r.end()
    return Authenticate(tag, mech, initial)


def _login(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    user = r.text(r.astring(), "user name")
    r.sp()
    password = r.text(r.astring(), "password")
    r.end()
    return Login(tag, user, password)


def _rename(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    old = r.mailbox()
    r.sp()
    new = r.new_mailbox()
    r.end()
    return Rename(tag, old, new)


def _lsub(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    ref = r._mailbox_text(r.astring())
    r.sp()
    pattern = r.list_mailbox()
    r.end()
    if ref is None or pattern is None:  # RFC 3501 §6.3.8: OK, and no name matches
        return Lsub(tag, "", "", matches_nothing=True)
    return Lsub(tag, ref, pattern)


#: RFC 5258 §3.1, RFC 6154 §5.2: LIST selection options; RECURSIVEMATCH needs a base option.
LIST_SELECT: Final = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_SELECT_BASE: Final = frozenset({"SUBSCRIBED", "SPECIAL-USE"})
#: RFC 5258 §3.2, RFC 6154 §5.2, RFC 5819: LIST return options.
LIST_RETURN: Final = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})
#: Most patterns in one LIST (RFC 5258 §3): each is matched against every name.
MAX_LIST_PATTERNS: Final = 32


def _list_options(r: _Reader, known: frozenset[str], what: str) -> list[str]:
    r.expect(b"(")
    options: list[str] = []
    while not r.accept(b")"):
        if options:
            r.sp()
        option = r.atom().upper()
        if option not in known:   # RFC 5258 §3: an option not recognized gets BAD
            raise r.fail(f"unknown LIST {what} option {option[:32]}")
        options.append(option)
    return options


def _list(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    extended = False
    select: list[str] = []
    if r.peek() == 0x28:                                # "(" select options (RFC 5258 §6)
        extended = True
        select = _list_options(r, LIST_SELECT, "selection")
        if "RECURSIVEMATCH" in select and not _LIST_SELECT_BASE & set(select):
            raise r.fail("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE")
        r.sp()
    ref = r._mailbox_text(r.astring())
    r.sp()
    patterns: list[str | None] = []
    if r.accept(b"("):                                  # a list of patterns (RFC 5258 §3)
        extended = True
        while True:
            patterns.append(r.list_mailbox())
            if len(patterns) > MAX_LIST_PATTERNS:
                raise r.fail(f"at most {MAX_LIST_PATTERNS} patterns")
            if r.accept(b")"):
                break
            r.sp()
    else:
        patterns.append(r.list_mailbox())
    returns: list[str] = []
    status_items: tuple[str, ...] = ()
    if r.accept(b" "):
        if not r.accept_word(b"RETURN"):
            raise r.fail("expected RETURN")
        extended = True
        r.sp()
        r.expect(b"(")
        while not r.accept(b")"):
            if returns:
                r.sp()
            option = r.atom().upper()
            if option not in LIST_RETURN:
                raise r.fail(f"unknown LIST return option {option[:32]}")
            if option == "STATUS":                      # RFC 5819 §4
                r.sp()
                status_items = _status_atts(r)
            returns.append(option)
    r.end()
    if "SUBSCRIBED" in select:   # RFC 5258 §3.1: the selection option implies the return one
        returns.append("SUBSCRIBED")
    if "SPECIAL-USE" in select:  # RFC 6154 §2: likewise
        returns.append("SPECIAL-USE")
    # Patterns that match nothing are ignored (RFC 5258 §3); so is "" in the extended form.
    usable = list(dict.fromkeys(p for p in patterns if p is not None and (p or not extended)))
    if ref is None or not usable:
        return List(tag, "", "", matches_nothing=True, extended=extended)
    return List(tag, ref, usable[0], more_patterns=tuple(usable[1:]),
                select=frozenset(select), returns=frozenset(returns), status_items=status_items,
                extended=extended)


_STATUS_ITEMS: Final = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                                  "MAILBOXID",       # RFC 8474 §4.3
                                  "SIZE",            # STATUS=SIZE (RFC 8438)
                                  "APPENDLIMIT",     # RFC 7889 §3.1
                                  "DELETED", "DELETED-STORAGE",   # RFC 9208 §4.2
                                  "HIGHESTMODSEQ"})                # RFC 7162 §3.1.6


def _status_atts(r: _Reader) -> tuple[str, ...]:
    """``"(" status-att *(SP status-att) ")"``, each item once, upper-cased, in client order."""
    r.expect(b"(")
    items: list[str] = []
    while True:
        item = r.atom().upper()
        if item not in _STATUS_ITEMS:
            raise r.fail(f"unknown STATUS item {item[:32]}")
        items.append(item)
        if r.accept(b")"):
            break
        r.sp()
    return tuple(dict.fromkeys(items))


def _status(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    items = _status_atts(r)
    r.end()
    return Status(tag, mailbox, items)


#: Messages in one APPEND (MULTIAPPEND, RFC 3502) and CATENATE parts in all of them
#: together (RFC 4469): each is a literal or a URL the server resolves, so the count bounds
#: the work and the continuations; the bytes are bounded by the command's size already.
#: Dovecot has no count limit; clients upload a few hundred messages per APPEND at most.
MAX_APPEND_PIECES: Final = 1000


def _count_piece(r: _Reader) -> None:
    r.pieces += 1
    if r.pieces > MAX_APPEND_PIECES:
        # Well-formed but over an implementation limit: NO [LIMIT] (RFC 5530 §3).
        raise ParseError(f"too many messages or parts (at most {MAX_APPEND_PIECES})",
                         status="NO", code="LIMIT")


def _append_message(r: _Reader) -> AppendMessage:
    """[flag-list SP] [date-time SP] (literal / literal8 / CATENATE (...)) (RFC 3502 §6.3.11,
    RFC 4469 §5, RFC 3516 §4.4)."""
    _count_piece(r)
    flags: tuple[str, ...] = ()
    when = None
    if r.peek() == 0x28:
        flags = r.flag_list()
        r.sp()
    if r.peek() == 0x22:
        when = _date_time(r)
        r.sp()
    if r.accept_word(b"CATENATE"):
        r.sp()
        return AppendMessage(flags, when, b"", catenate=_cat_parts(r))
    if r.accept_word(b"UTF8"):
        return AppendMessage(flags, when, _utf8_literal(r, "APPEND UTF8"), binary=True)
    binary = r.accept(b"~")  # literal8 (RFC 3516 §4.4)
    if not r.at_literal():
        raise r.fail("APPEND needs the message as a literal")
    return AppendMessage(flags, when, r.take_literal(), binary)


def _cat_parts(r: _Reader) -> tuple[CatPart, ...]:
    """"(" cat-part *(SP cat-part) ")": TEXT literal or URL astring (RFC 4469 §5)."""
    r.expect(b"(")
    parts: list[CatPart] = []
    while True:
        _count_piece(r)
        if r.accept_word(b"TEXT"):
            r.sp()
            binary = r.accept(b"~")
            if not r.at_literal():
                raise r.fail("CATENATE TEXT needs a literal")
            parts.append(CatPart(text=r.take_literal(), binary=binary))
        elif r.accept_word(b"UTF8"):  # cat-part =/ utf8-literal (RFC 6855 §4)
            parts.append(CatPart(text=_utf8_literal(r, "CATENATE UTF8"), binary=True))
        elif r.accept_word(b"URL"):
            r.sp()
            parts.append(CatPart(url=r.text(r.astring(), "URL")))
        else:
            raise r.fail("expected TEXT or URL")
        if r.accept(b")"):
            return tuple(parts)
        r.sp()


def _append(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    messages = [_append_message(r)]
    while r.accept(b" "):  # MULTIAPPEND (RFC 3502)
        messages.append(_append_message(r))
    r.end()
    first = messages[0]
    return Append(tag, mailbox, first.flags, first.internal_date, first.message, first.binary,
                  first.catenate, tuple(messages[1:]))


def _utf8_literal(r: _Reader, what: str) -> bytes:
    """RFC 6855 §4: ``utf8-literal = "UTF8" SP "(" literal8 ")"`` (after the UTF8 word), a
    message that may carry UTF-8 headers, as an APPEND message or a CATENATE part; allowed
    only once the session has enabled UTF8=ACCEPT (before that: BAD)."""
    if not r.utf8:
        raise r.fail(f"{what} needs ENABLE UTF8=ACCEPT first (RFC 6855 4)")
    r.sp()
    r.expect(b"(~", "(~{n} literal8")
    if not r.at_literal():
        raise r.fail(f"{what} needs the message as a literal8")
    message = r.take_literal()
    r.expect(b")")
    return message


def _date_time(r: _Reader) -> datetime:
    m = _DATE_TIME.match(r.line, r.pos)
    if m is None:
        raise r.fail("invalid date-time")
    r.pos = m.end()
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    month = _MONTHS.get(mon.upper().decode("ascii"))
    if month is None:
        raise r.fail("invalid month in date-time")
    offset = timedelta(hours=int(zh), minutes=int(zm))
    if offset >= timedelta(hours=24):
        raise r.fail("invalid zone in date-time")
    try:
        return datetime(int(year), month, int(day), int(hh), int(mm), int(ss),
                        tzinfo=timezone(-offset if sign == b"-" else offset))
    except ValueError:
        raise r.fail("invalid date-time") from None


def _date(r: _Reader) -> date:
    quoted = r.accept(b'"')
    m = _DATE.match(r.line, r.pos)
    if m is None:
        raise r.fail("invalid date")
    r.pos = m.end()
    if quoted:
        r.expect(b'"')
    month = _MONTHS.get(m.group(2).upper().decode("ascii"))
    if month is None:
        raise r.fail("invalid month in date")
    try:
        return date(int(m.group(3)), month, int(m.group(1)))
    except ValueError:
        raise r.fail("invalid date") from None


# FETCH (RFC 3501 §6.4.5)
_SIMPLE_ITEMS: Final = frozenset({"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
                                  "BODYSTRUCTURE", "UID", "RFC822", "RFC822.HEADER",
                                  "RFC822.TEXT", "BODY", "MODSEQ", "PREVIEW", "EMAILID", "THREADID",
                                  "SAVEDATE"})
_MACROS: Final = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_MAX_PART_DEPTH: Final = 64


def _section(r: _Reader) -> Section:
    spec = r.match(_SECTION_SPEC) or b""
    text = spec.decode("ascii").upper()
    part: list[int] = []
    pieces = text.split(".") if text else []
    while pieces and pieces[0].isdigit():
        n = pieces.pop(0)
        if len(n) > 10 or int(n) == 0 or int(n) > MAX_NUMBER:
            raise r.fail("invalid section part number")
        part.append(int(n))
    if len(part) > _MAX_PART_DEPTH:
        raise r.fail("section part too deep")
    rest = ".".join(pieces)
    fields: tuple[str, ...] = ()
    if rest == "":
        if text.endswith(".") or text.startswith("."):
            raise r.fail("invalid section")
        sect = Section(tuple(part))
    elif rest in ("HEADER", "TEXT") or (rest == "MIME" and part):
        sect = Section(tuple(part), rest)
    elif rest in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        r.sp()
        r.expect(b"(")
        names: list[str] = []
        while True:
            name = r.astring()
            try:
                names.append(name.decode("ascii"))
            except UnicodeDecodeError:
                raise r.fail("invalid header field name") from None
            if r.accept(b")"):
                break
            r.sp()
        fields = tuple(names)
        sect = Section(tuple(part), rest, fields)
    else:
        raise r.fail("invalid section")
    r.expect(b"]")
    return sect


def _fetch_att(r: _Reader) -> FetchAtt:
    tok = r.match(_ITEM)
    if tok is None:
        raise r.fail("expected FETCH item")
    name = tok.decode("ascii").upper()
    if name in ("BODY", "BODY.PEEK") and r.accept(b"["):
        section = _section(r)
        partial = None
        if r.accept(b"<"):
            start = r.number()
            r.expect(b".")
            count = r.number(nonzero=True)
            r.expect(b">")
            partial = (start, count)
        return FetchAtt("BODY", section, partial, peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        return _binary_att(r, name)
    if name == "PREVIEW" and r.accept(b" ("):
        # RFC 8970 §4: PREVIEW (LAZY); the preview is computed at delivery, so LAZY (do not
        # compute it now) changes nothing.
        while True:
            if not r.accept_word(b"LAZY"):
                raise r.fail("expected LAZY")
            if r.accept(b")"):
                break
            r.sp()
        return FetchAtt("PREVIEW")
    if name not in _SIMPLE_ITEMS:
        raise r.fail(f"unknown FETCH item {name[:32]}")
    return FetchAtt(name)


def _binary_att(r: _Reader, name: str) -> FetchAtt:
    """BINARY[part]<partial>, BINARY.PEEK[...], BINARY.SIZE[part] (RFC 3516 §4.2, §6):
    section-binary is part numbers only, and BINARY.SIZE has no partial."""
    r.expect(b"[")
    part: list[int] = []
    if not r.accept(b"]"):
        while True:
            part.append(r.number(nonzero=True))
            if len(part) > _MAX_PART_DEPTH:
                raise r.fail("section part too deep")
            if r.accept(b"]"):
                break
            r.expect(b".", "'.' or ']' in a binary section")
    partial = None
    if name != "BINARY.SIZE" and r.accept(b"<"):
        start = r.number()
        r.expect(b".")
        count = r.number(nonzero=True)
        r.expect(b">")
        partial = (start, count)
    return FetchAtt("BINARY.SIZE" if name == "BINARY.SIZE" else "BINARY", Section(tuple(part)),
                    partial, peek=name == "BINARY.PEEK")


def _fetch(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    seqset = r.seqset()
    r.sp()
    atts: list[FetchAtt] = []
    if r.accept(b"("):
        while True:
            atts.append(_fetch_att(r))
            if r.accept(b")"):
                break
            r.sp()
    else:
        save = r.pos
        tok = r.match(_ITEM)
        macro = _MACROS.get(tok.decode("ascii").upper()) if tok else None
        if macro is not None and (r.at_end() or r.peek() == 0x20):
            atts.extend(FetchAtt(n) for n in macro)
        else:
            r.pos = save
            atts.append(_fetch_att(r))
    changed_since, vanished = _fetch_modifiers(r, uid) if r.accept(b" ") else (None, False)
    r.end()
    if uid and not any(a.name == "UID" for a in atts):
        # RFC 3501 §6.4.8: UID FETCH always reports the UID.
        atts.insert(0, FetchAtt("UID"))
    if changed_since is not None and not any(a.name == "MODSEQ" for a in atts):
        atts.append(FetchAtt("MODSEQ"))  # RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ
    return Fetch(tag, seqset, tuple(dict.fromkeys(atts)), uid, changed_since, vanished)


def _fetch_modifiers(r: _Reader, uid: bool) -> tuple[int | None, bool]:
    """(CHANGEDSINCE n [VANISHED]) (RFC 4466 §2.4, RFC 7162 §3.1.4.1, §3.2.6)."""
    r.expect(b"(")
    changed_since = None
    vanished = False
    while True:
        name = r.atom().upper()
        if name == "CHANGEDSINCE" and changed_since is None:
            r.sp()
            changed_since = r.modseq()
        elif name == "VANISHED" and not vanished:
            vanished = True
        else:
            raise r.fail(f"unknown or repeated FETCH modifier {name[:32]}")
        if r.accept(b")"):
            break
        r.sp()
    if vanished and (not uid or changed_since is None):
        # RFC 7162 §3.2.6: only UID FETCH, and only together with CHANGEDSINCE.
        raise r.fail("VANISHED needs UID FETCH and CHANGEDSINCE")
    return changed_since, vanished


def _store(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    seqset = r.seqset()
    r.sp()
    unchanged_since = None
    if r.accept(b"("):
        # RFC 4466 §2.5 store-modifiers; RFC 7162 §3.1.3 defines UNCHANGEDSINCE.
        if not r.accept_word(b"UNCHANGEDSINCE"):
            raise r.fail("unknown STORE modifier")
        r.sp()
        unchanged_since = r.modseq(zero=True)
        r.expect(b")")
        r.sp()
    mode = StoreMode.REPLACE
    if r.accept(b"+"):
        mode = StoreMode.ADD
    elif r.accept(b"-"):
        mode = StoreMode.REMOVE
    item = r.match(_ITEM)
    item_name = item.decode("ascii").upper() if item else ""
    if item_name not in ("FLAGS", "FLAGS.SILENT"):
        raise r.fail("expected FLAGS or FLAGS.SILENT")
    r.sp()
    if r.peek() == 0x28:
        flags = r.flag_list()
    else:
        items = [r.flag()]
        while r.accept(b" "):
            items.append(r.flag())
        flags = tuple(dict.fromkeys(items))
    r.end()
    return Store(tag, seqset, mode, item_name.endswith(".SILENT"), flags, uid, unchanged_since)


def _copy_like(cls: type[Copy] | type[Move]) -> Callable[[_Reader, str, bool], Command]:
    def parse(r: _Reader, tag: str, uid: bool) -> Command:
        r.sp()
        seqset = r.seqset()
        r.sp()
        mailbox = r.mailbox()
        r.end()
        return cls(tag, seqset, mailbox, uid)
    return parse


def _uid_expunge(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    seqset = r.seqset()
    r.end()
    return UidExpunge(tag, seqset)


# SEARCH (RFC 3501 §6.4.4)
_FLAG_KEYS: Final = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS: Final = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc",
                       "SUBJECT": "subject"}
_DATE_KEYS: Final = {"BEFORE": ("before", False), "ON": ("on", False),
                     "SINCE": ("since", False), "SENTBEFORE": ("before", True),
                     "SENTON": ("on", True), "SENTSINCE": ("since", True)}
#: RFC 8514 §4.3: the save date's day.
_SAVED_KEYS: Final = {"SAVEDBEFORE": "before", "SAVEDON": "on", "SAVEDSINCE": "since"}
_CHARSETS: Final = frozenset({"UTF-8", "US-ASCII"})
#: RFC 8474 §7: objectid = 1*255(ALPHA / DIGIT / "_" / "-").
_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}(?=[ )]|$)")


def _search_key(r: _Reader, depth: int) -> SearchKey:
    if depth > MAX_SEARCH_DEPTH:
        raise r.fail("search expression nested too deeply")
    r.search_keys += 1
    if r.search_keys > MAX_SEARCH_KEYS:
        # Well-formed but over an implementation limit: NO [LIMIT] (RFC 5530 §3).
        raise ParseError(f"too many search keys (at most {MAX_SEARCH_KEYS})", status="NO", code="LIMIT")
    if r.accept(b"("):
        keys = [_search_key(r, depth + 1)]
        while not r.accept(b")"):
            r.sp()
            keys.append(_search_key(r, depth + 1))
        return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))
    c = r.peek()
    if c is not None and (0x30 <= c <= 0x39 or c == 0x2A or c == 0x24):
        return SearchSeq(r.seqset(), uid=False)
    word = r.atom().upper()
    if word == "ALL":
        return SearchAll()
    if word in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[word]
        return SearchFlag(flag, present)
    if word == "RECENT":
        return SearchRecent()
    if word == "NEW":
        return SearchAnd((SearchRecent(), SearchFlag("\\Seen", False)))
    if word == "OLD":
        return SearchNot(SearchRecent())
    if word == "SAVEDATESUPPORTED":
        # RFC 8514 §4.3: every message when the mailbox keeps save dates, and every rmail
        # mailbox keeps them for every message (core/sqlite/migrate.py, version 4).
        return SearchAll()
    r.sp()
    if word in _HEADER_KEYS:
        field = _HEADER_KEYS[word]
        return SearchHeader(field, r.text(r.astring(), "search string"),
                            address=field != "subject")
    if word in ("BODY", "TEXT"):
        return SearchBody(r.text(r.astring(), "search string"), text=word == "TEXT")
    if word == "HEADER":
        name = r.text(r.astring(), "header name").lower()
        r.sp()
        return SearchHeader(name, r.text(r.astring(), "search string"))
    if word in _DATE_KEYS:
        relation, sent = _DATE_KEYS[word]
        return SearchDate(relation, _date(r), sent)
    if word in _SAVED_KEYS:
        return SearchSaveDate(_SAVED_KEYS[word], _date(r))
    if word in ("LARGER", "SMALLER"):
        return SearchSize(word == "LARGER", r.number())
    if word in ("KEYWORD", "UNKEYWORD"):
        kw = r.flag()
        return SearchFlag(kw, word == "KEYWORD")
    if word == "UID":
        return SearchSeq(r.seqset(), uid=True)
    if word in ("EMAILID", "THREADID"):  # RFC 8474 §6
        tok = r.match(_OBJECTID)
        if tok is None:
            raise r.fail("expected an objectid")
        return SearchObjectId(word, tok.decode("ascii"))
    if word == "MODSEQ":
        return _search_modseq(r)
    if word in ("OLDER", "YOUNGER"):  # RFC 5032 §3
        return SearchAge(word == "OLDER", r.number(nonzero=True))
    if word == "NOT":
        return SearchNot(_search_key(r, depth + 1))
    if word == "OR":
        left = _search_key(r, depth + 1)
        r.sp()
        return SearchOr(left, _search_key(r, depth + 1))
    raise r.fail(f"unknown search key {word[:32]}")


def _search_modseq(r: _Reader) -> SearchModseq:
    """MODSEQ [entry-name entry-type-req] mod-sequence-valzer (RFC 7162 §3.1.5); the entry
    name is "/flags/" and a flag, quoted."""
    if r.peek() == 0x22 or r.at_literal():
        entry = r.string()
        if not entry.startswith(b"/flags/") or len(entry) == 7:
            raise r.fail("MODSEQ entry name must be /flags/ and a flag")
        r.sp()
        if r.atom().upper() not in _ENTRY_TYPES:
            raise r.fail("MODSEQ entry type must be priv, shared or all")
        r.sp()
    return SearchModseq(r.modseq(zero=True))


def _search(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    returns = None
    if r.accept_word(b"RETURN"):  # RFC 4466 §2.6 search-return-opts
        r.sp()
        returns = _search_return(r)
        r.sp()
    try:
        charset = None
        if r.accept_word(b"CHARSET"):
            r.sp()
            charset = r.text(r.astring(), "charset").upper()
            if charset not in _CHARSETS:
                raise ParseError("unsupported charset", status="NO",
                                 code="BADCHARSET (UTF-8 US-ASCII)")
            r.sp()
        keys = [_search_key(r, 1)]
        while r.accept(b" "):
            keys.append(_search_key(r, 1))
        r.end()
    except ParseError as exc:
        exc.drops_saved_result = exc.status == "NO" and returns is not None and returns.save
        raise
    key = keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))
    return Search(tag, charset, key, uid, returns)


#: Return options without an argument (RFC 4731 §3.1, RFC 5182 §3, RFC 5267 §5).
_RETURN_OPTIONS: Final = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "UPDATE", "CONTEXT"})


def _search_return(r: _Reader) -> SearchReturn:
    """``(opt ...)`` after RETURN. An option not listed is BAD (RFC 4466 §2.6 leaves unknown
    ones to the server); so is a second ALL or PARTIAL, or both (RFC 5267 §4.4)."""
    r.expect(b"(")
    names: set[str] = set()
    partial = None
    while not r.accept(b")"):
        if names:
            r.sp()
        name = r.atom().upper()
        if name == "PARTIAL":
            r.sp()
            first = r.number(nonzero=True)
            r.expect(b":", '":" in the PARTIAL range')
            last = r.number(nonzero=True)
            partial = (min(first, last), max(first, last))  # 500:400 is 400:500 (§5)
        elif name not in _RETURN_OPTIONS:
            raise r.fail(f"unknown SEARCH return option {name[:32]}")
        if name in names and name in ("ALL", "PARTIAL"):
            raise r.fail(f"{name} given twice in RETURN")
        names.add(name)
    if "ALL" in names and partial is not None:
        raise r.fail("RETURN takes ALL or PARTIAL, not both")
    if not names:
        return SearchReturn(all=True)  # RETURN () is RETURN (ALL), RFC 4731 §3.1
    return SearchReturn(min="MIN" in names, max="MAX" in names, all="ALL" in names,
                        count="COUNT" in names, save="SAVE" in names, update="UPDATE" in names,
                        context="CONTEXT" in names, partial=partial)


def _cancel_update(r: _Reader, tag: str, uid: bool) -> Command:
    """CANCELUPDATE 1*(SP quoted) (RFC 5267 §5); the line length bounds the list."""
    tags: list[str] = []
    while r.accept(b" "):
        raw = r.quoted()
        if raw is None:
            raise r.fail("expected a quoted tag")
        tags.append(r.text(raw, "tag"))
    if not tags:
        raise r.fail("CANCELUPDATE needs at least one tag")
    r.end()
    return CancelUpdate(tag, tuple(dict.fromkeys(tags)))


# SORT and THREAD (RFC 5256 §5)
#: Most criteria in one SORT: nine keys exist, so more only repeats one (which changes nothing);
#: the cap bounds the key tuples built per message.
MAX_SORT_CRITERIA: Final = 16


def _required_charset(r: _Reader) -> str:
    """SORT's and THREAD's charset: mandatory, unlike SEARCH's (RFC 5256 §3)."""
    charset = r.text(r.astring(), "charset").upper()
    if charset not in _CHARSETS:
        raise ParseError("unsupported charset", status="NO", code="BADCHARSET (UTF-8 US-ASCII)")
    return charset


def _search_criteria(r: _Reader) -> tuple[str, SearchKey]:
    """RFC 5256 search-criteria: charset 1*(SP search-key), keys AND-ed; ends the command."""
    charset = _required_charset(r)
    r.sp()
    keys = [_search_key(r, 1)]
    while r.accept(b" "):
        keys.append(_search_key(r, 1))
    r.end()
    return charset, keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))


def _sort(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    returns = None
    if r.accept_word(b"RETURN"):  # RFC 5267 §3 extended-sort: RETURN before the criteria
        r.sp()
        returns = _search_return(r)
        r.sp()
    try:
        return _sort_rest(r, tag, uid, returns)
    except ParseError as exc:
        # RFC 5182 §2.1: a NO (BADCHARSET, too many keys) to a SAVE empties "$".
        exc.drops_saved_result = exc.status == "NO" and returns is not None and returns.save
        raise


def _sort_rest(r: _Reader, tag: str, uid: bool, returns: SearchReturn | None) -> Command:
    r.expect(b"(")
    criteria: list[SortCriterion] = []
    while True:
        word = r.atom().upper()
        reverse = word == "REVERSE"
        if reverse:
            r.sp()
            word = r.atom().upper()
        if word not in SORT_KEYS:
            raise r.fail(f"unknown sort key {word[:32]}")
        criteria.append(SortCriterion(word, reverse))
        if len(criteria) > MAX_SORT_CRITERIA:
            raise r.fail(f"too many sort criteria (at most {MAX_SORT_CRITERIA})")
        if r.accept(b")"):
            break
        r.sp()
    r.sp()
    charset, key = _search_criteria(r)
    return Sort(tag, tuple(criteria), charset, key, uid, returns)


def _thread(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    algorithm = r.atom().upper()
    if algorithm not in THREAD_ALGORITHMS:
        raise r.fail(f"unknown threading algorithm {algorithm[:32]}")
    r.sp()
    charset, key = _search_criteria(r)
    return Thread(tag, algorithm, charset, key, uid)


def _id(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    if r.accept_word(b"NIL"):
        r.end()
        return Id(tag, None)
    r.expect(b"(")
    params: list[tuple[str, str | None]] = []
    while not r.accept(b")"):
        if params:
            r.sp()
        if len(params) >= MAX_ID_PAIRS:
            raise r.fail("too many ID parameters")
        field = r.string()
        r.sp()
        value = r.nstring()
        if len(field) > 30 or (value is not None and len(value) > 1024):
            raise r.fail("ID field or value too long")
        params.append((r.text(field, "ID field"),
                       None if value is None else r.text(value, "ID value")))
    r.end()
    return Id(tag, tuple(params))


def _enable(r: _Reader, tag: str, uid: bool) -> Command:
    caps: list[str] = []
    while r.accept(b" "):
        caps.append(r.atom().upper())
    if not caps:
        raise r.fail("ENABLE needs at least one capability")
    r.end()
    return Enable(tag, tuple(caps))


# URLAUTH (RFC 4467 §9) and URLAUTH=BINARY (RFC 5524 §5)
#: URLs in one GENURLAUTH or URLFETCH: each is a store look-up and, for URLFETCH, a message
#: read (sent before the next is read); real clients (BURL submission) send one or two.
MAX_URLS: Final = 100
_MECHANISM = re.compile(rb"[A-Za-z0-9.-]+")
_URLFETCH_PARAMS: Final = frozenset({"BODY", "BINARY", "BODYPARTSTRUCTURE"})


def _count_url(count: int) -> None:
    if count > MAX_URLS:
        raise ParseError(f"too many URLs (at most {MAX_URLS})", status="NO", code="LIMIT")


def _mechanism(r: _Reader) -> str:
    tok = r.match(_MECHANISM)
    if tok is None:
        raise r.fail("expected mechanism")
    return tok.decode("ascii").upper()


def _genurlauth(r: _Reader, tag: str, uid: bool) -> Command:
    items: list[tuple[str, str]] = []
    while r.accept(b" "):
        url = r.text(r.astring(), "URL")
        r.sp()
        items.append((url, _mechanism(r)))
        _count_url(len(items))
    if not items:
        raise r.fail("GENURLAUTH needs a URL and a mechanism")
    r.end()
    return GenUrlAuth(tag, tuple(items))


def _resetkey(r: _Reader, tag: str, uid: bool) -> Command:
    if not r.accept(b" "):
        r.end()
        return ResetKey(tag, None)
    mailbox = r.mailbox()
    mechanisms: list[str] = []
    while r.accept(b" "):
        mechanisms.append(_mechanism(r))
        _count_url(len(mechanisms))
    r.end()
    return ResetKey(tag, mailbox, tuple(mechanisms))


def _urlfetch(r: _Reader, tag: str, uid: bool) -> Command:
    items: list[UrlFetchItem] = []
    while r.accept(b" "):
        if r.accept(b"("):
            url = r.text(r.astring(), "URL")
            params: list[str] = []
            while r.accept(b" "):
                param = r.atom().upper()
                if param not in _URLFETCH_PARAMS:
                    raise r.fail(f"unknown URLFETCH parameter {param[:32]}")
                params.append(param)
            r.expect(b")")
            items.append(UrlFetchItem(url, tuple(dict.fromkeys(params))))
        else:
            items.append(UrlFetchItem(r.text(r.astring(), "URL")))
        _count_url(len(items))
    if not items:
        raise r.fail("URLFETCH needs a URL")
    r.end()
    return UrlFetch(tag, tuple(items))
def _compress(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    mechanism = r.atom().upper()
    r.end()
    return Compress(tag, mechanism)


def _quota_root(r: _Reader) -> str:
    """A quota root (RFC 9208 §5: astring); roots are rmail's own names, never mailboxes."""
    raw = r.astring()
    if len(raw) > MAX_MAILBOX_NAME:
        raise r.fail("quota root too long")
    return r.text(raw, "quota root")


def _getquota(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    root = _quota_root(r)
    r.end()
    return GetQuota(tag, root)


def _getquotaroot(r: _Reader, tag: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.end()
    return GetQuotaRoot(tag, mailbox)


#: RFC 9208 §3.2 defines six resources (STORAGE, MESSAGE, MAILBOX, ANNOTATION-STORAGE and
#: two more may be registered); a SETQUOTA list longer than this is not a real client's.
MAX_QUOTA_RESOURCES: Final = 16


def _setquota(r: _Reader, tag: str, uid: bool) -> Command:
    """RFC 9208 §5: SETQUOTA quota-root SP "(" [resource SP number64 *(SP ...)] ")"."""
    r.sp()
    root = _quota_root(r)
    r.sp()
    r.expect(b"(")
    limits: list[tuple[str, int]] = []
    while not r.accept(b")"):
        if limits:
            r.sp()
        if len(limits) >= MAX_QUOTA_RESOURCES:
            raise r.fail("too many quota resources")
        name = r.atom()  # RFC 9208 §5: resource-name = atom
        r.sp()
        tok = r.match(_NUMBER)
        if tok is None or len(tok) > 19 or int(tok) >= 1 << 63:
            raise r.fail("expected a quota limit (number64)")
        limits.append((name.upper(), int(tok)))
    r.end()
    return SetQuota(tag, root, tuple(limits))


#: NOTIFY (RFC 5465 §8): event groups, mailbox names and events one command may carry. A
#: client names a handful of mailboxes (Dovecot refuses more than 100 names per group).
MAX_NOTIFY_GROUPS: Final = 32
MAX_NOTIFY_NAMES: Final = 100
MAX_NOTIFY_EVENTS: Final = 16
#: The events RFC 5465 §5 and its successors name, in their spelling (matched without case).
NOTIFY_EVENT_NAMES: Final = {n.upper(): n for n in (
    "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange", "MailboxName",
    "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange")}
_NOTIFY_FILTERS: Final = ("SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED",
                          "SUBTREE", "MAILBOXES")


def _notify_names(r: _Reader, names: list[str]) -> tuple[str, ...]:
    """one-or-more-mailbox: a name or a parenthesised list. A name that is not modified UTF-7
    names no mailbox, now or later, and is left out (RFC 5465 §6: nonexistent is fine)."""
    listed = r.accept(b"(")
    out: list[str] = []
    while True:
        if len(names) >= MAX_NOTIFY_NAMES:
            r._refuse("NOTIFICATIONOVERFLOW", f"at most {MAX_NOTIFY_NAMES} mailbox names")
        text = r._mailbox_text(r.astring())
        if text is not None:
            name = normalize_mailbox(text)
            names.append(name)
            out.append(name)
        if not listed or r.accept(b")"):
            return tuple(dict.fromkeys(out))
        r.sp()


def _notify_group(r: _Reader, names: list[str]) -> NotifyGroup:
    r.expect(b"(")
    kind = r.atom().upper()
    if kind not in _NOTIFY_FILTERS:
        raise r.fail(f"unknown NOTIFY mailbox filter {kind[:32]}")
    r.sp()
    boxes: tuple[str, ...] = ()
    if kind in ("SUBTREE", "MAILBOXES"):
        boxes = _notify_names(r, names)
        r.sp()
    events: list[str] = []
    fetch: list[FetchAtt] = []
    if not r.accept_word(b"NONE"):
        r.expect(b"(", "( or NONE")
        while True:
            word = r.atom()
            event = NOTIFY_EVENT_NAMES.get(word.upper(), word[:40])
            if len(events) >= MAX_NOTIFY_EVENTS:
                raise r.fail("too many NOTIFY events")
            events.append(event)
            if event == "MessageNew" and r.accept(b" ("):
                while True:
                    fetch.append(_fetch_att(r))
                    if len(fetch) > MAX_NOTIFY_EVENTS:
                        raise r.fail("too many fetch attributes")
                    if r.accept(b")"):
                        break
                    r.sp()
            if r.accept(b")"):
                break
            r.sp()
    r.expect(b")")
    return NotifyGroup(kind, boxes, tuple(dict.fromkeys(events)), tuple(dict.fromkeys(fetch)))


def _notify(r: _Reader, tag: str, uid: bool) -> Command:
    """NOTIFY NONE / NOTIFY SET [STATUS] event-group... (RFC 5465 §8)."""
    r.sp()
    if r.accept_word(b"NONE"):
        r.end()
        return Notify(tag, None)
    if not r.accept_word(b"SET"):
        raise r.fail("expected SET or NONE")
    r.sp()
    status = r.accept_word(b"STATUS")
    if status:
        r.sp()
    groups: list[NotifyGroup] = []
    names: list[str] = []
    while True:
        if len(groups) >= MAX_NOTIFY_GROUPS:
            raise r.fail("too many NOTIFY event groups")
        groups.append(_notify_group(r, names))
        if r.at_end():
            break
        r.sp()
    r.end()
    return Notify(tag, tuple(groups), status)


_Parser = Callable[[_Reader, str, bool], Command]

_COMMANDS: Final[dict[str, _Parser]] = {
    "CAPABILITY": _no_args(Capability),
    "NOOP": _no_args(Noop),
    "LOGOUT": _no_args(Logout),
    "STARTTLS": _no_args(StartTLS),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": _select(Select),
    "EXAMINE": _select(Examine),
    "CREATE": _create,
    "DELETE": _one_mailbox(Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(Subscribe),
    "UNSUBSCRIBE": _one_mailbox(Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "CHECK": _no_args(Check),
    "CLOSE": _no_args(Close),
    "EXPUNGE": _no_args(Expunge),
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_like(Copy),
    "MOVE": _copy_like(Move),
    "UNSELECT": _no_args(Unselect),
    "NAMESPACE": _no_args(Namespace),
    "IDLE": _no_args(Idle),
    "ID": _id,
    "ENABLE": _enable,
    "GENURLAUTH": _genurlauth,
    "RESETKEY": _resetkey,
    "URLFETCH": _urlfetch,
    "SORT": _sort,
    "THREAD": _thread,
    "CANCELUPDATE": _cancel_update,
    "COMPRESS": _compress,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquotaroot,
    "SETQUOTA": _setquota,
    "NOTIFY": _notify,
}

_UID_COMMANDS: Final[dict[str, _Parser]] = {
    "FETCH": _fetch, "STORE": _store, "COPY": _copy_like(Copy), "MOVE": _copy_like(Move),
    "SEARCH": _search, "EXPUNGE": _uid_expunge,
    "SORT": _sort, "THREAD": _thread,
}



def parse_command(frame: Frame, *, utf8: bool = False) -> Command:
    """Parse one framed command; `utf8`: the session has enabled UTF8=ACCEPT (RFC 6855).

    Raises:
        ParseError: the command is malformed (tag set when it could be read).
    """
    r = _Reader(frame.parts, utf8=utf8)
    tag_tok = r.match(_TAG)
    if tag_tok is None or len(tag_tok) > MAX_TAG or not r.accept(b" "):
        raise ParseError("missing or invalid tag")
    tag = tag_tok.decode("ascii")
    try:
        name_tok = r.match(_ATOM)
        if name_tok is None:
            raise r.fail("missing command")
        name = name_tok.decode("ascii").upper()
        uid = False
        if name == "UID":
            r.sp()
            sub = r.match(_ATOM)
            name = sub.decode("ascii").upper() if sub else ""
            parser = _UID_COMMANDS.get(name)
            uid = True
        else:
            parser = _COMMANDS.get(name)
        if parser is None:
            raise r.fail(f"unknown command {name[:32]}")
        return parser(r, tag, uid)
    except ParseError as exc:
        exc.tag = tag
        raise
    except RecursionError:
        raise ParseError("command nested too deeply", tag=tag) from None
