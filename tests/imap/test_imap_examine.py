"""EXAMINE and \\Recent (RFC 3501 §6.3.2, §2.3.2): a read-only session reports the messages no
session has claimed yet as RECENT and shows them \\Recent, but never claims them."""

from __future__ import annotations

import re

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient


def msg(n: int) -> bytes:
    return b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n)


async def append(c: RawClient, n: int) -> None:
    reply = await c.cmd(b"ap%d" % n, b"APPEND INBOX {%d+}\r\n%b" % (len(msg(n)), msg(n)))
    assert b"OK [APPENDUID" in reply, reply


def examine_reply(exists: int, recent: int, uidvalidity: bytes, uidnext: int,
                  mailbox_id: int) -> bytes:
    return (b"* %d EXISTS\r\n* %d RECENT\r\n"
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
            b"* OK [PERMANENTFLAGS ()] flags permitted\r\n"
            b"* OK [UNSEEN 1] first unseen\r\n"
            b"* OK [UIDVALIDITY %b] UIDs valid\r\n"
            b"* OK [UIDNEXT %d] predicted next UID\r\n"
            b"* OK [MAILBOXID (F%d-%b)] mailbox id\r\n"
            b"e OK [READ-ONLY] EXAMINE completed\r\n"
            % (exists, recent, uidvalidity, uidnext, mailbox_id, uidvalidity))


async def test_examine_reports_recent_without_claiming(runtime: ServerRuntime) -> None:
    port = runtime.port("imap")
    a, b, c = [await RawClient.connect(port) for _ in range(3)]
    for s in (a, b, c):
        await s.login()
    for n in (1, 2):
        await append(a, n)
    reply = await a.cmd(b"e", b"EXAMINE INBOX")
    uv = re.search(rb"UIDVALIDITY (\d+)", reply).group(1)
    alice = await runtime.accounts.get_user("alice@example.com")
    mid = (await runtime.store.get_mailbox(alice.id, "INBOX")).id
    assert reply == examine_reply(2, 2, uv, 3, mid)
    assert await a.cmd(b"f", b"FETCH 1:* (FLAGS)") == (
        b"* 1 FETCH (FLAGS (\\Recent))\r\n* 2 FETCH (FLAGS (\\Recent))\r\n"
        b"f OK FETCH completed\r\n")
    # A second read-only session sees the same: nothing was claimed.
    assert await b.cmd(b"e", b"EXAMINE INBOX") == examine_reply(2, 2, uv, 3, mid)
    # The first read-write session still gets them, and takes them from later sessions.
    assert b"* 2 EXISTS\r\n* 2 RECENT\r\n" in await c.cmd(b"s", b"SELECT INBOX")
    assert await b.cmd(b"e2", b"EXAMINE INBOX") == b"* OK [CLOSED] previous mailbox closed\r\n" + \
        examine_reply(2, 0, uv, 3, mid).replace(b"e OK", b"e2 OK")
    assert await b.cmd(b"f", b"FETCH 1:* (FLAGS)") == (
        b"* 1 FETCH (FLAGS ())\r\n* 2 FETCH (FLAGS ())\r\nf OK FETCH completed\r\n")
    # The earlier read-only session keeps its view for its lifetime (advisory flag).
    assert await a.cmd(b"n", b"NOOP") == b"n OK NOOP completed\r\n"
    assert b"FLAGS (\\Recent)" in await a.cmd(b"f2", b"FETCH 1 (FLAGS)")
    for s in (a, b, c):
        await s.close()


async def test_examine_hears_new_mail_as_recent_and_select_still_claims(
        runtime: ServerRuntime) -> None:
    port = runtime.port("imap")
    ro, rw = await RawClient.connect(port), await RawClient.connect(port)
    await ro.login()
    await rw.login()
    await ro.cmd(b"e", b"EXAMINE INBOX")
    await ro.send(b"i IDLE\r\n")
    assert await ro.line() == b"+ idling\r\n"
    await runtime.delivery.deliver("bob@example.com", ["alice@example.com"], msg(1),
                                   may_relay=False)
    assert await ro.line() == b"* 1 EXISTS\r\n"
    assert await ro.line() == b"* 1 RECENT\r\n"
    await ro.send(b"DONE\r\n")
    assert await ro.line() == b"i OK IDLE terminated\r\n"
    assert await ro.cmd(b"f", b"FETCH 1 (FLAGS)") == (
        b"* 1 FETCH (FLAGS (\\Recent))\r\nf OK FETCH completed\r\n")
    # The read-only session did not take \Recent away from the first SELECT.
    assert b"* 1 EXISTS\r\n* 1 RECENT\r\n" in await rw.cmd(b"s", b"SELECT INBOX")
    status = await rw.cmd(b"st", b"STATUS INBOX (RECENT)")
    assert status.startswith(b'* STATUS "INBOX" (RECENT 0)\r\n'), status
    await ro.close()
    await rw.close()
