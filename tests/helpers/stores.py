"""Opening stores in tests the way the server and the CLI do (storage.open_backend), on either
backend: the contract tests run once per backend (tests/core/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import Backend, StoreLocation, open_backend

#: Every backend the contract tests run against.
BACKENDS = ("sqlite", "postgres")


async def open_sqlite(data_dir: Path, **kwargs: Any) -> Backend:
    """The embedded store in ``data_dir`` (created if new)."""
    return await open_backend(StoreLocation(data_dir), **kwargs)


async def open_kind(kind: str, data_dir: Path, pg_cluster: Any = None, **kwargs: Any) -> Backend:
    """A new, empty store of ``kind`` ("sqlite" in ``data_dir``, or "postgres": a fresh
    database on the test cluster)."""
    if kind == "sqlite":
        return await open_sqlite(data_dir, **kwargs)
    return await open_backend(StoreLocation(data_dir, pg_cluster.create_database()), **kwargs)


def accounts_of(backend: Backend, rounds: int = 4) -> Accounts:
    """Accounts over ``backend`` with cheap bcrypt (tests only)."""
    return Accounts(backend.directory, bcrypt_rounds=rounds)


async def stored_blobs(backend: Backend) -> set[str]:
    """Ids of every message whose bytes the store still keeps (leak checks). Backend-specific
    by nature: the contract has no such question."""
    if backend.location.kind == "sqlite":
        return backend.mail.blob_ids()  # type: ignore[attr-defined,no-any-return]
    rows = await backend.db.read(lambda conn: conn.fetch("SELECT id FROM blobs"))  # type: ignore[attr-defined]
    return {r[0] for r in rows}
