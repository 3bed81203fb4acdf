"""CONDSTORE and QRESYNC (RFC 7162) byte for byte: the RFC's examples replayed against a
mailbox whose history is known, so every MODSEQ below can be read off it.

The mailbox (INBOX of alice) is built through the store before the session starts:

- ten messages, UIDs 1-10, MODSEQs 2-11 (a mailbox's MODSEQ starts at 1 and every change
  takes the next one); UID 3 arrives \\Seen, UID 7 \\Draft;
- UID 5 flagged at 12; UIDs 2 and 9 marked \\Draft at 13; UIDs 4 and 8 marked \\Deleted at 14
  and expunged at 15.

So the session meets UIDs 1 2 3 5 6 7 9 10 (message numbers 1-8), HIGHESTMODSEQ 15, with
MODSEQs 2 13 4 12 7 8 13 11. Where rmail's answer differs in form from the RFC's example (the
order of SELECT's untagged responses, UID in every FETCH once CONDSTORE is on, as the RFC's
erratum 1807 asks) the step says so.
"""

from __future__ import annotations

import asyncio
import re

from rmail.server.imap.objectid import mailbox_id
from rmail.server.runtime import ServerRuntime

from .conftest import RawClient
from .test_imap_transcripts import expect


def msg(n: int) -> bytes:
    return b"Subject: m%d\r\nMessage-ID: <m%d@example.com>\r\n\r\nbody %d\r\n" % (n, n, n)


async def build_inbox(runtime: ServerRuntime) -> int:
    """The history of the module docstring; returns INBOX's UIDVALIDITY."""
    store = runtime.store
    account = await runtime.accounts.get_user("alice@example.com")
    inbox = await store.get_mailbox(account.id, "INBOX")
    for n in range(1, 11):
        flags = {3: ["\\Seen"], 7: ["\\Draft"]}.get(n, [])
        assert await store.append(inbox.id, msg(n), flags) == n
    await store.store_flags(inbox.id, [5], "add", ["\\Flagged"])
    await store.store_flags(inbox.id, [2, 9], "add", ["\\Draft"])
    await store.store_flags(inbox.id, [4, 8], "add", ["\\Deleted"])
    assert await store.expunge(inbox.id) == [4, 8]
    assert (await store.status(inbox.id)).highestmodseq == 15
    return inbox.uidvalidity


def opened(exists: int, recent: int, highest: int, *, readonly: bool = False) -> bytes:
    """SELECT's untagged responses, HIGHESTMODSEQ after UIDNEXT (RFC 7162 §3.1.8 puts it
    among them; their order is free), MAILBOXID (RFC 8474 §4.2, "{MID}") last."""
    permanent = b"" if readonly else b"\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*"
    return (b"* %d EXISTS\r\n* %d RECENT\r\n" % (exists, recent)
            + b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
            + b"* OK [PERMANENTFLAGS (%b)] flags permitted\r\n" % permanent
            + b"* OK [UNSEEN 1] first unseen\r\n"
            + b"* OK [UIDVALIDITY {UV}] UIDs valid\r\n* OK [UIDNEXT 11] predicted next UID\r\n"
            + b"* OK [HIGHESTMODSEQ %d] highest mod-sequence\r\n" % highest
            + b"* OK [MAILBOXID ({MID})] mailbox id\r\n")


CLOSED = b"* OK [CLOSED] previous mailbox closed\r\n"

#: (sent, expected); {UV} is INBOX's UIDVALIDITY, {MID} its MAILBOXID.
STEPS: list[tuple[bytes, bytes]] = [
    # §3.1.8: SELECT with the CONDSTORE parameter enables CONDSTORE and reports HIGHESTMODSEQ.
    (b"c1 SELECT INBOX (CONDSTORE)\r\n",
     opened(8, 8, 15) + b"c1 OK [READ-WRITE] SELECT completed\r\n"),
    # §3.1.4.1: "s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)": only what changed after
    # it, with MODSEQ though not asked for.
    (b"c2 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12)\r\n",
     b"* 2 FETCH (UID 2 FLAGS (\\Draft \\Recent) MODSEQ (13))\r\n"
     b"* 7 FETCH (UID 9 FLAGS (\\Draft \\Recent) MODSEQ (13))\r\n"
     b"c2 OK FETCH completed\r\n"),
    (b"c3 FETCH 1:3 (MODSEQ)\r\n",
     b"* 1 FETCH (MODSEQ (2))\r\n* 2 FETCH (MODSEQ (13))\r\n* 3 FETCH (MODSEQ (4))\r\n"
     b"c3 OK FETCH completed\r\n"),
    # §3.1.3 example 3: every message passes UNCHANGEDSINCE; .SILENT still reports the new
    # MODSEQ of each, with its UID.
    (b"c4 UID STORE 6,5,9 (UNCHANGEDSINCE 13) +FLAGS.SILENT (\\Deleted)\r\n",
     b"* 4 FETCH (UID 5 MODSEQ (16))\r\n* 5 FETCH (UID 6 MODSEQ (16))\r\n"
     b"* 7 FETCH (UID 9 MODSEQ (16))\r\nc4 OK STORE completed\r\n"),
    # §3.1.3 "d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) ...": messages 5 and 7 changed at
    # 16, after 15: left alone and named in MODIFIED (message numbers for STORE); message 3
    # passes (its flags already say so: its MODSEQ stays 4, and is reported all the same).
    (b"c5 STORE 7,5,3 (UNCHANGEDSINCE 15) -FLAGS.SILENT (\\Deleted)\r\n",
     b"* 3 FETCH (UID 3 MODSEQ (4))\r\nc5 OK [MODIFIED 5,7] conditional STORE failed\r\n"),
    # §3.1.3: UNCHANGEDSINCE 0 always fails (the $MDNSent example); UID STORE names UIDs.
    (b"c6 UID STORE 1 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)\r\n",
     b"c6 OK [MODIFIED 1] conditional STORE failed\r\n"),
    # A plain STORE once CONDSTORE is on: UID and MODSEQ in its FETCH responses (§3.2).
    (b"c7 STORE 8 +FLAGS (\\Answered)\r\n",
     b"* 8 FETCH (UID 10 FLAGS (\\Answered \\Recent) MODSEQ (17))\r\nc7 OK STORE completed\r\n"),
    (b"c8 STORE 8 -FLAGS.SILENT (\\Answered)\r\n",
     b"* 8 FETCH (UID 10 MODSEQ (18))\r\nc8 OK STORE completed\r\n"),
    # §3.1.5: 'SEARCH MODSEQ "/flags/\\\\draft" all 620162338' -> "* SEARCH ... (MODSEQ n)",
    # n the highest MODSEQ of the messages found.
    (b'c9 SEARCH MODSEQ "/flags/\\\\draft" all 13\r\n',
     b"* SEARCH 2 4 5 7 8 (MODSEQ 18)\r\nc9 OK SEARCH completed\r\n"),
    (b"d1 SEARCH OR NOT MODSEQ 12 LARGER 50000\r\n",
     b"* SEARCH 1 3 6 (MODSEQ 8)\r\nd1 OK SEARCH completed\r\n"),
    (b"d2 UID SEARCH MODSEQ 19\r\n",
     b"* SEARCH\r\nd2 OK SEARCH completed\r\n"),
    # §3.1.2 (STATUS blurdybloop (UIDNEXT MESSAGES HIGHESTMODSEQ)).
    (b"d3 STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)\r\n",
     b'* STATUS "INBOX" (UIDNEXT 11 MESSAGES 8 HIGHESTMODSEQ 18)\r\nd3 OK STATUS completed\r\n'),
    # QRESYNC (§3.2.3): ENABLE, then expunges are VANISHED (§3.2.10) and EXPUNGE's tagged
    # OK carries the HIGHESTMODSEQ the client is now up to date with.
    (b"d4 SELECT INBOX (QRESYNC ({UV} 11))\r\n",
     b"d4 BAD QRESYNC is not enabled (ENABLE QRESYNC first)\r\n"),
    (b"d5 ENABLE QRESYNC\r\n",
     b"* ENABLED QRESYNC\r\nd5 OK ENABLE completed\r\n"),
    (b"d6 EXPUNGE\r\n",
     b"* VANISHED 5:6,9\r\nd6 OK [HIGHESTMODSEQ 19] EXPUNGE completed\r\n"),
    # §3.2.6: "A04 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)": VANISHED (EARLIER)
    # for the set's UIDs expunged since, then what changed.
    (b"d7 UID FETCH 1:10 (FLAGS) (CHANGEDSINCE 12 VANISHED)\r\n",
     b"* VANISHED (EARLIER) 4:6,8:9\r\n"
     b"* 2 FETCH (UID 2 FLAGS (\\Draft \\Recent) MODSEQ (13))\r\n"
     b"* 5 FETCH (UID 10 FLAGS (\\Recent) MODSEQ (18))\r\n"
     b"d7 OK FETCH completed\r\n"),
    (b"d8 UID FETCH 5:9 (FLAGS) (CHANGEDSINCE 14 VANISHED)\r\n",
     b"* VANISHED (EARLIER) 5:6,8:9\r\nd8 OK FETCH completed\r\n"),
    # §3.2.5.1: "A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))":
    # [CLOSED] for the mailbox left behind, the usual responses, then VANISHED (EARLIER) for
    # the known UIDs expunged since and a FETCH of each known message changed since.
    (b"d9 SELECT INBOX (QRESYNC ({UV} 11 1:10))\r\n",
     CLOSED + opened(5, 0, 19) + b"* VANISHED (EARLIER) 4:6,8:9\r\n"
     b"* 2 FETCH (UID 2 FLAGS (\\Draft) MODSEQ (13))\r\n"
     b"* 5 FETCH (UID 10 FLAGS () MODSEQ (18))\r\n"
     b"d9 OK [READ-WRITE] SELECT completed\r\n"),
    # Known UIDs limit both answers; the message sequence match data is accepted (the
    # expunge records are exact, §3.2.5.2 lets the server do without it).
    (b"e1 SELECT INBOX (QRESYNC ({UV} 11 2,3:6 (1:2 2:3)))\r\n",
     CLOSED + opened(5, 0, 19) + b"* VANISHED (EARLIER) 4:6\r\n"
     b"* 2 FETCH (UID 2 FLAGS (\\Draft) MODSEQ (13))\r\n"
     b"e1 OK [READ-WRITE] SELECT completed\r\n"),
    # Without known UIDs: 1:(UIDNEXT-1); an EXAMINE from long ago hears of nearly everything.
    (b"e2 EXAMINE INBOX (QRESYNC ({UV} 2))\r\n",
     CLOSED + opened(5, 0, 19, readonly=True) + b"* VANISHED (EARLIER) 4:6,8:9\r\n"
     b"* 2 FETCH (UID 2 FLAGS (\\Draft) MODSEQ (13))\r\n"
     b"* 3 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (4))\r\n"
     b"* 4 FETCH (UID 7 FLAGS (\\Draft) MODSEQ (8))\r\n"
     b"* 5 FETCH (UID 10 FLAGS () MODSEQ (18))\r\n"
     b"e2 OK [READ-ONLY] EXAMINE completed\r\n"),
    # Up to date: nothing to add.
    (b"e3 SELECT INBOX (QRESYNC ({UV} 19 1:10))\r\n",
     CLOSED + opened(5, 0, 19) + b"e3 OK [READ-WRITE] SELECT completed\r\n"),
    # Another UIDVALIDITY: the client's cache is of another mailbox; a plain SELECT (§3.2.5).
    (b"e4 SELECT INBOX (QRESYNC (1 11 1:10))\r\n",
     CLOSED + opened(5, 0, 19) + b"e4 OK [READ-WRITE] SELECT completed\r\n"),
    # VANISHED only with UID FETCH and CHANGEDSINCE (§3.2.6); mod-sequences are 1 to 2^63-1.
    (b"e5 FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
     b"e5 BAD VANISHED needs UID FETCH and CHANGEDSINCE\r\n"),
    (b"e6 UID FETCH 1 (FLAGS) (VANISHED)\r\n",
     b"e6 BAD VANISHED needs UID FETCH and CHANGEDSINCE\r\n"),
    (b"e7 SELECT INBOX (QRESYNC ({UV} 0))\r\n",
     b"e7 BAD mod-sequence out of range\r\n"),
    (b"e8 FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n",
     b"e8 BAD mod-sequence out of range\r\n"),
    (b"e9 SELECT INBOX (QRESYNC ({UV} 11 1:* ))\r\n",
     b'e9 BAD "*" is not allowed in known UIDs\r\n'),
    (b"f1 SELECT INBOX (QRESYNC ({UV} 11 1:3 (1:2 1:3)))\r\n",
     b"f1 BAD message sequence match data sets differ in size\r\n"),
    (b"f2 STORE 1 (UNCHANGEDSINCE 5 FOO) +FLAGS (\\Seen)\r\n",
     b"f2 BAD expected )\r\n"),
    # A FETCH that sets \Seen reports it with UID and MODSEQ (§3.2); with QRESYNC on, every
    # FETCH response starts with the UID.
    (b"f3 FETCH 1 (BODY[TEXT])\r\n",
     b"* 1 FETCH (UID 1 BODY[TEXT] {8}\r\nbody 1\r\n MODSEQ (20) FLAGS (\\Seen))\r\n"
     b"f3 OK FETCH completed\r\n"),
    (b"f4 FETCH 2 (FLAGS)\r\n",
     b"* 2 FETCH (UID 2 FLAGS (\\Draft))\r\nf4 OK FETCH completed\r\n"),
    (b"f5 CLOSE\r\n", b"f5 OK CLOSE completed\r\n"),
]


async def inbox_mailbox_id(runtime: ServerRuntime) -> bytes:
    account = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(account.id, "INBOX")
    return mailbox_id(inbox.id, inbox.uidvalidity).encode()


async def test_rfc7162_examples_byte_exact(runtime: ServerRuntime) -> None:
    uv = b"%d" % await build_inbox(runtime)
    mid = await inbox_mailbox_id(runtime)
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    for send, wanted in STEPS:
        send, wanted = send.replace(b"{UV}", uv), wanted.replace(b"{UV}", uv).replace(b"{MID}", mid)
        await c.send(send)
        await expect(c, wanted, send)
    await c.close()


async def test_enabling_and_news_from_elsewhere(runtime: ServerRuntime) -> None:
    """§3.1: a CONDSTORE-enabling command in the selected state first tells HIGHESTMODSEQ;
    after it, another session's flag change comes with UID and MODSEQ, and once QRESYNC is
    on its expunge comes as VANISHED (never during FETCH, STORE or SEARCH)."""
    uv = b"%d" % await build_inbox(runtime)
    a = await RawClient.connect(runtime.port("imap"))
    await a.login()
    b = await RawClient.connect(runtime.port("imap"))
    await b.login()
    assert (await a.cmd(b"a1", b"SELECT INBOX")).endswith(b"a1 OK [READ-WRITE] SELECT completed\r\n")
    assert b"HIGHESTMODSEQ" not in await a.cmd(b"a2", b"NOOP")
    assert await a.cmd(b"a3", b"FETCH 2 (MODSEQ)") == (
        b"* OK [HIGHESTMODSEQ 15] highest mod-sequence\r\n* 2 FETCH (MODSEQ (13))\r\n"
        b"a3 OK FETCH completed\r\n")
    assert await a.cmd(b"a4", b"FETCH 2 (MODSEQ)") == b"* 2 FETCH (MODSEQ (13))\r\na4 OK FETCH completed\r\n"
    await b.cmd(b"b1", b"SELECT INBOX")
    assert (await b.cmd(b"b2", b"UID STORE 1 +FLAGS.SILENT (\\Flagged)")) == b"b2 OK STORE completed\r\n"
    assert await a.cmd(b"a5", b"NOOP") == (
        b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) MODSEQ (16))\r\na5 OK NOOP completed\r\n")
    assert await a.cmd(b"a6", b"ENABLE QRESYNC") == b"* ENABLED QRESYNC\r\na6 OK ENABLE completed\r\n"
    await b.cmd(b"b3", b"UID STORE 3,5 +FLAGS.SILENT (\\Deleted)")
    await b.cmd(b"b4", b"EXPUNGE")
    # Held back during FETCH (RFC 3501 §7.4.1); the FETCH names the UID (QRESYNC is on).
    assert await a.cmd(b"a7", b"FETCH 1 (FLAGS)") == (
        b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\na7 OK FETCH completed\r\n")
    assert await a.cmd(b"a8", b"NOOP") == b"* VANISHED 3,5\r\na8 OK NOOP completed\r\n"
    # A SELECT that fails still closed the mailbox before it.
    assert await a.cmd(b"a9", b"SELECT Nope (CONDSTORE)") == (
        b"* OK [CLOSED] previous mailbox closed\r\na9 NO [NONEXISTENT] no mailbox named Nope\r\n")
    # ENABLE again: nothing newly enabled.
    assert await a.cmd(b"b9", b"ENABLE CONDSTORE QRESYNC") == b"* ENABLED\r\nb9 OK ENABLE completed\r\n"
    reply = await a.cmd(b"c1", b"SELECT INBOX (QRESYNC (%b 15 1:10))" % uv)
    assert re.search(rb"\* VANISHED \(EARLIER\) 3,5\r\n\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\) MODSEQ \(16\)\)\r\n"
                     rb"c1 OK \[READ-WRITE\] SELECT completed\r\n$", reply), reply
    # MOVE says VANISHED too (after its COPYUID).
    moved = await a.cmd(b"c2", b"UID MOVE 1:2 Archive")
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 1:2 1:2\] moved\r\n\* VANISHED 1:2\r\nc2 OK MOVE completed\r\n",
                        moved), moved
    await a.close()
    await b.close()


async def test_imapclient_resyncs_with_condstore_and_qresync(runtime: ServerRuntime) -> None:
    """IMAPClient, an independent client, keeps a cache of INBOX, goes away while another
    IMAPClient changes flags, expunges, moves and appends, and comes back twice: with
    CONDSTORE (FETCH CHANGEDSINCE plus the UID list) and with QRESYNC (one SELECT). Both
    caches end equal to what the other client sees."""
    from imapclient import IMAPClient
    from imapclient.response_parser import parse_fetch_response

    from tests.conftest import PASSWORD
    port = runtime.port("imap")

    def connect() -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=port, ssl=False)
        c.login("alice@example.com", PASSWORD)
        return c

    def flags(values: tuple[bytes, ...]) -> frozenset[bytes]:
        return frozenset(v for v in values if v != b"\\Recent")

    def work() -> None:
        other = connect()
        for n in range(1, 9):
            other.append("INBOX", msg(n), flags=[b"\\Seen"] if n % 3 == 0 else [])
        # The cache: UIDVALIDITY, HIGHESTMODSEQ, flags by UID.
        c = connect()
        assert c.has_capability("CONDSTORE") and c.has_capability("QRESYNC")
        assert c.enable("CONDSTORE") == [b"CONDSTORE"]
        info = c.select_folder("INBOX")
        uidvalidity, modseq = info[b"UIDVALIDITY"], info[b"HIGHESTMODSEQ"]
        assert c.folder_status("INBOX", [b"HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == modseq
        cache = {u: flags(d[b"FLAGS"]) for u, d in c.fetch("1:*", ["FLAGS"]).items()}
        assert sorted(cache) == list(range(1, 9))
        c.logout()
        # Changes made elsewhere.
        other.select_folder("INBOX")
        other.add_flags([1, 2], [b"\\Flagged"])
        other.remove_flags([3], [b"\\Seen"])
        other.add_flags([4, 5], [b"\\Deleted"])
        other.expunge()
        other.move([6], "Archive")
        other.append("INBOX", msg(9), flags=[b"$todo"])
        truth = {u: flags(d[b"FLAGS"]) for u, d in other.fetch("1:*", ["FLAGS"]).items()}
        # CONDSTORE: the changed flags (new messages among them), and which UIDs are left.
        c = connect()
        c.enable("CONDSTORE")
        c.select_folder("INBOX")
        changed = c.fetch("1:*", ["FLAGS"], ["CHANGEDSINCE %d" % modseq])
        assert all(d[b"MODSEQ"][0] > modseq for d in changed.values())
        assert sorted(changed) == [1, 2, 3, 9]
        ids = c.search(["MODSEQ", modseq + 1])
        assert sorted(ids) == [1, 2, 3, 9] and ids.modseq == max(d[b"MODSEQ"][0] for d in changed.values())
        kept = set(c.search("ALL"))
        resynced = {u: f for u, f in cache.items() if u in kept}
        resynced.update({u: flags(d[b"FLAGS"]) for u, d in changed.items()})
        assert resynced == truth
        c.logout()
        # QRESYNC: one SELECT says what vanished and what changed.
        c = connect()
        assert c.enable("QRESYNC") == [b"QRESYNC"]
        # IMAPClient has no QRESYNC select; imaplib's select passes the parameters along.
        typ, _ = c._imap.select("INBOX (QRESYNC (%d %d 1:8))" % (uidvalidity, modseq))
        assert typ == "OK"
        untagged = c._imap.untagged_responses
        assert untagged.pop("VANISHED") == [b"(EARLIER) 4:6"]
        news = parse_fetch_response(untagged.pop("FETCH"), uid_is_key=True)
        resynced = {u: f for u, f in cache.items() if u not in (4, 5, 6)}
        resynced.update({u: flags(d[b"FLAGS"]) for u, d in news.items()})
        new = c.fetch("9:*", ["FLAGS"])  # QRESYNC told of known UIDs only (1:8)
        resynced.update({u: flags(d[b"FLAGS"]) for u, d in new.items() if u >= 9})
        assert resynced == truth
        # And a conditional STORE: message 1 changed after `modseq`, message 7 did not.
        typ, data = c._imap._simple_command("UID", "STORE", "1,7", "(UNCHANGEDSINCE %d)" % modseq,
                                            "+FLAGS.SILENT", "(\\Answered)")
        assert typ == "OK" and data == [b"[MODIFIED 1] conditional STORE failed"]
        after = c.fetch([1, 7], ["FLAGS", "MODSEQ"])
        assert b"\\Answered" in after[7][b"FLAGS"] and b"\\Answered" not in after[1][b"FLAGS"]
        c.logout()
        other.logout()
    await asyncio.to_thread(work)


async def test_highestmodseq_stays_behind_an_expunge_not_yet_announced(runtime: ServerRuntime) -> None:
    """An expunge held back during FETCH (RFC 3501 §7.4.1) is not covered by the HIGHESTMODSEQ
    the session reports meanwhile: a client that resynchronised from it would never hear of
    that expunge."""
    uv = b"%d" % await build_inbox(runtime)
    a, b = [await RawClient.connect(runtime.port("imap")) for _ in range(2)]
    for client in (a, b):
        await client.login()
    await a.cmd(b"a1", b"SELECT INBOX")
    await b.cmd(b"b1", b"SELECT INBOX")
    await b.cmd(b"b2", b"UID STORE 10 +FLAGS.SILENT (\\Deleted)")
    await b.cmd(b"b3", b"EXPUNGE")        # MODSEQs 16 and 17
    # A hears of the expunge during a FETCH: it is held back, message 8 stays.
    assert await a.cmd(b"a2", b"FETCH 8 (FLAGS)") == (
        b"* 8 FETCH (FLAGS (\\Recent))\r\na2 OK FETCH completed\r\n")
    assert await a.cmd(b"a3", b"FETCH 8 (MODSEQ)") == (
        b"* OK [HIGHESTMODSEQ 15] highest mod-sequence\r\n* 8 FETCH (MODSEQ (11))\r\n"
        b"a3 OK FETCH completed\r\n")
    assert await a.cmd(b"a4", b"NOOP") == b"* 8 EXPUNGE\r\na4 OK NOOP completed\r\n"
    assert await a.cmd(b"a5", b"ENABLE QRESYNC") == b"* ENABLED QRESYNC\r\na5 OK ENABLE completed\r\n"
    # Now told everything: EXPUNGE's tagged OK says 17.
    assert await a.cmd(b"a6", b"EXPUNGE") == b"a6 OK [HIGHESTMODSEQ 17] EXPUNGE completed\r\n"
    reply = await a.cmd(b"a7", b"SELECT INBOX (QRESYNC (%b 15))" % uv)
    assert reply.endswith(b"* OK [HIGHESTMODSEQ 17] highest mod-sequence\r\n"
                          b"* OK [MAILBOXID (%b)] mailbox id\r\n" % await inbox_mailbox_id(runtime)
                          + b"* VANISHED (EARLIER) 10\r\na7 OK [READ-WRITE] SELECT completed\r\n"), reply
    for client in (a, b):
        await client.close()


async def test_sort_with_a_modseq_key_ends_in_the_highest_modseq(runtime: ServerRuntime) -> None:
    """RFC 7162 §3.1.5: SORT with a MODSEQ criterion answers like SEARCH, ending in the
    highest MODSEQ of what it found (none when nothing matched); ESORT carries the item."""
    await build_inbox(runtime)
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"s0", b"SELECT INBOX")
    # MODSEQs in message order: 2 13 4 12 7 8 13 11; at least 11: messages 2, 4, 7, 8, whose
    # subjects m2 m5 m9 m10 sort in reverse as m9 m5 m2 m10.
    assert await c.cmd(b"s1", b"SORT (REVERSE SUBJECT) UTF-8 MODSEQ 11") == (
        b"* OK [HIGHESTMODSEQ 15] highest mod-sequence\r\n"
        b"* SORT 7 4 2 8 (MODSEQ 13)\r\ns1 OK SORT completed\r\n")
    assert await c.cmd(b"s2", b"UID SORT (ARRIVAL) UTF-8 MODSEQ 100") == (
        b"* SORT\r\ns2 OK SORT completed\r\n")
    assert await c.cmd(b"s3", b"SORT RETURN (MIN COUNT) (REVERSE SUBJECT) UTF-8 MODSEQ 11") == (
        b'* ESEARCH (TAG "s3") MIN 7 COUNT 4 MODSEQ 13\r\ns3 OK SORT completed\r\n')
    await c.close()
