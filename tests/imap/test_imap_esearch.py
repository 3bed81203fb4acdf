"""ESEARCH (RFC 4731), SEARCHRES (RFC 5182), CONTEXT=SEARCH (RFC 5267 §4) and WITHIN (RFC 5032)
through a real server: byte-exact transcripts after the RFCs' examples, the "$" rules, updating
searches fed by other sessions, and the bound on updating searches."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from rmail.server.imap import commands as c
from rmail.server.imap import context
from rmail.server.imap import search as search_module
from rmail.server.imap.context import MAX_UPDATE_CONTEXTS
from rmail.server.imap.handlers.esearch import answer
from rmail.server.imap.handlers.sync import flush, select
from rmail.server.imap.session import Session
from rmail.server.imap.state import Services
from rmail.server.runtime import ServerRuntime

from .conftest import RawClient


def msg(n: int, sender: str = "Jones") -> bytes:
    return b"From: %b <x@example.com>\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (
        sender.encode(), n, n)


async def fill(runtime: ServerRuntime, count: int, *, flagged: tuple[int, ...] = (),
               smith: tuple[int, ...] = (), seen: tuple[int, ...] = (),
               mailbox: str = "INBOX") -> int:
    """`count` messages in `mailbox` (numbers from 1), none \\Recent; returns the mailbox id."""
    user = await runtime.accounts.get_user("alice@example.com")
    box = await runtime.store.get_mailbox(user.id, mailbox)
    for n in range(1, count + 1):
        flags = (["\\Flagged"] if n in flagged else []) + (["\\Seen"] if n in seen else [])
        await runtime.store.append(box.id, msg(n, "Smith" if n in smith else "Jones"), flags)
    await runtime.store.claim_recent_range(box.id)  # keep \Recent out of the transcripts
    return box.id


async def session(runtime: ServerRuntime, select: bytes = b"INBOX") -> RawClient:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    assert (await c.cmd(b"s", b"SELECT " + select)).endswith(b"s OK [READ-WRITE] SELECT completed\r\n")
    return c


async def test_rfc_4731_examples(runtime: ServerRuntime) -> None:
    await fill(runtime, 11, flagged=(2, 5, 10, 11), smith=(5,), seen=(1, 2, 3))
    c = await session(runtime)
    steps = [
        (b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
         b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\nA282 OK SEARCH completed\r\n'),
        (b'A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
         b'* ESEARCH (TAG "A283") ALL 2,10:11\r\nA283 OK SEARCH completed\r\n'),
        (b"A284 SEARCH RETURN (MIN) UNSEEN",
         b'* ESEARCH (TAG "A284") MIN 4\r\nA284 OK SEARCH completed\r\n'),
        (b"A285 UID SEARCH RETURN (MIN MAX) 1:5000",
         b'* ESEARCH (TAG "A285") UID MIN 1 MAX 11\r\nA285 OK SEARCH completed\r\n'),
        (b"A286 SEARCH RETURN (COUNT) DELETED",
         b'* ESEARCH (TAG "A286") COUNT 0\r\nA286 OK SEARCH completed\r\n'),
        # Nothing matched: still one ESEARCH, without MIN/MAX/ALL (RFC 4731 §3.1).
        (b"A287 UID SEARCH RETURN (MIN MAX ALL) DELETED",
         b'* ESEARCH (TAG "A287") UID\r\nA287 OK SEARCH completed\r\n'),
        (b"A288 SEARCH RETURN (BOGUS) ALL",
         b"A288 BAD unknown SEARCH return option BOGUS\r\n"),
        # A plain SEARCH is untouched.
        (b"A289 SEARCH FLAGGED", b"* SEARCH 2 5 10 11\r\nA289 OK SEARCH completed\r\n"),
    ]
    for sent, expected in steps:
        tag = sent.split(b" ", 1)
        assert await c.cmd(tag[0], tag[1]) == expected, sent
    await c.close()


async def test_rfc_5182_examples(runtime: ServerRuntime) -> None:
    await fill(runtime, 11, flagged=(2, 5, 10, 11), smith=(5,))
    c = await session(runtime)
    # Example 1: SAVE alone answers only the tagged OK; "$" feeds FETCH.
    assert await c.cmd(b"A282", b'SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') \
        == b"A282 OK SEARCH completed\r\n"
    assert await c.cmd(b"A283", b"FETCH $ (UID FLAGS)") == (
        b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n* 10 FETCH (UID 10 FLAGS (\\Flagged))\r\n"
        b"* 11 FETCH (UID 11 FLAGS (\\Flagged))\r\nA283 OK FETCH completed\r\n")
    # Example 2: pipelined, run in order.
    await c.send(b'B282 SEARCH RETURN (SAVE) FLAGGED NOT FROM "Smith" 1:10\r\n'
                 b"B283 UID FETCH $ FLAGS\r\n")
    assert await c.until_tagged(b"B283") == (
        b"B282 OK SEARCH completed\r\n"
        b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n* 10 FETCH (UID 10 FLAGS (\\Flagged))\r\n"
        b"B283 OK FETCH completed\r\n")
    # Example 3: "$" in a UID SEARCH, with or without UID.
    assert await c.cmd(b"A300", b"SEARCH RETURN (SAVE) SINCE 1-Jan-2004 NOT FROM \"Smith\"") == \
        b"A300 OK SEARCH completed\r\n"
    assert await c.cmd(b"A301", b"UID SEARCH UID $ SMALLER 4096") == \
        b"* SEARCH 1 2 3 4 6 7 8 9 10 11\r\nA301 OK SEARCH completed\r\n"
    assert await c.cmd(b"A302", b"UID SEARCH $ SMALLER 4096") == \
        b"* SEARCH 1 2 3 4 6 7 8 9 10 11\r\nA302 OK SEARCH completed\r\n"
    # Example 4: "$" under OR.
    assert await c.cmd(b"P282", b"SEARCH RETURN (SAVE) FLAGGED") == b"P282 OK SEARCH completed\r\n"
    assert await c.cmd(b"P283", b"SEARCH CHARSET UTF-8 (OR $ 1,3000:3021) TEXT body") == \
        b"* SEARCH 1 2 5 10 11\r\nP283 OK SEARCH completed\r\n"
    # Example 5 (as §2.1 says it): a NO without SAVE leaves "$"; a NO with SAVE empties it.
    assert await c.cmd(b"B283", b"SEARCH CHARSET KOI8-R (OR $ 1,3000:3021) TEXT x") == \
        b"B283 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n"
    assert await c.cmd(b"B284", b"SEARCH $") == b"* SEARCH 2 5 10 11\r\nB284 OK SEARCH completed\r\n"
    # A BAD one leaves it too.
    assert await c.cmd(b"B285", b"SEARCH RETURN (SAVE) FROB") == b"B285 BAD expected SP\r\n"
    assert await c.cmd(b"B286", b"SEARCH $") == b"* SEARCH 2 5 10 11\r\nB286 OK SEARCH completed\r\n"
    assert await c.cmd(b"B287", b"SEARCH RETURN (SAVE) CHARSET KOI8-R TEXT x") == \
        b"B287 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n"
    assert await c.cmd(b"B288", b"SEARCH $") == b"* SEARCH\r\nB288 OK SEARCH completed\r\n"
    # Example 6: an empty "$" is a valid set that matches nothing.
    assert await c.cmd(b"E282", b'SEARCH RETURN (SAVE) SINCE 28-Oct-2006 FROM "Eric"') == \
        b"E282 OK SEARCH completed\r\n"
    assert await c.cmd(b"E283", b"COPY $ Archive") == b"E283 OK COPY completed\r\n"
    assert await c.cmd(b"E284", b"FETCH $ FLAGS") == b"E284 OK FETCH completed\r\n"
    assert await c.cmd(b"E285", b"STORE $ +FLAGS (\\Seen)") == b"E285 OK STORE completed\r\n"
    assert await c.cmd(b"E286", b"UID EXPUNGE $") == b"E286 OK EXPUNGE completed\r\n"
    # Example 9: the later SAVE wins.
    await c.send(b"H282 SEARCH RETURN (SAVE) FLAGGED\r\nH283 SEARCH RETURN (SAVE) FROM Smith\r\n")
    assert await c.until_tagged(b"H283") == b"H282 OK SEARCH completed\r\nH283 OK SEARCH completed\r\n"
    assert await c.cmd(b"H284", b"FETCH $ UID") == b"* 5 FETCH (UID 5)\r\nH284 OK FETCH completed\r\n"
    # Example 10: what each combination keeps (result 2,5,10:11).
    for opts, answer, kept in [
        (b"ALL SAVE", b" ALL 2,5,10:11", b"2 5 10 11"),
        (b"SAVE MIN", b" MIN 2", b"2"),
        (b"MAX SAVE MIN", b" MIN 2 MAX 11", b"2 11"),
        (b"MAX SAVE MIN COUNT", b" MIN 2 MAX 11 COUNT 4", b"2 5 10 11"),
        (b"ALL SAVE MIN", b" MIN 2 ALL 2,5,10:11", b"2 5 10 11"),
    ]:
        assert await c.cmd(b"C28", b"SEARCH RETURN (" + opts + b") FLAGGED") == \
            b'* ESEARCH (TAG "C28")' + answer + b"\r\nC28 OK SEARCH completed\r\n"
        assert await c.cmd(b"C29", b"SEARCH $") == \
            b"* SEARCH " + kept + b"\r\nC29 OK SEARCH completed\r\n"
    # Example 7: COPY and STORE of "$" (its UIDs 2, 5, 10, 11).
    await c.send(b"F282 SEARCH RETURN (SAVE) FLAGGED\r\nF283 COPY $ Junk\r\n"
                 b"F284 STORE $ +FLAGS.Silent (\\Deleted)\r\n")
    reply = await c.until_tagged(b"F284")
    assert reply.startswith(b"F282 OK SEARCH completed\r\nF283 OK [COPYUID ")
    assert reply.endswith(b" 2,5,10:11 1:4] COPY completed\r\nF284 OK STORE completed\r\n")
    await c.close()


async def test_saved_result_follows_the_mailbox(runtime: ServerRuntime) -> None:
    """RFC 5182 §2.1: expunged messages leave "$" (message numbers follow), SELECT empties it,
    and "$" set by SEARCH serves UID commands and the other way round."""
    await fill(runtime, 5, flagged=(2, 4, 5))
    c = await session(runtime)
    assert await c.cmd(b"a1", b"UID SEARCH RETURN (SAVE) FLAGGED") == b"a1 OK SEARCH completed\r\n"
    assert await c.cmd(b"a2", b"STORE 2 +FLAGS.SILENT (\\Deleted)") == b"a2 OK STORE completed\r\n"
    assert await c.cmd(b"a3", b"EXPUNGE") == b"* 2 EXPUNGE\r\na3 OK EXPUNGE completed\r\n"
    assert await c.cmd(b"a4", b"FETCH $ UID") == \
        b"* 3 FETCH (UID 4)\r\n* 4 FETCH (UID 5)\r\na4 OK FETCH completed\r\n"
    assert await c.cmd(b"a5", b"UID FETCH $ UID") == \
        b"* 3 FETCH (UID 4)\r\n* 4 FETCH (UID 5)\r\na5 OK FETCH completed\r\n"
    assert await c.cmd(b"a6", b"UID STORE $ +FLAGS (\\Seen)") == (
        b"* 3 FETCH (UID 4 FLAGS (\\Seen \\Flagged))\r\n"
        b"* 4 FETCH (UID 5 FLAGS (\\Seen \\Flagged))\r\na6 OK STORE completed\r\n")
    assert (await c.cmd(b"a7", b"SELECT INBOX")).endswith(b"a7 OK [READ-WRITE] SELECT completed\r\n")
    assert await c.cmd(b"a8", b"FETCH $ UID") == b"a8 OK FETCH completed\r\n"
    assert await c.cmd(b"a9", b"SEARCH RETURN (SAVE) 3:4") == b"a9 OK SEARCH completed\r\n"
    assert await c.cmd(b"b1", b"UNSELECT") == b"b1 OK UNSELECT completed\r\n"
    assert await c.cmd(b"b2", b"FETCH $ UID") == b"b2 BAD FETCH not allowed in the authenticated state\r\n"
    # An empty mailbox: "$" is still a valid, empty set, not a bad message number.
    assert (await c.cmd(b"b3", b"SELECT Trash")).endswith(b"b3 OK [READ-WRITE] SELECT completed\r\n")
    assert await c.cmd(b"b4", b"FETCH $ UID") == b"b4 OK FETCH completed\r\n"
    assert await c.cmd(b"b5", b"FETCH 1 UID") == b"b5 BAD the mailbox is empty\r\n"
    await c.close()


async def test_rfc_5267_updates_and_partial(runtime: ServerRuntime) -> None:
    await fill(runtime, 6)
    c = await session(runtime)
    assert await c.cmd(b"B01", b"UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk") == \
        b'* ESEARCH (TAG "B01") UID COUNT 0\r\nB01 OK SEARCH completed\r\n'
    # §4.3: a tag in use by an updating search is BAD, and changes nothing.
    assert await c.cmd(b"B01", b"SEARCH RETURN (UPDATE) FLAGGED") == \
        b"B01 BAD this tag names an updating search already; use a new tag (RFC 5267 4.3)\r\n"
    # §4.3.3: ADDTO after the FETCH that shows the change (another session's STORE).
    other = await session(runtime)
    assert (await other.cmd(b"o1", b"STORE 2:3 +FLAGS.SILENT (\\Deleted $Junk)")).endswith(
        b"o1 OK STORE completed\r\n")
    assert await c.cmd(b"n1", b"NOOP") == (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk \\*)] "
        b"flags permitted\r\n"
        b"* 2 FETCH (UID 2 FLAGS (\\Deleted $Junk))\r\n* 3 FETCH (UID 3 FLAGS (\\Deleted $Junk))\r\n"
        b'* ESEARCH (TAG "B01") UID ADDTO (0 2:3)\r\n'
        b"n1 OK NOOP completed\r\n")
    # §4.3.4: REMOVEFROM before the EXPUNGE (here the session's own).
    assert await c.cmd(b"B03", b"UID EXPUNGE 3") == (
        b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 3)\r\n* 3 EXPUNGE\r\nB03 OK EXPUNGE completed\r\n')
    # A message that stops matching.
    assert await c.cmd(b"B02", b"STORE 2 -FLAGS (\\Deleted)") == (
        b"* 2 FETCH (FLAGS ($Junk))\r\n"
        b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 2)\r\nB02 OK STORE completed\r\n')
    # §4.3.5: CANCELUPDATE ends the updates; an unknown tag is BAD.
    assert await c.cmd(b"B04", b'CANCELUPDATE "B01"') == \
        b"B04 OK CANCELUPDATE completed, no further updates\r\n"
    assert await c.cmd(b"B05", b"STORE 2 +FLAGS (\\Deleted)") == \
        b"* 2 FETCH (FLAGS (\\Deleted $Junk))\r\nB05 OK STORE completed\r\n"
    assert await c.cmd(b"B06", b'CANCELUPDATE "B01"') == \
        b"B06 BAD no updating search has the tag B01\r\n"
    # §4.4 (A02–A04 in small): the range as asked, the part that exists, NIL past the end.
    await c.send(b"A02 UID SEARCH RETURN (PARTIAL 4:8) UNDELETED\r\n"
                 b"A03 UID SEARCH RETURN (PARTIAL 1:2) UNDELETED\r\n"
                 b"A04 UID SEARCH RETURN (PARTIAL 9:12) UNDELETED\r\n")
    assert await c.until_tagged(b"A04") == (
        b'* ESEARCH (TAG "A02") UID PARTIAL (4:8 6)\r\nA02 OK SEARCH completed\r\n'
        b'* ESEARCH (TAG "A03") UID PARTIAL (1:2 1,4)\r\nA03 OK SEARCH completed\r\n'
        b'* ESEARCH (TAG "A04") UID PARTIAL (9:12 NIL)\r\nA04 OK SEARCH completed\r\n')
    await c.close()
    await other.close()


async def test_updates_from_other_sessions(runtime: ServerRuntime) -> None:
    """New mail (EXISTS first, then ADDTO with valid numbers), flags, and expunges held back
    during FETCH: REMOVEFROM goes out with the EXPUNGE it precedes, at the next NOOP."""
    await fill(runtime, 3, seen=(1,))
    c = await session(runtime)
    other = await session(runtime)
    assert await c.cmd(b"U1", b"SEARCH RETURN (UPDATE ALL) UNSEEN") == \
        b'* ESEARCH (TAG "U1") ALL 2:3\r\nU1 OK SEARCH completed\r\n'
    assert await c.cmd(b"U2", b"UID SEARCH RETURN (UPDATE MIN) SEEN") == \
        b'* ESEARCH (TAG "U2") UID MIN 1\r\nU2 OK SEARCH completed\r\n'
    await other.send(b"o1 APPEND INBOX (\\Seen) {%d+}\r\n%b\r\n" % (len(msg(4)), msg(4)))
    assert (await other.until_tagged(b"o1")).startswith(b"* 4 EXISTS\r\n")
    await other.send(b"o2 APPEND INBOX {%d+}\r\n%b\r\n" % (len(msg(5)), msg(5)))
    await other.until_tagged(b"o2")
    assert await c.cmd(b"n1", b"NOOP") == (
        b"* 5 EXISTS\r\n* 0 RECENT\r\n"
        b'* ESEARCH (TAG "U1") ADDTO (0 5)\r\n* ESEARCH (TAG "U2") UID ADDTO (0 4)\r\n'
        b"n1 OK NOOP completed\r\n")
    assert await other.cmd(b"o3", b"STORE 2 +FLAGS.SILENT (\\Seen)") == b"o3 OK STORE completed\r\n"
    assert await c.cmd(b"n2", b"NOOP") == (
        b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n"
        b'* ESEARCH (TAG "U1") REMOVEFROM (0 2)\r\n* ESEARCH (TAG "U2") UID ADDTO (0 2)\r\n'
        b"n2 OK NOOP completed\r\n")
    assert await other.cmd(b"o4", b"STORE 3 +FLAGS.SILENT (\\Deleted)") == b"o4 OK STORE completed\r\n"
    assert (await other.cmd(b"o5", b"EXPUNGE")).endswith(b"* 3 EXPUNGE\r\no5 OK EXPUNGE completed\r\n")
    # During FETCH no EXPUNGE (RFC 3501 §7.4.1), so no REMOVEFROM either: message 3 keeps its
    # number in the result until the EXPUNGE can go.
    assert await c.cmd(b"f1", b"FETCH 5 UID") == b"* 5 FETCH (UID 5)\r\nf1 OK FETCH completed\r\n"
    assert await c.cmd(b"n3", b"NOOP") == (
        b'* ESEARCH (TAG "U1") REMOVEFROM (0 3)\r\n* 3 EXPUNGE\r\nn3 OK NOOP completed\r\n')
    assert await c.cmd(b"a1", b"SEARCH RETURN (ALL) UNSEEN") == \
        b'* ESEARCH (TAG "a1") ALL 4\r\na1 OK SEARCH completed\r\n'
    # While idling, updates come as they happen.
    await c.send(b"i1 IDLE\r\n")
    assert await c.line() == b"+ idling\r\n"
    assert await other.cmd(b"o6", b"STORE 1 -FLAGS.SILENT (\\Seen)") == b"o6 OK STORE completed\r\n"
    assert await c.line() == b"* 1 FETCH (UID 1 FLAGS ())\r\n"
    assert await c.line() == b'* ESEARCH (TAG "U1") ADDTO (0 1)\r\n'
    assert await c.line() == b'* ESEARCH (TAG "U2") UID REMOVEFROM (0 1)\r\n'
    await c.send(b"DONE\r\n")
    assert await c.line() == b"i1 OK IDLE terminated\r\n"
    await c.close()
    await other.close()


async def test_context_keys_keep_the_numbers_they_had(runtime: ServerRuntime) -> None:
    """RFC 5267 §4.3: message numbers (and "$") in an updating search mean the messages they
    named when it was made; a body key is tried on arriving mail."""
    await fill(runtime, 4)
    c = await session(runtime)
    assert await c.cmd(b"S1", b"SEARCH RETURN (SAVE) 4") == b"S1 OK SEARCH completed\r\n"
    assert await c.cmd(b"U1", b"UID SEARCH RETURN (UPDATE) OR 2:3 $ FLAGGED") == \
        b'* ESEARCH (TAG "U1") UID\r\nU1 OK SEARCH completed\r\n'
    assert await c.cmd(b"U2", b"SEARCH RETURN (UPDATE COUNT) BODY zebra") == \
        b'* ESEARCH (TAG "U2") COUNT 0\r\nU2 OK SEARCH completed\r\n'
    assert await c.cmd(b"a1", b"STORE 1 +FLAGS.SILENT (\\Deleted)") == b"a1 OK STORE completed\r\n"
    assert await c.cmd(b"a2", b"EXPUNGE") == b"* 1 EXPUNGE\r\na2 OK EXPUNGE completed\r\n"
    # Old message 4 is number 3 now; the context still means UIDs 2, 3 and 4.
    assert await c.cmd(b"a3", b"STORE 1:3 +FLAGS (\\Flagged)") == (
        b"* 1 FETCH (FLAGS (\\Flagged))\r\n* 2 FETCH (FLAGS (\\Flagged))\r\n"
        b"* 3 FETCH (FLAGS (\\Flagged))\r\n"
        b'* ESEARCH (TAG "U1") UID ADDTO (0 2:4)\r\na3 OK STORE completed\r\n')
    zebra = b"Subject: z\r\n\r\na zebra here\r\n"
    await c.send(b"a4 APPEND INBOX {%d+}\r\n%b\r\n" % (len(zebra), zebra))
    reply = await c.until_tagged(b"a4")
    assert reply.startswith(b'* 4 EXISTS\r\n* 1 RECENT\r\n* ESEARCH (TAG "U2") ADDTO (0 4)\r\n'
                            b"a4 OK [APPENDUID "), reply
    await c.close()


async def test_updating_searches_are_bounded(runtime: ServerRuntime) -> None:
    """RFC 5267 §4.3.1: past the limit, ``* NO [NOUPDATE "tag"]`` and the other items still
    come; CANCELUPDATE makes room."""
    await fill(runtime, 2)
    c = await session(runtime)
    for n in range(MAX_UPDATE_CONTEXTS):
        assert await c.cmd(b"u%d" % n, b"SEARCH RETURN (UPDATE COUNT) SEEN") == \
            b'* ESEARCH (TAG "u%d") COUNT 0\r\nu%d OK SEARCH completed\r\n' % (n, n)
    assert await c.cmd(b"B02", b"SEARCH RETURN (UPDATE COUNT) SEEN") == (
        b'* ESEARCH (TAG "B02") COUNT 0\r\n'
        b'* NO [NOUPDATE "B02"] too many updating searches (at most %d); this one is not '
        b"updated\r\nB02 OK SEARCH completed\r\n" % MAX_UPDATE_CONTEXTS)
    assert await c.cmd(b"c1", b'CANCELUPDATE "u0" "u1"') == \
        b"c1 OK CANCELUPDATE completed, no further updates\r\n"
    assert await c.cmd(b"B03", b"SEARCH RETURN (UPDATE COUNT) SEEN") == \
        b'* ESEARCH (TAG "B03") COUNT 0\r\nB03 OK SEARCH completed\r\n'
    updates = b"".join(b'* ESEARCH (TAG "u%d") ADDTO (0 1)\r\n' % n
                       for n in range(2, MAX_UPDATE_CONTEXTS))
    assert await c.cmd(b"s1", b"STORE 1 +FLAGS (\\Seen)") == (
        b"* 1 FETCH (FLAGS (\\Seen))\r\n" + updates +
        b'* ESEARCH (TAG "B03") ADDTO (0 1)\r\ns1 OK STORE completed\r\n')
    # A new SELECT ends every update (§4.3) and frees the slots.
    assert (await c.cmd(b"s2", b"SELECT INBOX")).endswith(b"s2 OK [READ-WRITE] SELECT completed\r\n")
    assert await c.cmd(b"s3", b"STORE 1 -FLAGS (\\Seen)") == \
        b"* 1 FETCH (FLAGS ())\r\ns3 OK STORE completed\r\n"
    await c.close()


async def test_within(runtime: ServerRuntime) -> None:
    """RFC 5032: OLDER and YOUNGER against INTERNALDATE, to the second."""
    user = await runtime.accounts.get_user("alice@example.com")
    box = await runtime.store.get_mailbox(user.id, "INBOX")
    now = datetime.now(timezone.utc)
    for days in (10, 2, 0):
        await runtime.store.append(box.id, msg(days), internaldate=now - timedelta(days=days))
    c = await session(runtime)
    assert await c.cmd(b"a1", b"SEARCH YOUNGER 259200") == b"* SEARCH 2 3\r\na1 OK SEARCH completed\r\n"
    assert await c.cmd(b"a2", b"SEARCH OLDER 259200") == b"* SEARCH 1\r\na2 OK SEARCH completed\r\n"
    assert await c.cmd(b"a3", b"SEARCH OLDER 3600 YOUNGER 777600") == \
        b"* SEARCH 2\r\na3 OK SEARCH completed\r\n"
    assert await c.cmd(b"a4", b"SEARCH NOT YOUNGER 100") == b"* SEARCH 1 2\r\na4 OK SEARCH completed\r\n"
    await c.close()


async def test_within_in_an_updating_search(runtime: ServerRuntime,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 5032 §2: a YOUNGER result drifts with the clock; the context is tried on the whole
    mailbox again once `AGE_RECHECK` has passed, and reports who aged out."""
    clock = [time.time()]
    monkeypatch.setattr(search_module, "time", SimpleNamespace(time=lambda: clock[0]))
    monkeypatch.setattr(context, "AGE_RECHECK", 0.0)
    user = await runtime.accounts.get_user("alice@example.com")
    box = await runtime.store.get_mailbox(user.id, "INBOX")
    now = datetime.fromtimestamp(clock[0], timezone.utc)
    for age in (1000, 100, 10):
        await runtime.store.append(box.id, msg(age), internaldate=now - timedelta(seconds=age))
    await runtime.store.claim_recent_range(box.id)
    c = await session(runtime)
    assert await c.cmd(b"U", b"SEARCH RETURN (UPDATE ALL) YOUNGER 500") == \
        b'* ESEARCH (TAG "U") ALL 2:3\r\nU OK SEARCH completed\r\n'
    assert await c.cmd(b"n1", b"NOOP") == b"n1 OK NOOP completed\r\n"
    clock[0] += 450
    assert await c.cmd(b"n2", b"NOOP") == \
        b'* ESEARCH (TAG "U") REMOVEFROM (0 2)\r\nn2 OK NOOP completed\r\n'
    await c.close()


class _Out:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass


async def direct_session(runtime: ServerRuntime) -> tuple[Session, _Out]:
    """A session driven by calls rather than a socket, INBOX selected: for what no command
    reaches yet (an extended SORT's result, CONDSTORE's MODSEQ)."""
    services = Services(store=runtime.store, accounts=runtime.accounts, throttle=runtime.throttle,
                        bus=runtime.bus, connections=runtime.connections, tls_configured=False,
                        max_per_user=10)
    out = _Out()
    s = Session(services, out, peer="test", tls_active=False)
    s.user = await runtime.accounts.get_user("alice@example.com")
    await select(s, c.Select("t0", "INBOX"))
    return s, out


async def test_a_sorted_context_reports_positions(runtime: ServerRuntime) -> None:
    """The path an extended SORT takes (CONTEXT=SORT, RFC 5267 §4.3.3–4.3.4): a result in its
    own order — here largest message first, standing in for a sort program — answered by
    `handlers.esearch.answer` and kept by `context` with real positions, in message numbers."""
    await fill(runtime, 0)
    user = await runtime.accounts.get_user("alice@example.com")
    box = await runtime.store.get_mailbox(user.id, "INBOX")
    for size in (30, 10, 20):
        await runtime.store.append(box.id, b"Subject: s\r\n\r\n" + b"x" * size + b"\r\n")
    s, out = await direct_session(runtime)
    view = s.selected
    assert view is not None

    def by_size(i: int) -> tuple[int]:
        return (-view.sizes[i],)

    async def order(uids: list[int]) -> dict[int, object]:
        return {u: by_size(view.seq_of(u) - 1) for u in uids}

    key = c.SearchFlag("\\Seen", False)
    hits = sorted(range(view.exists), key=by_size)        # messages 1, 3, 2
    out.data = b""
    answer(s, "S1", False, key, c.SearchReturn(update=True, all=True, min=True), hits,
           order=order, keys=[by_size(i) for i in hits])
    assert out.data == b'* ESEARCH (TAG "S1") MIN 1 ALL 1,3,2\r\n'
    out.data = b""
    await s.execute(c.Store("t1", c.SeqSet(((3, 3),)), c.StoreMode.ADD, True, ("\\Seen",)))
    assert out.data == b'* ESEARCH (TAG "S1") REMOVEFROM (2 3)\r\nt1 OK STORE completed\r\n'
    for size in (25, 5):
        await runtime.store.append(box.id, b"Subject: s\r\n\r\n" + b"x" * size + b"\r\n")
    out.data = b""
    await flush(s, allow_expunge=True)
    # Now 1 (30), 4 (25), 2 (10), 5 (5): 4 goes in at position 2, 5 at the end (4).
    assert out.data == (b"* 5 EXISTS\r\n* 5 RECENT\r\n"
                        b'* ESEARCH (TAG "S1") ADDTO (2 4 4 5)\r\n')
    out.data = b""
    await s.execute(c.Store("t2", c.SeqSet(((1, 1), (4, 4))), c.StoreMode.ADD, True, ("\\Deleted",)))
    await s.execute(c.Expunge("t3"))
    assert out.data == (b"t2 OK STORE completed\r\n"
                        b'* ESEARCH (TAG "S1") REMOVEFROM (1 1,4)\r\n'
                        b"* 4 EXPUNGE\r\n* 1 EXPUNGE\r\nt3 OK EXPUNGE completed\r\n")
    s.close()


async def test_the_condstore_hook_adds_modseq(runtime: ServerRuntime) -> None:
    """RFC 4731 §3.2 through `handlers.esearch.answer`: given each message's MODSEQ (CONDSTORE
    passes it when the key has a MODSEQ criterion), MIN alone reports that message's, MIN MAX
    alone the higher of the two, anything else the highest of all; none when nothing matched."""
    await fill(runtime, 4)
    s, out = await direct_session(runtime)
    modseqs = {0: 50, 1: 70, 2: 90, 3: 60}
    for returns, hits, line in [
        (c.SearchReturn(min=True), [0, 1, 3], b"MIN 1 MODSEQ 50"),
        (c.SearchReturn(max=True), [0, 1, 3], b"MAX 4 MODSEQ 60"),
        (c.SearchReturn(min=True, max=True), [0, 2, 3], b"MIN 1 MAX 4 MODSEQ 60"),
        (c.SearchReturn(all=True), [0, 1, 3], b"ALL 1:2,4 MODSEQ 70"),
        (c.SearchReturn(min=True, count=True), [0, 2, 3], b"MIN 1 COUNT 3 MODSEQ 90"),
        (c.SearchReturn(all=True), [], b""),
    ]:
        out.data = b""
        answer(s, "m", False, c.SearchAll(), returns, hits, modseq_of=modseqs.__getitem__)
        assert out.data == b'* ESEARCH (TAG "m")' + (b" " + line if line else b"") + b"\r\n"
    s.close()
