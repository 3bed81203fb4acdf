"""Shared pieces of the sub-commands: loading the config, opening the store, reporting errors."""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from rmail.server.config import Config, ConfigError, ensure_data_dir, load_config
from rmail.server.core.accounts import Accounts
from rmail.server.core.aliases import Aliases
from rmail.server.core.dkimkeys import DkimKeys
from rmail.server.core.errors import RmailError
from rmail.server.core.quota import Quotas
from rmail.server.core.storage import Backend, MailStore, open_backend


def fail(message: str, code: int = 1) -> int:
    print(f"rmail: {message}", file=sys.stderr)
    return code


def config_from(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None))


@dataclass
class AdminContext:
    config: Config
    backend: Backend
    store: MailStore
    accounts: Accounts
    aliases: Aliases
    quotas: Quotas
    dkim: DkimKeys


@asynccontextmanager
async def admin_context(config: Config) -> AsyncIterator[AdminContext]:
    await asyncio.to_thread(ensure_data_dir, config)
    backend = await open_backend(config.store_location, min_free_space=config.limits.min_free_space,
                                 pool_size=min(config.store.pool_size, 4))
    try:
        accounts = Accounts(backend.directory, bcrypt_rounds=config.bcrypt_rounds)
        yield AdminContext(config, backend, backend.mail, accounts, Aliases(accounts),
                           Quotas(backend.directory, default=config.limits.quota),
                           DkimKeys(backend.dkim_keys))
    finally:
        await backend.close()


def run_admin(args: argparse.Namespace, action: Callable[[AdminContext], Awaitable[int]]) -> int:
    """Load the config, open the store, run ``action``; errors become one line on stderr."""
    try:
        config = config_from(args)
    except ConfigError as exc:
        return fail(f"config: {exc}", 2)

    async def go() -> int:
        async with admin_context(config) as ctx:
            return await action(ctx)
    try:
        return asyncio.run(go())
    except RmailError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot use data dir {config.data_dir}: {exc.strerror or exc}")
