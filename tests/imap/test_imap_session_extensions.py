"""Session-level extensions byte for byte, over real sockets: SASL-IR (RFC 4959), ENABLE
(RFC 5161), UTF8=ACCEPT (RFC 6855) and QUOTA (RFC 9208), plus imaplib where it can speak them.

Each transcript sends bytes and expects exactly the bytes that follow (as
test_imap_transcripts.py): the capability lists, the refusals with their codes, the untagged
responses' syntax.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib

from rmail.server.imap.objectid import mailbox_id
from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD

from . import caps
from .conftest import RawClient
from .test_imap_transcripts import expect

CAPS_BEFORE = caps.BEFORE_LOGIN
CAPS_AFTER = caps.AFTER_LOGIN
PLAIN = base64.b64encode(b"\0alice@example.com\0" + PASSWORD.encode())
MSG = b"From: bob@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


async def run(port: int, steps: list[tuple[bytes, bytes]]) -> RawClient:
    c = await RawClient.connect(port)
    for send, wanted in steps:
        if send:
            await c.send(send)
        await expect(c, wanted, send)
    return c


# -- SASL-IR (RFC 4959) ------------------------------------------------------------------------

async def test_sasl_ir_transcript(runtime: ServerRuntime) -> None:
    """The initial response goes in the command line; "=" is an empty one (§3), which PLAIN
    cannot use; malformed or oversized base64 is BAD; the login's OK lists the capabilities
    after login (no SASL-IR, no AUTH=)."""
    c = await run(runtime.port("imap"), [
        (b"", b"* OK [CAPABILITY " + CAPS_BEFORE + b"] rmail IMAP4rev1 ready\r\n"),
        (b"a1 CAPABILITY\r\n", b"* CAPABILITY " + CAPS_BEFORE + b"\r\na1 OK CAPABILITY completed\r\n"),
        (b"a2 AUTHENTICATE PLAIN =\r\n", b"a2 BAD malformed PLAIN response\r\n"),
        (b"a3 AUTHENTICATE PLAIN AGFsaWNl*\r\n", b"a3 BAD invalid base64 initial response\r\n"),
        (b"a4 AUTHENTICATE PLAIN AGFsaWNl=\r\n", b"a4 BAD invalid base64 initial response\r\n"),
        (b"a5 AUTHENTICATE PLAIN " + b"QUFB" * 600 + b"\r\n", b"a5 BAD SASL response too long\r\n"),
        (b"a6 AUTHENTICATE PLAIN " + base64.b64encode(b"\0alice@example.com\0wrong") + b"\r\n",
         b"a6 NO [AUTHENTICATIONFAILED] invalid credentials\r\n"),
        (b"a7 AUTHENTICATE PLAIN\r\n", b"+ \r\n"),
        (b"=\r\n", b"a7 BAD invalid base64\r\n"),
        (b"a8 AUTHENTICATE PLAIN " + PLAIN + b"\r\n",
         b"a8 OK [CAPABILITY " + CAPS_AFTER + b"] logged in\r\n"),
        (b"a9 CAPABILITY\r\n", b"* CAPABILITY " + CAPS_AFTER + b"\r\na9 OK CAPABILITY completed\r\n"),
    ])
    await c.close()


async def test_sasl_ir_with_imaplib(runtime: ServerRuntime) -> None:
    """imaplib has no SASL-IR of its own: the command goes through its generic sender,
    which reads the reply like any other."""
    port = runtime.port("imap")

    def client() -> None:
        imap = imaplib.IMAP4("127.0.0.1", port)
        assert "SASL-IR" in imap.capabilities
        typ, data = imap._simple_command("AUTHENTICATE", "PLAIN", PLAIN.decode())
        assert typ == "OK", data
        imap.state = "AUTH"
        typ, data = imap.select("INBOX")
        assert typ == "OK"
        imap.logout()
    await asyncio.to_thread(client)


async def test_sasl_ir_refused_without_tls(tls_runtime: ServerRuntime) -> None:
    """Where AUTH= is not advertised (cleartext with TLS configured) neither is SASL-IR, and
    an initial response is refused like any login."""
    c = await run(tls_runtime.port("imap"), [
        (b"", b"* OK [CAPABILITY " + caps.BEFORE_STARTTLS + b"] rmail IMAP4rev1 ready\r\n"),
        (b"b1 AUTHENTICATE PLAIN " + PLAIN + b"\r\n",
         b"b1 NO [PRIVACYREQUIRED] use STARTTLS before logging in\r\n"),
    ])
    await c.close()


# -- ENABLE (RFC 5161) and UTF8=ACCEPT (RFC 6855) --------------------------------------------

def literal(text: str) -> bytes:
    data = text.encode()
    return b"{%d}\r\n%s" % (len(data), data)


async def test_enable_lists_what_it_enabled(runtime: ServerRuntime) -> None:
    c = await run(runtime.port("imap"), [(b"", b"")])
    await c.login()
    for send, wanted in [
        (b"e1 ENABLE X-UNKNOWN CONDSTORE-NOT\r\n", b"* ENABLED\r\ne1 OK ENABLE completed\r\n"),
        (b"e2 ENABLE utf8=accept UTF8=ACCEPT\r\n", b"* ENABLED UTF8=ACCEPT\r\ne2 OK ENABLE completed\r\n"),
        (b"e3 ENABLE UTF8=ACCEPT\r\n", b"* ENABLED\r\ne3 OK ENABLE completed\r\n"),
        (b"e4 ENABLE\r\n", b"e4 BAD ENABLE needs at least one capability\r\n"),
    ]:
        await c.send(send)
        await expect(c, wanted, send)
    await c.close()


async def test_utf8_accept_transcript(runtime: ServerRuntime) -> None:
    """Before ENABLE: a raw UTF-8 name is not created (NO [CANNOT]) and APPEND UTF8 is BAD;
    after: UTF-8 names in quoted strings and literals, LIST/STATUS/GETQUOTAROOT send them
    as UTF-8 (a literal: rmail's one string rule quotes only 7-bit text), modified UTF-7 is
    no longer decoded ("&" is itself), and APPEND UTF8 (~{n}...) stores the message."""
    account = await runtime.accounts.get_user("alice@example.com")
    c = await run(runtime.port("imap"), [(b"", b"")])
    await c.login()
    steps = [
        (b'u1 CREATE "\xc3\x84rger"\r\n', b"u1 NO [CANNOT] mailbox names must be modified UTF-7 (RFC 3501 5.1.3)\r\n"),
        (b"u2 CREATE p&AOQA5A-\r\n", b"u2 OK [MAILBOXID ({ID p\xc3\xa4\xc3\xa4})] CREATE completed\r\n"),
        (b"u3 APPEND INBOX UTF8 (~{%d+}\r\n" % len(MSG) + MSG + b")\r\n", b"u3 BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT first (RFC 6855 4)\r\n"),
        (b"u4 ENABLE UTF8=ACCEPT\r\n", b"* ENABLED UTF8=ACCEPT\r\nu4 OK ENABLE completed\r\n"),
        (b'u5 CREATE "\xc3\x84rger/\xc3\x9cnter"\r\n', b"u5 OK [MAILBOXID ({ID \xc3\x84rger/\xc3\x9cnter})] CREATE completed\r\n"),
        (b"u6 CREATE a&b\r\n", b"u6 OK [MAILBOXID ({ID a&b})] CREATE completed\r\n"),
        (b'u7 CREATE "bad\xe2\x80\xa8name"\r\n', b"u7 NO [CANNOT] mailbox names must be modified UTF-7 (RFC 3501 5.1.3)\r\n"),
        (b'u8 LIST "" "*\xc3\xa4*"\r\n',
         b'* LIST (\\HasNoChildren) "/" ' + literal("pää") + b"\r\nu8 OK LIST completed\r\n"),
        (b'u9 LIST "" "\xc3\x84rger*"\r\n',
         b'* LIST (\\HasChildren) "/" ' + literal("Ärger") + b"\r\n"
         b'* LIST (\\HasNoChildren) "/" ' + literal("Ärger/Ünter") + b"\r\nu9 OK LIST completed\r\n"),
        (b'v1 LIST "" a*\r\n', b'* LIST (\\HasNoChildren) "/" "a&b"\r\nv1 OK LIST completed\r\n'),
        (b'v2 STATUS {6}\r\n', b"+ Ready for literal data\r\n"),
        (b"\xc3\x84rger (MESSAGES)\r\n", b"* STATUS " + literal("Ärger") + b" (MESSAGES 0)\r\nv2 OK STATUS completed\r\n"),
        (b"v3 SELECT p&AOQA5A-\r\n", b"v3 NO [NONEXISTENT] no mailbox named p&AOQA5A-\r\n"),
        (b'v4 APPEND "\xc3\x84rger" UTF8 (~{%d+}\r\n' % len(MSG) + MSG + b")\r\n",
         b"v4 OK [APPENDUID {UV} 1] APPEND completed\r\n"),
        (b'v5 APPEND "\xc3\x84rger" UTF8 ({3+}\r\nabc)\r\n', b"v5 BAD expected (~{n} literal8\r\n"),
        (b"v6 GETQUOTAROOT \"\xc3\x84rger\"\r\n",
         b"* QUOTAROOT " + literal("Ärger") + b"\r\nv6 OK GETQUOTAROOT completed\r\n"),
    ]
    for send, wanted in steps:
        if b"{UV}" in wanted:
            box = await runtime.store.get_mailbox(account.id, "Ärger")
            wanted = wanted.replace(b"{UV}", b"%d" % box.uidvalidity)
        await c.send(send)
        if b"{ID " in wanted:  # CREATE's MAILBOXID (RFC 8474 §4.1), known once it is created
            got = await asyncio.wait_for(c.reader.readline(), 5)
            start = wanted.index(b"{ID ") + 4
            name = wanted[start:wanted.index(b"}", start)]
            box = await runtime.store.get_mailbox(account.id, name.decode())
            wanted = wanted.replace(b"{ID " + name + b"}", mailbox_id(box.id, box.uidvalidity).encode())
            assert got == wanted, send
            continue
        await expect(c, wanted, send)
    await c.close()
    # A session that did not enable UTF-8 sees the same mailboxes in modified UTF-7.
    c = await run(runtime.port("imap"), [(b"", b"")])
    await c.login()
    reply = await c.cmd(b"w1", b'LIST "" *')
    assert b'"/" "&AMQ-rger/&ANw-nter"\r\n' in reply and b'"/" "a&-b"\r\n' in reply
    assert b'"/" "p&AOQA5A-"\r\n' in reply
    box = await runtime.store.get_mailbox(account.id, "Ärger")
    assert [m.size for m in await runtime.store.list_messages(box.id)] == [len(MSG)]
    await c.close()


# -- QUOTA (RFC 9208) ------------------------------------------------------------------------

async def test_quota_transcript(runtime: ServerRuntime) -> None:
    account = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(account.id, "INBOX")
    big = b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n"
    for data in (MSG, big, big):
        await runtime.store.append(inbox.id, data)
    c = await run(runtime.port("imap"), [(b"", b"")])
    await c.login()
    # No limit (the default): no quota root at all.
    for send, wanted in [
        (b"q1 GETQUOTAROOT INBOX\r\n", b'* QUOTAROOT "INBOX"\r\nq1 OK GETQUOTAROOT completed\r\n'),
        (b'q2 GETQUOTA ""\r\n', b"q2 NO [NONEXISTENT] no such quota root\r\n"),
    ]:
        await c.send(send)
        await expect(c, wanted, send)
    await runtime.quotas.set(account, 10 * 1024 * 1024 + 512)
    used = (len(MSG) + 2 * len(big)) // 1024
    quota = b'* QUOTA "" (STORAGE %d 10240)\r\n' % used
    for send, wanted in [
        (b"q3 GETQUOTAROOT inbox\r\n", b'* QUOTAROOT "INBOX" ""\r\n' + quota + b"q3 OK GETQUOTAROOT completed\r\n"),
        (b'q4 GETQUOTA ""\r\n', quota + b"q4 OK GETQUOTA completed\r\n"),
        (b"q5 GETQUOTA INBOX\r\n", b"q5 NO [NONEXISTENT] no such quota root\r\n"),
        (b"q6 GETQUOTAROOT Nowhere\r\n", b"q6 NO [NONEXISTENT] no mailbox named Nowhere\r\n"),
        (b'q7 SETQUOTA "" (STORAGE 512)\r\n',
         b"q7 NO [NOPERM] quotas are set by the administrator (run.py user quota)\r\n"),
        (b'q8 SETQUOTA "" ()\r\n',
         b"q8 NO [NOPERM] quotas are set by the administrator (run.py user quota)\r\n"),
        (b'q9 SETQUOTA "" (STORAGE)\r\n', b"q9 BAD expected SP\r\n"),
        (b'r1 SETQUOTA "" (STORAGE 99999999999999999999)\r\n', b"r1 BAD expected a quota limit (number64)\r\n"),
        (b"r2 GETQUOTA\r\n", b"r2 BAD expected SP\r\n"),
        (b"r3 SELECT INBOX\r\n", None),
        (b"r4 STORE 2:3 +FLAGS.SILENT (\\Deleted)\r\n", b"r4 OK STORE completed\r\n"),
        (b"r5 STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)\r\n",
         b'* STATUS "INBOX" (MESSAGES 3 DELETED 2 DELETED-STORAGE %d)\r\nr5 OK STATUS completed\r\n'
         % (2 * len(big) // 1024)),
    ]:
        await c.send(send)
        if wanted is None:
            await c.until_tagged(send.split()[0])
        else:
            await expect(c, wanted, send)
    await c.close()


async def test_quota_over_limit_and_imaplib(runtime: ServerRuntime) -> None:
    """imaplib's getquotaroot/getquota parse the responses; APPEND over the limit is
    NO [OVERQUOTA] and the usage reported does not move."""
    account = await runtime.accounts.get_user("alice@example.com")
    await runtime.quotas.set(account, 4096)
    port = runtime.port("imap")

    def client() -> None:
        imap = imaplib.IMAP4("127.0.0.1", port)
        imap.login("alice@example.com", PASSWORD)
        typ, data = imap.capability()
        assert {b"QUOTA", b"QUOTA=RES-STORAGE"} <= set(data[0].split())
        typ, data = imap.append("INBOX", None, None, b"Subject: a\r\n\r\n" + b"y" * 3000)
        assert typ == "OK"
        typ, data = imap.getquotaroot("INBOX")
        assert typ == "OK" and data == [[b'"INBOX" ""'], [b'"" (STORAGE 2 4)']]
        typ, data = imap.append("INBOX", None, None, b"Subject: b\r\n\r\n" + b"y" * 3000)
        assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
        typ, data = imap.getquota('""')
        assert typ == "OK" and data == [b'"" (STORAGE 2 4)']
        imap.logout()
    await asyncio.to_thread(client)


# -- the parser's part, as a table -------------------------------------------------------------

import pytest  # noqa: E402

from rmail.server.imap import commands as c  # noqa: E402
from rmail.server.imap.parser import ParseError, parse_command  # noqa: E402
from rmail.server.imap.wire import Frame  # noqa: E402


@pytest.mark.parametrize("parts, utf8, expected", [
    ((b"t COMPRESS deflate",), False, c.Compress("t", "DEFLATE")),
    ((b"t GETQUOTA \"\"",), False, c.GetQuota("t", "")),
    ((b"t GETQUOTAROOT inbox",), False, c.GetQuotaRoot("t", "INBOX")),
    ((b"t SETQUOTA \"\" (storage 10 MESSAGE 5)",), False,
     c.SetQuota("t", "", (("STORAGE", 10), ("MESSAGE", 5)))),
    ((b"t SETQUOTA x ()",), False, c.SetQuota("t", "x", ())),
    ((b"t CREATE \"\xc3\xa4\"",), True, c.Create("t", "\u00e4")),
    ((b"t SELECT &AOQ-",), True, c.Select("t", "&AOQ-")),
    ((b"t SELECT &AOQ-",), False, c.Select("t", "\u00e4")),
    # A utf8-literal is a literal8 (RFC 6855 §4): binary parts in it are stored re-encoded.
    ((b"t APPEND x UTF8 (~", b"m", b")"), True, c.Append("t", "x", (), None, b"m", True)),
    ((b"t APPEND x (\\Seen) UTF8 (~", b"m", b")"), True, c.Append("t", "x", ("\\Seen",), None, b"m", True)),
    # MULTIAPPEND and CATENATE take it too (append-data and cat-part, RFC 6855 §4).
    ((b"t APPEND x UTF8 (~", b"m", b") UTF8 (~", b"n", b")"), True,
     c.Append("t", "x", (), None, b"m", True, None, (c.AppendMessage((), None, b"n", True),))),
    ((b"t APPEND x CATENATE (UTF8 (~", b"m", b") URL \"/INBOX/;uid=1\")"), True,
     c.Append("t", "x", (), None, b"", False,
              (c.CatPart(text=b"m", binary=True), c.CatPart(url="/INBOX/;uid=1")))),
])
def test_parse(parts: tuple[bytes, ...], utf8: bool, expected: c.Command) -> None:
    assert parse_command(Frame(parts), utf8=utf8) == expected


@pytest.mark.parametrize("parts, utf8, reply", [
    ((b"t COMPRESS",), False, ("BAD", "expected SP")),
    ((b"t CREATE \"\xc3\xa4\"",), False, ("NO", "mailbox names must be modified UTF-7 (RFC 3501 5.1.3)")),
    ((b"t CREATE \"a\xc2\x85b\"",), True, ("NO", "mailbox names must be modified UTF-7 (RFC 3501 5.1.3)")),
    ((b"t CREATE \"\xff\"",), True, ("BAD", "mailbox name is not valid UTF-8")),
    ((b"t APPEND x UTF8 (~", b"m", b")"), False, ("BAD", "APPEND UTF8 needs ENABLE UTF8=ACCEPT first (RFC 6855 4)")),
    ((b"t APPEND x UTF8 (~", b"m", b""), True, ("BAD", "expected )")),
    ((b"t APPEND x CATENATE (UTF8 (~", b"m", b"))"), False,
     ("BAD", "CATENATE UTF8 needs ENABLE UTF8=ACCEPT first (RFC 6855 4)")),
    ((b"t SETQUOTA x (" + b"S 1 " * 16 + b"S 1)",), False, ("BAD", "too many quota resources")),
    ((b"t SETQUOTA x (S -1)",), False, ("BAD", "expected a quota limit (number64)")),
    ((b"t AUTHENTICATE PLAIN ab=c",), False, ("BAD", "invalid base64 initial response")),
])
def test_parse_refusals(parts: tuple[bytes, ...], utf8: bool, reply: tuple[str, str]) -> None:
    with pytest.raises(ParseError) as info:
        parse_command(Frame(parts), utf8=utf8)
    assert (info.value.status, info.value.text) == reply and info.value.tag == "t"
