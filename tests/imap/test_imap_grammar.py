"""Command parser tables (rmail.server.imap.parser → rmail.server.imap.commands)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from rmail.server.imap import commands as c
from rmail.server.imap import parser
from rmail.server.imap.wire import Frame, Framer, NeedContinuation


def parse(data: bytes) -> c.Command:
    framer = Framer()
    framer.receive_data(data)
    ev = framer.next_event()
    while isinstance(ev, NeedContinuation):
        ev = framer.next_event()
    assert isinstance(ev, Frame)
    return parser.parse_command(ev)


S = c.SeqSet
STAR = c.STAR

GOOD = [
    (b"a CAPABILITY", c.Capability("a")),
    (b"a noop", c.Noop("a")),
    (b"x.1 LOGOUT", c.Logout("x.1")),
    (b"a STARTTLS", c.StartTLS("a")),
    (b"a AUTHENTICATE plain", c.Authenticate("a", "PLAIN")),
    (b"a AUTHENTICATE PLAIN AGJvYgBwdw==", c.Authenticate("a", "PLAIN", b"AGJvYgBwdw==")),
    (b"a AUTHENTICATE PLAIN =", c.Authenticate("a", "PLAIN", b"=")),
    (b'a LOGIN "bob@example.com" "p\\"w\\\\"', c.Login("a", "bob@example.com", 'p"w\\')),
    (b"a LOGIN {3+}\r\nbob {2+}\r\npw", c.Login("a", "bob", "pw")),
    (b"a LOGIN bob] pw", c.Login("a", "bob]", "pw")),
    (b"a SELECT inbox", c.Select("a", "INBOX")),
    (b"a SELECT Inbox/Sub", c.Select("a", "INBOX/Sub")),
    (b"a SELECT INBOXES", c.Select("a", "INBOXES")),
    (b'a EXAMINE "Sent Items"', c.Examine("a", "Sent Items")),
    (b"a CREATE &ZeVnLIqe-", c.Create("a", "\u65e5\u672c\u8a9e")),
    (b'a DELETE "a&-b"', c.Delete("a", "a&b")),
    (b"a RENAME old new/sub", c.Rename("a", "old", "new/sub")),
    (b"a SUBSCRIBE Lists", c.Subscribe("a", "Lists")),
    (b"a UNSUBSCRIBE Lists", c.Unsubscribe("a", "Lists")),
    (b'a LIST "" *', c.List("a", "", "*")),
    (b'a LIST "" %/%', c.List("a", "", "%/%")),
    (b"a LIST Work ]x", c.List("a", "Work", "]x")),
    (b'a LSUB "" "*"', c.Lsub("a", "", "*")),
    (b"a STATUS INBOX (messages UIDNEXT unseen)",
     c.Status("a", "INBOX", ("MESSAGES", "UIDNEXT", "UNSEEN"))),
    (b"a APPEND INBOX {2+}\r\nhi", c.Append("a", "INBOX", (), None, b"hi")),
    (b'a APPEND Drafts (\\draft $Label) " 5-Mar-2024 09:08:07 -0130" {1+}\r\nx',
     c.Append("a", "Drafts", ("\\Draft", "$Label"),
              datetime(2024, 3, 5, 9, 8, 7, tzinfo=timezone(-timedelta(hours=1, minutes=30))),
              b"x")),
    (b"a CHECK", c.Check("a")),
    (b"a CLOSE", c.Close("a")),
    (b"a EXPUNGE", c.Expunge("a")),
    (b"a UID EXPUNGE 3:5,9", c.UidExpunge("a", S(((3, 5), (9, 9))))),
    (b"a UNSELECT", c.Unselect("a")),
    (b"a NAMESPACE", c.Namespace("a")),
    (b"a IDLE", c.Idle("a")),
    (b"a ID NIL", c.Id("a", None)),
    (b'a ID ("name" "mutt" "version" NIL)', c.Id("a", (("name", "mutt"), ("version", None)))),
    (b"a ID ()", c.Id("a", ())),
    (b"a ENABLE condstore utf8=accept", c.Enable("a", ("CONDSTORE", "UTF8=ACCEPT"))),
    (b"a COPY 1:* Trash", c.Copy("a", S(((1, STAR),)), "Trash")),
    (b"a UID MOVE 4,2:3 Archive", c.Move("a", S(((4, 4), (2, 3))), "Archive", uid=True)),
    (b"a STORE 1 FLAGS ()", c.Store("a", S(((1, 1),)), c.StoreMode.REPLACE, False, ())),
    (b"a STORE 1:2 +FLAGS.SILENT (\\SEEN \\Deleted)",
     c.Store("a", S(((1, 2),)), c.StoreMode.ADD, True, ("\\Seen", "\\Deleted"))),
    (b"a UID STORE 9 -FLAGS $Junk \\flagged",
     c.Store("a", S(((9, 9),)), c.StoreMode.REMOVE, False, ("$Junk", "\\Flagged"), uid=True)),
]


@pytest.mark.parametrize("line, expected", GOOD, ids=[c[0].decode(errors="replace")[:40]
                                                      for c in GOOD])
def test_parse_good(line: bytes, expected: c.Command) -> None:
    assert parse(line + b"\r\n") == expected


def A(name: str, section: c.Section | None = None, partial: tuple[int, int] | None = None,
      peek: bool = False) -> c.FetchAtt:
    return c.FetchAtt(name, section, partial, peek)


FETCHES = [
    (b"1 FLAGS", (A("FLAGS"),)),
    (b"1:* ALL", (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"), A("ENVELOPE"))),
    (b"1 fast", (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"))),
    (b"1 FULL", (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"), A("ENVELOPE"), A("BODY"))),
    (b"1 (UID RFC822.SIZE body bodystructure)",
     (A("UID"), A("RFC822.SIZE"), A("BODY"), A("BODYSTRUCTURE"))),
    (b"1 BODY[]", (A("BODY", c.Section()),)),
    (b"1 BODY.PEEK[]<0.1024>", (A("BODY", c.Section(), (0, 1024), True),)),
    (b"1 BODY[1.2.3]", (A("BODY", c.Section((1, 2, 3))),)),
    (b"1 BODY[2.MIME]", (A("BODY", c.Section((2,), "MIME")),)),
    (b"1 BODY[header]", (A("BODY", c.Section((), "HEADER")),)),
    (b"1 BODY[1.TEXT]", (A("BODY", c.Section((1,), "TEXT")),)),
    (b"1 (BODY.PEEK[HEADER.FIELDS (From \"To\")])",
     (A("BODY", c.Section((), "HEADER.FIELDS", ("From", "To")), None, True),)),
    (b"1 BODY[HEADER.FIELDS.NOT (Received)]",
     (A("BODY", c.Section((), "HEADER.FIELDS.NOT", ("Received",))),)),
    (b"1 (RFC822 RFC822.HEADER RFC822.TEXT)",
     (A("RFC822"), A("RFC822.HEADER"), A("RFC822.TEXT"))),
    (b"1 (FLAGS FLAGS)", (A("FLAGS"),)),
]


@pytest.mark.parametrize("args, atts", FETCHES, ids=[c[0].decode() for c in FETCHES])
def test_fetch_items(args: bytes, atts: tuple[c.FetchAtt, ...]) -> None:
    cmd = parse(b"t FETCH " + args + b"\r\n")
    assert isinstance(cmd, c.Fetch) and cmd.attributes == atts and not cmd.uid


def test_uid_fetch_adds_uid_item() -> None:
    cmd = parse(b"t UID FETCH 1:* (FLAGS)\r\n")
    assert isinstance(cmd, c.Fetch) and cmd.uid
    assert cmd.attributes == (A("UID"), A("FLAGS"))


def test_fetch_response_names() -> None:
    cmd = parse(b"t FETCH 1 (BODY.PEEK[1.HEADER.FIELDS (Subject)]<10.20> BODY[] RFC822)\r\n")
    assert isinstance(cmd, c.Fetch)
    names = [a.response_name for a in cmd.attributes]
    assert names == ["BODY[1.HEADER.FIELDS (SUBJECT)]<10>", "BODY[]", "RFC822"] or \
        names == ["BODY[1.HEADER.FIELDS (Subject)]<10>", "BODY[]", "RFC822"]
    assert [a.sets_seen for a in cmd.attributes] == [False, True, True]


F, H = c.SearchFlag, c.SearchHeader
SEARCHES = [
    (b"ALL", c.SearchAll()),
    (b"unseen", F("\\Seen", False)),
    (b"SEEN FLAGGED", c.SearchAnd((F("\\Seen", True), F("\\Flagged", True)))),
    (b"NEW", c.SearchAnd((c.SearchRecent(), F("\\Seen", False)))),
    (b"OLD", c.SearchNot(c.SearchRecent())),
    (b"KEYWORD $Junk", F("$Junk", True)),
    (b"UNKEYWORD foo", F("foo", False)),
    (b"FROM bob", H("from", "bob", address=True)),
    (b'SUBJECT "hello world"', H("subject", "hello world")),
    (b"HEADER X-Spam yes", H("x-spam", "yes")),
    (b'HEADER Message-ID ""', H("message-id", "")),
    (b"TEXT {5+}\r\nw\xc3\xb6rd", c.SearchBody("w\u00f6rd", True)),
    (b"BODY word", c.SearchBody("word", False)),
    (b"SINCE 1-Feb-2024", c.SearchDate("since", date(2024, 2, 1), False)),
    (b'SENTBEFORE "29-feb-2024"', c.SearchDate("before", date(2024, 2, 29), True)),
    (b"ON 01-Jan-2000", c.SearchDate("on", date(2000, 1, 1), False)),
    (b"LARGER 1000 SMALLER 5", c.SearchAnd((c.SearchSize(True, 1000),
                                            c.SearchSize(False, 5)))),
    (b"1:3,*", c.SearchSeq(S(((1, 3), (STAR, STAR))), False)),
    (b"UID 5:*", c.SearchSeq(S(((5, STAR),)), True)),
    (b"NOT DELETED", c.SearchNot(F("\\Deleted", True))),
    (b"OR SEEN (FLAGGED DRAFT)",
     c.SearchOr(F("\\Seen", True), c.SearchAnd((F("\\Flagged", True), F("\\Draft", True))))),
    (b"(((SEEN)))", F("\\Seen", True)),
    (b"OR OR SEEN DRAFT NOT (TO a CC b)",
     c.SearchOr(c.SearchOr(F("\\Seen", True), F("\\Draft", True)),
                c.SearchNot(c.SearchAnd((H("to", "a", address=True), H("cc", "b", address=True)))))),
]


@pytest.mark.parametrize("keys, tree", SEARCHES, ids=[c[0].decode(errors="replace")
                                                      for c in SEARCHES])
def test_search_keys(keys: bytes, tree: c.SearchKey) -> None:
    cmd = parse(b"s SEARCH " + keys + b"\r\n")
    assert isinstance(cmd, c.Search) and cmd.key == tree and cmd.charset is None


def test_search_charset_and_uid() -> None:
    cmd = parse(b"s UID SEARCH CHARSET us-ascii ALL\r\n")
    assert cmd == c.Search("s", "US-ASCII", c.SearchAll(), uid=True)


def test_search_unknown_charset_is_no_badcharset() -> None:
    with pytest.raises(parser.ParseError) as err:
        parse(b"s SEARCH CHARSET KOI8-R ALL\r\n")
    assert (err.value.tag, err.value.status) == ("s", "NO")
    assert err.value.code is not None and err.value.code.startswith("BADCHARSET")


def test_search_nesting_limit() -> None:
    depth = parser.MAX_SEARCH_DEPTH
    ok = b"s SEARCH " + b"(" * (depth - 1) + b"SEEN" + b")" * (depth - 1) + b"\r\n"
    assert isinstance(parse(ok), c.Search)
    too_deep = b"s SEARCH " + b"NOT " * (depth + 1) + b"SEEN\r\n"
    with pytest.raises(parser.ParseError) as err:
        parse(too_deep)
    assert err.value.tag == "s" and "deep" in err.value.text
    bomb = b"s SEARCH " + b"(" * 20000 + b"\r\n"
    with pytest.raises(parser.ParseError):
        parse(bomb)


BAD = [
    (b"", None),
    (b"a", None),
    (b"+a NOOP", None),
    (b"a* NOOP", None),
    (b"a FROB", "a"),
    (b"a NOOP extra", "a"),
    (b"a  NOOP", "a"),
    (b"a LOGIN bob", "a"),
    (b"a LOGIN bob pw extra", "a"),
    (b'a LOGIN "bob pw', "a"),
    (b"a SELECT", "a"),
    (b"a STATUS &Jjo (FROB)", "a"),      # a bad name does not hide a syntax error
    (b"a FETCH 0 FLAGS", "a"),
    (b"a FETCH 1 (FLAGS", "a"),
    (b"a FETCH 1 (ALL)", "a"),
    (b"a FETCH 1 BODY[4.HEADERS]", "a"),
    (b"a FETCH 1 BODY[MIME]", "a"),
    (b"a FETCH 1 BODY[]<5.0>", "a"),
    (b"a FETCH 99999999999 FLAGS", "a"),
    (b"a FETCH 1, FLAGS", "a"),
    (b"a STORE 1 FLAGS \\Recent", "a"),
    (b"a STORE 1 +LABELS (x)", "a"),
    (b"a STATUS INBOX (FROB)", "a"),
    (b"a STATUS INBOX ()", "a"),
    (b"a APPEND INBOX hello", "a"),
    (b'a APPEND INBOX "32-Jan-2024 00:00:00 +0000" {1+}\r\nx', "a"),
    (b"a SEARCH", "a"),
    (b"a SEARCH FOO", "a"),
    (b"a SEARCH SINCE 2024-01-01", "a"),
    (b"a SEARCH OR SEEN", "a"),
    (b"a SEARCH (SEEN", "a"),
    (b"a SEARCH TEXT {2+}\r\n\xff\xfe", "a"),
    (b"a UID FROB 1", "a"),
    (b"a UID", "a"),
    (b"a ENABLE", "a"),
    (b"a ID (\"k\")", "a"),
    (b"a AUTHENTICATE PLAIN !!!", "a"),
]


@pytest.mark.parametrize("line, tag", BAD, ids=[c[0].decode(errors="replace")[:40] or "empty"
                                                for c in BAD])
def test_parse_bad(line: bytes, tag: str | None) -> None:
    with pytest.raises(parser.ParseError) as err:
        parse(line + b"\r\n")
    assert err.value.tag == tag and err.value.status == "BAD"


# Well-formed commands refused with NO: a name that is not modified UTF-7 names no mailbox
# (NONEXISTENT) and cannot be created (CANNOT), nor may a raw 8-bit one (RFC 3501 §5.1.3).
REFUSED = [
    (b"a SELECT &Jjo", "NONEXISTENT"),           # unterminated modified UTF-7
    (b"a SELECT &AGE-", "NONEXISTENT"),          # "a" base64-encoded: non-canonical
    (b"a EXAMINE &Jjo", "NONEXISTENT"),
    (b"a STATUS &Jjo (MESSAGES)", "NONEXISTENT"),
    (b"a DELETE &Jjo", "NONEXISTENT"),
    (b"a RENAME &Jjo x", "NONEXISTENT"),
    (b"a CREATE &Jjo", "CANNOT"),
    (b"a CREATE {5+}\r\ncaf\xc3\xa9", "CANNOT"),
    (b"a RENAME INBOX {5+}\r\ncaf\xc3\xa9", "CANNOT"),
]


@pytest.mark.parametrize("line, code", REFUSED, ids=[c[0].decode(errors="replace")[:40]
                                                     for c in REFUSED])
def test_parse_refused(line: bytes, code: str) -> None:
    with pytest.raises(parser.ParseError) as err:
        parse(line + b"\r\n")
    assert (err.value.tag, err.value.status, err.value.code) == ("a", "NO", code)


def test_list_pattern_not_modified_utf7_matches_nothing() -> None:
    assert parse(b'a LIST "" &Jjo*\r\n') == c.List("a", "", "", matches_nothing=True)
    assert parse(b'a LSUB &Jjo %\r\n') == c.Lsub("a", "", "", matches_nothing=True)
    assert parse(b'a LIST "" &AOQ-*\r\n') == c.List("a", "", "\u00e4*")


def test_too_many_id_pairs() -> None:
    pairs = b" ".join(b'"k%d" "v"' % i for i in range(parser.MAX_ID_PAIRS + 1))
    with pytest.raises(parser.ParseError):
        parse(b"a ID (" + pairs + b")\r\n")


def test_login_repr_hides_password() -> None:
    assert "secret" not in repr(parse(b"a LOGIN bob secret\r\n"))


SEQSETS = [
    ("1", 10, [(1, 1)]),
    ("1:*", 10, [(1, 10)]),
    ("*:4", 10, [(4, 10)]),
    ("12:*", 10, [(10, 12)]),      # RFC 3501 §6.4.8: n:* always includes the largest
    ("5,1:3,2", 10, [(1, 3), (5, 5)]),
    ("1:3,4:6", 10, [(1, 6)]),
    ("*", 0, []),
]


@pytest.mark.parametrize("text, largest, ranges", SEQSETS)
def test_seqset_resolve(text: str, largest: int, ranges: list[tuple[int, int]]) -> None:
    seqset = parser.parse_seqset(text)
    assert seqset.resolve(largest) == ranges
    assert str(seqset) == text
    for n in range(1, 13):
        assert seqset.contains(n, largest) == any(lo <= n <= hi for lo, hi in ranges)
