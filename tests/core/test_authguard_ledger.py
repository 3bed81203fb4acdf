"""AuthGuard with a failure ledger behind it (core/authguard.py, "Several nodes"): what it does
when the ledger is slow, broken or answers out of order, when a caller goes away, and what
it costs. Fake clocks and scripted ledgers; the real PostgreSQL ledger is tested in
tests/postgres/test_pg_throttle*.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Sequence

import pytest

from rmail.server.core import authguard
from rmail.server.core.authguard import LEDGER_PAUSE, RELOOK_SECONDS, AuthGuard, GuardLimits, LoginLocked
from rmail.server.core.errors import AuthenticationFailed, TemporaryFailure
from rmail.server.core.sqlite.throttle import MemoryFailureLedger
from rmail.server.core.storage import Bucket, FailureCount, Standing

LIMITS = GuardLimits(pair_failures=3, address_failures=6, account_failures=8, lockout_seconds=300,
                     account_lockout_seconds=60, concurrent=2, base_delay=0)
PEER, USER = "192.0.2.1", "bob@example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted(MemoryFailureLedger):
    """The memory ledger, with calls counted and each kind of call able to hang or raise."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.calls: list[str] = []
        self.hang: set[str] = set()
        self.broken: set[str] = set()
        self.gate = asyncio.Event()     #: set to let hanging calls go on

    async def _enter(self, name: str) -> None:
        self.calls.append(name)
        if name in self.broken:
            raise TemporaryFailure("the failed-login counts could not be reached; try again")
        if name in self.hang:
            await self.gate.wait()

    async def look(self, keys: Sequence[str], known: str) -> Standing:
        await self._enter("look")
        return await super().look(keys, known)

    async def fail(self, buckets: Sequence[Bucket]) -> dict[str, FailureCount]:
        await self._enter("fail")
        return await super().fail(buckets)

    async def succeed(self, key: str, known_seconds: float) -> None:
        await self._enter("succeed")
        await super().succeed(key, known_seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> Scripted:
    return Scripted(clock)


async def fail(guard: AuthGuard, peer: str = PEER, user: str = USER) -> None:
    with pytest.raises(AuthenticationFailed):
        async with guard.attempt("imap", peer, user):
            raise AuthenticationFailed("invalid credentials")


async def succeed(guard: AuthGuard, peer: str = PEER, user: str = USER) -> None:
    async with guard.attempt("imap", peer, user):
        pass


async def locked(guard: AuthGuard, peer: str = PEER, user: str = USER) -> LoginLocked:
    with pytest.raises(LoginLocked) as err:
        async with guard.attempt("imap", peer, user):
            raise AssertionError("a locked login must not be checked")
    return err.value


@pytest.mark.parametrize("trouble", ["hang", "broken"])
async def test_a_ledger_in_trouble_leaves_the_counting_to_this_node(
        trouble: str, clock: Clock, ledger: Scripted, caplog: pytest.LogCaptureFixture) -> None:
    getattr(ledger, trouble).update({"look", "fail", "succeed"})
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger, ledger_timeout=0.01)
    with caplog.at_level(logging.WARNING, logger="rmail.auth"):
        await succeed(guard, user="alice@example.com")      # a login neither hangs nor fails
        for _ in range(LIMITS.pair_failures):
            await fail(guard)
        assert (await locked(guard)).scope == "pair"         # counted here meanwhile
        assert ledger.calls == ["look"]                     # then left alone for LEDGER_PAUSE
        clock.now += LEDGER_PAUSE
        await succeed(guard, user="carol@example.com")
        assert ledger.calls == ["look", "look"]
        clock.now += authguard.LEDGER_LOG_SECONDS
        await succeed(guard, user="dave@example.com")
    warnings = [r.getMessage() for r in caplog.records if "failed-login counts unavailable" in r.getMessage()]
    assert len(warnings) == 2                                # once a minute at most
    assert ("timed out" in warnings[0]) == (trouble == "hang")
    ledger.gate.set()
    await guard.settle()


async def test_the_ledger_is_asked_again_after_the_pause(clock: Clock, ledger: Scripted) -> None:
    ledger.broken.add("look")
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    await succeed(guard)
    ledger.broken.clear()
    clock.now += LEDGER_PAUSE
    other = AuthGuard(LIMITS, clock=clock, ledger=ledger)       # another node, failing meanwhile
    for _ in range(LIMITS.pair_failures):
        await fail(other, peer="192.0.2.7")
    await locked(guard, peer="192.0.2.7")


async def test_an_answer_overtaken_by_a_fresher_one_is_ignored(clock: Clock, ledger: Scripted) -> None:
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    await fail(guard)
    stale = await ledger.look([f"pair\x00{PEER}\x00{USER}"], "")     # level 1
    await fail(guard)                                                # level 2, a later version
    real_look = ledger.look

    async def late_look(keys: Sequence[str], known: str) -> Standing:
        # The answer to a look sent before the second failure was recorded, arriving after it.
        await real_look(keys, known)
        return stale
    ledger.look = late_look  # type: ignore[method-assign]
    checked = 0

    async def guess() -> None:
        nonlocal checked
        try:
            async with guard.attempt("imap", PEER, USER):
                checked += 1
                await asyncio.sleep(0.01)
                raise AuthenticationFailed("invalid credentials")
        except (AuthenticationFailed, LoginLocked):
            pass
    # One check is left in the budget. Taking the stale level would let both run.
    await asyncio.gather(guess(), guess())
    assert checked == 1
    assert (await locked(guard)).scope == "pair"


async def test_a_caller_that_goes_away_still_leaves_its_failure(clock: Clock, ledger: Scripted) -> None:
    ledger.hang.add("fail")
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    checked = asyncio.Event()

    async def guess() -> None:
        async with guard.attempt("imap", PEER, USER):
            checked.set()
            raise AuthenticationFailed("invalid credentials")
    task = asyncio.create_task(guess())
    await checked.wait()
    while ledger.calls[-1] != "fail":          # recording, and stuck there
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert guard._pairs.table[(PEER, USER)].level == pytest.approx(1)    # counted here at once
    assert guard._pairs.table[(PEER, USER)].in_flight == 0
    ledger.gate.set()
    await guard.settle()
    seen = await MemoryFailureLedger.look(ledger, [f"pair\x00{PEER}\x00{USER}"], "")
    assert seen.counts[f"pair\x00{PEER}\x00{USER}"].level == pytest.approx(1)   # and in the ledger


async def test_refusals_under_a_confirmed_pair_lock_cost_no_round_trip(clock: Clock, ledger: Scripted) -> None:
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    for _ in range(LIMITS.pair_failures):
        await fail(guard)
    ledger.calls.clear()
    for _ in range(20):
        await locked(guard)
    assert ledger.calls == []
    clock.now += RELOOK_SECONDS
    await locked(guard)
    assert ledger.calls == ["look"]
    # Address and account locks are asked about: the pair may be known through another node.
    for i in range(LIMITS.address_failures):
        await fail(guard, peer="192.0.2.9", user=f"user{i}@example.com")
    ledger.calls.clear()
    await locked(guard, peer="192.0.2.9", user="fresh@example.com")
    assert ledger.calls == ["look"]


async def test_refused_logins_leave_nothing_in_the_ledger(clock: Clock, ledger: Scripted) -> None:
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    for i in range(LIMITS.address_failures):
        await fail(guard, user=f"user{i}@example.com")
    stored = len(ledger)
    for i in range(200):
        await locked(guard, user=f"fresh{i}@example.com")
    assert len(ledger) == stored


async def test_a_lock_heard_of_from_the_ledger_forgets_the_cached_credential(clock: Clock, ledger: Scripted) -> None:
    a = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    forgotten: list[str] = []
    b = AuthGuard(LIMITS, clock=clock, ledger=ledger, on_lockout=forgotten.append)
    for i in range(LIMITS.account_failures):
        await fail(a, peer=f"203.0.113.{i}")
    assert (await locked(b, peer="198.51.100.1")).scope == "account"
    await locked(b, peer="198.51.100.2")
    assert forgotten == [USER]          # once, when b first heard of it


async def test_background_writes_are_bounded(clock: Clock, ledger: Scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authguard, "MAX_PENDING_WRITES", 2)
    ledger.hang.add("succeed")
    guard = AuthGuard(LIMITS, clock=clock, ledger=ledger)
    for i in range(5):
        await succeed(guard, user=f"user{i}@example.com")
    await asyncio.sleep(0)
    assert ledger.calls.count("succeed") == 2 and len(guard._pending) == 2
    ledger.gate.set()
    await guard.settle()
    assert not guard._pending
