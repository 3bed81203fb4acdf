"""Exact-byte transcripts of two interleaved sessions (IDLE, EXPUNGE timing), the corpus
through APPEND and FETCH, and changes from outside IMAP reaching an idling client."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

import pytest

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def msg(n: int) -> bytes:
    return b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n)


async def test_two_sessions_with_idle(runtime: ServerRuntime) -> None:
    port = runtime.port("imap")
    a = await RawClient.connect(port)
    b = await RawClient.connect(port)
    await a.login()
    await b.login()
    for n in (1, 2, 3):
        await a.send(b"ap%d APPEND INBOX {%d+}\r\n%b\r\n" % (n, len(msg(n)), msg(n)))
        assert re.fullmatch(rb"ap\d OK \[APPENDUID \d+ %d\] APPEND completed\r\n" % n,
                            await a.until_tagged(b"ap%d" % n))
    sel = await a.cmd(b"a1", b"SELECT INBOX")
    uv = re.search(rb"UIDVALIDITY (\d+)", sel).group(1)
    mbid = re.search(rb"MAILBOXID \((F\d+-)" + uv + rb"\)", sel).group(1) + uv
    assert sel == (b"* 3 EXISTS\r\n* 3 RECENT\r\n"
                   b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
                   b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
                   b"flags permitted\r\n* OK [UNSEEN 1] first unseen\r\n"
                   b"* OK [UIDVALIDITY " + uv + b"] UIDs valid\r\n"
                   b"* OK [UIDNEXT 4] predicted next UID\r\n"
                   b"* OK [MAILBOXID (" + mbid + b")] mailbox id\r\n"
                   b"a1 OK [READ-WRITE] SELECT completed\r\n")
    # \Recent went to session A only (RFC 3501 §2.3.1.2).
    sel_b = await b.cmd(b"b1", b"SELECT INBOX")
    assert b"* 3 EXISTS\r\n* 0 RECENT\r\n" in sel_b
    await a.send(b"a2 IDLE\r\n")
    assert await a.line() == b"+ idling\r\n"
    # B flags and expunges message 2; A hears it while idling.
    assert await b.cmd(b"b2", b"STORE 2 +FLAGS.SILENT (\\Deleted)") == b"b2 OK STORE completed\r\n"
    assert await a.line() == b"* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))\r\n"
    assert await b.cmd(b"b3", b"EXPUNGE") == b"* 2 EXPUNGE\r\nb3 OK EXPUNGE completed\r\n"
    assert await a.line() == b"* 2 EXPUNGE\r\n"
    # A new message from B reaches A as EXISTS. Exactly one of the two sessions claims it as
    # \Recent (RFC 3501 §2.3.2), whichever looks first: A (idling) or B (finishing APPEND).
    await b.send(b"b4 APPEND INBOX {%d+}\r\n%b\r\n" % (len(msg(4)), msg(4)))
    assert b"b4 OK [APPENDUID " + uv + b" 4]" in await b.until_tagged(b"b4")
    assert await a.line() == b"* 3 EXISTS\r\n"
    recent_line = await a.line()
    assert recent_line in (b"* 2 RECENT\r\n", b"* 3 RECENT\r\n")
    b_has_recent = recent_line == b"* 2 RECENT\r\n"
    await a.send(b"DONE\r\n")
    assert await a.line() == b"a2 OK IDLE terminated\r\n"
    assert await b.cmd(b"b5", b"UID SEARCH ALL") == b"* SEARCH 1 3 4\r\nb5 OK SEARCH completed\r\n"
    # No EXPUNGE while FETCH runs (RFC 3501 §7.4.1): B keeps its numbers until NOOP.
    await a.cmd(b"a3", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert await a.cmd(b"a4", b"EXPUNGE") == b"* 1 EXPUNGE\r\na4 OK EXPUNGE completed\r\n"
    assert await b.cmd(b"b6", b"FETCH 1:3 (UID)") == (
        b"* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\n* 3 FETCH (UID 4)\r\n"
        b"b6 OK FETCH completed\r\n")
    assert await b.cmd(b"b7", b"NOOP") == b"* 1 EXPUNGE\r\nb7 OK NOOP completed\r\n"
    assert await b.cmd(b"b8", b"FETCH 1:* (UID FLAGS)") == (
        b"* 1 FETCH (UID 3 FLAGS ())\r\n* 2 FETCH (UID 4 FLAGS (%b))\r\n"
        b"b8 OK FETCH completed\r\n" % (b"\\Recent" if b_has_recent else b""))
    await a.cmd(b"a5", b"LOGOUT")
    await b.cmd(b"b9", b"LOGOUT")
    await a.close()
    await b.close()


async def test_delivery_outside_imap_reaches_idle(runtime: ServerRuntime) -> None:
    account = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(account.id, "INBOX")
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"s", b"SELECT INBOX")
    await c.send(b"i IDLE\r\n")
    assert await c.line() == b"+ idling\r\n"
    await runtime.delivery.deliver("bob@example.com", ["alice@example.com"], msg(9),
                                   may_relay=False)
    assert await c.line(timeout=1) == b"* 1 EXISTS\r\n"
    await runtime.store.store_flags(inbox.id, [1], "add", ["\\Flagged"])  # e.g. the REST API
    assert await c.line(timeout=1) == b"* 1 RECENT\r\n"
    assert await c.line(timeout=1) == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n"
    await c.send(b"DONE\r\n")
    assert await c.line() == b"i OK IDLE terminated\r\n"
    await c.close()


def corpus_messages() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted(CORPUS.glob("*.mbox")):
        for i, m in enumerate(mailbox.mbox(path)):
            out.append((f"{path.stem}#{i}", m.as_bytes().replace(b"\r\n", b"\n")
                        .replace(b"\n", b"\r\n")))
    return out


@pytest.mark.skipif(not CORPUS.exists(), reason="tests/corpus not present")
async def test_corpus_append_then_fetch(runtime: ServerRuntime) -> None:
    messages = corpus_messages()
    assert messages
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    for n, (_, data) in enumerate(messages, 1):
        reply = await c.cmd(b"p%d" % n, b"APPEND INBOX {%d+}\r\n%b" % (len(data), data))
        assert b"OK [APPENDUID" in reply
    await c.cmd(b"s", b"SELECT INBOX")
    for n, (name, data) in enumerate(messages, 1):
        reply = await c.cmd(b"f%d" % n, b"FETCH %d (RFC822.SIZE BODY.PEEK[] BODYSTRUCTURE "
                            b"ENVELOPE BODY.PEEK[1] BODY.PEEK[HEADER] BODY.PEEK[TEXT])" % n)
        assert reply.endswith(b"f%d OK FETCH completed\r\n" % n), name
        assert b"RFC822.SIZE %d " % len(data) in reply, name
        assert b"BODY[] {%d}\r\n%b" % (len(data), data) in reply, name
        if data.startswith(b"\r\n"):
            header, text = b"\r\n", data[2:]
        else:
            head, _, text = data.partition(b"\r\n\r\n")
            header = head + b"\r\n\r\n"
        assert b"BODY[HEADER] {%d}\r\n%b" % (len(header), header) in reply, name
        assert b"BODY[TEXT] {%d}\r\n" % len(text) in reply, name
    assert (await c.cmd(b"x", b"SEARCH NOT ALL")) == b"* SEARCH\r\nx OK SEARCH completed\r\n"
    await c.close()


async def test_expunge_without_deleted_messages_writes_nothing_yet_sees_news(runtime: ServerRuntime) -> None:
    """EXPUNGE first takes in the news this session has not been told (here another session's
    \\Deleted), then writes only when something is marked \\Deleted."""
    port = runtime.port("imap")
    a = await RawClient.connect(port)
    b = await RawClient.connect(port)
    await a.login()
    await b.login()
    for n in (1, 2):
        await a.send(b"ap%d APPEND INBOX {%d+}\r\n%b\r\n" % (n, len(msg(n)), msg(n)))
        await a.until_tagged(b"ap%d" % n)
    await a.cmd(b"a1", b"SELECT INBOX")
    await b.cmd(b"b1", b"SELECT INBOX")
    db = runtime.backend.mail.db  # type: ignore[attr-defined]
    await db.write(lambda txn: None)        # the \Recent claim SELECT wrote behind is in
    commits = db.commits
    assert await a.cmd(b"a2", b"EXPUNGE") == b"a2 OK EXPUNGE completed\r\n"
    assert await a.cmd(b"a3", b"UID EXPUNGE 1:*") == b"a3 OK EXPUNGE completed\r\n"
    assert db.commits == commits
    assert await b.cmd(b"b2", b"STORE 2 +FLAGS.SILENT (\\Deleted)") == b"b2 OK STORE completed\r\n"
    assert await a.cmd(b"a4", b"EXPUNGE") == (b"* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))\r\n"
                                             b"* 2 EXPUNGE\r\na4 OK EXPUNGE completed\r\n")
    assert await b.cmd(b"b3", b"NOOP") == b"* 2 EXPUNGE\r\nb3 OK NOOP completed\r\n"
    # UID EXPUNGE of a set with a \Deleted message in it.
    assert await b.cmd(b"b4", b"STORE 1 +FLAGS.SILENT (\\Deleted)") == b"b4 OK STORE completed\r\n"
    assert await b.cmd(b"b5", b"UID EXPUNGE 1") == b"* 1 EXPUNGE\r\nb5 OK EXPUNGE completed\r\n"


async def test_two_sessions_fetching_header_fields_parse_the_header_once(runtime: ServerRuntime) -> None:
    from rmail.server.imap.connection import ImapServer
    server = runtime.started_services["rmail.server.imap"]
    assert isinstance(server, ImapServer)
    headers = server.services.headers
    port = runtime.port("imap")
    a = await RawClient.connect(port)
    b = await RawClient.connect(port)
    await a.login()
    await b.login()
    data = b"From: x@example.com\r\nSubject: hi\r\nTo: y@example.com\r\n\r\nbody\r\n"
    await a.send(b"ap APPEND INBOX {%d+}\r\n%b\r\n" % (len(data), data))
    await a.until_tagged(b"ap")
    await a.cmd(b"a1", b"SELECT INBOX")
    await b.cmd(b"b1", b"EXAMINE INBOX")
    want = (b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT TO)] {34}\r\nSubject: hi\r\nTo: y@example.com\r\n\r\n)\r\n")
    hits = headers.hits
    assert await a.cmd(b"a2", b"FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT TO)]") == want + b"a2 OK FETCH completed\r\n"
    assert await b.cmd(b"b2", b"FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT TO)]") == want + b"b2 OK FETCH completed\r\n"
    assert headers.hits == hits + 1
    # A partial of the same section comes from the same entry, cut as asked.
    assert await b.cmd(b"b3", b"FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT TO)]<0.11>") == (
        b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT TO)]<0> {11}\r\nSubject: hi)\r\nb3 OK FETCH completed\r\n")
    assert headers.hits == hits + 2
    # Another choice of fields picks from the same parsed header.
    assert await b.cmd(b"b4", b"FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (subject TO)]") == (
        b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (subject TO)] {23}\r\nFrom: x@example.com\r\n\r\n)\r\n"
        b"b4 OK FETCH completed\r\n")
    assert headers.hits == hits + 3
