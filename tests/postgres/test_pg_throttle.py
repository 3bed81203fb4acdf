"""The failed-login ledger (storage.FailureLedger) on PostgreSQL, against a real database, and
the embedded backend's in-memory one through the same tests: the reference behaviour.

Time is moved by hand: the memory ledger's clock is a fake one, and the PostgreSQL rows are
dated back by the same amount (the ledger reads the database's clock).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

import pytest

from rmail.server.core.postgres import PostgresBackend
from rmail.server.core.sqlite.throttle import MemoryFailureLedger
from rmail.server.core.storage import Bucket, FailureLedger

from .nodes import Opener, pg_open  # noqa: F401 - pg_open is a fixture

PERIOD = 300.0
#: Long enough that the few milliseconds a test takes leak nothing that matters.
FOREVER = 1e7


def about(level: float) -> object:
    """A level, give or take what the seconds a slow test run takes leak on the database's
    clock (every rule below leaks at most 0.02 a second)."""
    return pytest.approx(level, abs=0.05)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Ledgers:
    """Two nodes' ledgers on one store (the memory ledger: the same one twice), and hands on
    the store that the contract does not give."""

    a: FailureLedger
    b: FailureLedger
    age: Callable[[float], Awaitable[None]]         #: as if this many seconds passed
    rows: Callable[[], Awaitable[int]]              #: counters stored
    known_rows: Callable[[], Awaitable[int]]


async def _memory() -> Ledgers:
    clock = Clock()
    ledger = MemoryFailureLedger(clock=clock)

    async def age(seconds: float) -> None:
        clock.now += seconds

    async def rows() -> int:
        return len(ledger)

    async def known_rows() -> int:
        return len(ledger._known)
    return Ledgers(ledger, ledger, age, rows, known_rows)


async def _postgres(pg_open: Opener) -> Ledgers:
    a, b = await pg_open(), await pg_open()

    async def age(seconds: float) -> None:
        async with a.db.pool.acquire() as conn:
            await conn.execute("UPDATE login_failures SET stamp = stamp - $1,"
                               " locked_until = CASE WHEN locked_until > 0 THEN locked_until - $1 ELSE 0 END",
                               seconds)
            await conn.execute("UPDATE login_known SET until = until - $1", seconds)

    async def count(table: str) -> int:
        async with a.db.pool.acquire() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    return Ledgers(a.login_failures, b.login_failures, age, lambda: count("login_failures"),
                   lambda: count("login_known"))


@pytest.fixture(params=["memory", "postgres"])
def opener(request: pytest.FixtureRequest) -> Opener | None:
    return None if request.param == "memory" else request.getfixturevalue("pg_open")


@pytest.fixture
async def ledgers(opener: Opener | None) -> Ledgers:
    return await _memory() if opener is None else await _postgres(opener)


async def test_failures_count_up_then_lock_once(ledgers: Ledgers) -> None:
    led = ledgers.a
    bucket = Bucket("pair\x00192.0.2.1\x00bob@example.com", 3, PERIOD)
    first = (await led.fail([bucket]))[bucket.key]
    second = (await led.fail([bucket]))[bucket.key]
    assert first.level == about(1) and not first.locked_for and not first.started
    assert second.level == about(2) and not second.started
    third = (await led.fail([bucket]))[bucket.key]
    assert third.started and third.level == 0 and third.locked_for == pytest.approx(PERIOD, abs=1)
    # A failure recorded during the lock (a known pair's, or one in flight) counts from 0
    # and does not claim the lock.
    fourth = (await led.fail([bucket]))[bucket.key]
    assert not fourth.started and fourth.level == about(1) and fourth.locked_for > 0
    assert first.version < second.version < third.version < fourth.version


async def test_a_limit_of_one_locks_on_the_first_failure(ledgers: Ledgers) -> None:
    bucket = Bucket("account\x00bob@example.com", 1, 60)
    tally = (await ledgers.a.fail([bucket]))[bucket.key]
    assert tally.started and tally.locked_for == pytest.approx(60, abs=1)


async def test_each_key_counts_apart_with_its_own_rule(ledgers: Ledgers) -> None:
    buckets = [Bucket("pair\x00a\x00u", 2, PERIOD), Bucket("address\x00a", 5, PERIOD), Bucket("account\x00u", 9, 600)]
    await ledgers.a.fail(buckets)
    out = await ledgers.a.fail(buckets)
    assert out[buckets[0].key].started
    assert out[buckets[1].key].level == about(2) and not out[buckets[1].key].started
    seen = await ledgers.b.look([b.key for b in buckets] + ["address\x00elsewhere"], buckets[0].key)
    assert set(seen.counts) == {b.key for b in buckets}
    assert seen.counts[buckets[0].key].locked_for > 0
    assert seen.counts[buckets[2].key].level == about(2)
    assert seen.counts[buckets[2].key].version == out[buckets[2].key].version


async def test_look_changes_nothing(ledgers: Ledgers) -> None:
    seen = await ledgers.a.look(["pair\x00a\x00u", "address\x00a", "account\x00u"], "pair\x00a\x00u")
    assert seen.counts == {} and seen.known_for == 0
    assert await ledgers.rows() == 0 and await ledgers.known_rows() == 0


async def test_counts_leak_and_locks_end(ledgers: Ledgers) -> None:
    slow = Bucket("address\x00a", 10, 1000)      # leaks 10 per 1000 s: 1 every 100 s
    for _ in range(6):
        await ledgers.a.fail([slow])
    await ledgers.age(300)
    assert (await ledgers.b.look([slow.key], "")).counts[slow.key].level == about(3)
    await ledgers.age(1000)
    leaked = (await ledgers.b.look([slow.key], "")).counts.get(slow.key)
    assert leaked is None or leaked.level == 0
    lock = Bucket("pair\x00a\x00u", 1, 50)
    assert (await ledgers.a.fail([lock]))[lock.key].started
    await ledgers.age(20)
    assert (await ledgers.b.look([lock.key], "")).counts[lock.key].locked_for == pytest.approx(30, abs=1)
    await ledgers.age(31)
    assert (await ledgers.b.look([lock.key], "")).counts[lock.key].locked_for == 0
    # The next failure after the lock counts from what is left (nothing): no new lock yet.
    after = Bucket("pair\x00a\x00u", 2, 50)
    tally = (await ledgers.a.fail([after]))[after.key]
    assert tally.level == about(1) and not tally.started and tally.locked_for == 0


async def test_success_clears_the_pair_and_marks_it_known(ledgers: Ledgers) -> None:
    pair = Bucket("pair\x00a\x00u", 3, PERIOD)
    before = (await ledgers.a.fail([pair]))[pair.key]
    await ledgers.b.succeed(pair.key, 3600)
    seen = await ledgers.a.look([pair.key], pair.key)
    cleared = seen.counts[pair.key]
    assert cleared.level == 0 and cleared.locked_for == 0 and cleared.version > before.version
    assert seen.known_for == pytest.approx(3600, abs=1)
    # A shorter mark never shortens a longer one.
    await ledgers.a.succeed(pair.key, 60)
    assert (await ledgers.b.look([], pair.key)).known_for == pytest.approx(3600, abs=1)
    await ledgers.age(3601)
    assert (await ledgers.b.look([], pair.key)).known_for == 0


async def test_success_without_failures_stores_no_counter(ledgers: Ledgers) -> None:
    await ledgers.a.succeed("pair\x00a\x00u", 3600)
    assert await ledgers.rows() == 0
    assert (await ledgers.b.look(["pair\x00a\x00u"], "pair\x00a\x00u")).known_for > 0


async def test_worthless_rows_are_swept(ledgers: Ledgers) -> None:
    for i in range(12):
        await ledgers.a.fail([Bucket(f"address\x00198.51.100.{i}", 5, 100)])
        await ledgers.a.succeed(f"pair\x00198.51.100.{i}\x00u", 50)
    assert await ledgers.rows() == 12 and await ledgers.known_rows() == 12
    # Leaked to 0 after 20 s (1 failure, 5 per 100 s), kept one more period for nodes that
    # still remember the count: nothing is gone before that.
    await ledgers.age(100)
    await ledgers.b.fail([Bucket("address\x00203.0.113.1", 5, 100)])
    assert await ledgers.rows() == 13
    await ledgers.age(30)
    await ledgers.b.fail([Bucket("address\x00203.0.113.1", 5, 100)])
    await ledgers.b.succeed("pair\x00203.0.113.1\x00u", 50)
    assert await ledgers.rows() == 1 and await ledgers.known_rows() == 1


async def test_hostile_names_are_just_keys(ledgers: Ledgers) -> None:
    names = ["nul\x00in@the.middle", "\udcff\udcfe", "\U0001f600" * 320, "'; DROP TABLE login_failures; --", ""]
    buckets = [Bucket(f"account\x00{name}", 2, PERIOD) for name in names]
    await ledgers.a.fail(buckets)
    seen = await ledgers.b.look([b.key for b in buckets], buckets[0].key)
    assert {k: t.level for k, t in seen.counts.items()} == {b.key: about(1) for b in buckets}


async def test_concurrent_failures_lose_no_increment(ledgers: Ledgers) -> None:
    """Two nodes failing on the same keys at once: every failure counts, and each lock is
    claimed by exactly one of them (the memory ledger: calls interleaved on one loop)."""
    shared = Bucket("account\x00bob@example.com", 10, FOREVER)
    results = await asyncio.gather(*(
        (ledgers.a if i % 2 else ledgers.b).fail([Bucket(f"address\x00192.0.2.{i}", 3, FOREVER), shared])
        for i in range(45)))
    tallies = [r[shared.key] for r in results]
    assert sum(t.started for t in tallies) == 4                       # the 10th, 20th, 30th and 40th
    assert len({t.version for t in tallies}) == 45
    final = (await ledgers.a.look([shared.key], "")).counts[shared.key]
    assert final.level == about(5)
    assert final.version == max(t.version for t in tallies)


async def test_postgres_errors_become_temporary_failures(pg_open: Opener) -> None:
    from rmail.server.core.errors import TemporaryFailure
    node: PostgresBackend = await pg_open()
    ledger = node.login_failures
    await node.close()
    with pytest.raises(TemporaryFailure):
        await ledger.look(["address\x00a"], "")
    with pytest.raises(TemporaryFailure):
        await ledger.fail([Bucket("address\x00a", 3, PERIOD)])


async def test_nothing_to_record_is_no_error(ledgers: Ledgers) -> None:
    assert await ledgers.a.fail([]) == {}
    assert (await ledgers.a.look([], "")).counts == {}
