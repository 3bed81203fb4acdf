"""ESORT (RFC 5267 §3) and CONTEXT=SORT (RFC 5267 §4) through a real server, byte for byte.

The commands follow RFC 5267's SORT examples (``SORT RETURN (MIN) (DATE) UTF-8 SINCE
1-Feb-1994``, ``UID SORT RETURN (PARTIAL m:n) (REVERSE DATE) ...``, an updating ``UID SORT
RETURN (UPDATE ...) ... UNDELETED UNKEYWORD $Junk``) on mailboxes built so that every answer
can be checked by hand: MIN and MAX are the ends of the sort order, ALL keeps the sort order
and joins only ascending runs, PARTIAL slices the sort order, and ADDTO/REMOVEFROM carry the
positions the messages have in the sorted result. Updates come from another session.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

OLD = datetime(1993, 6, 1, tzinfo=timezone.utc)
NEW = datetime(2000, 3, 6, tzinfo=timezone.utc)
SENT = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _message(subject: str, day: int = 0) -> bytes:
    date = (SENT + timedelta(days=day)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return f"From: a@example.com\r\nSubject: {subject}\r\nDate: {date}\r\n\r\nbody\r\n".encode()


async def _mailbox(runtime: ServerRuntime, name: str) -> int:
    user = await runtime.accounts.get_user("alice@example.com")
    if name != "INBOX":
        await runtime.store.create_mailbox(user.id, name)
    return (await runtime.store.get_mailbox(user.id, name)).id


async def _session(runtime: ServerRuntime, mailbox: bytes = b"INBOX") -> RawClient:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    reply = await c.cmd(b"s", b"SELECT " + mailbox)
    assert reply.endswith(b"s OK [READ-WRITE] SELECT completed\r\n"), reply
    return c


async def _dated_inbox(runtime: ServerRuntime) -> RawClient:
    """Six messages after an expunged first one, so message n has UID n + 1. Messages 1-5
    arrived after 1-Feb-1994 and were sent on days 3, 4, 1, 2, 5: by DATE they go 3 4 1 2 5,
    by REVERSE DATE 5 2 1 4 3. Message 6 arrived in 1993 (sent on day 6)."""
    inbox = await _mailbox(runtime, "INBOX")
    await runtime.store.append(inbox, _message("gone"), internaldate=NEW)
    for n, day in enumerate([3, 4, 1, 2, 5], 1):
        await runtime.store.append(inbox, _message(f"m{n}", day), internaldate=NEW)
    await runtime.store.append(inbox, _message("m6", 6), internaldate=OLD)
    await runtime.store.claim_recent_range(inbox)  # keep \Recent out of the transcripts
    c = await _session(runtime)
    assert await c.cmd(b"x1", b"STORE 1 +FLAGS.SILENT (\\Deleted)") == b"x1 OK STORE completed\r\n"
    assert await c.cmd(b"x2", b"EXPUNGE") == b"* 1 EXPUNGE\r\nx2 OK EXPUNGE completed\r\n"
    return c


async def test_esort_return_items(runtime: ServerRuntime) -> None:
    """RFC 5267 §3.1-3.2: one ESEARCH per SORT RETURN, its items read in sort order."""
    c = await _dated_inbox(runtime)
    steps = [
        (b"A282 SORT RETURN (MIN) (DATE) UTF-8 SINCE 1-Feb-1994",
         b'* ESEARCH (TAG "A282") MIN 3\r\nA282 OK SORT completed\r\n'),
        (b"A283 SORT RETURN (MAX) (DATE) UTF-8 SINCE 1-Feb-1994",
         b'* ESEARCH (TAG "A283") MAX 5\r\nA283 OK SORT completed\r\n'),
        # §3.2: ranges only for runs that ascend in the sort order.
        (b"A284 SORT RETURN (ALL) (DATE) UTF-8 SINCE 1-Feb-1994",
         b'* ESEARCH (TAG "A284") ALL 3:4,1:2,5\r\nA284 OK SORT completed\r\n'),
        (b"A285 SORT RETURN (MIN MAX ALL COUNT) (REVERSE DATE) UTF-8 SINCE 1-Feb-1994",
         b'* ESEARCH (TAG "A285") MIN 5 MAX 3 ALL 5,2,1,4,3 COUNT 5\r\nA285 OK SORT completed\r\n'),
        # RETURN () is ALL (RFC 4731 §3.1); UID SORT answers UIDs with the UID marker.
        (b"A286 UID SORT RETURN () (REVERSE DATE) UTF-8 SINCE 1-Feb-1994",
         b'* ESEARCH (TAG "A286") UID ALL 6,3,2,5,4\r\nA286 OK SORT completed\r\n'),
        (b'A287 SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT "no such subject"',
         b'* ESEARCH (TAG "A287") COUNT 0\r\nA287 OK SORT completed\r\n'),
        # Nothing matched and no COUNT: the ESEARCH response still comes, empty.
        (b'A288 SORT RETURN (MIN MAX ALL) (DATE) UTF-8 SUBJECT "no such subject"',
         b'* ESEARCH (TAG "A288")\r\nA288 OK SORT completed\r\n'),
        # Without RETURN, SORT is answered as before.
        (b"A289 SORT (DATE) UTF-8 SINCE 1-Feb-1994",
         b"* SORT 3 4 1 2 5\r\nA289 OK SORT completed\r\n"),
        (b"A290 SORT RETURN (ALL) (DATE) UTF-8 ALL",
         b'* ESEARCH (TAG "A290") ALL 3:4,1:2,5:6\r\nA290 OK SORT completed\r\n'),
    ]
    for command, expected in steps:
        assert await c.cmd(command.split()[0], command.split(b" ", 1)[1]) == expected, command
    await c.close()


async def test_esort_partial(runtime: ServerRuntime) -> None:
    """RFC 5267 §4.4 on a SORT: PARTIAL m:n is the m-th to n-th message of the sort order."""
    c = await _dated_inbox(runtime)
    await c.send(b"E01 SORT RETURN (PARTIAL 2:4) (REVERSE DATE) UTF-8 SINCE 1-Feb-1994\r\n"
                 b"E02 UID SORT RETURN (PARTIAL 4:9) (DATE) UTF-8 SINCE 1-Feb-1994\r\n"
                 b"E03 UID SORT RETURN (PARTIAL 6:9) (DATE) UTF-8 SINCE 1-Feb-1994\r\n"
                 b"E04 SORT RETURN (PARTIAL 3:1 COUNT) (DATE) UTF-8 SINCE 1-Feb-1994\r\n")
    assert await c.until_tagged(b"E04") == (
        b'* ESEARCH (TAG "E01") PARTIAL (2:4 2,1,4)\r\nE01 OK SORT completed\r\n'
        b'* ESEARCH (TAG "E02") UID PARTIAL (4:9 3,6)\r\nE02 OK SORT completed\r\n'
        b'* ESEARCH (TAG "E03") UID PARTIAL (6:9 NIL)\r\nE03 OK SORT completed\r\n'
        b'* ESEARCH (TAG "E04") COUNT 5 PARTIAL (1:3 3:4,1)\r\nE04 OK SORT completed\r\n')
    # RFC 5267 §4.4 grammar: a range of two positive numbers, never with ALL.
    assert await c.cmd(b"E05", b"SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL") == \
        b"E05 BAD expected number\r\n"
    assert await c.cmd(b"E06", b"SORT RETURN (ALL PARTIAL 1:2) (DATE) UTF-8 ALL") == \
        b"E06 BAD RETURN takes ALL or PARTIAL, not both\r\n"
    assert await c.cmd(b"E07", b"SORT RETURN (FIRST) (DATE) UTF-8 ALL") == \
        b"E07 BAD unknown SEARCH return option FIRST\r\n"
    await c.close()


async def test_esort_save(runtime: ServerRuntime) -> None:
    """SEARCHRES (RFC 5182) with SORT: SAVE with MIN keeps the first in sort order; SAVE
    alone answers nothing but OK; "$" works in a SORT key; a NO to a SAVE empties "$"."""
    c = await _dated_inbox(runtime)
    assert await c.cmd(b"S1", b"SORT RETURN (SAVE MIN) (REVERSE DATE) UTF-8 SINCE 1-Feb-1994") == \
        b'* ESEARCH (TAG "S1") MIN 5\r\nS1 OK SORT completed\r\n'
    assert await c.cmd(b"S2", b"FETCH $ (UID)") == b"* 5 FETCH (UID 6)\r\nS2 OK FETCH completed\r\n"
    assert await c.cmd(b"S3", b"SORT RETURN (SAVE) (DATE) UTF-8 OR 1 2") == b"S3 OK SORT completed\r\n"
    assert await c.cmd(b"S4", b"SORT RETURN (ALL) (REVERSE DATE) UTF-8 OR $ 6") == \
        b'* ESEARCH (TAG "S4") ALL 6,2,1\r\nS4 OK SORT completed\r\n'
    assert await c.cmd(b"S5", b"UID SORT (REVERSE DATE) UTF-8 $") == \
        b"* SORT 3 2\r\nS5 OK SORT completed\r\n"
    assert await c.cmd(b"S6", b"SORT RETURN (SAVE) (DATE) KOI8-R ALL") == \
        b"S6 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n"
    assert await c.cmd(b"S7", b"FETCH $ (UID)") == b"S7 OK FETCH completed\r\n"
    await c.close()


async def test_updating_sort_fed_by_another_session(runtime: ServerRuntime) -> None:
    """CONTEXT=SORT (RFC 5267 §4.3): new mail, flag changes and expunges from another session
    reach an updating SORT as ADDTO/REMOVEFROM with the positions in the sorted result;
    a flag change that leaves the match alone sends nothing, and equal keys go by UID."""
    box = await _mailbox(runtime, "Ctx")
    for subject in ("delta", "alpha", "charlie"):   # UIDs 1, 2, 3
        await runtime.store.append(box, _message(subject))
    await runtime.store.claim_recent_range(box)
    c = await _session(runtime, b"Ctx")
    other = await _session(runtime, b"Ctx")
    assert await c.cmd(b"C01", b"UID SORT RETURN (UPDATE MIN) (SUBJECT) UTF-8 "
                               b"UNDELETED UNKEYWORD $Junk") == \
        b'* ESEARCH (TAG "C01") UID MIN 2\r\nC01 OK SORT completed\r\n'
    assert await c.cmd(b"C02", b"SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 UNDELETED") == \
        b'* ESEARCH (TAG "C02") ALL 1,3,2\r\nC02 OK SORT completed\r\n'
    # A tag that names an updating SORT is BAD again (§4.3).
    assert await c.cmd(b"C01", b"SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL") == \
        b"C01 BAD this tag names an updating search already; use a new tag (RFC 5267 4.3)\r\n"

    async def append(tag: bytes, subject: str) -> None:
        raw = _message(subject)
        await other.send(b"%b APPEND Ctx {%d+}\r\n%b\r\n" % (tag, len(raw), raw))
        assert b"\r\n" + tag + b" OK [APPENDUID " in b"\r\n" + await other.until_tagged(tag)

    # New mail: "bravo" (UID 4) sorts second by SUBJECT, third by REVERSE SUBJECT.
    await append(b"o1", "bravo")
    assert await c.cmd(b"n1", b"NOOP") == (
        b"* 4 EXISTS\r\n* 0 RECENT\r\n"
        b'* ESEARCH (TAG "C01") UID ADDTO (2 4)\r\n'
        b'* ESEARCH (TAG "C02") ADDTO (3 4)\r\n'
        b"n1 OK NOOP completed\r\n")
    # $Junk on "charlie" (3rd by SUBJECT): out of C01 at its position; C02 does not look at it.
    assert (await other.cmd(b"o2", b"STORE 3 +FLAGS.SILENT ($Junk)")).endswith(
        b"o2 OK STORE completed\r\n")  # after its own FLAGS news of the new keyword
    assert await c.cmd(b"n2", b"NOOP") == (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk \\*)] "
        b"flags permitted\r\n"
        b"* 3 FETCH (UID 3 FLAGS ($Junk))\r\n"
        b'* ESEARCH (TAG "C01") UID REMOVEFROM (3 3)\r\n'
        b"n2 OK NOOP completed\r\n")
    # Back without $Junk: the same place again.
    assert await other.cmd(b"o3", b"STORE 3 -FLAGS.SILENT ($Junk)") == b"o3 OK STORE completed\r\n"
    assert await c.cmd(b"n3", b"NOOP") == (
        b"* 3 FETCH (UID 3 FLAGS ())\r\n"
        b'* ESEARCH (TAG "C01") UID ADDTO (3 3)\r\n'
        b"n3 OK NOOP completed\r\n")
    # Flags that change no match move nothing.
    assert await other.cmd(b"o4", b"STORE 1:4 +FLAGS.SILENT (\\Seen \\Flagged)") == \
        b"o4 OK STORE completed\r\n"
    assert await c.cmd(b"n4", b"NOOP") == (
        b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Flagged))\r\n* 2 FETCH (UID 2 FLAGS (\\Seen \\Flagged))\r\n"
        b"* 3 FETCH (UID 3 FLAGS (\\Seen \\Flagged))\r\n* 4 FETCH (UID 4 FLAGS (\\Seen \\Flagged))\r\n"
        b"n4 OK NOOP completed\r\n")
    # \Deleted on "alpha" (1st by SUBJECT, last by REVERSE SUBJECT), then its expunge.
    assert await other.cmd(b"o5", b"STORE 2 +FLAGS.SILENT (\\Deleted)") == b"o5 OK STORE completed\r\n"
    assert (await other.cmd(b"o6", b"EXPUNGE")).endswith(b"* 2 EXPUNGE\r\no6 OK EXPUNGE completed\r\n")
    assert await c.cmd(b"n5", b"NOOP") == (
        b'* ESEARCH (TAG "C01") UID REMOVEFROM (1 2)\r\n'
        b'* ESEARCH (TAG "C02") REMOVEFROM (4 2)\r\n'
        b"* 2 EXPUNGE\r\n"
        b"n5 OK NOOP completed\r\n")
    # Now by SUBJECT: bravo 4, charlie 3, delta 1. A second "bravo" (UID 5) ties with UID 4
    # and goes after it; "echo" (UID 6) goes last, "apple" (UID 7) first. Positions count
    # the pairs before them as applied (§4.3.3).
    for tag, subject in ((b"o7", "bravo"), (b"o8", "echo"), (b"o9", "apple")):
        await append(tag, subject)
    assert await c.cmd(b"n6", b"NOOP") == (
        b"* 6 EXISTS\r\n* 0 RECENT\r\n"
        b'* ESEARCH (TAG "C01") UID ADDTO (1 7 3 5 6 6)\r\n'
        b'* ESEARCH (TAG "C02") ADDTO (1 5 5 4,6)\r\n'
        b"n6 OK NOOP completed\r\n")
    assert await c.cmd(b"C03", b"SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 UNDELETED") == \
        b'* ESEARCH (TAG "C03") ALL 5,1:4,6\r\nC03 OK SORT completed\r\n'
    assert await c.cmd(b"C04", b'CANCELUPDATE "C01" "C02"') == \
        b"C04 OK CANCELUPDATE completed, no further updates\r\n"
    await c.close()
    await other.close()
