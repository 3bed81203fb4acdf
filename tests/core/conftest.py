from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.aliases import Aliases
from rmail.server.core.storage import Backend, MailStore

from ..helpers.stores import open_sqlite


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    b = await open_sqlite(tmp_path, recover=True)
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
