"""LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), the SPECIAL-USE selection and return
options and CREATE-SPECIAL-USE (RFC 6154): the RFCs' examples as byte-exact transcripts, the
grammar as tables, and the pattern matcher against a regular-expression reference.

The RFC examples run on a user who already has rmail's default mailboxes (INBOX, Archive,
Drafts, Junk, Sent, Trash), unsubscribed first so that LIST (SUBSCRIBED) shows exactly the
examples' names. Differences from the RFC text, all allowed by it: responses come INBOX first,
then by name in code-point order, capitals first (the RFCs list them in no particular order); mailbox names are always quoted;
CHILDINFO is written as an atom, as in RFC 5819 §3 (RFC 5258 §6: "with and without
surrounding quotes"); a parent named in CREATE exists (rmail creates missing parents, so RFC
5258 example 11's missing "music" cannot happen); listings with "%" also show the defaults.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st

from rmail.server.imap import commands as c
from rmail.server.imap.listing import Wildcard
from rmail.server.imap.objectid import mailbox_id
from rmail.server.imap.parser import ParseError
from rmail.server.runtime import ServerRuntime

from .conftest import RawClient
from .test_imap_grammar import parse

DEFAULTS = (b"INBOX", b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash")


async def session(runtime: ServerRuntime, *setup: bytes) -> RawClient:
    """Alice, logged in, with no subscriptions, after the `setup` commands (each must be OK)."""
    c_ = await RawClient.connect(runtime.port("imap"))
    await c_.login()
    for i, line in enumerate([b"UNSUBSCRIBE " + name for name in DEFAULTS] + list(setup)):
        tag = b"s%d" % i
        reply = await c_.cmd(tag, line)
        # CREATE's OK carries [MAILBOXID (...)] (RFC 8474 §4.1).
        assert reply.startswith(tag + b" OK ") and reply.endswith(
            b" " + line.split(b" ")[0] + b" completed\r\n"), (line, reply)
    return c_


async def transcript(c_: RawClient, steps: list[tuple[bytes, bytes]],
                     runtime: ServerRuntime | None = None) -> None:
    """Each line's reply byte for byte; "{ID name}" stands for the MAILBOXID of mailbox
    `name` (RFC 8474), known once the command has created it."""
    for line, wanted in steps:
        tag = line.split(b" ", 1)[0]
        got = await c_.cmd(tag, line.split(b" ", 1)[1])
        for name in re.findall(rb"\{ID ([^}]+)\}", wanted):
            assert runtime is not None
            account = await runtime.accounts.get_user("alice@example.com")
            box = await runtime.store.get_mailbox(account.id, name.decode())
            wanted = wanted.replace(b"{ID %s}" % name, mailbox_id(box.id, box.uidvalidity).encode())
        assert got == wanted, line


# -- RFC 5258 §5 ------------------------------------------------------------------------------

async def test_rfc5258_example_8_childinfo_and_haschildren(runtime: ServerRuntime) -> None:
    c_ = await session(runtime, b"CREATE Foo/Bar", b"CREATE Foo/Baz", b"CREATE Moo",
                       b"SUBSCRIBE Foo/Baz")
    await transcript(c_, [
        (b'CA3 LIST "" "%" RETURN (CHILDREN)',
         b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Archive"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Drafts"\r\n'
         b'* LIST (\\HasChildren) "/" "Foo"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Junk"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Moo"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Sent"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Trash"\r\n'
         b'CA3 OK LIST completed\r\n'),
        # A) "Foo/Baz" is the only subscribed mailbox.
        (b'C02 LIST (SUBSCRIBED) "" "*"',
         b'* LIST (\\Subscribed) "/" "Foo/Baz"\r\n'
         b'C02 OK LIST completed\r\n'),
        (b'C03 LIST (SUBSCRIBED) "" "%"',
         b'C03 OK LIST completed\r\n'),
        (b'C04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"',
         b'* LIST () "/" "Foo" (CHILDINFO ("SUBSCRIBED"))\r\n'
         b'C04 OK LIST completed\r\n'),
        # A1) "Foo" subscribed too.
        (b'C05 SUBSCRIBE Foo', b'C05 OK SUBSCRIBE completed\r\n'),
        (b'C06 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"',
         b'* LIST (\\Subscribed) "/" "Foo" (CHILDINFO ("SUBSCRIBED"))\r\n'
         b'C06 OK LIST completed\r\n'),
        # C) only "Foo" and "Moo" subscribed.
        (b'C07 UNSUBSCRIBE Foo/Baz', b'C07 OK UNSUBSCRIBE completed\r\n'),
        (b'C08 SUBSCRIBE Moo', b'C08 OK SUBSCRIBE completed\r\n'),
        (b'C09 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)',
         b'* LIST (\\HasChildren \\Subscribed) "/" "Foo"\r\n'
         b'* LIST (\\HasNoChildren \\Subscribed) "/" "Moo"\r\n'
         b'C09 OK LIST completed\r\n'),
        # B) nothing subscribed: no responses, though "Foo" has children.
        (b'C10 UNSUBSCRIBE Foo', b'C10 OK UNSUBSCRIBE completed\r\n'),
        (b'C11 UNSUBSCRIBE Moo', b'C11 OK UNSUBSCRIBE completed\r\n'),
        (b'C12 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"',
         b'C12 OK LIST completed\r\n'),
    ])
    await c_.close()


async def test_rfc5258_example_9_childinfo_whether_or_not_children_match(runtime: ServerRuntime) -> None:
    subscribed = (b"foo2/bar1", b"foo2/bar2", b"baz2/bar2", b"baz2/bar22", b"baz2/bar222", b"eps2",
                  b"eps2/mamba", b"qux2/bar2")
    c_ = await session(runtime, *(b"CREATE " + n for n in (
        b"foo2/bar1", b"foo2/bar2", b"baz2/bar2", b"baz2/bar22", b"baz2/bar222", b"eps2/mamba",
        b"qux2/bar2")), *(b"SUBSCRIBE " + n for n in subscribed))
    await transcript(c_, [
        (b'D02 LIST (SUBSCRIBED) "" "*"',
         b'* LIST (\\Subscribed) "/" "baz2/bar2"\r\n'
         b'* LIST (\\Subscribed) "/" "baz2/bar22"\r\n'
         b'* LIST (\\Subscribed) "/" "baz2/bar222"\r\n'
         b'* LIST (\\Subscribed) "/" "eps2"\r\n'
         b'* LIST (\\Subscribed) "/" "eps2/mamba"\r\n'
         b'* LIST (\\Subscribed) "/" "foo2/bar1"\r\n'
         b'* LIST (\\Subscribed) "/" "foo2/bar2"\r\n'
         b'* LIST (\\Subscribed) "/" "qux2/bar2"\r\n'
         b'D02 OK LIST completed\r\n'),
        # "baz2" and "qux2" are left out: every subscribed child of theirs is listed (§3.5).
        (b'D03 LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"',
         b'* LIST (\\Subscribed) "/" "baz2/bar2"\r\n'
         b'* LIST (\\Subscribed) "/" "baz2/bar22"\r\n'
         b'* LIST (\\Subscribed) "/" "baz2/bar222"\r\n'
         b'* LIST (\\Subscribed) "/" "eps2" (CHILDINFO ("SUBSCRIBED"))\r\n'
         b'* LIST () "/" "foo2" (CHILDINFO ("SUBSCRIBED"))\r\n'
         b'* LIST (\\Subscribed) "/" "foo2/bar2"\r\n'
         b'* LIST (\\Subscribed) "/" "qux2/bar2"\r\n'
         b'D03 OK LIST completed\r\n'),
    ])
    await c_.close()


async def test_rfc5258_example_10_patterns_nonexistent_and_childinfo(runtime: ServerRuntime) -> None:
    c_ = await session(runtime, b"CREATE foo", b"SUBSCRIBE foo/bar")
    await transcript(c_, [
        (b'a1 LIST "" ("foo" "foo/*")',
         b'* LIST () "/" "foo"\r\n'
         b'a1 OK LIST completed\r\n'),
        (b'a2 LIST (SUBSCRIBED) "" "foo/*"',
         b'* LIST (\\Subscribed \\NonExistent) "/" "foo/bar"\r\n'
         b'a2 OK LIST completed\r\n'),
        (b'a3 LIST (SUBSCRIBED RECURSIVEMATCH) "" foo RETURN (CHILDREN)',
         b'* LIST (\\HasNoChildren) "/" "foo" (CHILDINFO ("SUBSCRIBED"))\r\n'
         b'a3 OK LIST completed\r\n'),
    ])
    await c_.close()


async def test_rfc5258_examples_2_to_7(runtime: ServerRuntime) -> None:
    c_ = await session(runtime, *(b"CREATE " + n for n in (
        b"Fruit/Apple", b"Fruit/Banana", b"Tofu", b"Vegetable/Broccoli", b"Vegetable/Corn")),
        *(b"SUBSCRIBE " + n for n in (b"INBOX", b"Fruit/Banana", b"Fruit/Peach", b"Vegetable",
                                      b"Vegetable/Broccoli")))
    await transcript(c_, [
        (b'A02 LIST (SUBSCRIBED) "" "*"',
         b'* LIST (\\Subscribed) "/" "INBOX"\r\n'
         b'* LIST (\\Subscribed) "/" "Fruit/Banana"\r\n'
         b'* LIST (\\Subscribed \\NonExistent) "/" "Fruit/Peach"\r\n'
         b'* LIST (\\Subscribed) "/" "Vegetable"\r\n'
         b'* LIST (\\Subscribed) "/" "Vegetable/Broccoli"\r\n'
         b'A02 OK LIST completed\r\n'),
        # No remote mailboxes here: REMOTE changes nothing (RFC 5258 §3.1).
        (b'A04 LIST (REMOTE) "" "%" RETURN (CHILDREN)',
         b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Archive"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Drafts"\r\n'
         b'* LIST (\\HasChildren) "/" "Fruit"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Junk"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Sent"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Tofu"\r\n'
         b'* LIST (\\HasNoChildren) "/" "Trash"\r\n'
         b'* LIST (\\HasChildren) "/" "Vegetable"\r\n'
         b'A04 OK LIST completed\r\n'),
        (b'A05 LIST (REMOTE SUBSCRIBED) "" "*"',
         b'* LIST (\\Subscribed) "/" "INBOX"\r\n'
         b'* LIST (\\Subscribed) "/" "Fruit/Banana"\r\n'
         b'* LIST (\\Subscribed \\NonExistent) "/" "Fruit/Peach"\r\n'
         b'* LIST (\\Subscribed) "/" "Vegetable"\r\n'
         b'* LIST (\\Subscribed) "/" "Vegetable/Broccoli"\r\n'
         b'A05 OK LIST completed\r\n'),
        # RETURN (SUBSCRIBED) lists existing mailboxes only: no "Fruit/Peach".
        (b'A06 LIST (REMOTE) "" "*" RETURN (SUBSCRIBED)',
         b'* LIST (\\Subscribed) "/" "INBOX"\r\n'
         b'* LIST () "/" "Archive"\r\n'
         b'* LIST () "/" "Drafts"\r\n'
         b'* LIST () "/" "Fruit"\r\n'
         b'* LIST () "/" "Fruit/Apple"\r\n'
         b'* LIST (\\Subscribed) "/" "Fruit/Banana"\r\n'
         b'* LIST () "/" "Junk"\r\n'
         b'* LIST () "/" "Sent"\r\n'
         b'* LIST () "/" "Tofu"\r\n'
         b'* LIST () "/" "Trash"\r\n'
         b'* LIST (\\Subscribed) "/" "Vegetable"\r\n'
         b'* LIST (\\Subscribed) "/" "Vegetable/Broccoli"\r\n'
         b'* LIST () "/" "Vegetable/Corn"\r\n'
         b'A06 OK LIST completed\r\n'),
        # Example 7: several patterns, each name once.
        (b'BBB LIST "" ("INBOX" "Drafts" "Fruit/%" "Fruit/*")',
         b'* LIST () "/" "INBOX"\r\n'
         b'* LIST () "/" "Drafts"\r\n'
         b'* LIST () "/" "Fruit/Apple"\r\n'
         b'* LIST () "/" "Fruit/Banana"\r\n'
         b'BBB OK LIST completed\r\n'),
    ])
    await c_.close()


# -- RFC 5819 §3, RFC 8438 ---------------------------------------------------------------------

async def test_rfc5819_list_status(runtime: ServerRuntime) -> None:
    c_ = await session(runtime, b"CREATE foo", b"CREATE bar/x", b"DELETE bar")
    msg = b"Subject: hi\r\n\r\nbody\r\n"
    for box in (b"INBOX", b"foo", b"foo"):
        await c_.send(b"ap APPEND %s {%d+}\r\n%s\r\n" % (box, len(msg), msg))
        assert (await c_.until_tagged(b"ap")).startswith(b"ap OK")
    await transcript(c_, [
        (b'A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))',
         b'* LIST () "/" "INBOX"\r\n'
         b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)\r\n'
         b'* LIST () "/" "Archive"\r\n'
         b'* STATUS "Archive" (MESSAGES 0 UNSEEN 0)\r\n'
         b'* LIST () "/" "Drafts"\r\n'
         b'* STATUS "Drafts" (MESSAGES 0 UNSEEN 0)\r\n'
         b'* LIST () "/" "Junk"\r\n'
         b'* STATUS "Junk" (MESSAGES 0 UNSEEN 0)\r\n'
         b'* LIST () "/" "Sent"\r\n'
         b'* STATUS "Sent" (MESSAGES 0 UNSEEN 0)\r\n'
         b'* LIST () "/" "Trash"\r\n'
         b'* STATUS "Trash" (MESSAGES 0 UNSEEN 0)\r\n'
         b'* LIST (\\Noselect) "/" "bar"\r\n'
         b'* LIST () "/" "foo"\r\n'
         b'* STATUS "foo" (MESSAGES 2 UNSEEN 2)\r\n'
         b'A01 OK LIST completed\r\n'),
        (b'A02a SUBSCRIBE INBOX', b'A02a OK SUBSCRIBE completed\r\n'),
        (b'A02b SUBSCRIBE foo/sub', b'A02b OK SUBSCRIBE completed\r\n'),
        # "foo" is listed for its subscribed child only: no STATUS for it.
        (b'A02 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (STATUS (MESSAGES))',
         b'* LIST (\\Subscribed) "/" "INBOX"\r\n'
         b'* STATUS "INBOX" (MESSAGES 1)\r\n'
         b'* LIST () "/" "foo" (CHILDINFO ("SUBSCRIBED"))\r\n'
         b'A02 OK LIST completed\r\n'),
    ])
    await c_.close()


# -- RFC 6154 §5 --------------------------------------------------------------------------------

async def test_rfc6154_special_use_options_and_create(runtime: ServerRuntime) -> None:
    c_ = await session(runtime, b"CREATE Projects/x")
    await transcript(c_, [
        (b't2 LIST "" "%" RETURN (SPECIAL-USE)',
         b'* LIST () "/" "INBOX"\r\n'
         b'* LIST (\\Archive) "/" "Archive"\r\n'
         b'* LIST (\\Drafts) "/" "Drafts"\r\n'
         b'* LIST (\\Junk) "/" "Junk"\r\n'
         b'* LIST () "/" "Projects"\r\n'
         b'* LIST (\\Sent) "/" "Sent"\r\n'
         b'* LIST (\\Trash) "/" "Trash"\r\n'
         b't2 OK LIST completed\r\n'),
        (b't3 LIST (SPECIAL-USE) "" "*"',
         b'* LIST (\\Archive) "/" "Archive"\r\n'
         b'* LIST (\\Drafts) "/" "Drafts"\r\n'
         b'* LIST (\\Junk) "/" "Junk"\r\n'
         b'* LIST (\\Sent) "/" "Sent"\r\n'
         b'* LIST (\\Trash) "/" "Trash"\r\n'
         b't3 OK LIST completed\r\n'),
        (b't3b LIST (SPECIAL-USE RECURSIVEMATCH) "" "%/%"',
         b't3b OK LIST completed\r\n'),
        # rmail keeps one special use per mailbox, and has no virtual \All.
        (b't4 CREATE MySpecial (USE (\\Drafts \\Sent))',
         b't4 NO [USEATTR] a mailbox has at most one special use here\r\n'),
        (b't5 CREATE Everything (USE (\\All))',
         b't5 NO [USEATTR] \\All not supported\r\n'),
        (b't6 CREATE MySpecial (USE (\\sent))',
         b't6 OK [MAILBOXID ({ID MySpecial})] CREATE completed\r\n'),
        (b't7 CREATE Plain (USE ())',
         b't7 OK [MAILBOXID ({ID Plain})] CREATE completed\r\n'),
        (b't8 LIST (SPECIAL-USE) "" "MySpecial"',
         b'* LIST (\\Sent) "/" "MySpecial"\r\n'
         b't8 OK LIST completed\r\n'),
        (b't9 LIST (SPECIAL-USE RECURSIVEMATCH) "" "%" RETURN (CHILDREN)',
         b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n'
         b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n'
         b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n'
         b'* LIST (\\HasNoChildren \\Sent) "/" "MySpecial"\r\n'
         b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
         b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n'
         b't9 OK LIST completed\r\n'),
        (b'u1 CREATE Projects/Old (USE (\\Archive))', b'u1 OK [MAILBOXID ({ID Projects/Old})] CREATE completed\r\n'),
        (b'u2 LIST (SPECIAL-USE RECURSIVEMATCH) "" "Pro%"',
         b'* LIST () "/" "Projects" (CHILDINFO ("SPECIAL-USE"))\r\n'
         b'u2 OK LIST completed\r\n'),
        (b'u3 CREATE Odd (FLAVOUR (x))', b'u3 BAD unknown CREATE parameter\r\n'),
    ], runtime)
    await c_.close()


async def test_plain_list_is_unchanged_and_extended_empty_pattern_matches_nothing(runtime: ServerRuntime) -> None:
    c_ = await session(runtime)
    await transcript(c_, [
        (b'e1 LIST "" ""', b'* LIST (\\Noselect) "/" ""\r\ne1 OK LIST completed\r\n'),
        (b'e2 LIST () "" ""', b'e2 OK LIST completed\r\n'),
        (b'e3 LIST "" ("")', b'e3 OK LIST completed\r\n'),
        (b'e4 LIST "" "" RETURN ()', b'e4 OK LIST completed\r\n'),
        (b'e5 LIST "" ("" INBOX &Jjo)', b'* LIST () "/" "INBOX"\r\ne5 OK LIST completed\r\n'),
        (b'e6 LIST "" Sent', b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\ne6 OK LIST completed\r\n'),
    ])
    await c_.close()


# -- grammar -------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, command", [
    (b'a LIST "" *', c.List("a", "", "*")),
    (b'a LIST () "" *', c.List("a", "", "*", extended=True)),
    (b'a LIST (subscribed recursivematch) "" %',
     c.List("a", "", "%", select=frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
            returns=frozenset({"SUBSCRIBED"}), extended=True)),
    (b'a LIST (REMOTE) "" ("a" b "a") RETURN (CHILDREN STATUS (unseen MESSAGES unseen))',
     c.List("a", "", "a", more_patterns=("b",), select=frozenset({"REMOTE"}),
            returns=frozenset({"CHILDREN", "STATUS"}), status_items=("UNSEEN", "MESSAGES"),
            extended=True)),
    (b'a LIST (SPECIAL-USE) Work/ %', c.List("a", "Work/", "%", select=frozenset({"SPECIAL-USE"}),
                                             returns=frozenset({"SPECIAL-USE"}), extended=True)),
    (b'a CREATE x (USE (\\Sent \\sent))', c.Create("a", "x", ("\\Sent", "\\sent"))),
    (b'a CREATE x (USE ())', c.Create("a", "x")),
])
def test_extended_grammar(line: bytes, command: c.Command) -> None:
    assert parse(line + b"\r\n") == command


@pytest.mark.parametrize("line", [
    b'a LIST (imaptest) "" ""', b'a LIST (recursivematch) "" ""', b'a LIST (recursivematch remote) "" ""',
    b'a LIST "" "" return (imaptest)', b'a LIST "" "" RETURN', b'a LIST "" "" EXTRA (x)',
    b'a LIST "" ()', b'a LIST "" (a b', b'a LIST "" "" RETURN (STATUS (FROB))',
    b'a LIST "" "" RETURN (STATUS)', b'a LIST "" (' + b" ".join([b"x"] * 33) + b")",
    b'a CREATE x (USE (Sent))', b'a CREATE x (USE \\Sent)', b'a CREATE x (OTHER)',
    b'a CREATE x (USE (' + b" ".join([b"\\Sent"] * 17) + b'))',
])
def test_extended_grammar_errors_are_bad(line: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(line + b"\r\n")
    assert info.value.status == "BAD"


# -- the pattern matcher -----------------------------------------------------------------------

def _reference(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch)
                              for ch in pattern), re.DOTALL)


@given(st.text("ab/*%", max_size=10), st.text("ab/", max_size=12))
def test_wildcard_matches_as_the_regular_expression(pattern: str, name: str) -> None:
    assert Wildcard(pattern).fullmatch(name) == bool(_reference(pattern).fullmatch(name))


def test_wildcard_cost_is_linear_in_the_name() -> None:
    """A regular expression backtracks for seconds on this; the matcher does one pass."""
    import time
    start = time.process_time()
    assert not Wildcard("*a" * 400 + "b").fullmatch("a" * 512)
    assert Wildcard("%/" * 15 + "*").fullmatch("x/" * 15 + "y")
    assert time.process_time() - start < 0.5


# -- RFC 8438 (STATUS=SIZE), RFC 7889 (APPENDLIMIT) -------------------------------------------------

async def test_rfc8438_status_size_is_the_sum_of_rfc822_sizes(runtime: ServerRuntime) -> None:
    c_ = await session(runtime, b"CREATE frop")
    sizes = []
    for body in (b"x" * 100, b"y" * 44000):
        msg = b"Subject: s\r\n\r\n" + body + b"\r\n"
        sizes.append(len(msg))
        await c_.send(b"ap APPEND frop {%d+}\r\n%s\r\n" % (len(msg), msg))
        assert (await c_.until_tagged(b"ap")).startswith(b"ap OK")
    await transcript(c_, [
        (b'A01 STATUS frop (MESSAGES SIZE UIDNEXT)',
         b'* STATUS "frop" (MESSAGES 2 SIZE %d UIDNEXT 3)\r\n' % sum(sizes) +
         b'A01 OK STATUS completed\r\n'),
    ])
    assert (await c_.cmd(b"A02", b'SELECT "frop"')).endswith(b"A02 OK [READ-WRITE] SELECT completed\r\n")
    await transcript(c_, [
        (b'A03 FETCH 1:* (RFC822.SIZE)',
         b'* 1 FETCH (RFC822.SIZE %d)\r\n* 2 FETCH (RFC822.SIZE %d)\r\nA03 OK FETCH completed\r\n'
         % tuple(sizes)),
        (b'A04 LIST "" frop RETURN (STATUS (SIZE))',
         b'* LIST () "/" "frop"\r\n* STATUS "frop" (SIZE %d)\r\nA04 OK LIST completed\r\n' % sum(sizes)),
    ])
    await c_.close()


async def test_rfc7889_appendlimit(runtime: ServerRuntime) -> None:
    limit = runtime.config.limits.message_size
    c_ = await session(runtime)
    caps = await c_.cmd(b"t0", b"CAPABILITY")
    assert b" APPENDLIMIT=%d" % limit in caps.split(b"\r\n")[0]
    await transcript(c_, [
        (b't1 STATUS INBOX (APPENDLIMIT)',
         b'* STATUS "INBOX" (APPENDLIMIT %d)\r\nt1 OK STATUS completed\r\n' % limit),
        (b't2 LIST "" INBOX RETURN (STATUS (APPENDLIMIT))',
         b'* LIST () "/" "INBOX"\r\n* STATUS "INBOX" (APPENDLIMIT %d)\r\nt2 OK LIST completed\r\n' % limit),
        # RFC 7889 §4: over the limit is NO [TOOBIG], before any byte of the message is taken.
        (b't3 APPEND INBOX {%d}' % (limit + 1),
         b't3 NO [TOOBIG] literal too large\r\n'),
    ])
    await c_.close()
