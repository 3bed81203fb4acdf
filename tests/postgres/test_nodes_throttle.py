"""Failed-login throttling counts across nodes (issue 13), through real IMAP LOGIN on two
ServerRuntimes sharing a [store] url: a guesser who spreads over the nodes meets the limits
of one node."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config
from ..imap.conftest import RawClient

PAIR_FAILURES = 4
ACCOUNT_FAILURES = 6
WRONG = b"not-the-password"


@pytest.fixture
async def nodes(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[ServerRuntime, ServerRuntime]]:
    limits = {"auth_pair_failures": PAIR_FAILURES, "auth_account_failures": ACCOUNT_FAILURES}
    started = []
    try:
        for i in range(2):
            rt = ServerRuntime(make_config(tmp_path / f"node{i}", store={"url": pg_url}, limits=limits), auth_delay=0)
            await rt.start()
            started.append(rt)
        await started[0].accounts.add_user("alice@example.com", PASSWORD)
        yield started[0], started[1]
    finally:
        for rt in started:
            await rt.stop()


async def login(rt: ServerRuntime, password: bytes, source: str = "127.0.0.1") -> bytes:
    """One IMAP LOGIN as alice from ``source`` (a loopback address) on a new connection; the
    tagged reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rt.port("imap"), local_addr=(source, 0))
    client = RawClient(reader, writer)
    try:
        await client.line()
        reply = await client.cmd(b"L", b"LOGIN alice@example.com " + password)
        return reply.splitlines()[-1]
    finally:
        await client.close()


def refused(reply: bytes) -> bool:
    return reply.startswith(b"L NO [UNAVAILABLE]")


def wrong(reply: bytes) -> bool:
    return reply.startswith(b"L NO [AUTHENTICATIONFAILED]")


async def test_guesses_spread_over_two_nodes_lock_at_one_nodes_limit(nodes: tuple[ServerRuntime, ServerRuntime]) -> None:
    a, b = nodes
    for i in range(PAIR_FAILURES):
        assert wrong(await login((a, b)[i % 2], WRONG))
    # Each node saw half the limit; together they reached it: both refuse, even the password.
    for rt in (a, b):
        assert refused(await login(rt, WRONG))
        assert refused(await login(rt, PASSWORD.encode()))


async def test_a_login_through_one_node_clears_the_pair_on_the_other(nodes: tuple[ServerRuntime, ServerRuntime]) -> None:
    a, b = nodes
    for i in range(PAIR_FAILURES - 1):
        assert wrong(await login((a, b)[i % 2], WRONG))
    assert (await login(b, PASSWORD.encode())).startswith(b"L OK")
    await b.throttle.settle()
    for i in range(PAIR_FAILURES - 1):
        assert wrong(await login((a, b)[i % 2], WRONG))        # counted from 0 again on A too
    assert (await login(a, PASSWORD.encode())).startswith(b"L OK")


async def test_distributed_guessing_locks_the_account_on_both_but_spares_a_known_address(
        nodes: tuple[ServerRuntime, ServerRuntime]) -> None:
    a, b = nodes
    assert (await login(a, PASSWORD.encode(), "127.0.0.1")).startswith(b"L OK")    # alice's own device
    await a.throttle.settle()
    for i in range(ACCOUNT_FAILURES):
        assert wrong(await login((a, b)[i % 2], WRONG, f"127.0.0.{10 + i}"))
    for rt in (a, b):
        assert refused(await login(rt, PASSWORD.encode(), "127.0.0.99"))
        # Known through node A, so spared on node B as well.
        assert (await login(rt, PASSWORD.encode(), "127.0.0.1")).startswith(b"L OK")
