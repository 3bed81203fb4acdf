"""Opening stores in tests the way the server and the CLI do (storage.open_backend)."""

from __future__ import annotations

from pathlib import Path

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import Backend, StoreLocation, open_backend


async def open_sqlite(data_dir: Path, **kwargs) -> Backend:  # noqa: ANN003 - open_backend's keywords
    """The embedded store in ``data_dir`` (created if new)."""
    return await open_backend(StoreLocation(data_dir), **kwargs)


def accounts_of(backend: Backend, rounds: int = 4) -> Accounts:
    """Accounts over ``backend`` with cheap bcrypt (tests only)."""
    return Accounts(backend.directory, bcrypt_rounds=rounds)
