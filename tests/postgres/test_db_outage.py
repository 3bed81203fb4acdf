"""The database goes away under a running node and comes back: meanwhile every protocol
answers with a temporary error (nothing is acknowledged that was not committed), and the node
serves again by itself once PostgreSQL is back, its change feed included (docs/SCALING.md)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers import pg
from ..helpers.server import make_config
from ..imap.conftest import RawClient
from ..smtp.sink import eventually

MESSAGE = b"From: carol@example.org\r\nTo: alice@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        json.loads(exc.read())        # still a JSON body
        return exc.code


async def _deliver(rt: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=rt.port("smtp"), timeout=20) as smtp:
        await smtp.sendmail("carol@example.org", ["alice@example.com"], MESSAGE)


@pytest.fixture
def cluster(pg_cluster: Any) -> Any:
    """A cluster of this test's own (it is stopped and started again), not the shared one."""
    del pg_cluster   # skips or fails the same way when PostgreSQL is missing
    own = pg.Cluster().start()
    yield own
    own.stop()


async def test_a_node_rides_out_a_database_outage(cluster: Any, tmp_path: Path) -> None:
    url = cluster.create_database()
    rt = ServerRuntime(make_config(tmp_path / "node", store={"url": url}), auth_delay=0)
    await rt.start()
    try:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        watcher = await RawClient.connect(rt.port("imap"))
        await watcher.login()
        await watcher.cmd(b"s", b"SELECT INBOX")

        cluster.pause()
        assert await asyncio.to_thread(_health, rt.port("api")) == 503
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await _deliver(rt)
        # Try again later: never 5xx (the sender would bounce it), never 250.
        assert [e.code for e in refused.value.recipients] == [451]
        client = await RawClient.connect(rt.port("imap"))
        await client.line()
        reply = await client.cmd(b"L", b"LOGIN alice@example.com " + PASSWORD.encode())
        assert reply.startswith(b"L NO [UNAVAILABLE]"), reply
        await client.close()

        cluster.resume()
        await eventually(lambda: _ok(rt), timeout=30)
        await _deliver(rt)
        inbox = await rt.store.get_mailbox((await rt.accounts.get_user("alice@example.com")).id, "INBOX")
        assert len(await rt.store.list_messages(inbox.id)) == 1   # the refused one was not stored
        # The session that was selected throughout hears of the new message.
        await watcher.send(b"n NOOP\r\n")
        assert b"* 1 EXISTS" in await watcher.until_tagged(b"n", timeout=20)
        await watcher.close()
    finally:
        await rt.stop()


async def _ok(rt: ServerRuntime) -> bool:
    return await asyncio.to_thread(_health, rt.port("api")) == 200
