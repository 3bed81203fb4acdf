"""The verified-credential cache in front of bcrypt (issue 16): it saves bcrypt for a password
verified recently and never accepts a wrong, changed or removed one."""

from __future__ import annotations

import asyncio

import pytest

from rmail.server.core.accounts import Accounts, UnknownUser, dummy_hash, hash_cost
from rmail.server.core.authguard import AuthGuard, GuardLimits, LoginLocked
from rmail.server.core.credcache import CredentialCache
from rmail.server.core.errors import AuthenticationFailed
from rmail.server.core.storage import Backend, MailStore, open_backend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def counted(backend: Backend) -> tuple[Accounts, list[bytes]]:
    """Accounts with a 60 s cache whose bcrypt checks are recorded."""
    accounts = Accounts(backend.directory, bcrypt_rounds=4, cache_seconds=60)
    checks: list[bytes] = []
    real = accounts.check_hash

    def check(raw: bytes, hashed: bytes) -> bool:
        checks.append(raw)
        return real(raw, hashed)
    accounts.check_hash = check  # type: ignore[method-assign]
    return accounts, checks


async def test_repeat_login_skips_bcrypt(counted: tuple[Accounts, list[bytes]]) -> None:
    accounts, checks = counted
    await accounts.add_user("alice@example.com", "right")
    for name in ("alice@example.com", "Alice@Example.com", "alice@example.com"):
        assert (await accounts.authenticate(name, "right")).address == "alice@example.com"
    assert checks == [b"right"]


async def test_wrong_password_always_pays_bcrypt(counted: tuple[Accounts, list[bytes]]) -> None:
    accounts, checks = counted
    await accounts.add_user("alice@example.com", "right")
    await accounts.authenticate("alice@example.com", "right")
    for wrong in ("wrong", "right ", "Right", "righ", "right\x00"):
        with pytest.raises(AuthenticationFailed):
            await accounts.authenticate("alice@example.com", wrong)
    assert checks[1:] == [b"wrong", b"right ", b"Right", b"righ", b"right\x00"]
    await accounts.authenticate("alice@example.com", "right")       # the entry survives
    assert len(checks) == 6


async def test_password_change_invalidates(counted: tuple[Accounts, list[bytes]]) -> None:
    accounts, checks = counted
    await accounts.add_user("alice@example.com", "one")
    await accounts.authenticate("alice@example.com", "one")
    await accounts.set_password("alice@example.com", "two")
    assert len(accounts.credentials) == 0
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate("alice@example.com", "one")
    await accounts.authenticate("alice@example.com", "two")
    assert checks == [b"one", b"one", b"two"]


async def test_password_changed_by_another_process_is_noticed(backend: Backend,
                                                              counted: tuple[Accounts, list[bytes]]) -> None:
    """The CLI (or another node) changes passwords through its own store: no in-process event
    reaches the cache."""
    accounts, checks = counted
    await accounts.add_user("alice@example.com", "one")
    await accounts.authenticate("alice@example.com", "one")
    other_backend = await open_backend(backend.location)
    try:
        await Accounts(other_backend.directory, bcrypt_rounds=4).set_password("alice@example.com", "two")
    finally:
        await other_backend.close()
    assert len(accounts.credentials) == 1                             # it did not hear of it
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate("alice@example.com", "one")
    assert (await accounts.authenticate("alice@example.com", "two")).address == "alice@example.com"
    assert checks == [b"one", b"one", b"two"]


async def test_removed_and_recreated_user_is_not_accepted(counted: tuple[Accounts, list[bytes]],
                                                          backend: Backend) -> None:
    accounts, _ = counted
    await accounts.add_user("alice@example.com", "one")
    await accounts.authenticate("alice@example.com", "one")
    await accounts.remove_user("alice@example.com")
    assert len(accounts.credentials) == 0
    with pytest.raises(UnknownUser):
        await accounts.authenticate("alice@example.com", "one")
    # Removal by another process: the entry stays here but the user is gone.
    await accounts.add_user("alice@example.com", "one")
    await accounts.authenticate("alice@example.com", "one")
    other_backend = await open_backend(backend.location)
    try:
        await Accounts(other_backend.directory, bcrypt_rounds=4).remove_user("alice@example.com")
        await Accounts(other_backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "other")
    finally:
        await other_backend.close()
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate("alice@example.com", "one")


async def test_lockout_clears_the_entry(counted: tuple[Accounts, list[bytes]]) -> None:
    accounts, checks = counted
    await accounts.add_user("bob@example.com", "right")
    await accounts.authenticate("bob@example.com", "right")
    guard = AuthGuard(GuardLimits(pair_failures=2, base_delay=0), on_lockout=accounts.forget_login)
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            async with guard.attempt("imap", "192.0.2.9", "BOB@example.com"):
                await accounts.authenticate("BOB@example.com", "guess")
    assert len(accounts.credentials) == 0
    with pytest.raises(LoginLocked):
        async with guard.attempt("imap", "192.0.2.9", "bob@example.com"):
            await accounts.authenticate("bob@example.com", "right")
    # From bob's own address the right password still works, through bcrypt again.
    async with guard.attempt("imap", "192.0.2.1", "bob@example.com"):
        await accounts.authenticate("bob@example.com", "right")
    assert checks == [b"right", b"guess", b"guess", b"right"]


async def test_ttl_expires() -> None:
    clock = Clock()
    cache = CredentialCache(60, clock=clock)
    cache.remember("a@x.test", 1, b"$2b$04$hash", b"pw")
    assert cache.verify("a@x.test", 1, b"$2b$04$hash", b"pw")
    assert not cache.verify("a@x.test", 2, b"$2b$04$hash", b"pw")      # another user id
    cache.remember("a@x.test", 1, b"$2b$04$hash", b"pw")
    clock.now += 60
    assert not cache.verify("a@x.test", 1, b"$2b$04$hash", b"pw")
    assert len(cache) == 0


def test_cache_holds_no_password() -> None:
    cache = CredentialCache(60)
    cache.remember("a@x.test", 1, b"$2b$04$hash", b"correct horse battery staple")
    entry = cache._entries["a@x.test"]
    assert b"correct horse" not in entry.mac and len(entry.mac) == 32
    assert not hasattr(entry, "password")


async def test_cache_off(backend: Backend) -> None:
    accounts = Accounts(backend.directory, bcrypt_rounds=4, cache_seconds=0)
    await accounts.add_user("alice@example.com", "right")
    await accounts.authenticate("alice@example.com", "right")
    assert len(accounts.credentials) == 0


@pytest.mark.parametrize("rounds", [4, 6, 12])
def test_dummy_hash_has_the_configured_cost(rounds: int) -> None:
    assert hash_cost(dummy_hash(rounds)) == rounds


async def test_missing_user_pays_the_same_bcrypt(counted: tuple[Accounts, list[bytes]]) -> None:
    accounts, checks = counted
    assert hash_cost(accounts.dummy_hash) == accounts.rounds
    with pytest.raises(UnknownUser):
        await accounts.authenticate("nobody@example.com", "guess")
    with pytest.raises(UnknownUser):
        await accounts.authenticate("not an address", "guess")
    assert checks == [b"guess", b"guess"]


async def test_concurrent_first_logins_all_succeed(counted: tuple[Accounts, list[bytes]]) -> None:
    accounts, _ = counted
    await accounts.add_user("alice@example.com", "right")
    results = await asyncio.gather(*(accounts.authenticate("alice@example.com", "right") for _ in range(5)))
    assert {a.address for a in results} == {"alice@example.com"}
