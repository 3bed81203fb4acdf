"""Issue 16: a team behind one NAT address works with the default config.

200 concurrent IMAP connections from 127.0.0.1 all log in, SELECT and LOGOUT (the old
defaults refused them past 50 per address and 50 per user), half of them as one user.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rmail.server.config import Limits
from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.server import make_config

from .conn_tools import close, connect_from, raise_nofile, read_line

CLIENTS = 200


async def _client(port: int, user: str, all_in: asyncio.Event, waiting: list[int]) -> list[bytes]:
    """Connect and log in, wait until every client is logged in (so all 200 sessions are
    open at once), then SELECT and LOGOUT; the tagged replies."""
    reader, writer = await connect_from(port)
    try:
        assert (await read_line(reader, 60)).startswith(b"* OK")
        tagged = []
        for i, command in enumerate((b"a LOGIN " + user.encode() + b" " + PASSWORD.encode(),
                                     b"b SELECT INBOX", b"c LOGOUT")):
            if i == 1:
                waiting.append(1)
                if len(waiting) == CLIENTS:
                    all_in.set()
                await asyncio.wait_for(all_in.wait(), 120)
            writer.write(command + b"\r\n")
            tag = command[:2]
            while not (line := await read_line(reader, 60)).startswith(tag):
                if not line:
                    raise ConnectionError(f"closed after {tagged!r}")
            tagged.append(line)
        return tagged
    finally:
        await close(writer)


def test_defaults_fit_a_team_behind_one_address() -> None:
    limits = Limits()
    assert limits.connections_per_ip >= CLIENTS and limits.connections_per_user >= CLIENTS // 2
    assert limits.preauth_connections >= CLIENTS          # all 200 may be logging in at once


@pytest.mark.timeout(180)
async def test_200_connections_from_one_address_log_in_select_and_log_out(tmp_path: Path) -> None:
    raise_nofile(4 * CLIENTS + 512)
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await rt.accounts.add_user("bob@example.com", PASSWORD)
        all_in = asyncio.Event()
        waiting: list[int] = []
        users = ["alice@example.com"] * (CLIENTS // 2) + ["bob@example.com"] * (CLIENTS // 2)
        results = await asyncio.gather(*(_client(rt.port("imap"), u, all_in, waiting) for u in users))
        for tagged in results:
            assert [line.split(b" ")[1] for line in tagged] == [b"OK", b"OK", b"OK"], tagged
        assert rt.connections.peak >= CLIENTS
        assert rt.connections.evicted == 0
