"""SORT and THREAD syntax (RFC 5256 §5, RFC 5957 §3) as parser tables."""

from __future__ import annotations

import pytest

from rmail.server.imap import commands as c
from rmail.server.imap import parser

from .test_imap_grammar import parse

K = c.SortCriterion
ALL = c.SearchAll()
SEEN = c.SearchFlag("\\Seen", True)

GOOD = [
    (b"a SORT (DATE) UTF-8 ALL", c.Sort("a", (K("DATE"),), "UTF-8", ALL)),
    (b"a sort (subject reverse date) us-ascii all",
     c.Sort("a", (K("SUBJECT"), K("DATE", True)), "US-ASCII", ALL)),
    (b'a SORT (ARRIVAL CC FROM SIZE TO DISPLAYFROM DISPLAYTO) "UTF-8" SEEN 1:*',
     c.Sort("a", tuple(K(k) for k in ("ARRIVAL", "CC", "FROM", "SIZE", "TO", "DISPLAYFROM",
                                       "DISPLAYTO")), "UTF-8",
            c.SearchAnd((SEEN, c.SearchSeq(c.SeqSet(((1, c.STAR),)), uid=False))))),
    (b"a UID SORT (REVERSE ARRIVAL) UTF-8 (SEEN)",
     c.Sort("a", (K("ARRIVAL", True),), "UTF-8", SEEN, uid=True)),
    (b"a SORT (SUBJECT) UTF-8 TEXT {3+}\r\nf\xc3\xb6",
     c.Sort("a", (K("SUBJECT"),), "UTF-8", c.SearchBody("f\u00f6", text=True))),
    (b"a THREAD REFERENCES UTF-8 ALL", c.Thread("a", "REFERENCES", "UTF-8", ALL)),
    (b"a thread orderedsubject us-ascii seen all",
     c.Thread("a", "ORDEREDSUBJECT", "US-ASCII", c.SearchAnd((SEEN, ALL)))),
    (b"a UID THREAD REFERENCES UTF-8 UID 1:5",
     c.Thread("a", "REFERENCES", "UTF-8", c.SearchSeq(c.SeqSet(((1, 5),)), uid=True), uid=True)),
]


@pytest.mark.parametrize("line, cmd", GOOD, ids=[g[0].decode(errors="replace") for g in GOOD])
def test_parse_good(line: bytes, cmd: c.Command) -> None:
    assert parse(line + b"\r\n") == cmd


BAD = [
    b"a SORT",
    b"a SORT (DATE)",                      # the charset is mandatory (RFC 5256 §3)
    b"a SORT (DATE) UTF-8",                # and at least one search key
    b"a SORT DATE UTF-8 ALL",              # criteria are parenthesised
    b"a SORT () UTF-8 ALL",
    b"a SORT (DATE UTF-8 ALL",
    b"a SORT (NAME) UTF-8 ALL",            # not a sort key
    b"a SORT (REVERSE) UTF-8 ALL",
    b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
    b"a SORT (DATE  SIZE) UTF-8 ALL",
    b"a SORT (DATE) UTF-8 FOO",
    b"a SORT (DATE) UTF-8 ALL extra(",
    b"a SORT (" + b"DATE " * parser.MAX_SORT_CRITERIA + b"SIZE) UTF-8 ALL",
    b"a THREAD",
    b"a THREAD REFERENCES",
    b"a THREAD REFERENCES UTF-8",
    b"a THREAD REFS UTF-8 ALL",            # an algorithm rmail does not have
    b"a THREAD (REFERENCES) UTF-8 ALL",
    b"a UID THREAD ORDEREDSUBJECT UTF-8 (SEEN",
]


@pytest.mark.parametrize("line", BAD, ids=[b.decode(errors="replace")[:50] for b in BAD])
def test_parse_bad(line: bytes) -> None:
    with pytest.raises(parser.ParseError) as err:
        parse(line + b"\r\n")
    assert err.value.tag == "a" and err.value.status == "BAD"


@pytest.mark.parametrize("line", [
    b"a SORT (DATE) KOI8-R ALL",
    b"a UID SORT (DATE) ISO-8859-1 TEXT {1+}\r\n\xe9",  # refused before its strings are read
    b"a THREAD REFERENCES BIG5 ALL",
])
def test_unsupported_charset(line: bytes) -> None:
    with pytest.raises(parser.ParseError) as err:
        parse(line + b"\r\n")
    assert (err.value.status, err.value.code) == ("NO", "BADCHARSET (UTF-8 US-ASCII)")
