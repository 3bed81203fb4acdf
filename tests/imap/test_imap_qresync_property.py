"""QRESYNC's promise as a property (RFC 7162 §3.2.5): a client that kept a mailbox as it was
at some earlier moment — its UIDVALIDITY, HIGHESTMODSEQ, and the UIDs and flags it knew —
and opens it again with ``SELECT mailbox (QRESYNC (uidvalidity modseq [known-uids]))`` ends up
with exactly what the server holds now, whatever happened in between.

Hypothesis writes the history through a second IMAP session over the real server (APPEND,
UID STORE, EXPUNGE, UID EXPUNGE, MOVE, DELETE and CREATE of the mailbox) and through the
store directly (what the REST API and the CLI do: flags replaced, messages deleted). At
random moments it notes the mailbox as a client would have it. At the end a QRESYNC client
resynchronises from every noted state over a socket, the way a client does:

- same UIDVALIDITY: drop the UIDs of ``* VANISHED (EARLIER)``, take the flags of each
  ``* n FETCH (UID u FLAGS (...) MODSEQ (m))``; with explicit known UIDs, fetch the flags of
  UIDs above the ones it knew (QRESYNC reports changes to known UIDs only);
- another UIDVALIDITY: the server must send neither (the cache is of another mailbox), and
  the client fetches everything anew.

Then the client's UIDs and flags, the EXISTS count and HIGHESTMODSEQ must equal the store's,
every FETCH's message number must be the UID's position, and no UID the server still holds
may have been reported as vanished.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.server import make_config

from .conftest import RawClient

FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "$todo"]
#: Sampled uniformly: appends most often, a new life of the mailbox rarely.
OPS = ["append"] * 5 + ["store"] * 3 + ["expunge", "uid-expunge", "move", "rest-flags",
                                       "rest-delete", "note", "note", "note", "recreate"]


@dataclass(frozen=True)
class Known:
    """What a client kept of the mailbox."""

    uidvalidity: int
    modseq: int
    messages: dict[int, frozenset[str]]


def uid_set(uids: list[int]) -> bytes:
    return b",".join(b"%d" % u for u in sorted(uids))


def expand(text: bytes) -> set[int]:
    out: set[int] = set()
    for part in text.split(b","):
        lo, _, hi = part.partition(b":")
        a, b = int(lo), int(hi or lo)
        out.update(range(min(a, b), max(a, b) + 1))
    return out


def flags_of(text: bytes) -> frozenset[str]:
    return frozenset(f for f in text.decode().split() if f != "\\Recent")


FETCH = re.compile(rb"\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\)(?: MODSEQ \((\d+)\))?\)\r\n")


class World:
    """One running server, a writing session and a resynchronising one."""

    def __init__(self, runtime: ServerRuntime, writer: RawClient, reader: RawClient,
                 user_id: int) -> None:
        self.runtime, self.writer, self.reader, self.user_id = runtime, writer, reader, user_id
        self.names = itertools.count()
        self.tags = itertools.count()

    async def cmd(self, client: RawClient, text: bytes) -> bytes:
        tag = b"t%d" % next(self.tags)
        reply = await client.cmd(tag, text)
        assert re.search(rb"^" + tag + rb" OK", reply, re.M), (text, reply)
        return reply

    async def truth(self, name: str) -> Known:
        snap = await self.runtime.store.snapshot(self.user_id, name)
        return Known(snap.mailbox.uidvalidity, snap.mailbox.highestmodseq,
                     dict(zip(snap.uids, snap.flags)))

    async def history(self, data: st.DataObject, name: str) -> list[Known]:
        store = self.runtime.store
        noted = [await self.truth(name)]
        await self.cmd(self.writer, b"SELECT " + name.encode())
        for _ in range(data.draw(st.integers(1, 20), label="steps")):
            op = data.draw(st.sampled_from(OPS), label="op")
            now = await self.truth(name)
            uids = sorted(now.messages)
            some = (data.draw(st.lists(st.sampled_from(uids), min_size=1, max_size=4), label="uids")
                    if uids else [])
            flags = data.draw(st.sets(st.sampled_from(FLAGS), max_size=2), label="flags")
            if op == "append":
                body = b"Subject: %d\r\n\r\nbody\r\n" % next(self.names)
                await self.cmd(self.writer, b"APPEND %b (%b) {%d+}\r\n%b" % (
                    name.encode(), " ".join(flags).encode(), len(body), body))
            elif op == "note":
                noted.append(now)
            elif op == "recreate":
                await self.cmd(self.writer, b"DELETE " + name.encode())
                await self.cmd(self.writer, b"CREATE " + name.encode())
                await self.cmd(self.writer, b"SELECT " + name.encode())
            elif not some:
                continue
            elif op == "store":
                mode = data.draw(st.sampled_from([b"+", b"-", b""]), label="mode")
                await self.cmd(self.writer, b"UID STORE %b %bFLAGS.SILENT (%b)" % (
                    uid_set(some), mode, " ".join(flags).encode()))
            elif op in ("expunge", "uid-expunge"):
                await self.cmd(self.writer, b"UID STORE %b +FLAGS.SILENT (\\Deleted)" % uid_set(some))
                await self.cmd(self.writer, b"EXPUNGE" if op == "expunge" else
                               b"UID EXPUNGE " + uid_set(some))
            elif op == "move":
                await self.cmd(self.writer, b"UID MOVE %b Archive" % uid_set(some))
            elif op == "rest-flags":
                box = await store.get_mailbox(self.user_id, name)
                await store.store_flags(box.id, sorted(set(some)), "set", flags)
            elif op == "rest-delete":
                box = await store.get_mailbox(self.user_id, name)
                await store.delete_messages(box.id, sorted(set(some)))
        return noted

    async def resync(self, data: st.DataObject, name: str, known: Known) -> None:
        cache = dict(known.messages)
        # all: names every UID it has; implied: names none (the server takes 1:UIDNEXT-1);
        # subset: kept only some messages, and names those.
        mode = data.draw(st.sampled_from(["all", "implied", "subset"]), label="known") \
            if cache else "implied"
        keep = None
        if mode == "subset":
            keep = data.draw(st.sets(st.sampled_from(sorted(cache)), min_size=1), label="subset")
            cache = {u: f for u, f in cache.items() if u in keep}
        arg = b"%d %d" % (known.uidvalidity, known.modseq)
        if mode != "implied":
            arg += b" " + uid_set(list(cache))
        reply = await self.cmd(self.reader, b"SELECT %b (QRESYNC (%b))" % (name.encode(), arg))
        now = await self.truth(name)
        order = sorted(now.messages)
        exists = int(re.search(rb"\* (\d+) EXISTS\r\n", reply).group(1))
        uidvalidity = int(re.search(rb"\[UIDVALIDITY (\d+)\]", reply).group(1))
        highest = int(re.search(rb"\[HIGHESTMODSEQ (\d+)\]", reply).group(1))
        assert (exists, uidvalidity, highest) == (len(order), now.uidvalidity, now.modseq)
        gone = re.findall(rb"\* VANISHED \(EARLIER\) (\S+)\r\n", reply)
        fetched = FETCH.findall(reply)
        start = None
        if uidvalidity != known.uidvalidity:
            assert not gone and not fetched, reply   # another life: nothing of the old one
            cache, keep, start = {}, None, 1
        elif mode == "all":
            start = max(known.messages) + 1         # QRESYNC reports known UIDs only
        vanished = expand(gone[0]) if gone else set()
        assert len(gone) <= 1 and not vanished & set(order), reply
        for uid in vanished:
            cache.pop(uid, None)
        for seq, uid, flags, modseq in fetched:
            assert order[int(seq) - 1] == int(uid) and int(modseq) > known.modseq, reply
            assert keep is None or int(uid) in keep, reply
            cache[int(uid)] = flags_of(flags)
        if start is not None and order:
            for seq, uid, flags, _ in FETCH.findall(
                    await self.cmd(self.reader, b"UID FETCH %d:* (FLAGS)" % start)):
                if int(uid) >= start:
                    cache[int(uid)] = flags_of(flags)
        if keep is not None:
            # What it did not name is not its to hear of; what it named matches the server.
            assert cache == {u: f for u, f in now.messages.items() if u in keep}, reply
        else:
            assert cache == now.messages, (mode, known, reply)


def test_qresync_from_any_earlier_state_ends_in_the_servers_state(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    runtime = ServerRuntime(make_config(tmp_path / "data"), auth_delay=0)

    async def start() -> World:
        await runtime.__aenter__()
        account = await runtime.accounts.add_user("alice@example.com", PASSWORD)
        writer = await RawClient.connect(runtime.port("imap"))
        reader = await RawClient.connect(runtime.port("imap"))
        for c in (writer, reader):
            await c.login()
        assert b"ENABLED QRESYNC" in await reader.cmd(b"e", b"ENABLE QRESYNC")
        return World(runtime, writer, reader, account.id)
    world = loop.run_until_complete(start())

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        async def one() -> None:
            name = f"Box{next(world.names)}"
            await world.cmd(world.writer, b"CREATE " + name.encode())
            for known in await world.history(data, name):
                await world.resync(data, name, known)
            await world.cmd(world.writer, b"UNSELECT")
        loop.run_until_complete(one())

    try:
        check()
    finally:
        async def stop() -> None:
            await world.writer.close()
            await world.reader.close()
            await runtime.__aexit__(None, None, None)
        loop.run_until_complete(stop())
        loop.close()
