from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.aliases import Aliases
from rmail.server.core.store import MailStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MailStore]:
    s = await MailStore.open(tmp_path, recover=True)
    yield s
    s.close()


@pytest.fixture
def accounts(store: MailStore) -> Accounts:
    return Accounts(store, bcrypt_rounds=4)


@pytest.fixture
def aliases(accounts: Accounts) -> Aliases:
    return Aliases(accounts)
