"""Password guessing against a live server with the default limits (issue 11).

Every test counts the bcrypt checks the server really ran (``CheckCounter`` wraps the one call
that meets bcrypt), so "bounded" means a number, not a wall-clock impression.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.config import Limits
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config
from .auth_clients import PROTOCOLS, CheckCounter, Outcome, attempt

DEFAULTS = Limits()
#: Guesses a test sends before giving up: well past every limit it checks.
PATIENCE = 3 * DEFAULTS.auth_pair_failures


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[ServerRuntime]:
    """A live server with the default [limits]; alice and bob exist."""
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as runtime:
        await runtime.accounts.add_user("alice@example.com", PASSWORD)
        await runtime.accounts.add_user("bob@example.com", PASSWORD)
        yield runtime


async def guess_until_locked(login, user: str, *, between=None) -> tuple[int, str]:
    """Wrong passwords for ``user`` until refused as locked; (replies "wrong", the lock reply)."""
    wrong = 0
    for i in range(PATIENCE):
        reply = await login(user, f"guess-{i}")
        if reply.outcome is Outcome.LOCKED:
            return wrong, reply
        assert reply.outcome is Outcome.WRONG
        wrong += 1
        if between is not None:
            await between(i)
    raise AssertionError(f"{PATIENCE} guesses and still not locked")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_second_valid_account_buys_no_guesses(rt: ServerRuntime, protocol: str) -> None:
    """The issue's attack: two wrong passwords for bob, one good login as alice, repeat. It
    used to get 20 guesses checked with no lock; now it gets exactly what a guesser without
    an account gets."""
    login = attempt(rt, protocol)
    checks = CheckCounter(rt)

    async def alice_logs_in(i: int) -> None:
        if i % 2 == 1:
            assert (await login("alice@example.com", PASSWORD)).outcome is Outcome.OK

    with_account, _ = await guess_until_locked(login, "bob@example.com", between=alice_logs_in)
    bob_checks = sum(1 for raw in checks.checked if raw.startswith(b"guess-"))
    assert with_account == bob_checks == DEFAULTS.auth_pair_failures

    # Without a second account, from another address: the same number.
    solo = lambda user, password: login(user, password, source="127.0.0.2")  # noqa: E731
    without_account, _ = await guess_until_locked(solo, "bob@example.com")
    assert without_account == with_account

    # The lock holds even for the right password, and alice (known here) is unaffected.
    assert (await login("bob@example.com", PASSWORD)).outcome is Outcome.LOCKED
    assert (await login("alice@example.com", PASSWORD)).outcome is Outcome.OK
    # Bob from an address that is not locked still gets in.
    assert (await login("bob@example.com", PASSWORD, source="127.0.0.3")).outcome is Outcome.OK


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_lock_replies_say_locked(rt: ServerRuntime, protocol: str) -> None:
    login = attempt(rt, protocol)
    _, reply = await guess_until_locked(login, "bob@example.com")
    if protocol == "imap":
        assert reply.text == "a NO [UNAVAILABLE] too many failed logins; try again later"
    elif protocol == "smtp":
        assert reply.text == "454 4.7.0 Too many failed logins; try again later"
    else:
        assert reply.text == '429 {"error": "too many failed logins; try again later"}'
        assert reply.headers is not None
        assert 0 < int(reply.headers["Retry-After"]) <= DEFAULTS.auth_lockout_seconds
        assert reply.headers["Content-Type"].startswith("application/json")
    assert "invalid" not in reply.text.lower() and "password" not in reply.text.lower()


async def test_parallel_connections_do_not_multiply_the_budget(rt: ServerRuntime) -> None:
    """40 connections guessing bob at once (the issue saw 43 checks for a limit of 10)."""
    checks = CheckCounter(rt)
    login = attempt(rt, "imap")

    replies = await asyncio.gather(*(login("bob@example.com", f"guess-{n}") for n in range(40)))
    outcomes = [r.outcome for r in replies]
    assert checks.count == DEFAULTS.auth_pair_failures
    assert outcomes.count(Outcome.WRONG) == checks.count
    assert outcomes.count(Outcome.LOCKED) == 40 - checks.count
    assert checks.peak <= DEFAULTS.auth_concurrent


async def test_parallel_spray_of_names_is_bounded_per_address(rt: ServerRuntime) -> None:
    """40 connections, each guessing other names: the address budget, exactly."""
    checks = CheckCounter(rt)
    login = attempt(rt, "imap")
    replies = await asyncio.gather(*(login(f"user{n}@example.com", "123456") for n in range(40)))
    assert checks.count == DEFAULTS.auth_failures
    assert sum(r.outcome is Outcome.LOCKED for r in replies) == 40 - DEFAULTS.auth_failures
    assert checks.peak <= DEFAULTS.auth_concurrent


async def test_nat_office(tmp_path: Path) -> None:
    """50 users behind one address: one mistyping client locks nobody else out; an attacker
    spraying from inside the office locks out only names not seen there before."""
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        staff = [f"user{i:02d}@example.com" for i in range(50)]
        for user in staff:
            await rt.accounts.add_user(user, PASSWORD)
        await rt.accounts.add_user("newcomer@example.com", PASSWORD)
        await rt.accounts.add_user("visitor@example.com", PASSWORD)
        checks = CheckCounter(rt)
        login = attempt(rt, "imap")
        for user in staff:                                      # a normal morning
            assert (await login(user, PASSWORD)).outcome is Outcome.OK

        # A phone with a stale password retries all day; only the pair limit is checked.
        before = checks.count
        stale = [await login(staff[0], "old-password") for _ in range(30)]
        assert checks.count - before == DEFAULTS.auth_pair_failures
        assert {r.outcome for r in stale[DEFAULTS.auth_pair_failures:]} == {Outcome.LOCKED}
        replies = await asyncio.gather(*(login(user, PASSWORD) for user in staff[1:]))
        assert {r.outcome for r in replies} == {Outcome.OK}
        # Someone who never logged in from here is not locked out either.
        assert (await login("newcomer@example.com", PASSWORD)).outcome is Outcome.OK

        # An attacker in the office sprays names until the address is locked.
        before = checks.count
        spray = [await login(f"guess{i}@example.com", "123456") for i in range(40)]
        assert checks.count - before <= DEFAULTS.auth_failures
        assert spray[-1].outcome is Outcome.LOCKED
        replies = await asyncio.gather(*(login(user, PASSWORD) for user in staff[1:]))
        assert {r.outcome for r in replies} == {Outcome.OK}
        assert (await login("newcomer@example.com", PASSWORD)).outcome is Outcome.OK
        assert (await login("visitor@example.com", PASSWORD)).outcome is Outcome.LOCKED
        # The same visitor from elsewhere is fine.
        assert (await login("visitor@example.com", PASSWORD, source="127.0.0.9")).outcome is Outcome.OK


async def test_distributed_guessing_of_one_account(rt: ServerRuntime) -> None:
    """Guessing bob from many addresses, each up to its pair limit: the account limit caps the
    total, after which only addresses bob logged in from before still get him in."""
    login = attempt(rt, "imap")
    assert (await login("bob@example.com", PASSWORD)).outcome is Outcome.OK      # bob's laptop
    checks = CheckCounter(rt)
    per_address = DEFAULTS.auth_pair_failures
    addresses = DEFAULTS.auth_account_failures // per_address + 2
    for n in range(addresses):
        source = f"127.0.1.{n + 1}"
        for i in range(per_address):
            await login("bob@example.com", f"guess-{n}-{i}", source=source)
    assert checks.count == DEFAULTS.auth_account_failures
    assert (await login("bob@example.com", PASSWORD, source="127.0.2.1")).outcome is Outcome.LOCKED
    assert (await login("bob@example.com", PASSWORD)).outcome is Outcome.OK
    assert (await login("alice@example.com", PASSWORD, source="127.0.2.1")).outcome is Outcome.OK


async def test_parallel_distributed_guessing_respects_the_account_budget(tmp_path: Path) -> None:
    """Many addresses at once: checks in flight are reserved against the account's budget."""
    limits = {"auth_account_failures": 12, "auth_pair_failures": 5, "auth_concurrent": 4}
    async with ServerRuntime(make_config(tmp_path / "data", limits=limits), auth_delay=0) as rt:
        await rt.accounts.add_user("bob@example.com", PASSWORD)
        checks = CheckCounter(rt)
        login = attempt(rt, "imap")
        replies = await asyncio.gather(*(login("bob@example.com", f"g{n}", source=f"127.0.3.{n + 1}")
                                         for n in range(40)))
        assert checks.count == 12
        assert sum(r.outcome is Outcome.WRONG for r in replies) == 12
