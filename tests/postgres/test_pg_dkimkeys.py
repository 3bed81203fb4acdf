"""DKIM keys in PostgreSQL ([store] url): generations and PEMs round-trip, the version moves on
every save and never repeats, rotation keeps its rules, nodes making a domain's first keys at
once agree on one generation, a key made on one node signs on another (verified through a
loopback DNS server), ``run.py dkim`` works on the database, and the blocking store may be
called from an event loop's own thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterator

import aiosmtplib
import pytest

from rmail.server.core.dkimkeys import ConditionalKeyStore, DkimKeys, Generation, KeyState, KeyStore
from rmail.server.core.errors import AlreadyExists, InvalidInput, NotFound, TemporaryFailure
from rmail.server.core.dns import Resolver, parse_nameserver
from rmail.server.core.mailauth.dkim import verify_all
from rmail.server.core.mailauth.signing import Signer
from rmail.server.core.postgres.bridge import SyncBridge
from rmail.server.core.postgres.dkimkeys import PgKeyStore
from rmail.server.core.storage import Backend, StoreLocation, open_backend
from rmail.server.runtime import ServerRuntime
from tests.helpers.dns import DNSServer
from tests.helpers.server import cli_runner, make_config

from ..conftest import PASSWORD

MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: signed\r\n"
           b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello,  world \r\n")

Nodes = Callable[[], Awaitable[Backend]]


@pytest.fixture
async def open_node(tmp_path: Path, pg_url: str) -> AsyncIterator[Nodes]:
    """``await open_node()``: one more rmail node (a backend) on the test's database."""
    opened: list[Backend] = []

    async def opener() -> Backend:
        backend = await open_backend(StoreLocation(tmp_path / f"node{len(opened)}", pg_url), pool_size=2)
        opened.append(backend)
        return backend
    yield opener
    for backend in opened:
        await backend.close()


@pytest.fixture
def zone() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


def publish(zone: DNSServer, generations: list[Generation]) -> None:
    for g in generations:
        for k in g.keys:
            zone.add(k.dns_name, "TXT", k.dns_value)


def verdicts(signed: bytes, zone: DNSServer) -> list[tuple[str, str, str]]:
    """(result, selector, algorithm) of each DKIM-Signature, checked by rmail's own verifier
    against the loopback DNS server."""
    resolver = Resolver(parse_nameserver(zone.address), timeout=2)
    return [(r.result, r.selector, r.algorithm) for r in verify_all(signed, resolver.txt_sync)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the store ---------------------------------------------------------------------------------


async def test_generations_and_pems_round_trip_between_nodes(open_node: Nodes, tmp_path: Path) -> None:
    a, b = await open_node(), await open_node()
    assert isinstance(a.dkim_keys, PgKeyStore) and isinstance(a.dkim_keys, ConditionalKeyStore)
    keys = DkimKeys(a.dkim_keys)
    [first] = await asyncio.to_thread(keys.ensure, "Example.COM")
    pending = await asyncio.to_thread(keys.rotate, "example.com")
    made = [first, pending]
    # Everything comes back as made, private keys byte for byte, on the other node too.
    assert await asyncio.to_thread(b.dkim_keys.load, "example.com") == made
    assert await asyncio.to_thread(b.dkim_keys.load, "EXAMPLE.com.") == made        # one spelling of a domain
    assert [k.private_pem[:28] for k in first.keys] == [b"-----BEGIN PRIVATE KEY-----\n"] * 2
    assert await asyncio.to_thread(b.dkim_keys.load, "example.org") == []
    assert await asyncio.to_thread(b.dkim_keys.version, "example.org") is None
    # The secrets are in the database, not in any node's data dir.
    assert not (tmp_path / "node0" / "keys" / "dkim").exists()
    with pytest.raises(InvalidInput):
        await asyncio.to_thread(a.dkim_keys.load, "../etc")


async def test_version_moves_on_every_save_and_never_repeats(open_node: Nodes) -> None:
    store = (await open_node()).dkim_keys
    keys = DkimKeys(store)
    gens = await asyncio.to_thread(keys.ensure, "example.com")
    seen = [await asyncio.to_thread(store.version, "example.com")]
    await asyncio.to_thread(store.save, "example.com", gens)            # the same content: still a save
    seen.append(await asyncio.to_thread(store.version, "example.com"))
    assert await asyncio.to_thread(store.version, "example.com") == seen[-1]   # reading changes nothing
    await asyncio.to_thread(store.delete, "example.com")
    assert await asyncio.to_thread(store.version, "example.com") is None
    assert await asyncio.to_thread(store.load, "example.com") == []
    await asyncio.to_thread(store.save, "example.com", gens)
    seen.append(await asyncio.to_thread(store.version, "example.com"))
    # A cache keyed on an old version can never take the keys made after a delete for its own.
    assert all(isinstance(v, int) for v in seen) and len(set(seen)) == 3


async def test_save_if_saves_only_onto_the_version_it_was_given(open_node: Nodes) -> None:
    store = (await open_node()).dkim_keys
    assert isinstance(store, PgKeyStore)
    keys = DkimKeys(store)
    [first] = await asyncio.to_thread(keys.ensure, "example.com")
    version = await asyncio.to_thread(store.version, "example.com")
    retired = [Generation(first.name, KeyState.RETIRED, first.created, first.keys, 1)]
    assert not await asyncio.to_thread(store.save_if, "example.com", retired, None)       # it has keys
    assert not await asyncio.to_thread(store.save_if, "example.com", retired, "1")        # not a version of ours
    assert await asyncio.to_thread(store.save_if, "example.com", retired, version)
    assert await asyncio.to_thread(store.load, "example.com") == retired
    assert not await asyncio.to_thread(store.save_if, "example.com", [first], version)    # stale now
    assert await asyncio.to_thread(store.load, "example.com") == retired
    assert await asyncio.to_thread(store.save_if, "example.org", [], None)                # first save


# -- the key service on PostgreSQL (as tests/core/test_dkim_signing.py on files) -----------------


async def test_rotation_signs_with_the_old_generation_until_published(open_node: Nodes) -> None:
    keys = DkimKeys((await open_node()).dkim_keys)

    def scenario() -> None:
        [first] = keys.ensure("example.com")
        assert first.state is KeyState.ACTIVE and first.selectors == (f"{first.name}-rsa", f"{first.name}-ed")
        pending = keys.rotate("example.com")
        assert pending.state is KeyState.PENDING and pending.name != first.name
        assert keys.signing_keys("example.com") == first.keys
        assert [g.name for g in keys.published("example.com")] == [first.name, pending.name]
        with pytest.raises(AlreadyExists):
            keys.rotate("example.com")
        with pytest.raises(InvalidInput):
            keys.publish("example.com", first.name)
        with pytest.raises(NotFound):
            keys.publish("example.com", "nosuch")
        keys.publish("example.com", pending.name)
        states = {g.name: g.state for g in keys.generations("example.com")}
        assert states == {first.name: KeyState.RETIRED, pending.name: KeyState.ACTIVE}
        assert keys.signing_keys("example.com")[0].selector == f"{pending.name}-rsa"
        assert [g.name for g in keys.published("example.com")] == [pending.name]
        keys.forget("example.com")
        assert keys.generations("example.com") == [] and keys.published_if_any("example.com") == []
        [again] = keys.ensure("example.com")
        assert again.keys[0].private_pem not in {first.keys[0].private_pem, pending.keys[0].private_pem}
    await asyncio.to_thread(scenario)


async def test_rotation_on_one_node_is_seen_by_the_others_cache(open_node: Nodes) -> None:
    a, b = DkimKeys((await open_node()).dkim_keys), DkimKeys((await open_node()).dkim_keys)

    def scenario() -> None:
        [first] = a.ensure("example.com")
        assert b.signing_keys("example.com") == first.keys          # cached on b from here on
        new = a.rotate("example.com")
        a.publish("example.com", new.name)
        assert b.signing_keys("example.com")[0].selector == f"{new.name}-rsa"
        a.forget("example.com")
        assert b.generations("example.com") == []
    await asyncio.to_thread(scenario)


# -- several nodes at once ---------------------------------------------------------------------


class Racing:
    """A node's key store whose first ``load`` waits until every node has loaded: each then
    finds no keys and makes a first generation of its own, and their saves race."""

    def __init__(self, store: KeyStore, barrier: threading.Barrier) -> None:
        assert isinstance(store, ConditionalKeyStore)
        self.store = store
        self.barrier = barrier
        self.saves: list[bool] = []
        self._waited = False

    def load(self, domain: str) -> list[Generation]:
        found = self.store.load(domain)
        if not self._waited:
            self._waited = True
            self.barrier.wait(timeout=30)
        return found

    def save(self, domain: str, generations: list[Generation]) -> None:
        self.store.save(domain, generations)

    def save_if(self, domain: str, generations: list[Generation], expected: object) -> bool:
        saved = self.store.save_if(domain, generations, expected)
        self.saves.append(saved)
        return saved

    def version(self, domain: str) -> object:
        return self.store.version(domain)

    def delete(self, domain: str) -> None:
        self.store.delete(domain)


async def test_two_nodes_making_the_first_keys_at_once_agree_on_one(open_node: Nodes) -> None:
    a, b = await open_node(), await open_node()
    barrier = threading.Barrier(2)
    racing = [Racing(a.dkim_keys, barrier), Racing(b.dkim_keys, barrier)]
    services = [DkimKeys(r) for r in racing]
    results = await asyncio.gather(*(asyncio.to_thread(s.ensure, "example.com") for s in services))
    # Both made keys; one save won, the other lost and took the winner's generation.
    assert sorted(r.saves for r in racing) == [[False], [True]]
    assert results[0] == results[1] and len(results[0]) == 1 and results[0][0].state is KeyState.ACTIVE
    assert await asyncio.to_thread(a.dkim_keys.load, "example.com") == results[0]
    signing = [await asyncio.to_thread(s.signing_keys, "example.com") for s in services]
    assert signing[0] == signing[1] == results[0][0].keys


async def test_many_signers_on_two_nodes_start_with_one_generation(open_node: Nodes) -> None:
    a, b = await open_node(), await open_node()
    # A DkimKeys per thread: nothing in-process serialises them, only the database does.
    services = [DkimKeys(node.dkim_keys) for node in (a, b) for _ in range(3)]
    results = await asyncio.gather(*(asyncio.to_thread(s.signing_keys, "example.com") for s in services))
    assert all(r == results[0] for r in results)
    assert [g.keys for g in await asyncio.to_thread(b.dkim_keys.load, "example.com")] == [results[0]]


async def test_concurrent_rotations_on_two_nodes_make_one_pending_generation(open_node: Nodes) -> None:
    a, b = DkimKeys((await open_node()).dkim_keys), DkimKeys((await open_node()).dkim_keys)
    await asyncio.to_thread(a.ensure, "example.com")
    outcomes = await asyncio.gather(asyncio.to_thread(a.rotate, "example.com"),
                                    asyncio.to_thread(b.rotate, "example.com"), return_exceptions=True)
    made = [o for o in outcomes if isinstance(o, Generation)]
    refused = [o for o in outcomes if isinstance(o, AlreadyExists)]
    assert len(made) == 1 and len(refused) == 1, outcomes
    pending = [g for g in await asyncio.to_thread(b.generations, "example.com") if g.state is KeyState.PENDING]
    assert pending == made


async def test_a_key_made_on_one_node_signs_on_another(open_node: Nodes, zone: DNSServer) -> None:
    a, b = await open_node(), await open_node()
    made = await asyncio.to_thread(DkimKeys(a.dkim_keys).ensure, "example.com")
    publish(zone, made)
    on_b = DkimKeys(b.dkim_keys)
    signed = await Signer(on_b).sign(MESSAGE, "example.com")
    assert signed.endswith(MESSAGE) and signed != MESSAGE
    [gen] = made
    assert verdicts(signed, zone) == [("pass", f"{gen.name}-rsa", "rsa-sha256"),
                                      ("pass", f"{gen.name}-ed", "ed25519-sha256")]
    assert await asyncio.to_thread(on_b.generations, "example.com") == made        # b made none of its own
    assert [v[0] for v in verdicts(signed.replace(b"Hello,", b"Hullo,"), zone)] == ["fail", "fail"]


async def test_mail_submitted_on_one_server_is_signed_with_the_keys_another_made(
        tmp_path: Path, pg_url: str, zone: DNSServer) -> None:
    nodes = []
    try:
        for i in range(2):
            rt = ServerRuntime(make_config(tmp_path / f"rt{i}", store={"url": pg_url}), auth_delay=0)
            await rt.start()
            nodes.append(rt)
        a, b = nodes
        assert b.dkim.store is b.backend.dkim_keys
        await a.accounts.add_user("alice@example.com", PASSWORD)
        await a.accounts.add_user("bob@example.com", PASSWORD)
        made = await asyncio.to_thread(a.dkim.ensure, "example.com")
        publish(zone, made)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=b.port("submission")) as client:
            await client.login("alice@example.com", PASSWORD)
            await client.sendmail("alice@example.com", ["bob@example.com"], MESSAGE)
        bob = await b.accounts.get_user("bob@example.com")
        [meta] = await b.store.list_messages((await b.store.get_mailbox(bob.id, "INBOX")).id)
        stored = await b.store.read_message(meta.blob_id)
        signed = stored[stored.index(b"DKIM-Signature:"):]
        assert [(v[0], v[1]) for v in verdicts(signed, zone)] == [("pass", f"{made[0].name}-rsa"),
                                                                  ("pass", f"{made[0].name}-ed")]
    finally:
        for rt in nodes:
            await rt.stop()


# -- blocking calls, failures ------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_the_blocking_store_may_be_called_on_an_event_loop_thread(open_node: Nodes) -> None:
    node = await open_node()
    keys = DkimKeys(node.dkim_keys)
    # Straight on this loop's thread, as code that forgot asyncio.to_thread would: the store
    # waits on a loop of its own, never on this one.
    began = time.monotonic()
    [gen] = keys.ensure("example.com")
    assert node.dkim_keys.version("example.com") is not None
    assert keys.signing_keys("example.com") == gen.keys
    assert time.monotonic() - began < 30
    # The loop and the backend's own pool still work.
    await asyncio.sleep(0)
    await node.ping()
    assert await asyncio.to_thread(node.dkim_keys.load, "example.com") == [gen]


async def test_an_unreachable_database_is_a_temporary_failure_and_mail_goes_unsigned(tmp_path: Path) -> None:
    store = PgKeyStore(StoreLocation(tmp_path, f"postgresql://rmail:hunter2@127.0.0.1:{closed_port()}/rmail"))
    try:
        with pytest.raises(TemporaryFailure) as err:
            await asyncio.to_thread(store.version, "example.com")
        assert "hunter2" not in str(err.value)
        with pytest.raises(TemporaryFailure):
            await asyncio.to_thread(store.save, "example.com", [])
        signer = Signer(DkimKeys(store))
        assert await signer.sign(MESSAGE, "example.com") is MESSAGE        # logged, sent unsigned
    finally:
        await asyncio.to_thread(store.close)


async def test_a_closed_store_refuses_and_a_slow_call_times_out(pg_url: str, open_node: Nodes) -> None:
    node = await open_node()
    store = node.dkim_keys
    await asyncio.to_thread(store.version, "example.com")       # the store's thread is running
    await node.close()
    with pytest.raises(TemporaryFailure, match="closed"):
        await asyncio.to_thread(store.version, "example.com")
    bridge = SyncBridge(pg_url, where="the test database", call_timeout=0.5)
    try:
        began = time.monotonic()
        with pytest.raises(TemporaryFailure, match="^too slow$"):
            await asyncio.to_thread(bridge.call, lambda conn: conn.execute("SELECT pg_sleep(20)"), failure="too slow")
        assert time.monotonic() - began < 10
        assert await asyncio.to_thread(bridge.call, lambda conn: conn.fetchval("SELECT 7"), failure="x") == 7
    finally:
        await asyncio.to_thread(bridge.close)


# -- the CLI -----------------------------------------------------------------------------------


def test_the_dkim_cli_works_on_a_postgresql_store(tmp_path: Path, pg_url: str) -> None:
    cli = cli_runner(tmp_path, f'hostname = "mail.a.test"\n[store]\nurl = "{pg_url}"\n')

    def generations() -> dict[str, str]:
        r = cli("dkim", "list", "a.test")
        assert r.returncode == 0, r.stderr
        return {line.split("\t")[0]: line.split("\t")[1] for line in r.stdout.splitlines() if "\t" in line}

    r = cli("domain", "add", "a.test")
    assert r.returncode == 0 and "DKIM keys for a.test" in r.stdout, r.stderr
    [(first, state)] = generations().items()
    assert state == "active"
    r = cli("dkim", "rotate", "a.test")
    assert r.returncode == 0 and "run.py dkim publish a.test" in r.stdout, r.stderr
    second = r.stdout.split("\t")[0]
    assert f"{second}-rsa._domainkey.a.test." in cli("dns", "a.test").stdout
    r = cli("dkim", "rotate", "a.test")
    assert r.returncode == 1 and "already has a pending key generation" in r.stderr
    assert cli("dkim", "publish", "a.test", second).returncode == 0
    assert generations() == {first: "retired", second: "active"}
    # The keys are in the database (a node reading it finds them), and no file holds one.
    assert not (tmp_path / "data" / "keys" / "dkim").exists()

    async def from_the_database() -> list[Generation]:
        backend = await open_backend(StoreLocation(tmp_path / "elsewhere", pg_url), pool_size=2)
        try:
            return await asyncio.to_thread(backend.dkim_keys.load, "a.test")
        finally:
            await backend.close()
    loaded = asyncio.run(from_the_database())
    assert [(g.name, g.state) for g in loaded] == [(first, KeyState.RETIRED), (second, KeyState.ACTIVE)]
