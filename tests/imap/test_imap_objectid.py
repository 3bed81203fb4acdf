"""OBJECTID (RFC 8474) over a real socket, after the RFC's examples (§4.1–§6): MAILBOXID in
CREATE, SELECT and STATUS, kept by RENAME and new after DELETE + CREATE; EMAILID shared by
copies; THREADID NIL; SEARCH EMAILID / THREADID."""

from __future__ import annotations

import re

from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

MSG = (b"Subject: Re: Meeting\r\nFrom: Bob <bob@example.com>\r\n"
       b"Date: Tue, 20 Mar 2018 03:07:37 +1100\r\n\r\nTue is fine\r\n")


def _id(reply: bytes, kind: bytes) -> bytes:
    m = re.search(kind + rb" \(([A-Za-z0-9_-]+)\)", reply)
    assert m is not None, reply
    return m.group(1)


async def test_mailboxid(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    alice = await runtime.accounts.get_user("alice@example.com")
    foo = _id(await c.cmd(b"3", b"create foo"), b"MAILBOXID")
    box = await runtime.store.get_mailbox(alice.id, "foo")
    assert foo == b"F%d-%d" % (box.id, box.uidvalidity)
    bar = await c.cmd(b"4", b"create bar")
    assert re.fullmatch(rb"4 OK \[MAILBOXID \((F[0-9-]+)\)\] CREATE completed\r\n", bar)
    assert _id(bar, b"MAILBOXID") != foo
    assert await c.cmd(b"5", b"create foo") == b"5 NO [ALREADYEXISTS] mailbox foo already exists\r\n"
    assert await c.cmd(b"6", b"status foo (mailboxid)") == (
        b'* STATUS "foo" (MAILBOXID (%b))\r\n6 OK STATUS completed\r\n' % foo)
    # RENAME keeps the id; SELECT reports it (RFC 8474 §4.2).
    assert await c.cmd(b"27", b"rename foo baz") == b"27 OK RENAME completed\r\n"
    select = await c.cmd(b"28", b"select baz")
    assert b"* OK [MAILBOXID (%b)] mailbox id\r\n28 OK [READ-WRITE]" % foo in select
    assert await c.cmd(b"29", b"status baz (MESSAGES MAILBOXID UIDNEXT)") == (
        b'* STATUS "baz" (MESSAGES 0 MAILBOXID (%b) UIDNEXT 1)\r\n29 OK STATUS completed\r\n' % foo)
    # A name deleted and created again is another mailbox: another id (§4: never reused).
    await c.cmd(b"30", b"unselect")
    await c.cmd(b"31", b"delete baz")
    again = _id(await c.cmd(b"32", b"create baz"), b"MAILBOXID")
    assert again != foo
    await c.close()


async def test_emailid_threadid_and_search(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"c", b"create foo")
    for tag in (b"5", b"6"):  # the same bytes twice: two messages, two ids
        reply = await c.cmd(tag, b'append inbox "20-Mar-2018 03:07:37 +1100" {%d+}\r\n%b'
                            % (len(MSG), MSG))
        assert reply.startswith(tag + b" OK [APPENDUID ")
    await c.cmd(b"s", b"select inbox")
    fetched = await c.cmd(b"11", b"UID FETCH 1:2 (EMAILID THREADID)")
    m = re.fullmatch(rb"\* 1 FETCH \(UID 1 EMAILID \((M[0-9a-f]+)\) THREADID NIL\)\r\n"
                     rb"\* 2 FETCH \(UID 2 EMAILID \((M[0-9a-f]+)\) THREADID NIL\)\r\n"
                     rb"11 OK FETCH completed\r\n", fetched)
    assert m is not None, fetched
    first, second = m.groups()
    assert first != second
    # A copy is the same message: the same EMAILID (RFC 8474 §5.1), in MOVE too.
    assert (await c.cmd(b"12", b"UID COPY 1 foo")).startswith(b"12 OK [COPYUID ")
    await c.cmd(b"12b", b"UID COPY 1 inbox")
    assert await c.cmd(b"13", b"FETCH 3 (EMAILID)") == (
        b"* 3 FETCH (EMAILID (%b))\r\n13 OK FETCH completed\r\n" % first)
    assert await c.cmd(b"27", b"search emailid " + first) == b"* SEARCH 1 3\r\n27 OK SEARCH completed\r\n"
    assert await c.cmd(b"27b", b"uid search or emailid %b emailid %b" % (first, second)) == \
        b"* SEARCH 1 2 3\r\n27b OK SEARCH completed\r\n"
    assert await c.cmd(b"27c", b"search not emailid " + first) == \
        b"* SEARCH 2\r\n27c OK SEARCH completed\r\n"
    assert await c.cmd(b"27d", b"search emailid Mnothing") == b"* SEARCH\r\n27d OK SEARCH completed\r\n"
    # THREADID is NIL for every message: nothing has one.
    assert await c.cmd(b"28", b"search threadid T64b478a75b7ea9") == \
        b"* SEARCH\r\n28 OK SEARCH completed\r\n"
    assert await c.cmd(b"29", b"search emailid M!x") == b"29 BAD expected an objectid\r\n"
    assert await c.cmd(b"29b", b"search emailid " + b"M" * 256) == b"29b BAD expected an objectid\r\n"
    await c.cmd(b"u", b"unselect")
    await c.cmd(b"s2", b"select foo")
    assert await c.cmd(b"14", b"UID FETCH 1 (EMAILID THREADID)") == (
        b"* 1 FETCH (UID 1 EMAILID (%b) THREADID NIL)\r\n14 OK FETCH completed\r\n" % first)
    await c.close()


async def test_emailid_of_a_file_backed_message(runtime: ServerRuntime) -> None:
    big = MSG + b"x" * (INLINE_BLOB_MAX + 100) + b"\r\n"
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"a", b"APPEND INBOX {%d+}\r\n%b" % (len(big), big))
    await c.cmd(b"s", b"SELECT INBOX")
    alice = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(alice.id, "INBOX")
    [meta] = await runtime.store.list_messages(inbox.id)
    # Streamed: the body from the file, EMAILID beside it.
    reply = await c.cmd(b"f", b"FETCH 1 (EMAILID BODY.PEEK[]<0.7> THREADID)")
    assert reply == (b"* 1 FETCH (EMAILID (M%b) BODY[]<0> {7}\r\nSubject THREADID NIL)\r\n"
                     b"f OK FETCH completed\r\n" % meta.blob_id.encode())
    await c.close()


async def test_emailid_in_every_search_path(runtime: ServerRuntime) -> None:
    """EMAILID and THREADID are keys of the one evaluator: SORT, THREAD, ESEARCH, ESORT and an
    updating search (CONTEXT=SEARCH, RFC 5267 §4.3) take them, and a copy that arrives later
    joins the updating result (it has the same EMAILID)."""
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    for tag in (b"a1", b"a2"):
        await c.cmd(tag, b"APPEND INBOX {%d+}\r\n%b" % (len(MSG), MSG))
    await c.cmd(b"s", b"SELECT INBOX")
    first = _id(await c.cmd(b"f", b"FETCH 1 (EMAILID)"), b"EMAILID")
    assert await c.cmd(b"1", b"SORT (ARRIVAL) UTF-8 OR EMAILID %b ALL" % first) == \
        b"* SORT 1 2\r\n1 OK SORT completed\r\n"
    assert await c.cmd(b"2", b"SORT (ARRIVAL) UTF-8 EMAILID " + first) == \
        b"* SORT 1\r\n2 OK SORT completed\r\n"
    assert await c.cmd(b"3", b"THREAD ORDEREDSUBJECT UTF-8 EMAILID " + first) == \
        b"* THREAD (1)\r\n3 OK THREAD completed\r\n"
    assert await c.cmd(b"4", b"THREAD REFERENCES UTF-8 THREADID T1") == \
        b"* THREAD\r\n4 OK THREAD completed\r\n"
    assert await c.cmd(b"5", b"SEARCH RETURN (COUNT ALL) EMAILID " + first) == \
        b'* ESEARCH (TAG "5") ALL 1 COUNT 1\r\n5 OK SEARCH completed\r\n'
    assert await c.cmd(b"6", b"SORT RETURN (MIN) (SUBJECT) UTF-8 NOT EMAILID " + first) == \
        b'* ESEARCH (TAG "6") MIN 2\r\n6 OK SORT completed\r\n'
    # An updating search: the copy of message 1 matches when it arrives.
    assert await c.cmd(b"7", b"UID SEARCH RETURN (ALL UPDATE) EMAILID " + first) == \
        b'* ESEARCH (TAG "7") UID ALL 1\r\n7 OK SEARCH completed\r\n'
    assert (await c.cmd(b"8", b"UID COPY 1 INBOX")).startswith(
        b'* 3 EXISTS\r\n* 3 RECENT\r\n* ESEARCH (TAG "7") UID ADDTO (0 3)\r\n8 OK [COPYUID ')
    await c.close()


async def test_mailboxid_with_list_status_and_condstore(runtime: ServerRuntime) -> None:
    """STATUS items come from one place, LIST-STATUS (RFC 5819) included; FETCH takes MODSEQ
    and EMAILID together."""
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    alice = await runtime.accounts.get_user("alice@example.com")
    box = await runtime.store.get_mailbox(alice.id, "Drafts")
    mid = b"F%d-%d" % (box.id, box.uidvalidity)
    assert await c.cmd(b"1", b'LIST "" Drafts RETURN (STATUS (MAILBOXID MESSAGES))') == (
        b'* LIST () "/" "Drafts"\r\n'
        b'* STATUS "Drafts" (MAILBOXID (%b) MESSAGES 0)\r\n1 OK LIST completed\r\n' % mid)
    await c.cmd(b"a", b"APPEND Drafts {%d+}\r\n%b" % (len(MSG), MSG))
    selected = await c.cmd(b"2", b"SELECT Drafts (CONDSTORE)")
    highest = (await runtime.store.status(box.id)).highestmodseq
    assert selected.endswith(b"* OK [HIGHESTMODSEQ %d] highest mod-sequence\r\n"
                             b"* OK [MAILBOXID (%b)] mailbox id\r\n"
                             b"2 OK [READ-WRITE] SELECT completed\r\n" % (highest, mid))
    [meta] = await runtime.store.list_messages(box.id)
    assert await c.cmd(b"3", b"FETCH 1 (MODSEQ EMAILID)") == (
        b"* 1 FETCH (MODSEQ (%d) EMAILID (M%b))\r\n3 OK FETCH completed\r\n"
        % (meta.modseq, meta.blob_id.encode()))
    await c.close()
