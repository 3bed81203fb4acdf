"""A backend bundles the contract's parts over one database, and ``open_backend`` picks one."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from ..dkimkeys import KeyStore
from ..events import Event
from .directory import Directory
from .mail import MailStore
from .queuestore import QueueStore
from .throttle import FailureLedger
from .views import MailViews

if TYPE_CHECKING:
    from .transfer import Transfer

__all__ = ["Backend", "StoreLocation", "open_backend", "open_key_store"]

Publish = Callable[[list[Event]], None]


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where the store lives: the data dir (SQLite, blob files) or a PostgreSQL URL."""

    data_dir: Path
    url: str | None = None           #: "postgresql://user@host:port/db"; None: SQLite in data_dir

    @property
    def kind(self) -> str:
        return "postgresql" if self.url else "sqlite"

    def describe(self) -> str:
        """For logs and the console: never shows a password."""
        if not self.url:
            return f"sqlite:{self.data_dir / 'rmail.db'}"
        from urllib.parse import urlsplit
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"postgresql://{user}{host}{port}{parts.path}"


class Backend(Protocol):
    # Read-only: callers use the parts and never replace them, so a backend may hold its own
    # classes (SqliteMailStore...) and still satisfy the contract.
    @property
    def location(self) -> StoreLocation: ...
    @property
    def mail(self) -> MailStore: ...
    @property
    def directory(self) -> Directory: ...
    @property
    def queue(self) -> QueueStore: ...
    @property
    def views(self) -> MailViews: ...
    @property
    def transfer(self) -> Transfer:
        """The store as a source or target of ``store copy``."""
        ...
    @property
    def login_failures(self) -> FailureLedger:
        """Failed-login counts (core/authguard.py): shared by every node of the store."""
        ...
    @property
    def dkim_keys(self) -> KeyStore:
        """DKIM signing keys; blocking, for worker threads (core/dkimkeys.py)."""
        ...

    def set_publisher(self, publish: Publish) -> None:
        """Where events go after commit: this process's own and, through the change feed,
        those of other processes and nodes."""
        ...

    async def ping(self) -> None:
        """Raises unless the store answers a trivial read (GET /healthz)."""
        ...

    async def integrity_check(self) -> str:
        """"ok" or the first problem found (``run.py diagnose``)."""
        ...

    async def close(self) -> None:
        ...


async def open_backend(location: StoreLocation, *, publish: Publish | None = None, recover: bool = False,
                       min_free_space: int = 0, pool_size: int | None = None) -> Backend:
    """Open (creating or migrating its schema) the store at ``location``.

    ``recover``: the server, holding the data-dir lock, removes crash leftovers at start-up;
    a second process (the CLI) must not. ``min_free_space`` applies to a local disk only,
    ``pool_size`` (connections at most; None: the backend's default) to PostgreSQL only.
    """
    if location.url:
        module = importlib.import_module("rmail.server.core.postgres")
        extra = {} if pool_size is None else {"pool_size": pool_size}
        backend: Backend = await module.open(location, publish=publish, recover=recover,
                                             min_free_space=min_free_space, **extra)
    else:
        module = importlib.import_module("rmail.server.core.sqlite")
        backend = await module.open(location, publish=publish, recover=recover, min_free_space=min_free_space)
    return backend


def open_key_store(location: StoreLocation) -> KeyStore:
    """The DKIM key store of the store at ``location`` alone, without opening the rest
    (``store copy`` carries the keys across). Blocking; ``close`` it if it has ``close``."""
    name = "postgres" if location.url else "sqlite"
    module = importlib.import_module(f"rmail.server.core.{name}")
    store: KeyStore = module.key_store(location)
    return store
