"""Schema migrations: in order, each once, one transaction each, safe from several nodes at
once; a database newer than the code is refused."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import asyncpg
import pytest

from rmail.server.core.errors import TemporaryFailure
from rmail.server.core.postgres.migrate import (LOCK_KEY, Migration, SchemaTooNew, current_version, latest_version,
                                                load_migrations, migrate)

from .nodes import Opener, pg_open  # noqa: F401 - pg_open is a fixture

ROOT = Path(__file__).resolve().parents[2]

COUNTING = [
    Migration(1, "0001_a.sql", "CREATE TABLE counter(n integer NOT NULL); INSERT INTO counter VALUES (1);"),
    # The sleep holds the lock long enough for every other node to queue up behind it.
    Migration(2, "0002_b.sql", "SELECT pg_sleep(0.2); UPDATE counter SET n = n + 10;"),
]


def test_packaged_migrations_are_numbered_and_shipped() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_initial.sql" and "CREATE TABLE users" in migrations[0].sql
    assert latest_version() == len(migrations)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "migrations/*.sql" in pyproject["tool"]["setuptools"]["package-data"]["rmail.server.core.postgres"]


async def test_migrate_applies_everything_once_and_is_idempotent(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await current_version(conn) == 0
        assert await migrate(conn) == latest_version()
        assert await migrate(conn) == latest_version()
        rows = await conn.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, latest_version() + 1))
        assert await conn.fetchval("SELECT to_regclass('queue') IS NOT NULL")
        # The lock was released: another session can take it at once.
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
    finally:
        await conn.close()


async def test_concurrent_migrations_run_once(pg_url: str) -> None:
    conns = [await asyncpg.connect(pg_url) for _ in range(5)]
    try:
        versions = await asyncio.gather(*(migrate(c, COUNTING) for c in conns))
        assert versions == [2] * 5
        assert await conns[0].fetchval("SELECT n FROM counter") == 11
        assert await conns[0].fetchval("SELECT count(*) FROM schema_version") == 2
    finally:
        for c in conns:
            await c.close()


async def test_a_later_migration_applies_on_top(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await migrate(conn, COUNTING[:1]) == 1
        assert await conn.fetchval("SELECT n FROM counter") == 1
        assert await migrate(conn, COUNTING) == 2
        assert await conn.fetchval("SELECT n FROM counter") == 11
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_the_previous_version(pg_url: str) -> None:
    broken = [*COUNTING[:1], Migration(2, "0002_broken.sql", "CREATE TABLE half(x int); SELEC oops;")]
    conn = await asyncpg.connect(pg_url)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await migrate(conn, broken)
        assert await current_version(conn) == 1
        assert not await conn.fetchval("SELECT to_regclass('half') IS NOT NULL")
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
    finally:
        await conn.close()


async def test_newer_schema_is_refused(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO schema_version(version, applied) VALUES($1, 0)", latest_version() + 1)
        with pytest.raises(SchemaTooNew, match=f"version {latest_version() + 1}.*upgrade rmail"):
            await migrate(conn, where="the test database")
    finally:
        await conn.close()


async def test_open_refuses_a_newer_schema(pg_open: Opener, pg_url: str) -> None:
    await pg_open()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("INSERT INTO schema_version(version, applied) VALUES($1, 0)", latest_version() + 7)
    finally:
        await conn.close()
    with pytest.raises(TemporaryFailure, match="upgrade rmail"):
        await pg_open()


async def test_nodes_opening_at_once_migrate_once(pg_open: Opener, pg_url: str) -> None:
    nodes = await asyncio.gather(*(pg_open() for _ in range(4)))
    assert len({n.db.node for n in nodes}) == 4              # every node has its own id
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_version") == latest_version()
    finally:
        await conn.close()
    assert [await n.integrity_check() for n in nodes] == ["ok"] * 4
