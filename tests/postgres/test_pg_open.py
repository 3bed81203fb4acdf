"""Opening the PostgreSQL backend: clear errors that name the host and never the password;
the integrity check finds what is wrong."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rmail.server.core.errors import TemporaryFailure

from .nodes import Opener, insert_blob, pg_open  # noqa: F401 - pg_open is a fixture


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_server_names_host_not_password(pg_open: Opener) -> None:
    port = free_port()          # nothing listens there
    with pytest.raises(TemporaryFailure) as err:
        await pg_open(url=f"postgresql://rmail:s3cr%21t-pw@127.0.0.1:{port}/mail")
    message = str(err.value)
    assert f"127.0.0.1:{port}/mail" in message and "rmail@" in message
    assert "s3cr" not in message and "t-pw" not in message


async def test_missing_database_is_named(pg_open: Opener, pg_url: str) -> None:
    parts = urlsplit(pg_url)
    url = parts._replace(netloc=f"{parts.username}:hunter2@{parts.hostname}:{parts.port}",
                         path="/no_such_db").geturl()
    with pytest.raises(TemporaryFailure, match="no_such_db") as err:
        await pg_open(url=url)
    assert "hunter2" not in str(err.value)


async def test_malformed_url_is_refused_clearly(pg_open: Opener) -> None:
    with pytest.raises(TemporaryFailure, match="not a valid PostgreSQL URL") as err:
        await pg_open(url="postgresql://rmail:hunter2@db.example:99999/mail")
    assert "hunter2" not in str(err.value)


async def test_pool_size_is_the_most_connections_a_node_holds(pg_open: Opener) -> None:
    node = await pg_open(pool_size=3)
    assert node.db.pool.get_max_size() == 3


async def test_ping_and_integrity_check(pg_open: Opener) -> None:
    node = await pg_open()
    await node.ping()
    assert await node.integrity_check() == "ok"
    await insert_blob(node.db, "lonely")          # bytes that no message or queue entry uses
    assert "lonely" in await node.integrity_check()
    await node.db.write(lambda txn: txn.conn.execute("DELETE FROM blob_data"))
    assert await node.integrity_check() == "message lonely has no bytes stored (blob_data row missing)"


async def test_closed_backend_refuses_politely(pg_open: Opener) -> None:
    node = await pg_open()
    await node.close()
    with pytest.raises(TemporaryFailure):
        await node.ping()
    await node.close()                              # twice is fine


def test_describe_hides_the_password(tmp_path: Path) -> None:
    from rmail.server.core.storage import StoreLocation
    where = StoreLocation(tmp_path, "postgresql://rmail:pw@db.example:5433/mail").describe()
    assert where == "postgresql://rmail@db.example:5433/mail"
