"""Stores as an older rmail left them, for migration tests: the schema up to a version (SQLite)
or up to just before a numbered migration (PostgreSQL), holding one user, alice@example.com
(id 1, in domain 1), whose rows the test then adds as that version wrote them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from rmail.server.core.postgres.migrate import load_migrations, migrate as pg_migrate
from rmail.server.core.sqlite import schema as sqlite_schema
from rmail.server.core.sqlite.migrate import STEPS


def sqlite_at(data_dir: Path, version: int) -> sqlite3.Connection:
    """rmail.db in ``data_dir`` at schema ``version`` with alice; the caller closes it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / "rmail.db", isolation_level=None)
    conn.executescript(sqlite_schema())
    for step, statements in STEPS:
        if step <= version:
            for sql in statements:
                conn.execute(sql)
    conn.execute(f"PRAGMA user_version = {int(version)}")
    conn.execute("INSERT INTO domains(id, name) VALUES(1, 'example.com')")
    conn.execute("INSERT INTO users(id, domain_id, local, local_key, password_hash, admin, created)"
                 " VALUES(1, 1, 'alice', 'alice', x'00', 0, 0)")
    return conn


async def postgres_before(conn: asyncpg.Connection, migration: str) -> int:
    """Migrate the database of ``conn`` up to just before the file ``migration`` and add
    alice; returns the version it is at."""
    migrations = load_migrations()
    step = next(m for m in migrations if m.name == migration)
    version: int = await pg_migrate(conn, migrations[:step.version - 1])
    await conn.execute("INSERT INTO domains(id, name) VALUES(1, 'example.com')")
    await conn.execute("INSERT INTO users(id, domain_id, local, local_key, password_hash, admin, created)"
                       " VALUES(1, 1, 'alice', 'alice', '\\x00', false, 0)")
    return version
