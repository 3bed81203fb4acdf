"""IMAP4rev2 (RFC 9051) beside IMAP4rev1: advertised right after IMAP4rev1 only beside BINARY
(`protocol.REV2_REQUIRES`), and ``ENABLE IMAP4rev2`` switches one session's behaviour
(docs/IMAP.md "IMAP4rev2"), byte for byte next to the same steps in an IMAP4rev1 session.

The `rev2` fixture lifts that requirement; with BINARY listed (as now) it changes nothing, and
it keeps these tests meaningful should BINARY ever be switched off.
"""

from __future__ import annotations

import re

import pytest

from rmail.server.imap import protocol
from rmail.server.runtime import ServerRuntime

from . import caps
from .conftest import RawClient

AFTER_LOGIN_REV2 = caps.AFTER_LOGIN


def msg(n: int, sender: bytes = b"Bob <bob@example.com>") -> bytes:
    return b"From: %b\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (sender, n, n)


async def append(c: RawClient, n: int, sender: bytes = b"Bob <bob@example.com>") -> None:
    m = msg(n, sender)
    reply = await c.cmd(b"ap%d" % n, b"APPEND INBOX {%d+}\r\n%b" % (len(m), m))
    assert b"OK [APPENDUID" in reply, reply


@pytest.fixture
def rev2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "REV2_REQUIRES", ())


async def session(runtime: ServerRuntime, *, rev2: bool) -> RawClient:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    if rev2:
        assert await c.cmd(b"en", b"ENABLE IMAP4rev2") == (
            b"* ENABLED IMAP4REV2\r\nen OK ENABLE completed\r\n")
    return c


# -- the capability rule ----------------------------------------------------------------------

@pytest.mark.parametrize("configured, active, authenticated",
                         [(False, False, False), (True, False, False), (True, True, False),
                          (False, False, True)])
def test_rev2_is_listed_exactly_beside_binary(configured: bool, active: bool,
                                              authenticated: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    listed = protocol.capabilities(tls_configured=configured, tls_active=active,
                                   authenticated=authenticated)
    assert ("IMAP4rev2" in listed) == ("BINARY" in listed)
    monkeypatch.setattr(protocol, "STATUS_CAPABILITIES",
                        protocol.STATUS_CAPABILITIES + ("BINARY",))
    listed = protocol.capabilities(tls_configured=configured, tls_active=active,
                                   authenticated=authenticated)
    assert listed[:2] == ("IMAP4rev1", "IMAP4rev2") and listed.count("IMAP4rev2") == 1


async def test_enable_rev2_only_when_advertised(runtime: ServerRuntime) -> None:
    c = await session(runtime, rev2=False)
    listed = b"IMAP4rev2" in await c.cmd(b"c", b"CAPABILITY")
    reply = await c.cmd(b"e", b"ENABLE IMAP4rev2")
    assert reply == (b"* ENABLED IMAP4REV2\r\n" if listed else b"* ENABLED\r\n") + \
        b"e OK ENABLE completed\r\n"
    await c.close()


async def test_capability_lines_with_rev2(runtime: ServerRuntime, rev2: None) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    greeting = await c.line()
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    reply = await c.cmd(b"L", b"LOGIN alice@example.com secret-password")
    assert reply == b"L OK [CAPABILITY " + AFTER_LOGIN_REV2 + b"] logged in\r\n"
    await c.close()


# -- one session each way ---------------------------------------------------------------------

async def test_rev2_session_next_to_rev1(runtime: ServerRuntime, rev2: None) -> None:
    """ENABLE, SELECT, SEARCH, FETCH, news, LIST, STATUS: the same steps in both versions."""
    one, two = await session(runtime, rev2=False), await session(runtime, rev2=True)
    await append(one, 1)
    await append(one, 2)
    status = await one.cmd(b"x", b"STATUS INBOX (UIDVALIDITY MAILBOXID)")
    uv = re.search(rb"UIDVALIDITY (\d+)", status).group(1)
    mid = re.search(rb"MAILBOXID \(([^)]+)\)", status).group(1)

    # SELECT: rev2 claims no \Recent (rev1's SELECT after it still gets both), sends no
    # RECENT and no UNSEEN, and a LIST response.
    assert await two.cmd(b"s", b"SELECT INBOX") == (
        b"* 2 EXISTS\r\n"
        b"* OK [UIDVALIDITY %b] UIDs valid\r\n"
        b"* OK [UIDNEXT 3] predicted next UID\r\n"
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted\r\n"
        b"* LIST () \"/\" \"INBOX\"\r\n"
        b"* OK [MAILBOXID (%b)] mailbox id\r\n"
        b"s OK [READ-WRITE] SELECT completed\r\n" % (uv, mid))
    assert await one.cmd(b"s", b"SELECT INBOX") == (
        b"* 2 EXISTS\r\n* 2 RECENT\r\n"
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted\r\n"
        b"* OK [UNSEEN 1] first unseen\r\n"
        b"* OK [UIDVALIDITY %b] UIDs valid\r\n"
        b"* OK [UIDNEXT 3] predicted next UID\r\n"
        b"* OK [MAILBOXID (%b)] mailbox id\r\n"
        b"s OK [READ-WRITE] SELECT completed\r\n" % (uv, mid))

    # FETCH FLAGS: \Recent only in rev1.
    assert await one.cmd(b"f", b"FETCH 1:2 (FLAGS)") == (
        b"* 1 FETCH (FLAGS (\\Recent))\r\n* 2 FETCH (FLAGS (\\Recent))\r\nf OK FETCH completed\r\n")
    assert await two.cmd(b"f", b"FETCH 1:2 (FLAGS)") == (
        b"* 1 FETCH (FLAGS ())\r\n* 2 FETCH (FLAGS ())\r\nf OK FETCH completed\r\n")

    # SEARCH: * SEARCH in rev1, ESEARCH (ALL) in rev2; empty results; UID.
    assert await one.cmd(b"q1", b"SEARCH ALL") == b"* SEARCH 1 2\r\nq1 OK SEARCH completed\r\n"
    assert await two.cmd(b"q1", b"SEARCH ALL") == (
        b'* ESEARCH (TAG "q1") ALL 1:2\r\nq1 OK SEARCH completed\r\n')
    assert await one.cmd(b"q2", b"UID SEARCH SUBJECT nothing") == (
        b"* SEARCH\r\nq2 OK SEARCH completed\r\n")
    assert await two.cmd(b"q2", b"UID SEARCH SUBJECT nothing") == (
        b'* ESEARCH (TAG "q2") UID\r\nq2 OK SEARCH completed\r\n')
    assert await two.cmd(b"q3", b"UID SEARCH SUBJECT m2") == (
        b'* ESEARCH (TAG "q3") UID ALL 2\r\nq3 OK SEARCH completed\r\n')
    # RECENT, NEW and OLD: rev1 only.
    assert await one.cmd(b"q4", b"SEARCH NEW") == b"* SEARCH 1 2\r\nq4 OK SEARCH completed\r\n"
    for key in (b"RECENT", b"NEW", b"OLD", b"OR SEEN NOT RECENT"):
        assert await two.cmd(b"q5", b"SEARCH " + key) == (
            b"q5 BAD RECENT, NEW and OLD are not IMAP4rev2 search keys\r\n")

    # News: another session's delivery and flag change. rev1 hears RECENT too; rev2 does not.
    # Unsolicited FETCH carries the UID in both.
    await append(await session(runtime, rev2=False), 3)
    assert await two.cmd(b"n", b"NOOP") == b"* 3 EXISTS\r\nn OK NOOP completed\r\n"
    assert await one.cmd(b"n", b"NOOP") == b"* 3 EXISTS\r\n* 3 RECENT\r\nn OK NOOP completed\r\n"
    assert await one.cmd(b"st", b"STORE 1 +FLAGS.SILENT (\\Seen)") == b"st OK STORE completed\r\n"
    assert await two.cmd(b"n2", b"NOOP") == (
        b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\nn2 OK NOOP completed\r\n")

    # LIST: UTF-8 names in rev2, modified UTF-7 in rev1 (one rule: SessionState.wire_mailbox).
    assert (await two.cmd(b"c", "CREATE \"Caf\u00e9\"".encode())).endswith(b"] CREATE completed\r\n")
    # (8-bit names go as literals, as with UTF8=ACCEPT: core.imapstring's one rule)
    assert await two.cmd(b"l", b'LIST "" "Caf*"') == (
        '* LIST (\\HasNoChildren) "/" {5}\r\nCaf\u00e9\r\nl OK LIST completed\r\n'.encode())
    assert await one.cmd(b"l", b'LIST "" "Caf*"') == (
        b'* LIST (\\HasNoChildren) "/" "Caf&AOk-"\r\nl OK LIST completed\r\n')

    # STATUS: RECENT is rev1's; DELETED and SIZE work in both.
    assert await one.cmd(b"t", b"STATUS INBOX (MESSAGES RECENT)") == (
        b'* STATUS "INBOX" (MESSAGES 3 RECENT 0)\r\nt OK STATUS completed\r\n')
    assert await two.cmd(b"t", b"STATUS INBOX (MESSAGES RECENT)") == (
        b"t BAD RECENT is not an IMAP4rev2 STATUS item\r\n")
    assert await two.cmd(b"t2", b'LIST "" INBOX RETURN (STATUS (RECENT))') == (
        b"t2 BAD RECENT is not an IMAP4rev2 STATUS item\r\n")
    assert await two.cmd(b"t3", "STATUS \"Caf\u00e9\" (MESSAGES DELETED)".encode()) == (
        '* STATUS {5}\r\nCaf\u00e9 (MESSAGES 0 DELETED 0)\r\nt3 OK STATUS completed\r\n'.encode())

    # SELECT over a selected mailbox: [CLOSED] first; EXAMINE of a special-use mailbox
    # lists its attribute.
    reply = await two.cmd(b"e", b"EXAMINE Sent")
    assert reply.startswith(b"* OK [CLOSED] previous mailbox closed\r\n* 0 EXISTS\r\n")
    assert b"* 0 RECENT" not in reply and b"UNSEEN" not in reply
    assert b'* OK [PERMANENTFLAGS ()] flags permitted\r\n* LIST (\\Sent) "/" "Sent"\r\n' in reply
    assert reply.endswith(b"e OK [READ-ONLY] EXAMINE completed\r\n")
    for c in (one, two):
        await c.close()


async def test_enable_rev2_after_select_drops_recent(runtime: ServerRuntime, rev2: None) -> None:
    c = await session(runtime, rev2=False)
    await append(c, 1)
    assert b"* 1 RECENT" in await c.cmd(b"s", b"SELECT INBOX")
    assert await c.cmd(b"en", b"ENABLE IMAP4rev2") == b"* ENABLED IMAP4REV2\r\nen OK ENABLE completed\r\n"
    assert await c.cmd(b"f", b"FETCH 1 (FLAGS)") == b"* 1 FETCH (FLAGS ())\r\nf OK FETCH completed\r\n"
    await append(c, 2)
    assert await c.cmd(b"n", b"NOOP") == b"n OK NOOP completed\r\n"
    assert await c.cmd(b"f", b"FETCH 2 (UID FLAGS)") == (
        b"* 2 FETCH (UID 2 FLAGS ())\r\nf OK FETCH completed\r\n")
    await c.close()


# -- RFC 9051's examples ----------------------------------------------------------------------

async def test_rfc9051_search_examples(runtime: ServerRuntime, rev2: None) -> None:
    """RFC 9051 §6.4.4's examples (A282–A285) over a mailbox where 2, 10 and 11 are flagged,
    none from Smith but 5, byte for byte."""
    c = await session(runtime, rev2=True)
    for n in range(1, 12):
        await append(c, n, b"Smith <smith@example.com>" if n == 5 else b"Bob <bob@example.com>")
    assert (await c.cmd(b"s", b"SELECT INBOX")).endswith(b"s OK [READ-WRITE] SELECT completed\r\n")
    await c.cmd(b"f", b"STORE 2,5,10:11 +FLAGS.SILENT (\\Flagged)")
    assert await c.cmd(b"A282", b'SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') == (
        b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\nA282 OK SEARCH completed\r\n')
    assert await c.cmd(b"A283", b'SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') == (
        b'* ESEARCH (TAG "A283") ALL 2,10:11\r\nA283 OK SEARCH completed\r\n')
    assert await c.cmd(b"A284", b'SEARCH TEXT "string not in mailbox"') == (
        b'* ESEARCH (TAG "A284")\r\nA284 OK SEARCH completed\r\n')
    assert await c.cmd(b"A285", b"SEARCH CHARSET UTF-8 TEXT {3+}\r\nm11") == (
        b'* ESEARCH (TAG "A285") ALL 11\r\nA285 OK SEARCH completed\r\n')
    assert await c.cmd(b"A286", b"SEARCH CHARSET WINDOWS-1252 TEXT x") == (
        b"A286 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n")
    # "$" (SEARCHRES, folded into RFC 9051): a plain SEARCH keeps ESEARCH with SAVE.
    assert await c.cmd(b"A287", b"SEARCH RETURN (SAVE) FLAGGED") == b"A287 OK SEARCH completed\r\n"
    assert await c.cmd(b"A288", b"FETCH $ (UID)") == (
        b"* 2 FETCH (UID 2)\r\n* 5 FETCH (UID 5)\r\n* 10 FETCH (UID 10)\r\n* 11 FETCH (UID 11)\r\n"
        b"A288 OK FETCH completed\r\n")
    await c.close()
