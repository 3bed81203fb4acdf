"""The contract fixtures: ``backend`` (and ``store``, ``accounts``, ``aliases`` over it) runs
each test once per backend in helpers.stores.BACKENDS; a test marked ``sqlite_only`` (it looks
at the embedded store's files or threads) runs on SQLite alone."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.aliases import Aliases
from rmail.server.core.storage import Backend, MailStore

from ..helpers.stores import BACKENDS, open_kind


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_kind" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("backend_kind", ["sqlite"] if only else list(BACKENDS))


@pytest.fixture
async def backend(backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    cluster = request.getfixturevalue("pg_cluster") if backend_kind == "postgres" else None
    b = await open_kind(backend_kind, tmp_path, cluster, recover=True)
    yield b
    await b.close()


@pytest.fixture
def store(backend: Backend) -> MailStore:
    return backend.mail


@pytest.fixture
def accounts(backend: Backend) -> Accounts:
    return Accounts(backend.directory, bcrypt_rounds=4)


@pytest.fixture
def aliases(accounts: Accounts) -> Aliases:
    return Aliases(accounts)
