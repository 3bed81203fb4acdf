"""SORT and THREAD on large mailboxes: they give the event loop back, stop at the CPU budget,
and survive shapes that would break recursive code (a reply chain thousands deep)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import pytest

from rmail.server.core.slicing import Slicer
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config
from ..helpers.slicing import PauseCounter
from ..imap.conftest import RawClient


async def _fill(rt: ServerRuntime, count: int, make: Callable[[int], bytes]) -> None:
    """INBOX through the store, concurrent appends committed together."""
    account = await rt.accounts.get_user("alice@example.com")
    inbox = (await rt.store.get_mailbox(account.id, "INBOX")).id
    for start in range(0, count, 250):
        await asyncio.gather(*(rt.store.append(inbox, make(i))
                               for i in range(start, min(count, start + 250))))


async def _selected(rt: ServerRuntime) -> RawClient:
    client = await RawClient.connect(rt.port("imap"))
    await client.login()
    reply = await client.cmd(b"x", b"SELECT INBOX")
    assert reply.endswith(b"x OK [READ-WRITE] SELECT completed\r\n"), reply[-200:]
    return client


def _chain(i: int) -> bytes:
    """Message i replies to message i - 1 (In-Reply-To only); same subject, one date."""
    parent = f"In-Reply-To: <c{i - 1}@x>\r\n" if i else ""
    return (f"Message-ID: <c{i}@x>\r\n{parent}Subject: {'Re: ' if i else ''}chain\r\n"
            f"Date: Tue, 5 Mar 2024 10:00:00 +0000\r\n\r\nlink {i}\r\n").encode()


async def test_a_reply_chain_thousands_deep(tmp_path: Path) -> None:
    """3,000 messages each replying to the one before: one thread 3,000 deep, written as one
    chain of numbers (no recursion anywhere: Python's own limit is 1,000)."""
    count = 3000
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await _fill(rt, count, _chain)
        client = await _selected(rt)
        chain = b" ".join(b"%d" % n for n in range(1, count + 1))
        assert await client.cmd(b"t", b"THREAD REFERENCES UTF-8 ALL") == (
            b"* THREAD (" + chain + b")\r\nt OK THREAD completed\r\n")
        ordered = await client.cmd(b"o", b"THREAD ORDEREDSUBJECT UTF-8 ALL")
        assert ordered == (b"* THREAD (1 " + b"".join(b"(%d)" % n for n in range(2, count + 1))
                           + b")\r\no OK THREAD completed\r\n")
        assert await client.cmd(b"s", b"SORT (REVERSE SUBJECT DATE) UTF-8 ALL") == (
            b"* SORT " + chain + b"\r\ns OK SORT completed\r\n")
        await client.close()


async def test_reverse_delivery_of_a_deep_chain(tmp_path: Path) -> None:
    """Parents delivered after their children: each message links to a dummy that a later
    message fills; the loop check walks up from the new parent only when it must."""
    count = 1500
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await _fill(rt, count, lambda i: _chain(count - 1 - i))
        client = await _selected(rt)
        chain = b" ".join(b"%d" % n for n in range(count, 0, -1))
        assert await client.cmd(b"t", b"THREAD REFERENCES UTF-8 ALL") == (
            b"* THREAD (" + chain + b")\r\nt OK THREAD completed\r\n")
        await client.close()


def _plain(i: int) -> bytes:
    return (f"From: User {i % 7} <u{i % 7}@example.net>\r\nSubject: topic {i % 11}\r\n"
            f"Message-ID: <p{i}@x>\r\nReferences: <p{i // 2}@x>\r\n\r\nbody {i}\r\n").encode()


async def test_sort_and_thread_give_the_loop_back(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With every slice used up at once, each command gives the loop back at least once per
    message (counted at the slicer) and still answers completely."""
    count = 300
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await _fill(rt, count, _plain)
        client = await _selected(rt)
        pauses = PauseCounter(monkeypatch)
        for command in (b"SORT (DATE) UTF-8 ALL", b"SORT (REVERSE FROM SUBJECT) UTF-8 ALL",
                        b"UID SORT (DISPLAYFROM) UTF-8 ALL", b"THREAD REFERENCES UTF-8 ALL",
                        b"THREAD ORDEREDSUBJECT UTF-8 ALL"):
            before = pauses.count
            reply = await client.cmd(b"c", command)
            assert pauses.count - before >= count, (command, pauses.count - before)
            assert reply.endswith(b" completed\r\n") and b"c OK" in reply, reply[-100:]
            numbers = sorted(int(n) for n in reply.split(b"\r\n")[0].replace(b"(", b" ")
                             .replace(b")", b" ").split()[2:])
            assert numbers == list(range(1, count + 1)), command
        await client.close()


async def test_budget_stops_sort_and_thread(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A command over its CPU budget ends with NO [LIMIT] naming it; the session goes on."""
    config = make_config(tmp_path / "data", limits={"search_budget": 0.05})
    async with ServerRuntime(config, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await _fill(rt, 300, _plain)
        client = await _selected(rt)
        init = Slicer.__init__

        def expensive(self: Slicer, **kwargs: object) -> None:
            if kwargs.get("budget") is not None:  # the command's: each CPU reading 10 ms on
                ticks = iter(range(10**9))
                kwargs["cpu"] = lambda: next(ticks) * 0.01
            init(self, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(Slicer, "__init__", expensive)
        monkeypatch.setattr(Slicer, "due", lambda self: True)
        for tag, command, what in ((b"s", b"SORT (SUBJECT) UTF-8 ALL", b"SORT"),
                                   (b"t", b"THREAD REFERENCES UTF-8 ALL", b"THREAD")):
            assert await client.cmd(tag, command) == (
                tag + b" NO [LIMIT] this " + what + b" needs more than its budget of 0.05 s of"
                b" CPU time; narrow it down\r\n")
        monkeypatch.undo()
        assert await client.cmd(b"n", b"SORT (ARRIVAL) UTF-8 1:3") == (
            b"* SORT 1 2 3\r\nn OK SORT completed\r\n")
        await client.close()


async def test_huge_fields_are_read_only_so_far(runtime: ServerRuntime) -> None:
    """A 2 MB Subject and a References field of 20,000 msg-ids (the store keeps both whole):
    the base subject is taken from the first 16 KiB and compared on 1,024 characters, the
    References from its last 1,000 msg-ids, so one message is bounded work."""
    account = await runtime.accounts.get_user("alice@example.com")
    inbox = (await runtime.store.get_mailbox(account.id, "INBOX")).id
    await runtime.store.append(inbox, b"Message-ID: <root@x>\r\nSubject: zz\r\n\r\nroot\r\n")
    refs = b" ".join(b"<r%d@x>" % i for i in range(20_000)) + b" <root@x>"
    await runtime.store.append(inbox, b"Message-ID: <big@x>\r\nSubject: Re: " + b"a" * 2_000_000
                               + b" (fwd)\r\nReferences: " + refs + b"\r\n\r\nbig\r\n")
    await runtime.store.append(inbox, b"Subject: b\r\n\r\nsmall\r\n")
    client = await _selected(runtime)
    assert await client.cmd(b"s", b"SORT (SUBJECT) UTF-8 ALL") == (
        b"* SORT 2 3 1\r\ns OK SORT completed\r\n")
    assert await client.cmd(b"t", b"THREAD REFERENCES UTF-8 ALL") == (
        b"* THREAD (1 2)(3)\r\nt OK THREAD completed\r\n")
    await client.close()
