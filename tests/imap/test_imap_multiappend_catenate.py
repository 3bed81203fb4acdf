"""MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) over a real socket: the RFCs' examples
byte-exact, all-or-nothing, BADURL/TRYCREATE/TOOBIG, and the bounds."""

from __future__ import annotations

from pathlib import Path

from rmail.server.imap.parser import MAX_APPEND_PIECES
from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.server import make_config

from .conftest import RawClient
from .test_imap_transcripts import expect

# The two messages of RFC 3502 §6.3.11's example (RFC 3501 §6.3.11's, and its reply).
FRED = (b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
        b"From: Fred Foobar <foobar@Blurdybloop.example.COM>\r\n"
        b"Subject: afternoon meeting\r\n"
        b"To: mooch@owatagu.example.net\r\n"
        b"Message-Id: <B27397-0100000@Blurdybloop.example.COM>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
        b"\r\n"
        b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
JOE = (b"Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\r\n"
       b"From: Joe Mooch <mooch@OWaTaGu.example.net>\r\n"
       b"Subject: Re: afternoon meeting\r\n"
       b"To: foobar@blurdybloop.example.com\r\n"
       b"Message-Id: <a0434793874930@OWaTaGu.example.net>\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
       b"\r\n"
       b"3:30 is fine with me.\r\n")


async def _uidvalidity(runtime: ServerRuntime, name: str) -> int:
    account = await runtime.accounts.get_user("alice@example.com")
    return (await runtime.store.get_mailbox(account.id, name)).uidvalidity


async def test_rfc3502_example(runtime: ServerRuntime) -> None:
    """RFC 3502 §6.3.11: two messages, each after its own continuation; APPENDUID (RFC 4315)
    gives their UIDs as a set. Then the RFC's A004: a missing mailbox, NO [TRYCREATE]."""
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"c", b"CREATE saved-messages")
    uv = await _uidvalidity(runtime, "saved-messages")
    await c.send(b"A003 APPEND saved-messages (\\Seen) {%d}\r\n" % len(FRED))
    await expect(c, b"+ Ready for literal data\r\n", b"A003")
    await c.send(FRED + b' (\\Seen) " 7-Feb-1994 22:43:04 -0800" {%d}\r\n' % len(JOE))
    await expect(c, b"+ Ready for literal data\r\n", b"A003 second")
    await c.send(JOE + b"\r\n")
    await expect(c, b"A003 OK [APPENDUID %d 1:2] APPEND completed\r\n" % uv, b"A003 end")
    await c.send(b"A004 APPEND bogusname (\\Flagged) {%d+}\r\n%b (\\Flagged) {%d+}\r\n%b\r\n"
                 % (len(FRED), FRED, len(JOE), JOE))
    await expect(c, b"A004 NO [TRYCREATE] no such mailbox\r\n", b"A004")
    await c.send(b"f EXAMINE saved-messages\r\n")
    await c.until_tagged(b"f")
    await c.send(b"g FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE)\r\n")
    got = await c.until_tagged(b"g")
    assert got == (b'* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "%b" RFC822.SIZE %d)\r\n'
                   b'* 2 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "08-Feb-1994 06:43:04 +0000" '
                   b'RFC822.SIZE %d)\r\ng OK FETCH completed\r\n'
                   % (got.split(b'"')[1], len(FRED), len(JOE)))
    await c.close()


async def test_multiappend_is_all_or_nothing(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    one = b"Subject: one\r\n\r\n1\r\n"
    # The third message names a message that does not exist: none is stored.
    reply = await c.cmd(b"a", b"APPEND INBOX {%d+}\r\n%b {%d+}\r\n%b CATENATE (URL \"/INBOX/;UID=9\")"
                        % (len(one), one, len(one), one))
    assert reply == b"a NO [BADURL /INBOX/;UID=9] the URL does not name a message you can read\r\n"
    # A bad flag in the second one: BAD, and nothing stored either.
    reply = await c.cmd(b"b", b"APPEND INBOX {%d+}\r\n%b (\\Bogus) {%d+}\r\n%b" % (len(one), one, len(one), one))
    assert reply == b"b BAD invalid system flag\r\n"
    assert await c.cmd(b"s", b"STATUS INBOX (MESSAGES UIDNEXT)") == \
        b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1)\r\ns OK STATUS completed\r\n'
    # The selected mailbox hears of all of them before the tagged OK.
    await c.cmd(b"t", b"SELECT INBOX")
    uv = await _uidvalidity(runtime, "INBOX")
    reply = await c.cmd(b"c", b"APPEND INBOX {%d+}\r\n%b {%d+}\r\n%b {%d+}\r\n%b"
                        % (len(one), one, len(one), one, len(one), one))
    assert reply == (b"* 3 EXISTS\r\n* 3 RECENT\r\nc OK [APPENDUID %d 1:3] APPEND completed\r\n"
                     % uv)
    await c.close()


# RFC 4469 §5's example: a draft whose header and first part are kept and whose second part
# is replaced by a message of another mailbox (the RFC's UIDs 20 and 30 are 1 and 2 here).
DRAFT = (b"From: Fred <fred@example.com>\r\nSubject: draft\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"------------030308070208000400050907\"\r\n"
         b"\r\n"
         b"--------------030308070208000400050907\r\n"
         b"Content-Type: text/plain\r\n\r\nsee attached\r\n"
         b"--------------030308070208000400050907\r\n"
         b"Content-Type: text/plain\r\n\r\nold attachment\r\n"
         b"--------------030308070208000400050907--\r\n")
ATTACH = b"From: Joe <joe@example.com>\r\nSubject: attached\r\n\r\nthe new one\r\n"


async def test_rfc4469_example(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"c", b"APPEND Drafts {%d+}\r\n%b" % (len(DRAFT), DRAFT))
    await c.cmd(b"c", b"APPEND Drafts {%d+}\r\n%b" % (len(ATTACH), ATTACH))
    uv = await _uidvalidity(runtime, "Drafts")
    sep = b"\r\n--------------030308070208000400050907\r\n"
    await c.send(b'A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL '
                 b'"/Drafts;UIDVALIDITY=%d/;UID=1/;section=HEADER" TEXT {42}\r\n' % uv)
    await expect(c, b"+ Ready for literal data\r\n", b"A003")
    await c.send(sep + b' URL "/Drafts;UIDVALIDITY=%d/;UID=1/;section=1.MIME" URL '
                 b'"/Drafts;UIDVALIDITY=%d/;UID=1/;section=1" TEXT {42}\r\n' % (uv, uv))
    await expect(c, b"+ Ready for literal data\r\n", b"A003 2")
    await c.send(sep + b' TEXT {%d}\r\n' % len(b"Content-Type: message/rfc822\r\n\r\n"))
    await expect(c, b"+ Ready for literal data\r\n", b"A003 3")
    await c.send(b"Content-Type: message/rfc822\r\n\r\n"
                 b' URL "/Drafts;UIDVALIDITY=%d/;UID=2" TEXT {44}\r\n' % uv)
    await expect(c, b"+ Ready for literal data\r\n", b"A003 4")
    await c.send(b"\r\n--------------030308070208000400050907--\r\n)\r\n")
    await expect(c, b"A003 OK [APPENDUID %d 3] APPEND completed\r\n" % uv, b"A003 end")
    await c.cmd(b"s", b"EXAMINE Drafts")
    built = (DRAFT.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + sep
             + b"Content-Type: text/plain\r\n\r\nsee attached" + sep
             + b"Content-Type: message/rfc822\r\n\r\n" + ATTACH
             + b"\r\n--------------030308070208000400050907--\r\n")
    assert await c.cmd(b"f", b"FETCH 3 (FLAGS BODY.PEEK[])") == (
        b"* 3 FETCH (FLAGS (\\Seen \\Draft $MDNSent \\Recent) BODY[] {%d}\r\n%b)\r\nf OK FETCH completed\r\n"
        % (len(built), built))
    await c.close()


async def test_catenate_refusals(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    msg = b"Subject: s\r\n\r\nbody\r\n"
    await c.cmd(b"a", b"APPEND INBOX {%d+}\r\n%b" % (len(msg), msg))
    uv = await _uidvalidity(runtime, "INBOX")
    for url in (b"/INBOX;UIDVALIDITY=%d/;UID=1" % (uv + 1),       # another UIDVALIDITY
                b"/Nope/;UID=1",                                   # no such mailbox
                b"/INBOX/;UID=2",                                  # no such message
                b"/INBOX/;UID=1/;SECTION=3",                       # no such part
                b"imap://alice@example.com/INBOX/;UID=1",          # absolute
                b"/INBOX/;UID=1/;URLAUTH=anonymous:internal:0123"):  # URLAUTH is not served
        assert await c.cmd(b"b", b'APPEND Sent CATENATE (TEXT {3+}\r\nhi\n URL "%b")' % url) == \
            b"b NO [BADURL %b] the URL does not name a message you can read\r\n" % url
    # Another user's mailbox is not there for this user.
    b = await RawClient.connect(runtime.port("imap"))
    await b.login(b"bob@example.com")
    assert (await b.cmd(b"x", b'APPEND INBOX CATENATE (URL "/INBOX/;UID=1")')).startswith(
        b"x NO [BADURL /INBOX/;UID=1] ")
    await b.close()
    # A missing destination is told first (RFC 4469 §5 keeps TRYCREATE), even with a bad URL.
    assert await c.cmd(b"c", b'APPEND Nope CATENATE (URL "/Nope/;UID=1")') == \
        b"c NO [TRYCREATE] no such mailbox\r\n"
    assert await c.cmd(b"d", b"APPEND Sent CATENATE (TEXT)") == b"d BAD expected SP\r\n"
    assert await c.cmd(b"e", b'APPEND Sent CATENATE (BOGUS "x")') == b"e BAD expected TEXT or URL\r\n"
    assert await c.cmd(b"s", b"STATUS Sent (MESSAGES)") == \
        b'* STATUS "Sent" (MESSAGES 0)\r\ns OK STATUS completed\r\n'
    await c.close()


async def test_bounds(tmp_path: Path) -> None:
    """A CATENATE result over the message-size limit is TOOBIG; more messages and parts than
    MAX_APPEND_PIECES are refused with LIMIT, before anything is stored."""
    cfg = make_config(tmp_path / "data", limits={"message_size": 1000})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        c = await RawClient.connect(rt.port("imap"))
        await c.login()
        msg = b"Subject: s\r\n\r\n" + b"x" * 600 + b"\r\n"
        await c.cmd(b"a", b"APPEND INBOX {%d+}\r\n%b" % (len(msg), msg))
        reply = await c.cmd(b"b", b'APPEND INBOX CATENATE (URL "/INBOX/;UID=1" URL "/INBOX/;UID=1")')
        assert reply == b"b NO [TOOBIG] the message would be larger than the server allows\r\n"
        reply = await c.cmd(b"c", b'APPEND INBOX CATENATE (URL "/INBOX/;UID=1" TEXT {500+}\r\n%b)'
                            % (b"y" * 500))
        assert reply.startswith(b"c NO [TOOBIG] ")
        # Exactly at the limit is fine.
        reply = await c.cmd(b"d", b'APPEND INBOX CATENATE (URL "/INBOX/;UID=1" TEXT {%d+}\r\n%b)'
                            % (1000 - len(msg), b"z" * (1000 - len(msg))))
        assert reply.startswith(b"d OK [APPENDUID "), reply
        many = b" ".join(b"{1+}\r\nx" for _ in range(MAX_APPEND_PIECES + 1))
        assert await c.cmd(b"e", b"APPEND INBOX " + many) == \
            b"e NO [LIMIT] too many messages or parts (at most %d)\r\n" % MAX_APPEND_PIECES
        parts = b" ".join(b'URL "/INBOX/;UID=1/;PARTIAL=0.1"' for _ in range(MAX_APPEND_PIECES + 1))
        assert (await c.cmd(b"f", b"APPEND INBOX CATENATE (" + parts + b")")).startswith(b"f NO [LIMIT] ")
        ok = b" ".join(b"{1+}\r\nx" for _ in range(MAX_APPEND_PIECES))
        assert (await c.cmd(b"g", b"APPEND INBOX " + ok)).startswith(
            b"g OK [APPENDUID %d 3:%d] " % (await _uidvalidity(rt, "INBOX"), MAX_APPEND_PIECES + 2))
        await c.close()
