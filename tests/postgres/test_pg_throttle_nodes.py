"""Failed-login throttling across nodes (issue 13): two AuthGuards, each on its own backend
(its own pool) of one PostgreSQL database, meet the limits one guard alone meets."""

from __future__ import annotations

import asyncio
import logging
from typing import Sequence

import pytest

from rmail.server.core.authguard import AuthGuard, GuardLimits, LoginLocked
from rmail.server.core.errors import AuthenticationFailed
from rmail.server.core.storage import Bucket, FailureCount, FailureLedger, Standing

from .nodes import Opener, pg_open  # noqa: F401 - pg_open is a fixture

LIMITS = GuardLimits(pair_failures=3, address_failures=6, account_failures=8, lockout_seconds=300,
                     account_lockout_seconds=600, concurrent=2, base_delay=0)


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


async def checked_until_locked(guards: Sequence[AuthGuard], logins: Sequence[tuple[str, str]]) -> int:
    """Failed logins through ``guards`` in turn, one per (peer, user) in ``logins`` (cycled),
    until one is refused; returns how many were checked."""
    for n in range(200):
        peer, user = logins[n % len(logins)]
        try:
            async with guards[n % len(guards)].attempt("imap", peer, user):
                raise AuthenticationFailed("invalid credentials")
        except AuthenticationFailed:
            continue
        except LoginLocked:
            return n
    raise AssertionError("never locked")


@pytest.fixture
async def nodes(pg_open: Opener) -> tuple[AuthGuard, AuthGuard]:
    a, b = await pg_open(), await pg_open()
    return AuthGuard(LIMITS, ledger=a.login_failures), AuthGuard(LIMITS, ledger=b.login_failures)


PAIR = [("192.0.2.1", "bob@example.com")]
SPRAY = [("192.0.2.1", f"user{i}@example.com") for i in range(40)]
BOTNET = [(f"203.0.113.{i}", "bob@example.com") for i in range(40)]


@pytest.mark.parametrize(("logins", "limit", "scope"), [
    (PAIR, LIMITS.pair_failures, "pair"),
    (SPRAY, LIMITS.address_failures, "address"),
    (BOTNET, LIMITS.account_failures, "account"),
], ids=["pair", "address", "account"])
async def test_failures_split_over_nodes_lock_at_one_guards_total(
        nodes: tuple[AuthGuard, AuthGuard], logins: list[tuple[str, str]], limit: int, scope: str) -> None:
    alone = await checked_until_locked([AuthGuard(LIMITS)], logins)
    spread = await checked_until_locked(nodes, logins)
    assert spread == alone == limit
    peer, user = logins[0] if scope != "address" else ("192.0.2.1", "fresh@example.com")
    if scope == "account":
        peer = "198.51.100.99"
    for guard in nodes:
        assert (await locked(guard, peer, user)).scope == scope


async def test_a_lock_set_through_one_node_refuses_on_the_other(pg_open: Opener) -> None:
    a_store, b_store = await pg_open(), await pg_open()
    forgotten: list[str] = []
    a = AuthGuard(LIMITS, ledger=a_store.login_failures)
    b = AuthGuard(LIMITS, ledger=b_store.login_failures, on_lockout=forgotten.append)
    for _ in range(LIMITS.pair_failures):
        await fail(a, "192.0.2.1", "bob@example.com")
    err = await locked(b, "192.0.2.1", "bob@example.com")
    assert err.scope == "pair" and err.retry_after == pytest.approx(LIMITS.lockout_seconds, abs=5)
    assert forgotten == ["bob@example.com"]          # B's credential cache forgets bob too
    assert b.locked_for("192.0.2.1", "bob@example.com") > 0
    await succeed(b, "192.0.2.2", "bob@example.com")   # the pair only


async def test_a_success_on_one_node_clears_the_pair_for_the_other(nodes: tuple[AuthGuard, AuthGuard]) -> None:
    a, b = nodes
    for _ in range(LIMITS.pair_failures - 1):
        await fail(a, "192.0.2.1", "bob@example.com")
    await succeed(b, "192.0.2.1", "bob@example.com")
    await b.settle()
    for _ in range(LIMITS.pair_failures - 1):
        await fail(a, "192.0.2.1", "bob@example.com")     # would have locked without the clear
    await fail(a, "192.0.2.1", "bob@example.com")
    await locked(b, "192.0.2.1", "bob@example.com")


async def test_a_pair_known_through_one_node_is_spared_on_the_other(nodes: tuple[AuthGuard, AuthGuard]) -> None:
    a, b = nodes
    await succeed(a, "192.0.2.1", "alice@example.com")
    await a.settle()
    for i in range(LIMITS.address_failures):
        await fail(b, "192.0.2.1", f"user{i}@example.com")
    assert (await locked(b, "192.0.2.1", "dave@example.com")).scope == "address"
    assert (await locked(a, "192.0.2.1", "dave@example.com")).scope == "address"
    await succeed(b, "192.0.2.1", "alice@example.com")


class Counting:
    """A ledger that counts the calls made to it and those that have completed."""

    def __init__(self, inner: FailureLedger) -> None:
        self.inner = inner
        self.called: list[str] = []
        self.done: list[str] = []

    def reset(self) -> None:
        self.called.clear()
        self.done.clear()

    async def look(self, keys: Sequence[str], known: str) -> Standing:
        self.called.append("look")
        out = await self.inner.look(keys, known)
        self.done.append("look")
        return out

    async def fail(self, buckets: Sequence[Bucket]) -> dict[str, FailureCount]:
        self.called.append("fail")
        out = await self.inner.fail(buckets)
        self.done.append("fail")
        return out

    async def succeed(self, key: str, known_seconds: float) -> None:
        self.called.append("succeed")
        await self.inner.succeed(key, known_seconds)
        self.done.append("succeed")


async def test_a_successful_login_waits_for_one_round_trip(pg_open: Opener) -> None:
    ledger = Counting((await pg_open()).login_failures)
    guard = AuthGuard(LIMITS, ledger=ledger)
    await succeed(guard, "192.0.2.1", "alice@example.com")
    # The login was answered after the look alone; marking the pair known runs behind it.
    assert ledger.done == ["look"]
    await guard.settle()
    assert ledger.done == ["look", "succeed"]
    ledger.reset()
    await succeed(guard, "192.0.2.1", "alice@example.com")
    await guard.settle()
    assert ledger.called == ["look"]               # known already, nothing to clear: no write
    await fail(guard, "192.0.2.1", "alice@example.com")
    ledger.reset()
    await succeed(guard, "192.0.2.1", "alice@example.com")
    assert ledger.done == ["look"]
    await guard.settle()
    assert ledger.called == ["look", "succeed"]    # the failure to clear


async def test_parallel_checks_on_two_nodes_stay_within_each_nodes_budget(nodes: tuple[AuthGuard, AuthGuard]) -> None:
    checked = 0

    async def one(guard: AuthGuard) -> None:
        nonlocal checked
        try:
            async with guard.attempt("imap", "192.0.2.1", "bob@example.com"):
                checked += 1
                await asyncio.sleep(0.01)
                raise AuthenticationFailed("invalid credentials")
        except (LoginLocked, AuthenticationFailed):
            pass
    await asyncio.gather(*(one(nodes[i % 2]) for i in range(40)))
    # Each node's reservations are exact; only checks in flight on the other node at the
    # same moment can pass the shared limit (authguard's docstring).
    assert LIMITS.pair_failures <= checked <= 2 * LIMITS.pair_failures
    for guard in nodes:
        await locked(guard, "192.0.2.1", "bob@example.com")


async def test_a_node_whose_database_is_gone_counts_alone(pg_open: Opener, caplog: pytest.LogCaptureFixture) -> None:
    a_store, b_store = await pg_open(), await pg_open()
    a = AuthGuard(LIMITS, ledger=a_store.login_failures)
    b = AuthGuard(LIMITS, ledger=b_store.login_failures)
    await fail(a, "192.0.2.1", "bob@example.com")
    await b_store.close()
    with caplog.at_level(logging.WARNING, logger="rmail.auth"):
        for _ in range(LIMITS.pair_failures):
            await fail(b, "192.0.2.1", "bob@example.com")
        await locked(b, "192.0.2.1", "bob@example.com")
    unavailable = [r for r in caplog.records if "failed-login counts unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    # A's count is the shared one: B's failures never reached it.
    await fail(a, "192.0.2.1", "bob@example.com")
    await fail(a, "192.0.2.1", "bob@example.com")
    await locked(a, "192.0.2.1", "bob@example.com")
