"""A costly SEARCH never holds the event loop, and stops at its CPU budget (issue 11).

The attack: one authenticated SEARCH with 300 `NOT BODY` keys on a 2,000-message mailbox used
to run on the loop for ~13 s while other clients' SMTP greetings waited up to 14 s. Here a probe
in another process measures SMTP greetings and IMAP NOOPs while that SEARCH runs; the search
must leave the loop to them every few milliseconds and end with NO [LIMIT] (or a correct
answer) once its budget is spent.

The evaluation itself (key at a time, chunked, sliced) must give exactly what the evaluation
before it gave: a Hypothesis property compares it with that code, kept below as the oracle.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from array import array
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_tz
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmail.server.core.errors import LimitExceeded
from rmail.server.core.model import Mailbox, MessageInfo
from rmail.server.core.slicing import OnePerKey, Slicer
from rmail.server.imap import commands as c
from rmail.server.imap import parser
from rmail.server.imap import search as search_module
from rmail.server.imap.search import search
from rmail.server.imap.selected import SelectedMailbox
from rmail.server.imap.wire import Frame
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config
from ..helpers.slicing import PauseCounter
from ..imap.conftest import RawClient

MESSAGES = 2000
KEYS = 300
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def message(i: int, rng: random.Random, lines: int = 60) -> bytes:
    body = "\r\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(lines))
    return (f"From: sender{i}@example.net\r\nTo: alice@example.com\r\nSubject: message {i}\r\n"
            f"Date: Tue, 5 Mar 2024 10:00:00 +0000\r\nMessage-ID: <{i}@example.net>\r\n\r\n"
            f"{body}\r\n").encode()


async def populate(rt: ServerRuntime, address: str, count: int) -> None:
    """Fill INBOX through the store (group commits), far faster than through SMTP."""
    account = await rt.accounts.get_user(address)
    inbox = (await rt.store.get_mailbox(account.id, "INBOX")).id
    rng = random.Random(11)
    for start in range(0, count, 250):
        await asyncio.gather(*(rt.store.append(inbox, message(i, rng))
                               for i in range(start, min(count, start + 250))))


def costly_search(tag: bytes = b"s") -> bytes:
    """300 body keys that match nothing, each negated: every message is scanned 300 times."""
    return tag + b" SEARCH " + b" ".join(b"NOT BODY zz%dq" % i for i in range(KEYS)) + b"\r\n"


@pytest.fixture
async def big(tmp_path: Path) -> AsyncIterator[ServerRuntime]:
    """A server whose alice has 2,000 messages; SEARCH may spend 1.5 s of CPU."""
    config = make_config(tmp_path / "data", limits={"search_budget": 1.5})
    async with ServerRuntime(config, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await populate(rt, "alice@example.com", MESSAGES)
        yield rt


async def selected(rt: ServerRuntime) -> RawClient:
    client = await RawClient.connect(rt.port("imap"))
    await client.login()
    reply = await client.cmd(b"x", b"SELECT INBOX")
    assert reply.endswith(b"x OK [READ-WRITE] SELECT completed\r\n"), reply[-200:]
    return client


# A probe in its own process (so it competes for nothing in the server's interpreter): a new
# SMTP connection's greeting and a NOOP on a logged-in IMAP connection, again and again, each
# with its completion time and latency, until stdin closes. Bounded: at most 2,000 rounds.
PROBE = r"""
import json, select, socket, sys, time
smtp, imap, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = socket.create_connection(("127.0.0.1", imap), timeout=30)
f = conn.makefile("rb")
f.readline()
conn.sendall(b"l LOGIN alice@example.com " + password.encode() + b"\r\n")
while not f.readline().startswith(b"l "):
    pass
print("ready", flush=True)
samples = []
for n in range(2000):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", smtp), timeout=30)
    s.makefile("rb").readline()
    s.close()
    t1 = time.perf_counter()
    conn.sendall(b"n%d NOOP\r\n" % n)
    while not f.readline().startswith(b"n%d " % n):
        pass
    t2 = time.perf_counter()
    samples.append((time.time(), t1 - t0, t2 - t1))
    if select.select([sys.stdin], [], [], 0.01)[0]:
        break
print(json.dumps(samples), flush=True)
"""


async def test_costly_search_leaves_the_loop_to_others(big: ServerRuntime) -> None:
    client = await selected(big)
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, str(big.port("smtp")), str(big.port("imap")), PASSWORD,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert probe.stdin is not None and probe.stdout is not None
    try:
        assert await asyncio.wait_for(probe.stdout.readline(), 30) == b"ready\n"
        start = time.time()
        await client.send(costly_search())
        reply = await client.until_tagged(b"s", timeout=120)
        end = time.time()
    finally:
        probe.stdin.close()
        out = await asyncio.wait_for(probe.stdout.read(), 60)
        await probe.wait()
        await client.close()
    duration = end - start
    # Either the budget stopped it, or it finished with the right answer (no message has zz).
    assert (reply.endswith(b"s NO [LIMIT] this SEARCH needs more than its budget of 1.5 s of CPU"
                           b" time; narrow it down\r\n")
            or reply == b"* SEARCH " + b" ".join(b"%d" % n for n in range(1, MESSAGES + 1))
            + b"\r\ns OK SEARCH completed\r\n"), reply[:200]
    assert duration > 1.0, f"the search took {duration:.2f} s: too little work to tell anything"
    during = [(smtp, noop) for done, smtp, noop in json.loads(out) if start < done < end]
    worst = max(max(s, n) for s, n in during)
    # Before: the loop was held for a whole 500-message batch at a time (a quarter of the
    # search or more), so a probe got a handful of answers, seconds late. Now it is answered
    # every few tens of milliseconds (measured: 29 rounds in 1.65 s, the slowest 30 ms; before:
    # 4 rounds in 3.1 s, the slowest 1.4 s); both bounds leave a wide margin.
    assert len(during) >= duration / 0.5, (len(during), duration)
    assert worst < duration / 5, (worst, duration)


async def test_budget_gives_no_limit_and_the_session_goes_on(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", limits={"search_budget": 0.05})
    async with ServerRuntime(config, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await populate(rt, "alice@example.com", 600)
        client = await selected(rt)
        reply = await client.cmd(b"s", costly_search()[2:-2])
        assert reply == (b"s NO [LIMIT] this SEARCH needs more than its budget of 0.05 s of CPU time;"
                         b" narrow it down\r\n")
        # Cheap searches still work on the same session: map keys, one text key.
        assert await client.cmd(b"a", b"SEARCH 1:3 UNSEEN") == b"* SEARCH 1 2 3\r\na OK SEARCH completed\r\n"
        assert await client.cmd(b"b", b"UID SEARCH HEADER Message-ID \"<17@\"") == \
            b"* SEARCH 18\r\nb OK SEARCH completed\r\n"
        assert await client.cmd(b"c", b"NOOP") == b"c OK NOOP completed\r\n"
        await client.close()


async def test_without_budget_the_costly_search_completes(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", limits={"search_budget": 0})
    async with ServerRuntime(config, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await populate(rt, "alice@example.com", 120)
        client = await selected(rt)
        reply = await client.cmd(b"s", costly_search()[2:-2] + b" BODY alpha")
        assert reply == (b"* SEARCH " + b" ".join(b"%d" % n for n in range(1, 121))
                         + b"\r\ns OK SEARCH completed\r\n")
        await client.close()


async def test_too_many_keys_is_refused_before_any_work(big: ServerRuntime) -> None:
    client = await selected(big)
    keys = b" ".join(b"BODY k%d" % i for i in range(parser.MAX_SEARCH_KEYS + 1))
    assert await client.cmd(b"k", b"SEARCH " + keys) == \
        b"k NO [LIMIT] too many search keys (at most 1000)\r\n"
    assert await client.cmd(b"n", b"NOOP") == b"n OK NOOP completed\r\n"
    await client.close()


async def test_fetch_and_store_of_many_messages_give_the_loop_back(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With every slice used up at once, FETCH and STORE give the loop back after each message
    (counted at the slicer: a loop that never yields would count nothing) and still answer
    completely and in order."""
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await populate(rt, "alice@example.com", 300)
        client = await selected(rt)
        pauses = PauseCounter(monkeypatch)
        for tag, command, line in (
                (b"f", b"FETCH 1:* (FLAGS)", b"* %d FETCH (FLAGS (\\Recent))\r\n"),
                (b"u", b"UID FETCH 1:* (RFC822.SIZE)", None),
                (b"t", b"STORE 1:* +FLAGS (\\Flagged)", b"* %d FETCH (FLAGS (\\Flagged \\Recent))\r\n")):
            before = pauses.count
            reply = await client.cmd(tag, command)
            assert pauses.count - before >= 300, (command, pauses.count - before)
            verb = b"STORE" if tag == b"t" else b"FETCH"
            lines = reply.split(b"\r\n")
            assert lines[-2:] == [tag + b" OK " + verb + b" completed", b""]
            assert [int(x.split()[1]) for x in lines[:-2]] == list(range(1, 301))
            if line is not None:
                assert reply == b"".join(line % n for n in range(1, 301)) + lines[-2] + b"\r\n"
        await client.close()


# -- the parser's bound ---------------------------------------------------------------------

def parse(line: bytes) -> c.Command:
    return parser.parse_command(Frame((line,)))


def test_key_count_counts_every_key_as_written() -> None:
    ok = parse(b"a SEARCH " + b" ".join(b"SEEN" for _ in range(parser.MAX_SEARCH_KEYS)))
    assert isinstance(ok, c.Search) and len(ok.key.keys) == parser.MAX_SEARCH_KEYS  # type: ignore[union-attr]
    half = parser.MAX_SEARCH_KEYS // 2
    assert isinstance(parse(b"a SEARCH " + b" ".join(b"NOT SEEN" for _ in range(half))), c.Search)
    for line in (b"a SEARCH " + b" ".join(b"NOT SEEN" for _ in range(half + 1)),
                 b"a UID SEARCH " + b"OR SEEN " * parser.MAX_SEARCH_DEPTH + b"SEEN",
                 b"a SEARCH (" + b" ".join(b"SEEN" for _ in range(parser.MAX_SEARCH_KEYS)) + b")"):
        with pytest.raises(parser.ParseError) as info:
            parse(line)
        if b"OR" in line:
            assert info.value.status == "BAD"  # the depth bound comes first here
        else:
            assert (info.value.tag, info.value.status, info.value.code) == ("a", "NO", "LIMIT")


# -- the slicer -----------------------------------------------------------------------------

class FakeClocks:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0


async def test_slicer_yields_when_due_and_meters_only_its_slices() -> None:
    clocks = FakeClocks()
    slicer = Slicer(budget=1.0, slice_seconds=0.005, clock=lambda: clocks.wall, cpu=lambda: clocks.cpu)
    assert not slicer.due()
    clocks.wall += 0.006
    clocks.cpu += 0.4
    assert slicer.due()
    await slicer.tick()
    assert (slicer.pauses, round(slicer.used, 3)) == (1, 0.4)
    await slicer.tick()                       # not due: nothing happens
    assert slicer.pauses == 1

    async def elsewhere() -> str:
        clocks.cpu += 5.0                     # other work while the command waits: not metered
        return "read"
    assert await slicer.wait(elsewhere()) == "read"
    assert round(slicer.used, 3) == 0.4
    clocks.cpu += 0.7
    with pytest.raises(LimitExceeded, match="budget of 1 s"):
        await slicer.pause()


async def test_slicer_refusing_a_wait_does_not_leak_the_coroutine() -> None:
    clocks = FakeClocks()
    slicer = Slicer(budget=0.1, clock=lambda: clocks.wall, cpu=lambda: clocks.cpu)
    clocks.cpu += 1.0
    started = []

    async def read() -> None:
        started.append(True)
    coro = read()
    with pytest.raises(LimitExceeded):
        await slicer.wait(coro)
    assert not started and coro.cr_frame is None  # closed, never run, no "never awaited"


async def test_one_holder_per_key() -> None:
    """One costly scan per user: a second one of the same user waits, another user's runs."""
    gate = OnePerKey()
    log: list[str] = []

    async def scan(key: str, name: str) -> None:
        async with gate.lock(key):
            log.append(f"{name} in")
            await asyncio.sleep(0.01)
            log.append(f"{name} out")

    await asyncio.gather(scan("alice", "a1"), scan("alice", "a2"), scan("bob", "b"))
    assert log.index("a1 out") < log.index("a2 in")
    assert log.index("b in") < log.index("a1 out")
    assert len(gate._locks) == 0  # nothing kept once nobody holds or waits


async def test_other_tasks_run_between_slices() -> None:
    """A loop of pure work with ticks lets a concurrent task in (counted, not timed)."""
    ran = 0
    stop = False

    async def other() -> None:
        nonlocal ran
        while not stop:
            ran += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    await asyncio.sleep(0)
    slicer = Slicer(slice_seconds=0.001)
    before = ran
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:
        sum(range(100))
        await slicer.tick()
    stop = True
    await task
    assert slicer.pauses >= 5 and ran - before >= slicer.pauses - 1


# -- the evaluation gives what the old one gave ----------------------------------------------
# The code below is the evaluation SEARCH used before it was sliced (prefilter closures plus a
# per-message tree walk), unchanged but for its imports: the oracle.

def _old_day(ts: float) -> date:
    return datetime.fromtimestamp(ts, timezone.utc).date()


def _old_compare(relation: str, day: date, target: date) -> bool:
    if relation == "before":
        return day < target
    if relation == "on":
        return day == target
    return day >= target


def old_prefilter(key: c.SearchKey, view: SelectedMailbox) -> Callable[[int], bool | None]:
    flags, sizes, dates, uids = view.flags, view.sizes, view.dates, view.uids
    if isinstance(key, c.SearchAll):
        return lambda i: True
    if isinstance(key, c.SearchFlag):
        flag, present = key.flag, key.present
        if present:
            return lambda i: flag in flags[i]
        return lambda i: flag not in flags[i]
    if isinstance(key, c.SearchRecent):
        return lambda i: view.is_recent(uids[i])
    if isinstance(key, c.SearchSeq):
        seqset = key.seqset
        if key.uid:
            largest = view.max_uid
            return lambda i: seqset.contains(uids[i], largest)
        exists = view.exists
        return lambda i: seqset.contains(i + 1, exists)
    if isinstance(key, c.SearchSize):
        limit = key.size
        if key.larger:
            return lambda i: sizes[i] > limit
        return lambda i: sizes[i] < limit
    if isinstance(key, c.SearchDate) and not key.sent:
        relation, target = key.relation, key.day
        return lambda i: _old_compare(relation, _old_day(dates[i]), target)
    if isinstance(key, c.SearchAnd):
        subs = [old_prefilter(k, view) for k in key.keys]

        def and_(i: int) -> bool | None:
            unknown = False
            for sub in subs:
                r = sub(i)
                if r is False:
                    return False
                if r is None:
                    unknown = True
            return None if unknown else True
        return and_
    if isinstance(key, c.SearchOr):
        left, right = old_prefilter(key.left, view), old_prefilter(key.right, view)

        def or_(i: int) -> bool | None:
            a = left(i)
            if a is True:
                return True
            b = right(i)
            if b is True:
                return True
            return None if (a is None or b is None) else False
        return or_
    if isinstance(key, c.SearchNot):
        inner = old_prefilter(key.key, view)

        def not_(i: int) -> bool | None:
            r = inner(i)
            return None if r is None else not r
        return not_
    return lambda i: None


def _old_header_values(info: MessageInfo, field: str) -> list[str]:
    prefix = field.casefold() + ":"
    out = []
    for line in info.header_text.split("\n"):
        if line[:len(prefix)].casefold() == prefix:
            out.append(line[len(prefix):].strip())
    return out


def old_matches(key: c.SearchKey, view: SelectedMailbox, i: int, info: MessageInfo | None,
                text: Callable[[], str]) -> bool:
    if isinstance(key, c.SearchHeader):
        if info is None:
            return False
        values = _old_header_values(info, key.field)
        if key.value == "":
            return bool(values)
        needle = key.value.casefold()
        return any(needle in v.casefold() for v in values)
    if isinstance(key, c.SearchBody):
        needle = key.value.casefold()
        if key.text and info is not None and needle in info.header_text.casefold():
            return True
        return needle in text()
    if isinstance(key, c.SearchDate) and key.sent:
        if info is None or info.date is None:
            return False
        # The day as the sender wrote it (RFC 3501 §6.4.4), read by the stdlib's own parser.
        written = parsedate_tz(_old_header_values(info, "date")[0])
        return _old_compare(key.relation, date(*written[:3]), key.day)
    if isinstance(key, c.SearchAnd):
        return all(old_matches(k, view, i, info, text) for k in key.keys)
    if isinstance(key, c.SearchOr):
        return (old_matches(key.left, view, i, info, text)
                or old_matches(key.right, view, i, info, text))
    if isinstance(key, c.SearchNot):
        return not old_matches(key.key, view, i, info, text)
    return bool(old_prefilter(key, view)(i))


def old_search(key: c.SearchKey, view: SelectedMailbox, infos: dict[int, MessageInfo],
               texts: dict[int, str]) -> list[int]:
    check = old_prefilter(key, view)
    hits = []
    for i in range(view.exists):
        r = check(i)
        if r is None:
            u = view.uids[i]
            r = old_matches(key, view, i, infos.get(u), lambda u=u: texts.get(u, ""))
        if r:
            hits.append(i)
    return hits


# Strategies: a small mailbox with every kind of column, and key trees over the same values.
SMALL_TEXT = st.text(alphabet="abAB é", max_size=6)
DAY0 = date(2024, 3, 1)
FLAGS = ("\\Seen", "\\Flagged", "\\Deleted", "$Label")


@st.composite
def mailboxes(draw: st.DrawFn) -> tuple[SelectedMailbox, dict[int, MessageInfo], dict[int, str]]:
    n = draw(st.integers(0, 14))
    uids = sorted(draw(st.sets(st.integers(1, 40), min_size=n, max_size=n)))
    view = SelectedMailbox(Mailbox(1, 1, "INBOX", None, 7, (uids[-1] if uids else 0) + 1, 1),
                           readonly=False)
    flags = [frozenset(draw(st.sets(st.sampled_from(FLAGS), max_size=3))) for _ in uids]
    sizes = [draw(st.integers(0, 300)) for _ in uids]
    dates = [datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp() + draw(st.integers(-3, 3)) * 86400
             + draw(st.integers(0, 86399)) for _ in uids]
    view.load_columns(array("I", uids), flags, array("Q", sizes), array("d", dates),
                      modseqs=array("Q", [draw(st.integers(1, 9)) for _ in uids]),
                      savedates=array("d", dates), recent_from=draw(st.one_of(st.none(), st.integers(1, 41))))
    infos: dict[int, MessageInfo] = {}
    texts: dict[int, str] = {}
    for u in uids:
        if draw(st.integers(0, 9)) == 0:
            continue  # expunged by another session meanwhile: the store returns nothing for it
        subject, sender = draw(SMALL_TEXT), draw(SMALL_TEXT)
        header = f"Subject: {subject}\nFrom: {sender}\nX-A: {draw(SMALL_TEXT)}"
        sent = draw(st.one_of(st.none(), st.integers(-3, 3)))
        when = None
        if sent is not None:  # stored as an instant in UTC; written in a zone of its own
            when = (datetime(2024, 3, 1, 12, tzinfo=timezone.utc)
                    + timedelta(days=sent, minutes=draw(st.integers(-720, 720))))
            zone = timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
            header += f"\nDate: {format_datetime(when.astimezone(zone))}"
        infos[u] = MessageInfo(u, b"", b"", b"", header, subject, sender, "", "", when, "", "", "", "")
        texts[u] = draw(SMALL_TEXT).casefold()
    return view, infos, texts


def seqsets() -> st.SearchStrategy[c.SeqSet]:
    number = st.one_of(st.just(c.STAR), st.integers(1, 45))
    return st.lists(st.tuples(number, number), min_size=1, max_size=4).map(lambda r: c.SeqSet(tuple(r)))


LEAVES = st.one_of(
    st.just(c.SearchAll()),
    st.builds(c.SearchFlag, st.sampled_from(FLAGS), st.booleans()),
    st.just(c.SearchRecent()),
    st.builds(c.SearchSeq, seqsets(), st.booleans()),
    st.builds(c.SearchSize, st.booleans(), st.integers(0, 300)),
    st.builds(c.SearchDate, st.sampled_from(("before", "on", "since")),
              st.integers(-4, 4).map(lambda d: DAY0 + timedelta(days=d)), st.booleans()),
    st.builds(c.SearchHeader, st.sampled_from(("subject", "from", "x-a", "to")), SMALL_TEXT),
    st.builds(c.SearchBody, SMALL_TEXT, st.booleans()),
)
KEYS_TREE = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, min_size=2, max_size=4).map(lambda ks: c.SearchAnd(tuple(ks))),
    st.builds(c.SearchOr, inner, inner),
    st.builds(c.SearchNot, inner),
), max_leaves=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(box=mailboxes(), key=KEYS_TREE, slices=st.sampled_from([0.0, 1.0]),
       chunks=st.sampled_from([(500, 32, 4096), (3, 2, 5), (1, 1, 2), (5, 2, 3)]))
def test_sliced_evaluation_gives_the_old_results(box, key, slices, chunks) -> None:  # noqa: ANN001
    view, infos, texts = box
    loads: list[int] = []

    async def load_info(uids: list[int]) -> dict[int, MessageInfo]:
        assert len(uids) <= search_module.CHUNK
        loads.extend(uids)
        return {u: infos[u] for u in uids if u in infos}

    async def load_text(uids: list[int]) -> dict[int, str]:
        return {u: texts[u] for u in uids if u in texts}

    async def run() -> list[int]:
        # slice 0: a pause after every step, so every resumption path is exercised.
        return await search(key, view, slicer=Slicer(slice_seconds=slices),
                            load_info=load_info, load_text=load_text)

    saved = search_module.CHUNK, search_module.EVAL_CHUNK, search_module.MAP_CHUNK
    search_module.CHUNK, search_module.EVAL_CHUNK, search_module.MAP_CHUNK = chunks
    try:
        got = asyncio.run(run())
    finally:
        search_module.CHUNK, search_module.EVAL_CHUNK, search_module.MAP_CHUNK = saved
    assert got == old_search(key, view, infos, texts)
    assert len(loads) == len(set(loads)), "a message's headers were loaded twice"
