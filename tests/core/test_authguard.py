"""AuthGuard on a fake clock: which counter locks when, what a success clears, reservations.

Every guard here runs twice: with its own tables only, and with the embedded store's failure
ledger behind them, as the runtime builds it: the semantics must be the same.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from rmail.server.core.authguard import (KNOWN_SECONDS, AuthGuard, GuardLimits, LoginLocked, address_key,
                                         log_quote)
from rmail.server.core.errors import AuthenticationFailed, TemporaryFailure
from rmail.server.core.events import AuthFailed, EventBus
from rmail.server.core.sqlite.throttle import MemoryFailureLedger

LIMITS = GuardLimits(pair_failures=3, address_failures=6, account_failures=8, lockout_seconds=300,
                     account_lockout_seconds=60, concurrent=2, base_delay=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["local", "ledger"])
def ledger(request: pytest.FixtureRequest, clock: Clock) -> MemoryFailureLedger | None:
    return MemoryFailureLedger(clock=clock) if request.param == "ledger" else None


@pytest.fixture
def guard(clock: Clock, ledger: MemoryFailureLedger | None) -> AuthGuard:
    return AuthGuard(LIMITS, clock=clock, ledger=ledger)


async def fail(guard: AuthGuard, peer: str, user: str) -> None:
    with pytest.raises(AuthenticationFailed):
        async with guard.attempt("imap", peer, user):
            raise AuthenticationFailed("invalid credentials")


async def succeed(guard: AuthGuard, peer: str, user: str) -> None:
    async with guard.attempt("imap", peer, user):
        pass


async def locked(guard: AuthGuard, peer: str, user: str) -> LoginLocked:
    with pytest.raises(LoginLocked) as err:
        async with guard.attempt("imap", peer, user):
            raise AssertionError("a locked login must not be checked")
    return err.value


async def test_pair_locks_after_its_limit_and_unlocks_on_time(guard: AuthGuard, clock: Clock) -> None:
    for _ in range(LIMITS.pair_failures):
        await fail(guard, "192.0.2.1", "bob@example.com")
    err = await locked(guard, "192.0.2.1", "bob@example.com")
    assert err.scope == "pair" and err.retry_after == pytest.approx(300)
    assert isinstance(err, TemporaryFailure)
    # Other users from that address and bob from elsewhere are not affected.
    await succeed(guard, "192.0.2.1", "alice@example.com")
    await succeed(guard, "192.0.2.2", "bob@example.com")
    clock.now += 300
    await succeed(guard, "192.0.2.1", "bob@example.com")


async def test_a_success_for_another_user_resets_nothing(guard: AuthGuard) -> None:
    """The issue 11 attack: two wrong passwords for bob, one good login as alice, repeat."""
    checked = 0
    for _ in range(10):
        try:
            for _ in range(2):
                await fail(guard, "192.0.2.1", "bob@example.com")
                checked += 1
        except LoginLocked:
            break
        await succeed(guard, "192.0.2.1", "alice@example.com")
    assert checked == LIMITS.pair_failures
    await locked(guard, "192.0.2.1", "bob@example.com")


async def test_success_clears_its_own_pair(guard: AuthGuard) -> None:
    for _ in range(LIMITS.pair_failures - 1):
        await fail(guard, "192.0.2.1", "bob@example.com")
    await succeed(guard, "192.0.2.1", "bob@example.com")
    for _ in range(LIMITS.pair_failures - 1):
        await fail(guard, "192.0.2.1", "bob@example.com")
    await succeed(guard, "192.0.2.1", "bob@example.com")


async def test_address_lock_spares_known_pairs(guard: AuthGuard) -> None:
    await succeed(guard, "192.0.2.1", "alice@example.com")        # alice works from here
    for i in range(LIMITS.address_failures):
        await fail(guard, "192.0.2.1", f"user{i}@example.com")      # a spray: each pair once
    err = await locked(guard, "192.0.2.1", "dave@example.com")
    assert err.scope == "address"
    assert guard.locked_for("192.0.2.1") > 0
    await succeed(guard, "192.0.2.1", "alice@example.com")
    assert guard.is_known("192.0.2.1", "ALICE@example.com ")


async def test_account_lock_bounds_distributed_guessing(guard: AuthGuard, clock: Clock) -> None:
    await succeed(guard, "198.51.100.7", "bob@example.com")       # bob's own device
    for i in range(LIMITS.account_failures):
        await fail(guard, f"203.0.113.{i}", "bob@example.com")      # one guess per address
    err = await locked(guard, "203.0.113.200", "bob@example.com")
    assert err.scope == "account" and err.retry_after == pytest.approx(60)
    await succeed(guard, "198.51.100.7", "bob@example.com")       # known: still gets in
    clock.now += 60
    await succeed(guard, "203.0.113.200", "bob@example.com")


async def test_locked_attempts_do_not_extend_the_lock(guard: AuthGuard, clock: Clock) -> None:
    for _ in range(LIMITS.pair_failures):
        await fail(guard, "192.0.2.1", "bob@example.com")
    for _ in range(50):
        clock.now += 5
        await locked(guard, "192.0.2.1", "bob@example.com")
    clock.now += 50
    await succeed(guard, "192.0.2.1", "bob@example.com")


async def test_counts_leak_so_slow_failures_never_lock(guard: AuthGuard, clock: Clock) -> None:
    # The pair leaks 3 failures per 300 s: one failure every 100 s is sustainable forever.
    for _ in range(20):
        await fail(guard, "192.0.2.1", "bob@example.com")
        clock.now += 100
    assert guard.locked_for("192.0.2.1", "bob@example.com") == 0


async def test_known_pairs_expire(guard: AuthGuard, clock: Clock) -> None:
    await succeed(guard, "192.0.2.1", "alice@example.com")
    clock.now += KNOWN_SECONDS + 1
    assert not guard.is_known("192.0.2.1", "alice@example.com")


async def test_other_exceptions_count_nothing(guard: AuthGuard) -> None:
    for _ in range(10):
        with pytest.raises(OSError):
            async with guard.attempt("imap", "192.0.2.1", "bob@example.com"):
                raise OSError("the store went away")
    await succeed(guard, "192.0.2.1", "bob@example.com")


async def test_parallel_checks_never_exceed_the_budget(clock: Clock, ledger: MemoryFailureLedger | None) -> None:
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    running = peak = checked = 0

    async def one() -> str:
        nonlocal running, peak, checked
        try:
            async with guard.attempt("imap", "192.0.2.1", "bob@example.com"):
                running += 1
                peak = max(peak, running)
                checked += 1
                await asyncio.sleep(0.01)
                running -= 1
                raise AuthenticationFailed("invalid credentials")
        except LoginLocked:
            return "locked"
        except AuthenticationFailed:
            return "failed"

    results = await asyncio.gather(*(one() for _ in range(40)))
    assert checked == LIMITS.pair_failures
    assert peak <= LIMITS.concurrent
    assert results.count("failed") == LIMITS.pair_failures and results.count("locked") == 40 - LIMITS.pair_failures


async def test_in_flight_checks_per_address_are_capped(clock: Clock, ledger: MemoryFailureLedger | None) -> None:
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    running = peak = 0

    async def one(i: int) -> None:
        nonlocal running, peak
        async with guard.attempt("imap", "192.0.2.1", f"user{i}@example.com"):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(one(i) for i in range(12)))       # all succeed: nobody is refused
    assert peak == LIMITS.concurrent


async def test_cancelled_waiter_leaves_no_trace(clock: Clock, ledger: MemoryFailureLedger | None) -> None:
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    gate = asyncio.Event()

    async def slow(i: int) -> None:
        async with guard.attempt("imap", "192.0.2.1", f"u{i}@example.com"):
            await gate.wait()

    holders = [asyncio.create_task(slow(i)) for i in range(LIMITS.concurrent)]
    await asyncio.sleep(0)
    waiter = asyncio.create_task(slow(99))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    await asyncio.gather(*holders)
    assert guard._waiters == {}
    await succeed(guard, "192.0.2.1", "u99@example.com")


async def test_failure_delay_grows_and_is_capped(clock: Clock, ledger: MemoryFailureLedger | None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
    monkeypatch.setattr("rmail.server.core.authguard.asyncio.sleep", fake_sleep)
    guard = AuthGuard(GuardLimits(pair_failures=10, address_failures=10, base_delay=0.5, max_delay=2), clock=clock,
                      ledger=ledger)
    for _ in range(5):
        await fail(guard, "192.0.2.1", "bob@example.com")
    assert slept == [0.5, 1.0, 2.0, 2.0, 2.0]


async def test_lockout_callback_and_log_lines(clock: Clock, ledger: MemoryFailureLedger | None,
                                              caplog: pytest.LogCaptureFixture) -> None:
    forgotten: list[str] = []
    bus = EventBus()
    feed = bus.feed(lambda e: isinstance(e, AuthFailed))
    guard = AuthGuard(LIMITS, clock=clock, bus=bus, on_lockout=forgotten.append, ledger=ledger)
    with caplog.at_level(logging.WARNING, logger="rmail.auth"):
        for _ in range(LIMITS.pair_failures):
            await fail(guard, "192.0.2.1", "Bob@Example.com")
        await locked(guard, "192.0.2.1", "bob@example.com")
    assert forgotten == ["bob@example.com"]
    lines = [r.getMessage() for r in caplog.records if r.name == "rmail.auth"]
    assert lines.count('auth failed: protocol=imap address=192.0.2.1 user="Bob@Example.com" reason=bad-password') == 3
    assert 'auth failed: protocol=imap address=192.0.2.1 user="bob@example.com" reason=locked' in lines
    assert any(line.startswith("auth lockout: scope=pair address=192.0.2.1 user=\"bob@example.com\"")
               for line in lines)
    assert len(feed.drain()) == LIMITS.pair_failures + 1


@pytest.mark.parametrize(("peer", "key"), [
    ("192.0.2.1", "192.0.2.1"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("unknown", "unknown"),
], ids=["v4", "mapped", "v6", "v6-same-64", "scoped", "not-an-ip"])
def test_address_key(peer: str, key: str) -> None:
    assert address_key(peer) == key


async def test_ipv6_rotation_within_a_64_is_one_address(guard: AuthGuard) -> None:
    for i in range(LIMITS.address_failures):
        await fail(guard, f"2001:db8::{i + 1:x}", f"user{i}@example.com")
    err = await locked(guard, "2001:db8::ffff", "x@example.com")
    assert err.scope == "address"


@pytest.mark.parametrize(("name", "quoted"), [
    ("bob@example.com", '"bob@example.com"'),
    ('a" reason=ok address=1.2.3.4', '"a\\" reason=ok address=1.2.3.4"'),
    ("x\ny", '"x\\x0ay"'),
    ("x\r\nauth failed: protocol=imap", '"x\\x0d\\x0aauth failed: protocol=imap"'),
    ("back\\slash", '"back\\\\slash"'),
    ("jos\u00e9@example.com", '"jos\\xe9@example.com"'),
    ("a\u2028b", '"a\\u2028b"'),
    ("\udcff", '"\\udcff"'),
    ("\U0001f600", '"\\U0001f600"'),
], ids=["plain", "quote", "lf", "crlf", "backslash", "latin1", "line-sep", "surrogate", "astral"])
def test_log_quote(name: str, quoted: str) -> None:
    assert log_quote(name) == quoted
    assert all(0x20 <= ord(c) < 0x7F for c in log_quote(name))


async def test_refusals_are_logged_once_a_minute_per_lock(guard: AuthGuard, clock: Clock,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(LIMITS.pair_failures):
        await fail(guard, "192.0.2.1", "bob@example.com")
    with caplog.at_level(logging.WARNING, logger="rmail.auth"):
        for _ in range(30):
            await locked(guard, "192.0.2.1", "bob@example.com")
            clock.now += 1
        clock.now += 30
        await locked(guard, "192.0.2.1", "bob@example.com")
    refused = [r for r in caplog.records if r.getMessage().endswith("reason=locked")]
    assert len(refused) == 2


async def test_refused_attempts_create_no_records(guard: AuthGuard) -> None:
    for i in range(LIMITS.address_failures):
        await fail(guard, "192.0.2.1", f"user{i}@example.com")
    sizes = [len(t.table) for t in (guard._pairs, guard._addresses, guard._accounts)]
    for i in range(200):
        await locked(guard, "192.0.2.1", f"fresh{i}@example.com")
    assert [len(t.table) for t in (guard._pairs, guard._addresses, guard._accounts)] == sizes


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("auth_cache_seconds", 0, True), ("auth_cache_seconds", -1, False), ("auth_pair_failures", 0, False),
    ("auth_account_failures", 1, True), ("auth_concurrent", 0, False), ("auth_concurrent", True, False),
])
def test_config_keys(key: str, value: object, ok: bool) -> None:
    from rmail.server.config import ConfigError, build_config
    raw = {"limits": {key: value}}
    if ok:
        assert getattr(build_config(raw, {}).limits, key) == value
    else:
        with pytest.raises(ConfigError, match=f"limits.{key}"):
            build_config(raw, {})
