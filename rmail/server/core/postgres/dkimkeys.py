"""DKIM keys in PostgreSQL (``dkimkeys.KeyStore``): every node signs with the same keys.

Tables ``dkim_domains`` (one row per domain with its ``version``), ``dkim_generations`` and
``dkim_private_keys`` (migrations/0003_dkim_keys.sql). A save is one transaction that bumps
the version from a sequence and replaces the domain's rows, so a reader sees one generation
list or the next, never a mix, and a version never repeats. ``save_if`` is the same save made
only if the version is still the one the caller read: two nodes making a domain's first keys
at once end with one node's keys, and the other reloads them (DkimKeys does).

The methods block: they run on the bridge's own loop (bridge.py) and may be called from any
thread, the CLI's event-loop thread included.
"""

from __future__ import annotations

import asyncpg

from ..dkimkeys import SUFFIXES, DkimKey, Generation, KeyState, key_domain
from ..storage.backend import StoreLocation
from .bridge import SyncBridge

__all__ = ["PgKeyStore"]

_READ_FAILED = "the DKIM keys could not be read from the store; try again"
_WRITE_FAILED = "the DKIM keys could not be saved in the store; try again"
#: ``save``'s expectation when it has none: save whatever the version.
_ANY = object()


class PgKeyStore:
    """dkimkeys.KeyStore (with ``save_if``) on the backend's database; thread-safe."""

    def __init__(self, location: StoreLocation, *, call_timeout: float | None = None) -> None:
        if not location.url:
            raise ValueError("PgKeyStore needs a PostgreSQL URL")
        extra = {} if call_timeout is None else {"call_timeout": call_timeout}
        self._bridge = SyncBridge(location.url, where=location.describe(), name="rmail dkim", **extra)

    def load(self, domain: str) -> list[Generation]:
        name = key_domain(domain)

        async def q(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            # One statement: one snapshot of the generations and their keys.
            rows: list[asyncpg.Record] = await conn.fetch(
                "SELECT g.name, g.state, g.created, g.changed, k.selector, k.algorithm, k.private_pem"
                " FROM dkim_generations g JOIN dkim_private_keys k ON k.domain = g.domain AND k.generation = g.name"
                " WHERE g.domain = $1 ORDER BY g.position, k.position", name)
            return rows
        rows = self._bridge.call(q, failure=_READ_FAILED)
        out: list[Generation] = []
        keys: list[DkimKey] = []
        for i, row in enumerate(rows):
            keys.append(DkimKey(name, row["selector"], row["algorithm"], bytes(row["private_pem"])))
            if i + 1 == len(rows) or rows[i + 1]["name"] != row["name"]:
                out.append(Generation(row["name"], KeyState(row["state"]), int(row["created"]), tuple(keys),
                                      int(row["changed"])))
                keys = []
        return out

    def save(self, domain: str, generations: list[Generation]) -> None:
        self._save(domain, generations, _ANY)

    def save_if(self, domain: str, generations: list[Generation], expected: object) -> bool:
        """``save`` only if ``version(domain)`` is still ``expected`` (None: the domain has no
        keys); False, with nothing written, if another process saved or deleted meanwhile."""
        if expected is not None and not isinstance(expected, int):
            return False        # not a version of this store: it cannot be the current one
        return self._save(domain, generations, expected)

    def _save(self, domain: str, generations: list[Generation], expected: object) -> bool:
        name = key_domain(domain)
        for g in generations:
            if len(g.keys) != len(SUFFIXES) or any(k.domain != name for k in g.keys):
                raise ValueError(f"generation {g.name} does not hold one key per algorithm of {name}")

        async def w(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                # The domain row is locked first by every writer: saves of one domain queue up
                # behind each other and cannot deadlock.
                if expected is _ANY:
                    version = await conn.fetchval(
                        "INSERT INTO dkim_domains(domain, version) VALUES($1, nextval('dkim_version'))"
                        " ON CONFLICT (domain) DO UPDATE SET version = EXCLUDED.version RETURNING version", name)
                elif expected is None:
                    # Waits for a concurrent first save of the domain, then finds its row.
                    version = await conn.fetchval(
                        "INSERT INTO dkim_domains(domain, version) VALUES($1, nextval('dkim_version'))"
                        " ON CONFLICT (domain) DO NOTHING RETURNING version", name)
                else:
                    # READ COMMITTED re-checks the WHERE on the row a concurrent save committed.
                    version = await conn.fetchval(
                        "UPDATE dkim_domains SET version = nextval('dkim_version')"
                        " WHERE domain = $1 AND version = $2 RETURNING version", name, expected)
                if version is None:
                    return False
                await conn.execute("DELETE FROM dkim_generations WHERE domain = $1", name)   # keys cascade
                await conn.executemany(
                    "INSERT INTO dkim_generations(domain, name, position, state, created, changed)"
                    " VALUES($1, $2, $3, $4, $5, $6)",
                    [(name, g.name, i, g.state.value, g.created, g.changed) for i, g in enumerate(generations)])
                await conn.executemany(
                    "INSERT INTO dkim_private_keys(domain, generation, position, selector, algorithm, private_pem)"
                    " VALUES($1, $2, $3, $4, $5, $6)",
                    [(name, g.name, j, k.selector, k.algorithm, k.private_pem)
                     for g in generations for j, k in enumerate(g.keys)])
                return True
        return self._bridge.call(w, failure=_WRITE_FAILED)

    def version(self, domain: str) -> int | None:
        name = key_domain(domain)

        async def q(conn: asyncpg.Connection) -> int | None:
            value = await conn.fetchval("SELECT version FROM dkim_domains WHERE domain = $1", name)
            return None if value is None else int(value)
        return self._bridge.call(q, failure=_READ_FAILED)

    def delete(self, domain: str) -> None:
        name = key_domain(domain)

        async def w(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM dkim_domains WHERE domain = $1", name)   # the rest cascades
        self._bridge.call(w, failure=_WRITE_FAILED)

    def close(self) -> None:
        """Close its connections (blocking); the backend's ``close`` calls it."""
        self._bridge.close()
