"""RFC 7162's syntax as parser tables: SELECT/EXAMINE parameters, FETCH and STORE modifiers,
SEARCH MODSEQ, STATUS HIGHESTMODSEQ, and what is refused with BAD."""

from __future__ import annotations

import pytest

from rmail.server.imap import commands as c
from rmail.server.imap import parser

from .test_imap_grammar import parse

S = c.SeqSet
UID, FLAGS, MODSEQ = c.FetchAtt("UID"), c.FetchAtt("FLAGS"), c.FetchAtt("MODSEQ")

GOOD = [
    (b"a SELECT INBOX (CONDSTORE)", c.Select("a", "INBOX", condstore=True)),
    (b"a EXAMINE INBOX (condstore)", c.Examine("a", "INBOX", condstore=True)),
    (b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
     c.Select("a", "INBOX", qresync=c.QResync(67890007, 20050715194045000,
                                               S(((41, 41), (43, 211), (214, 541)))))),
    (b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:15,18 41:55,100)))",
     c.Select("a", "INBOX", qresync=c.QResync(
         67890007, 90060115194045000, S(((41, 211), (214, 541))),
         (S(((1, 15), (18, 18))), S(((41, 55), (100, 100))))))),
    (b"a EXAMINE INBOX (QRESYNC (1 9223372036854775807) CONDSTORE)",
     c.Examine("a", "INBOX", condstore=True, qresync=c.QResync(1, 2**63 - 1))),
    (b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)",
     c.Fetch("a", S(((1, 0),)), (FLAGS, MODSEQ), changed_since=12345)),
    (b"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
     c.Fetch("a", S(((300, 500),)), (UID, FLAGS, MODSEQ), True, 12345, True)),
    (b"a FETCH 1 (MODSEQ FLAGS) (changedsince 1)",
     c.Fetch("a", S(((1, 1),)), (MODSEQ, FLAGS), changed_since=1)),
    (b"a UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)",
     c.Store("a", S(((6, 6), (4, 4), (8, 8))), c.StoreMode.ADD, True, ("\\Deleted",), True,
             12121230045)),
    (b"a STORE 12 (UNCHANGEDSINCE 0) FLAGS $MDNSent",
     c.Store("a", S(((12, 12),)), c.StoreMode.REPLACE, False, ("$MDNSent",), False, 0)),
    (b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338',
     c.Search("a", None, c.SearchModseq(620162338))),
    (b"a SEARCH OR NOT MODSEQ 720162338 LARGER 50000",
     c.Search("a", None, c.SearchOr(c.SearchNot(c.SearchModseq(720162338)), c.SearchSize(True, 50000)))),
    (b'a UID SEARCH MODSEQ "/flags/$Label" priv 0 SEEN',
     c.Search("a", None, c.SearchAnd((c.SearchModseq(0), c.SearchFlag("\\Seen", True))), True)),
    (b"a STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)",
     c.Status("a", "INBOX", ("UIDNEXT", "MESSAGES", "HIGHESTMODSEQ"))),
]


@pytest.mark.parametrize("line, expected", GOOD, ids=[g[0].decode()[:50] for g in GOOD])
def test_parse_good(line: bytes, expected: c.Command) -> None:
    assert parse(line + b"\r\n") == expected


BAD = [
    (b"a SELECT INBOX ()", "expected atom"),
    (b"a SELECT INBOX (FROB)", "unknown or repeated SELECT parameter FROB"),
    (b"a SELECT INBOX (CONDSTORE CONDSTORE)", "unknown or repeated SELECT parameter CONDSTORE"),
    (b"a SELECT INBOX (QRESYNC (0 1))", "number out of range"),
    (b"a SELECT INBOX (QRESYNC (1 0))", "mod-sequence out of range"),
    (b"a SELECT INBOX (QRESYNC (1 9223372036854775808))", "mod-sequence out of range"),
    (b"a SELECT INBOX (QRESYNC (1 2 3:*))", '"*" is not allowed in known UIDs'),
    (b"a SELECT INBOX (QRESYNC (1 2 (1 2)))", "expected sequence set"),
    (b"a SELECT INBOX (QRESYNC (1 2 1:9 (1:3 4:5)))", "message sequence match data sets differ in size"),
    (b"a SELECT INBOX (QRESYNC (1 2 1:9 (1:* 4:5)))", '"*" is not allowed in the known sequence set'),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 0)", "mod-sequence out of range"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 5 VANISHED)", "VANISHED needs UID FETCH and CHANGEDSINCE"),
    (b"a UID FETCH 1 FLAGS (VANISHED)", "VANISHED needs UID FETCH and CHANGEDSINCE"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 5 CHANGEDSINCE 6)", "unknown or repeated FETCH modifier CHANGEDSINCE"),
    (b"a FETCH 1 FLAGS (PARTIAL 1:5)", "unknown or repeated FETCH modifier PARTIAL"),
    (b"a STORE 1 (UNCHANGEDSINCE) +FLAGS \\Seen", "expected SP"),
    (b"a STORE 1 (FOO 1) +FLAGS \\Seen", "unknown STORE modifier"),
    (b"a STORE 1 (UNCHANGEDSINCE 1)+FLAGS \\Seen", "expected SP"),
    (b'a SEARCH MODSEQ "/flags/" all 1', "MODSEQ entry name must be /flags/ and a flag"),
    (b'a SEARCH MODSEQ "/flags/\\\\seen" everyone 1', "MODSEQ entry type must be priv, shared or all"),
    (b'a SEARCH MODSEQ "/flags/\\\\seen" all', "expected SP"),
    (b"a SEARCH MODSEQ x", "expected mod-sequence"),
]


@pytest.mark.parametrize("line, text", BAD, ids=[b[0].decode()[:50] for b in BAD])
def test_parse_bad(line: bytes, text: str) -> None:
    with pytest.raises(parser.ParseError) as info:
        parse(line + b"\r\n")
    assert (info.value.status, str(info.value), info.value.tag) == ("BAD", text, "a")
