"""ESEARCH and CONTEXT=SEARCH with CONDSTORE, over the wire, on the mailbox whose history
`test_imap_condstore.build_inbox` makes: message numbers 1-8 are UIDs 1 2 3 5 6 7 9 10 with
MODSEQs 2 13 4 12 7 8 13 11, HIGHESTMODSEQ 15.

- RFC 4731 §3.2: a SEARCH with RETURN options and a MODSEQ key ends its ESEARCH line in
  MODSEQ: the MIN or MAX message's own when one comes alone, the higher of the two for MIN
  and MAX alone, the highest of every match otherwise; none when nothing matched.
- RFC 5267 §4.3: an updating search reports changes to the set "that would be returned by an
  unmodified searching command", nothing else: a message enters a MODSEQ key's result when
  its MODSEQ grows past the key's — also when its flags end where they were — and its ADDTO
  and REMOVEFROM carry no MODSEQ.
"""

from __future__ import annotations

import pytest

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient
from .test_imap_condstore import build_inbox

HIGHEST = b"* OK [HIGHESTMODSEQ 15] highest mod-sequence\r\n"

#: (command, its untagged responses). Matches of MODSEQ 5: 2 4 5 6 7 8 (MODSEQs 13 12 7 8 13
#: 11); of MODSEQ 5 in 5:8: 5 6 7 8 (7 8 13 11), where MIN and MAX alone differ from all.
CASES: list[tuple[bytes, bytes]] = [
    (b"SEARCH RETURN (MIN) MODSEQ 5", b'* ESEARCH (TAG "t") MIN 2 MODSEQ 13\r\n'),
    (b"SEARCH RETURN (MAX) MODSEQ 5", b'* ESEARCH (TAG "t") MAX 8 MODSEQ 11\r\n'),
    (b"SEARCH RETURN (MIN MAX) MODSEQ 5 5:8", b'* ESEARCH (TAG "t") MIN 5 MAX 8 MODSEQ 11\r\n'),
    (b"SEARCH RETURN (MIN) MODSEQ 5 5:8", b'* ESEARCH (TAG "t") MIN 5 MODSEQ 7\r\n'),
    # COUNT (alone or not) and ALL speak of every match: the highest is message 7's.
    (b"SEARCH RETURN (COUNT) MODSEQ 5 5:8", b'* ESEARCH (TAG "t") COUNT 4 MODSEQ 13\r\n'),
    (b"SEARCH RETURN (MIN COUNT) MODSEQ 5 5:8",
     b'* ESEARCH (TAG "t") MIN 5 COUNT 4 MODSEQ 13\r\n'),
    (b"SEARCH RETURN () MODSEQ 5", b'* ESEARCH (TAG "t") ALL 2,4:8 MODSEQ 13\r\n'),
    (b'UID SEARCH RETURN (MAX) MODSEQ "/flags/\\\\draft" all 5 UNDRAFT',
     b'* ESEARCH (TAG "t") UID MAX 10 MODSEQ 11\r\n'),
    # Nothing matched: no MODSEQ (and COUNT 0 still comes, RFC 4731 §3.1).
    (b"SEARCH RETURN (MIN COUNT) MODSEQ 16", b'* ESEARCH (TAG "t") COUNT 0\r\n'),
    (b"SEARCH RETURN (MAX) MODSEQ 16", b'* ESEARCH (TAG "t")\r\n'),
    # SAVE alone answers nothing; "$" holds the matches all the same.
    (b"SEARCH RETURN (SAVE) MODSEQ 12", b""),
    (b"UID SEARCH RETURN (ALL) $", b'* ESEARCH (TAG "t") UID ALL 2,5,9\r\n'),
    # Without a MODSEQ key no MODSEQ item, CONDSTORE on or not.
    (b"SEARCH RETURN (MIN MAX) ALL", b'* ESEARCH (TAG "t") MIN 1 MAX 8\r\n'),
]


@pytest.mark.parametrize("plain_select", [True, False], ids=["enabled-by-search", "enabled"])
async def test_esearch_modseq_item(runtime: ServerRuntime, plain_select: bool) -> None:
    await build_inbox(runtime)
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"s", b"SELECT INBOX" if plain_select else b"SELECT INBOX (CONDSTORE)")
    for n, (command, wanted) in enumerate(CASES):
        if n == 0 and plain_select:
            wanted = HIGHEST + wanted  # RFC 7162 §3.1: the enabling command says it first
        assert await c.cmd(b"t", command) == wanted + b"t OK SEARCH completed\r\n", command
    await c.close()


async def test_updating_search_with_a_modseq_key(runtime: ServerRuntime) -> None:
    await build_inbox(runtime)
    a = await RawClient.connect(runtime.port("imap"))
    await a.login()
    b = await RawClient.connect(runtime.port("imap"))
    await b.login()
    await a.cmd(b"a1", b"SELECT INBOX")
    await b.cmd(b"b1", b"SELECT INBOX")
    assert await a.cmd(b"a2", b"SEARCH RETURN (UPDATE COUNT) MODSEQ 16") == (
        HIGHEST + b'* ESEARCH (TAG "a2") COUNT 0\r\na2 OK SEARCH completed\r\n')
    # Another session flags message 3: MODSEQ 16, it now matches; ADDTO after the FETCH that
    # tells of the change, with no MODSEQ of its own.
    await b.cmd(b"b2", b"UID STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert await a.cmd(b"a3", b"NOOP") == (
        b"* 3 FETCH (UID 3 FLAGS (\\Seen \\Flagged \\Recent) MODSEQ (16))\r\n"
        b'* ESEARCH (TAG "a2") ADDTO (0 3)\r\na3 OK NOOP completed\r\n')
    # A change undone before this session looks: the flags are as they were, the MODSEQ (18)
    # is not, so message 4 joins the result.
    await b.cmd(b"b3", b"UID STORE 5 +FLAGS.SILENT (\\Answered)")
    await b.cmd(b"b4", b"UID STORE 5 -FLAGS.SILENT (\\Answered)")
    assert await a.cmd(b"a4", b"NOOP") == (
        b'* ESEARCH (TAG "a2") ADDTO (0 4)\r\na4 OK NOOP completed\r\n')
    # A second, UID, updating search: its answer has the MODSEQ item, its updates do not.
    assert await a.cmd(b"a5", b"UID SEARCH RETURN (UPDATE MIN) MODSEQ 17") == (
        b'* ESEARCH (TAG "a5") UID MIN 5 MODSEQ 18\r\na5 OK SEARCH completed\r\n')
    # This session's own STORE moves message 8 (UID 10) into both results.
    assert await a.cmd(b"a6", b"STORE 8 +FLAGS.SILENT (\\Seen)") == (
        b"* 8 FETCH (UID 10 MODSEQ (19))\r\n"
        b'* ESEARCH (TAG "a2") ADDTO (0 8)\r\n* ESEARCH (TAG "a5") UID ADDTO (0 10)\r\n'
        b"a6 OK STORE completed\r\n")
    # An expunge from elsewhere: REMOVEFROM while the number still holds, then VANISHED
    # (QRESYNC on) — never during a FETCH, where the expunge itself must wait too.
    assert await a.cmd(b"a7", b"ENABLE QRESYNC") == b"* ENABLED QRESYNC\r\na7 OK ENABLE completed\r\n"
    await b.cmd(b"b5", b"UID STORE 3,10 +FLAGS.SILENT (\\Deleted)")
    await b.cmd(b"b6", b"EXPUNGE")
    assert await a.cmd(b"a8", b"FETCH 1 (MODSEQ)") == (
        b"* 1 FETCH (UID 1 MODSEQ (2))\r\na8 OK FETCH completed\r\n")
    assert await a.cmd(b"a9", b"NOOP") == (
        b'* ESEARCH (TAG "a2") REMOVEFROM (0 3,8)\r\n* ESEARCH (TAG "a5") UID REMOVEFROM (0 10)\r\n'
        b"* VANISHED 3,10\r\na9 OK NOOP completed\r\n")
    # Cancelled: no more updates for a2; a5 still follows.
    assert await a.cmd(b"c1", b'CANCELUPDATE "a2"') == b"c1 OK CANCELUPDATE completed, no further updates\r\n"
    await b.cmd(b"b7", b"UID STORE 1 +FLAGS.SILENT (\\Answered)")
    assert await a.cmd(b"c2", b"NOOP") == (
        b"* 1 FETCH (UID 1 FLAGS (\\Answered \\Recent) MODSEQ (22))\r\n"
        b'* ESEARCH (TAG "a5") UID ADDTO (0 1)\r\nc2 OK NOOP completed\r\n')
    await a.close()
    await b.close()
