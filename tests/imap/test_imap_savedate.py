"""SAVEDATE (RFC 8514) over a real socket, after the RFC's examples (§4.2 FETCH SAVEDATE,
§4.3 SAVEDBEFORE/SAVEDON/SAVEDSINCE and SAVEDATESUPPORTED): the save date is the moment of
APPEND whatever INTERNALDATE was given, COPY and MOVE give the copy the moment of the copy,
and the searches compare the save date's day (UTC, as BEFORE/ON/SINCE the internal date's)."""

from __future__ import annotations

import types
from datetime import datetime, timezone

import pytest

from rmail.server.core.postgres import mail as pg_mail
from rmail.server.core.sqlite import mail as sqlite_mail
from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

MSG = (b"Subject: Re: Meeting\r\nFrom: Bob <bob@example.com>\r\n"
       b"Date: Tue, 20 Mar 2018 03:07:37 +1100\r\n\r\nTue is fine\r\n")
#: RFC 8514 §4.2's example save date, "01-Jan-2015 18:50:53 +0100", which rmail sends in UTC.
SAVED = datetime(2015, 1, 1, 17, 50, 53, tzinfo=timezone.utc).timestamp()
COPIED = datetime(2017, 2, 1, 10, 0, 0, tzinfo=timezone.utc).timestamp()
MOVED = datetime(2017, 2, 2, 23, 59, 59, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The store's wall clock, which stamps save dates."""
    c = Clock(SAVED)
    fake = types.SimpleNamespace(time=c.time)
    for module in (sqlite_mail, pg_mail):
        monkeypatch.setattr(module, "time", fake)
    return c


async def _append(c: RawClient, tag: bytes, box: bytes = b"inbox") -> None:
    reply = await c.cmd(tag, b'append %b "20-Mar-2018 03:07:37 +1100" {%d+}\r\n%b' % (box, len(MSG), MSG))
    assert tag + b" OK [APPENDUID " in reply, reply


async def test_fetch_and_search_savedate_after_copy_and_move(runtime: ServerRuntime, clock: Clock) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"c", b"create Archive")
    await _append(c, b"a1")
    await _append(c, b"a2")
    assert (await c.cmd(b"s", b"select inbox")).endswith(b"s OK [READ-WRITE] SELECT completed\r\n")
    # §4.2: the save date, unlike the INTERNALDATE APPEND was given.
    assert await c.cmd(b"A001", b"FETCH 1 (SAVEDATE INTERNALDATE)") == (
        b'* 1 FETCH (SAVEDATE "01-Jan-2015 17:50:53 +0000" INTERNALDATE "19-Mar-2018 16:07:37 +0000")\r\n'
        b"A001 OK FETCH completed\r\n")
    clock.now = COPIED
    assert (await c.cmd(b"A002", b"UID COPY 1 Archive")).startswith(b"A002 OK [COPYUID ")
    clock.now = MOVED
    assert (await c.cmd(b"A003", b"UID MOVE 2 Archive")).startswith(b"* OK [COPYUID ")
    assert (await c.cmd(b"A004", b"select Archive")).endswith(b"A004 OK [READ-WRITE] SELECT completed\r\n")
    # The copies were saved when copied and moved; INTERNALDATE is the original's.
    assert await c.cmd(b"A005", b"UID FETCH 1:* (SAVEDATE INTERNALDATE)") == (
        b'* 1 FETCH (UID 1 SAVEDATE "01-Feb-2017 10:00:00 +0000" INTERNALDATE "19-Mar-2018 16:07:37 +0000")\r\n'
        b'* 2 FETCH (UID 2 SAVEDATE "02-Feb-2017 23:59:59 +0000" INTERNALDATE "19-Mar-2018 16:07:37 +0000")\r\n'
        b"A005 OK FETCH completed\r\n")
    # §4.3: the save date's day, disregarding time; BEFORE/ON/SINCE look at INTERNALDATE.
    assert await c.cmd(b"A006", b"SEARCH SAVEDBEFORE 2-Feb-2017") == b"* SEARCH 1\r\nA006 OK SEARCH completed\r\n"
    assert await c.cmd(b"A007", b"SEARCH SAVEDON 2-Feb-2017") == b"* SEARCH 2\r\nA007 OK SEARCH completed\r\n"
    assert await c.cmd(b"A008", b"SEARCH SAVEDSINCE 1-Feb-2017") == b"* SEARCH 1 2\r\nA008 OK SEARCH completed\r\n"
    assert await c.cmd(b"A009", b"SEARCH SAVEDSINCE 3-Feb-2017") == b"* SEARCH\r\nA009 OK SEARCH completed\r\n"
    assert await c.cmd(b"A010", b"SEARCH SAVEDSINCE 28-Dec-2014 ON 19-Mar-2018") == (
        b"* SEARCH 1 2\r\nA010 OK SEARCH completed\r\n")
    assert await c.cmd(b"A011", b"UID SEARCH SAVEDATESUPPORTED") == b"* SEARCH 1 2\r\nA011 OK SEARCH completed\r\n"
    assert await c.cmd(b"A012", b"SEARCH RETURN (COUNT) OR SAVEDON 1-Feb-2017 SAVEDBEFORE 1-Jan-2016") == (
        b'* ESEARCH (TAG "A012") COUNT 1\r\nA012 OK SEARCH completed\r\n')
    # The original in INBOX keeps its own save date.
    await c.cmd(b"A013", b"examine inbox")
    assert await c.cmd(b"A014", b"FETCH 1 SAVEDATE") == (
        b'* 1 FETCH (SAVEDATE "01-Jan-2015 17:50:53 +0000")\r\nA014 OK FETCH completed\r\n')
    await c.close()


async def test_a_message_arriving_while_selected_has_its_save_date(runtime: ServerRuntime, clock: Clock) -> None:
    """The session's map learns save dates from the change feed too, not only from SELECT."""
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.cmd(b"s", b"select inbox")
    clock.now = COPIED
    await _append(c, b"a1")                  # announced by EXISTS after the APPEND
    assert await c.cmd(b"f", b"FETCH 1 (SAVEDATE)") == (
        b'* 1 FETCH (SAVEDATE "01-Feb-2017 10:00:00 +0000")\r\nf OK FETCH completed\r\n')
    await c.close()


@pytest.mark.parametrize("bad", [b"SEARCH SAVEDON", b"SEARCH SAVEDON 31-Feb-2017", b"SEARCH SAVEDSINCE yesterday",
                                 b"SEARCH SAVEDATESUPPORTED 1-Feb-2017", b"FETCH 1 (SAVEDATE[])"])
async def test_bad_savedate_syntax_is_bad(runtime: ServerRuntime, bad: bytes) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await _append(c, b"a")
    await c.cmd(b"s", b"select inbox")
    assert (await c.cmd(b"x", bad)).startswith(b"x BAD "), bad
    await c.close()
