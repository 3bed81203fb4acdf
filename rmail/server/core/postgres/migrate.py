"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order, once.

Each file runs in a transaction of its own together with the row that records its version in
``schema_version``, so a crash leaves the schema at one version or the next, never between.
A session advisory lock serialises nodes that start at once: the first one migrates, the
others wait for it and then find nothing left to do. A database already at a version newer
than this code knows is refused: an older rmail must not write to a schema it does not know.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from importlib import resources

import asyncpg

from ..errors import TemporaryFailure

__all__ = ["LOCK_KEY", "Migration", "SchemaTooNew", "current_version", "latest_version", "load_migrations",
           "migrate"]

log = logging.getLogger("rmail.store")

#: pg_advisory_lock key of the migration lock: "rmail" in ASCII, unlikely to meet another
#: application's key in a shared database.
LOCK_KEY = 0x726D61696C
_PACKAGE = __name__.rpartition(".")[0]
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version(
    version integer PRIMARY KEY,
    applied bigint NOT NULL               -- unix seconds
)"""


class SchemaTooNew(TemporaryFailure):
    """The database was migrated by a newer rmail; this node must be upgraded first."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The packaged migrations in version order.

    Raises:
        RuntimeError: the files are not numbered 1, 2, 3... (a packaging mistake).
    """
    found = []
    for entry in resources.files(_PACKAGE).joinpath("migrations").iterdir():
        m = _NAME.fullmatch(entry.name)
        if m is not None:
            found.append(Migration(int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    if [mig.version for mig in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n: {[mig.name for mig in found]}")
    return found


def latest_version() -> int:
    return len(load_migrations())


async def current_version(conn: asyncpg.Connection) -> int:
    """The schema version of the database (0: nothing applied yet)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None, *,
                  where: str = "the database") -> int:
    """Bring the schema up to date; returns its version. Safe to call from every node at once.

    Args:
        conn: a connection outside any transaction (the lock is held by its session).
        migrations: for tests; the packaged ones by default.
        where: how to name the database in messages (never with a password).

    Raises:
        SchemaTooNew: the database is at a version this code does not know.
    """
    migrations = load_migrations() if migrations is None else migrations
    latest = migrations[-1].version if migrations else 0
    # Waits while another node migrates; released in ``finally`` (and by the server if this
    # session dies, so a crashed node never leaves the others waiting).
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_CREATE_VERSION_TABLE)
        version = await current_version(conn)
        if version > latest:
            raise SchemaTooNew(f"{where} has schema version {version}, but this rmail knows only up to {latest}:"
                               " upgrade rmail on this node (an older version must not write to a newer schema)")
        for mig in migrations:
            if mig.version <= version:
                continue
            log.info("store: applying migration %s to %s", mig.name, where)
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute("INSERT INTO schema_version(version, applied) VALUES($1, $2)",
                                   mig.version, int(time.time()))
            version = mig.version
        return version
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pass   # the session is gone, and its lock with it; the original error matters
