"""The directory on PostgreSQL: domains, users, alias rules, quotas, secrets; errors as the
contract says; agreement between two nodes on one database."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from rmail.server.core.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from rmail.server.core.events import AccountsChanged, AliasesChanged, Event
from rmail.server.core.model import DEFAULT_MAILBOXES, Account, Address, AliasRule
from rmail.server.core.postgres import PostgresBackend

from .nodes import Opener, insert_blob, pg_open, put_message  # noqa: F401 - pg_open is a fixture

HASH = b"$2b$04$" + b"a" * 53


def addr(text: str) -> Address:
    return Address.parse(text)


@pytest.fixture
async def node(pg_open: Opener) -> PostgresBackend:
    return await pg_open()


async def test_domains(node: PostgresBackend) -> None:
    d = node.directory
    assert await d.first_domain() is None
    await d.add_domain("b.example")
    await d.add_domain("A.example")
    with pytest.raises(AlreadyExists):
        await d.add_domain("a.example")
    assert await d.list_domains() == [("a.example", 0), ("b.example", 0)]
    assert await d.first_domain() == "b.example"
    assert await d.is_local_domain("A.EXAMPLE") and not await d.is_local_domain("c.example")
    await d.remove_domain("b.example")
    with pytest.raises(NotFound):
        await d.remove_domain("b.example")
    assert await d.list_domains() == [("a.example", 0)]


async def test_remove_domain_refuses_while_it_has_users(node: PostgresBackend) -> None:
    d = node.directory
    alice = await d.add_user(addr("alice@example.com"), HASH)
    await d.add_alias("example.com", "sales-.*", "alice")
    with pytest.raises(PermissionDenied):
        await d.remove_domain("example.com")
    await d.remove_user(alice.id)
    await d.remove_domain("example.com")     # its (now targetless) rules went with the user
    assert await d.list_domains() == []


async def test_add_user_creates_domain_and_default_mailboxes(node: PostgresBackend) -> None:
    d = node.directory
    alice = await d.add_user(addr("Alice@Example.COM"), HASH, admin=True)
    assert alice == Account(alice.id, "Alice", "example.com", True)
    assert await d.list_domains() == [("example.com", 1)]
    names = await node.db.read(lambda c: c.fetch("SELECT name FROM mailboxes WHERE user_id = $1", alice.id))
    assert sorted(r[0] for r in names) == sorted(n for n, _ in DEFAULT_MAILBOXES)
    with pytest.raises(AlreadyExists):
        await d.add_user(addr("alice@example.com"), HASH)      # local parts compare case-insensitively
    # The failed attempt left nothing behind (one transaction).
    assert len(await d.list_users()) == 1
    count = await node.db.read(lambda c: c.fetchval("SELECT count(*) FROM mailboxes"))
    assert count == len(DEFAULT_MAILBOXES)


async def test_find_get_list_credentials(node: PostgresBackend) -> None:
    d = node.directory
    bob = await d.add_user(addr("bob@b.example"), HASH)
    alice = await d.add_user(addr("Alice@a.example"), HASH + b"x")
    carol = await d.add_user(addr("carol@a.example"), HASH)
    assert await d.find_user(addr("ALICE@a.example")) == alice
    assert await d.find_user(addr("nobody@a.example")) is None
    assert await d.get_user_by_id(bob.id) == bob
    with pytest.raises(NotFound):
        await d.get_user_by_id(bob.id + 1000)
    assert await d.list_users() == [alice, carol, bob]
    assert await d.list_users("A.example") == [alice, carol]
    assert await d.credentials(addr("alice@A.example")) == (alice, HASH + b"x")
    assert await d.credentials(addr("alice@b.example")) is None


async def test_password_admin_and_errors(node: PostgresBackend) -> None:
    d = node.directory
    alice = await d.add_user(addr("alice@example.com"), HASH)
    await d.set_password_hash(alice.id, b"new-hash")
    await d.set_admin(alice.id, True)
    assert await d.credentials(addr("alice@example.com")) == (Account(alice.id, "alice", "example.com", True),
                                                              b"new-hash")
    with pytest.raises(NotFound):
        await d.set_password_hash(alice.id + 1000, b"x")
    with pytest.raises(NotFound):
        await d.set_admin(alice.id + 1000, True)
    with pytest.raises(NotFound):
        await d.set_quota(alice.id + 1000, 5)


async def test_remove_user_takes_mail_rules_quota_and_unshared_bytes(node: PostgresBackend) -> None:
    d = node.directory
    alice = await d.add_user(addr("alice@example.com"), HASH)
    bob = await d.add_user(addr("bob@example.com"), HASH)
    await d.add_alias("example.com", "a-.*", "alice")
    await d.add_alias("example.com", "b-.*", "bob")
    await d.set_quota(alice.id, 1000)
    await insert_blob(node.db, "only-alice")
    await insert_blob(node.db, "shared")
    await put_message(node.db, alice.id, "Sent", "only-alice", 10)
    await put_message(node.db, alice.id, "INBOX", "shared", 10)
    await put_message(node.db, bob.id, "INBOX", "shared", 10)
    await d.remove_user(alice.id)
    with pytest.raises(NotFound):
        await d.remove_user(alice.id)
    assert await d.list_users() == [bob]
    assert [r.pattern for r in await d.alias_rules("example.com")] == ["b-.*"]
    assert await d.quota_overrides() == {}
    blobs = await node.db.read(lambda c: c.fetch("SELECT id FROM blobs ORDER BY id"))
    assert [r[0] for r in blobs] == ["shared"]       # bob still has it
    assert await node.integrity_check() == "ok"


async def test_usage(node: PostgresBackend) -> None:
    d = node.directory
    alice = await d.add_user(addr("alice@example.com"), HASH)
    bob = await d.add_user(addr("bob@example.com"), HASH)
    await insert_blob(node.db, "m")
    for mailbox in ("INBOX", "Sent"):
        for size in (100, 200):
            await put_message(node.db, alice.id, mailbox, "m", size)
    await node.db.write(lambda txn: txn.conn.execute(
        "UPDATE mailboxes SET noselect = true WHERE user_id = $1 AND name = 'Junk'", alice.id))
    rows = {u.account.id: (u.mailboxes, u.messages, u.size) for u in await d.usage()}
    assert rows == {alice.id: (len(DEFAULT_MAILBOXES) - 1, 4, 600), bob.id: (len(DEFAULT_MAILBOXES), 0, 0)}


async def test_alias_rules_order_and_errors(node: PostgresBackend) -> None:
    d = node.directory
    await d.add_user(addr("alice@example.com"), HASH)
    await d.add_user(addr("Bob@example.com"), HASH)
    with pytest.raises(NotFound):
        await d.alias_rules("nowhere.example")
    with pytest.raises(NotFound):
        await d.add_alias("nowhere.example", "x", "alice")
    with pytest.raises(InvalidInput):
        await d.add_alias("example.com", "x", "carol")
    first = await d.add_alias("EXAMPLE.com", "sales-.*", "alice")
    assert first == AliasRule("example.com", 1, "sales-.*", "alice")
    assert await d.add_alias("example.com", ".*", "bob") == AliasRule("example.com", 2, ".*", "Bob")
    await d.add_alias("example.com", "x", "alice")
    with pytest.raises(AlreadyExists):
        await d.add_alias("example.com", "x", "bob")
    moved = await d.move_alias("example.com", "x", 1)
    assert [(r.position, r.pattern) for r in moved] == [(1, "x"), (2, "sales-.*"), (3, ".*")]
    assert await d.alias_rules("example.com") == moved
    for bad in (0, 4):
        with pytest.raises(InvalidInput):
            await d.move_alias("example.com", "x", bad)
    with pytest.raises(NotFound):
        await d.move_alias("example.com", "nope", 1)
    await d.remove_alias("example.com", "sales-.*")
    with pytest.raises(NotFound):
        await d.remove_alias("example.com", "sales-.*")
    with pytest.raises(NotFound):
        await d.remove_alias("nowhere.example", "x")
    assert [(r.position, r.pattern) for r in await d.alias_rules("example.com")] == [(1, "x"), (2, ".*")]
    # A rule added after a removal still goes last.
    await d.add_alias("example.com", "y", "alice")
    assert [r.pattern for r in await d.alias_rules("example.com")] == ["x", ".*", "y"]


async def test_lookup(node: PostgresBackend) -> None:
    d = node.directory
    missing = await d.lookup(addr("x@example.com"))
    assert not missing.local_domain and missing.account is None and missing.rules == () and missing.postmaster is None
    await d.add_domain("empty.example")
    empty = await d.lookup(addr("postmaster@empty.example"))
    assert empty.local_domain and empty.account is None and empty.rules == () and empty.postmaster is None
    alice = await d.add_user(addr("alice@example.com"), HASH)
    bob = await d.add_user(addr("bob@example.com"), HASH, admin=True)
    await d.add_alias("example.com", "b-.*", "bob")
    await d.add_alias("example.com", ".*", "alice")
    await d.move_alias("example.com", ".*", 1)
    found = await d.lookup(addr("ALICE@example.com"))
    assert found.local_domain and found.account == alice
    assert found.rules == ((AliasRule("example.com", 1, ".*", "alice"), alice),
                           (AliasRule("example.com", 2, "b-.*", "bob"), bob))
    assert found.postmaster == bob                      # the first admin beats the first user
    await d.set_admin(bob.id, False)
    other = await d.lookup(addr("someone@example.com"))
    assert other.account is None and other.postmaster == alice and len(other.rules) == 2


async def test_quotas(node: PostgresBackend) -> None:
    d = node.directory
    alice = await d.add_user(addr("alice@example.com"), HASH)
    bob = await d.add_user(addr("bob@example.com"), HASH)
    carol = await d.add_user(addr("carol@example.com"), HASH)
    await insert_blob(node.db, "m")
    for user in (alice, bob, carol):
        await put_message(node.db, user.id, "INBOX", "m", 700)
    await d.set_quota(alice.id, 5000)
    await d.set_quota(bob.id, 0)
    await d.set_quota(alice.id, 6000)                  # replaces
    assert await d.quota_overrides() == {alice.id: 6000, bob.id: 0}
    usage = await d.quota_usage([alice.id, bob.id, carol.id, 999999], 1000, limited_only=True)
    # bob's own limit is "none": with limited_only his usage is not summed; no row for a
    # user that does not exist.
    assert usage == {alice.id: (700, 6000, True), bob.id: (0, 0, True), carol.id: (700, 1000, False)}
    assert await d.quota_usage([carol.id], 0, limited_only=True) == {carol.id: (0, 0, False)}
    assert await d.quota_usage([bob.id, carol.id], 0) == {bob.id: (700, 0, True), carol.id: (700, 0, False)}
    await d.set_quota(alice.id, None)
    assert await d.quota_overrides() == {bob.id: 0}


async def test_events(pg_open: Opener) -> None:
    events: list[Event] = []
    node = await pg_open(events)
    d = node.directory
    alice = await d.add_user(addr("alice@example.com"), HASH)
    assert events == [AccountsChanged()]
    await d.add_alias("example.com", ".*", "alice")
    assert events[-1] == AliasesChanged("example.com")
    events.clear()
    with pytest.raises(AlreadyExists):
        await d.add_user(addr("alice@example.com"), HASH)
    assert events == []                                  # nothing committed, nothing published
    await d.remove_user(alice.id)
    assert set(events) == {AccountsChanged(), AliasesChanged("example.com")}


async def test_two_nodes_see_each_other_and_race_once(pg_open: Opener) -> None:
    a, b = await pg_open(), await pg_open()
    alice = await a.directory.add_user(addr("alice@example.com"), HASH)
    assert await b.directory.find_user(addr("alice@example.com")) == alice
    results = await asyncio.gather(*(n.directory.add_user(addr("bob@other.example"), HASH) for n in (a, b, a, b)),
                                   return_exceptions=True)
    assert sum(isinstance(r, Account) for r in results) == 1
    assert sum(isinstance(r, AlreadyExists) for r in results) == 3
    assert await a.directory.list_domains() == [("example.com", 1), ("other.example", 1)]
    added = await asyncio.gather(*(n.directory.add_alias("example.com", f"p{i}", "alice")
                                   for i, n in enumerate((a, b) * 4)))
    rules = await b.directory.alias_rules("example.com")
    assert sorted(r.position for r in rules) == list(range(1, 9))
    assert {r.pattern for r in rules} == {r.pattern for r in added}


async def test_secret_get_or_create_agrees_across_nodes(pg_open: Opener) -> None:
    a, b = await pg_open(), await pg_open()
    made: list[bytes] = []

    def create() -> bytes:
        value = secrets.token_bytes(32)
        made.append(value)
        return value
    values = await asyncio.gather(*(n.directory.secret("jwt", create) for n in (a, b, a, b)))
    assert len(set(values)) == 1 and values[0] in made
    # Later calls read it and never create again.
    again = len(made)
    assert await b.directory.secret("jwt", create) == values[0]
    assert await a.directory.secret("jwt", create) == values[0]
    assert len(made) == again
    assert await a.directory.secret("dkim", lambda: b"other") == b"other"


async def test_removing_a_domain_while_a_user_is_added_to_it(pg_open: Opener) -> None:
    a, b = await pg_open(), await pg_open()
    for i in range(8):
        domain = f"race{i}.example"
        await a.directory.add_domain(domain)
        added, removed = await asyncio.gather(a.directory.add_user(addr(f"u@{domain}"), HASH),
                                              b.directory.remove_domain(domain), return_exceptions=True)
        assert isinstance(added, Account)
        assert removed is None or isinstance(removed, PermissionDenied)
        # Either way the user lives in a domain that exists (re-created if the removal won).
        assert (domain, 1) in await b.directory.list_domains()
        assert await b.directory.find_user(addr(f"u@{domain}")) == added
