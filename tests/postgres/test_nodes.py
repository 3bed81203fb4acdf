"""Several rmail nodes on one PostgreSQL database behave as one server (issue 13), through the
real interfaces: IMAP, SMTP and the REST API of two ServerRuntimes sharing a [store] url."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import AsyncIterator

import aiosmtplib
import pytest

from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config
from ..imap.conftest import RawClient
from ..smtp.sink import Sink, eventually, start_sink, stop_sink

MESSAGE = b"From: carol@example.org\r\nTo: alice@example.com\r\nSubject: hello\r\n\r\nacross nodes\r\n"


async def start_nodes(tmp_path: Path, url: str, n: int = 2, **overrides: object) -> list[ServerRuntime]:
    nodes = []
    for i in range(n):
        rt = ServerRuntime(make_config(tmp_path / f"node{i}", store={"url": url}, **overrides), auth_delay=0)
        await rt.start()
        nodes.append(rt)
    return nodes


@pytest.fixture
async def nodes(tmp_path: Path, pg_url: str) -> AsyncIterator[list[ServerRuntime]]:
    started = await start_nodes(tmp_path, pg_url)
    yield started
    for rt in started:
        await rt.stop()


async def test_a_user_added_on_one_node_logs_in_on_the_other(nodes: list[ServerRuntime]) -> None:
    a, b = nodes
    await a.accounts.add_user("alice@example.com", PASSWORD)
    client = await RawClient.connect(b.port("imap"))
    try:
        await client.login()
        assert b"* LIST" in await client.cmd(b"l", b'LIST "" INBOX')
    finally:
        await client.close()


async def test_mail_delivered_through_one_node_reaches_idle_on_the_other(nodes: list[ServerRuntime]) -> None:
    a, b = nodes
    await a.accounts.add_user("alice@example.com", PASSWORD)
    client = await RawClient.connect(b.port("imap"))
    try:
        await client.login()
        assert b"* 0 EXISTS" in await client.cmd(b"s", b"SELECT INBOX")
        await client.send(b"i IDLE\r\n")
        assert (await client.line()).startswith(b"+ ")
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=a.port("smtp")) as smtp:
            await smtp.sendmail("carol@example.org", ["alice@example.com"], MESSAGE)
        # The change notice crosses nodes through LISTEN/NOTIFY (the latency is measured in
        # bench/nodes_bench.py; here only that it arrives).
        assert await client.line(timeout=10) == b"* 1 EXISTS\r\n"
        await client.send(b"DONE\r\n")
        await client.until_tagged(b"i")
        reply = await client.cmd(b"f", b"UID FETCH 1 (BODY.PEEK[TEXT])")
        assert b"across nodes" in reply
    finally:
        await client.close()


def _post(port: int, path: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def _get(port: int, path: str, token: str) -> tuple[int, object]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


async def test_a_token_from_one_node_works_on_the_other(nodes: list[ServerRuntime]) -> None:
    a, b = nodes
    await a.accounts.add_user("alice@example.com", PASSWORD)
    status, body = await asyncio.to_thread(_post, a.port("api"), "/auth/login",
                                           {"username": "alice@example.com", "password": PASSWORD})
    assert status == 200
    status, listing = await asyncio.to_thread(_get, b.port("api"), "/folders", body["token"])
    assert status == 200
    assert "INBOX" in [f["name"] for f in listing["folders"]]   # type: ignore[index]


async def test_uids_ascend_under_appends_through_both_nodes(nodes: list[ServerRuntime]) -> None:
    a, b = nodes
    await a.accounts.add_user("alice@example.com", PASSWORD)
    clients = [await RawClient.connect(rt.port("imap")) for rt in (a, b, a, b)]
    try:
        for c in clients:
            await c.login()

        async def append(c: RawClient, n: int) -> list[int]:
            uids = []
            for i in range(n):
                data = b"Subject: %d\r\n\r\nx\r\n" % i
                reply = await c.cmd(b"a", b"APPEND INBOX {%d+}\r\n%b" % (len(data), data))
                assert b"a OK [APPENDUID" in reply, reply
                uids.append(int(reply.split(b"APPENDUID ")[1].split(b"]")[0].split()[1]))
            return uids
        per_client = await asyncio.gather(*(append(c, 25) for c in clients))
        everything = [u for uids in per_client for u in uids]
        assert sorted(everything) == list(range(1, 101))       # unique, none lost, none skipped
        assert all(uids == sorted(uids) for uids in per_client)  # each client's in commit order
        status = await clients[0].cmd(b"s", b"STATUS INBOX (MESSAGES UIDNEXT)")
        assert b"MESSAGES 100 UIDNEXT 101" in status
    finally:
        for c in clients:
            await c.close()


async def test_each_queue_entry_is_relayed_once_however_many_nodes_run(tmp_path: Path, pg_url: str) -> None:
    sink: Sink = await start_sink()
    started = await start_nodes(tmp_path, pg_url, n=3, relay={"host": "127.0.0.1", "port": sink.port, "tls": "none"})
    try:
        a = started[0]
        await a.accounts.add_user("alice@example.com", PASSWORD)
        rcpts = [f"r{i}@remote.example.org" for i in range(30)]
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=a.port("submission")) as client:
            await client.login("alice@example.com", PASSWORD)
            for i in range(0, 30, 10):
                await client.sendmail("alice@example.com", rcpts[i:i + 10], MESSAGE)
        for rt in started:
            rt.queue.wake()        # every scheduler looks at once (another node's commit woke them too)
        async def drained() -> bool:
            return await a.backend.queue.list() == []
        await eventually(lambda: len(sink.messages) >= 30, timeout=30)
        await eventually(drained, timeout=30)      # an entry leaves the queue once relayed
        delivered = sorted(r for m in sink.messages for r in m.recipients)
        assert delivered == sorted(rcpts)          # every one, and each once
    finally:
        for rt in started:
            await rt.stop()
        await stop_sink(sink)
