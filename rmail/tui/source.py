"""What the console shows and changes: a server in this process or one it attached to.

Panes, screens and the app use a ``ConsoleRuntime`` and nothing else of the server, so none of
them knows where the server runs. ``LocalRuntime`` is the server embedded in the console's
own loop (``python run.py``); ``remote.RemoteRuntime`` talks to a headless server over its
admin socket (``rmail console``). Both answer with the same values and raise the same core
errors (``rmail.server.admin.service.AdminService`` defines them).
"""

from __future__ import annotations

from typing import Protocol

from rmail.server.admin.firstrun import CertificateView
from rmail.server.admin.service import AdminService
from rmail.server.admin.views import ConnectionView, QueueView, ResolveView, ServerInfo, UserView
from rmail.server.core.events import Feed
from rmail.server.core.model import Account, AliasRule
from rmail.server.metrics import MetricsSummary
from rmail.server.runtime import ServerRuntime, Snapshot


class ConsoleRuntime(Protocol):
    """A running server as the console sees it. Methods raise ``RmailError`` subclasses only
    (TemporaryFailure while an attached console is cut off from its server)."""

    #: Events ("look again" hints and log lines); ``overflowed`` says some were lost, so
    #: every pane reloads.
    feed: Feed

    @property
    def attached(self) -> bool:
        """True when the server runs in another process (the console can leave it running)."""
        ...

    @property
    def connected(self) -> bool:
        """False while an attached console has lost its server (it retries meanwhile)."""
        ...

    @property
    def problem(self) -> str | None:
        """Why the console is not connected, in words (None when it is)."""
        ...

    def info(self) -> ServerInfo: ...
    def snapshot(self) -> Snapshot | None:
        """The header's numbers: live, or the latest an attached console received."""
        ...

    async def metrics(self) -> MetricsSummary: ...
    async def connections(self) -> list[ConnectionView]: ...
    async def disconnect(self, conn_id: int) -> bool: ...
    async def queue(self) -> list[QueueView]: ...
    async def queue_entry(self, entry_id: int) -> QueueView | None: ...
    async def queue_retry(self, entry_id: int) -> None: ...
    async def queue_delete(self, entry_id: int) -> None: ...
    async def queue_message_head(self, entry_id: int) -> str: ...
    async def users(self) -> list[UserView]: ...
    async def has_users(self) -> bool: ...
    async def add_user(self, address: str, password: str, admin: bool = False) -> Account: ...
    async def get_user(self, address: str) -> Account: ...
    async def set_password(self, address: str, password: str) -> None: ...
    async def set_admin(self, address: str, admin: bool) -> Account: ...
    async def remove_user(self, address: str) -> None: ...
    async def domains(self) -> list[str]: ...
    async def aliases(self, domain: str) -> list[AliasRule]: ...
    async def add_alias(self, domain: str, pattern: str, target: str) -> AliasRule: ...
    async def remove_alias(self, domain: str, pattern: str) -> None: ...
    async def move_alias(self, domain: str, pattern: str, position: int) -> list[AliasRule]: ...
    async def resolve(self, address: str) -> ResolveView: ...
    async def dns_records(self, domain: str) -> str: ...
    async def make_certificate(self, config_path: str | None = None) -> CertificateView: ...


class LocalRuntime(AdminService):
    """The server in the console's own process: the admin service called directly, and a
    bounded feed on its bus (the oldest events go first when the console falls behind)."""

    attached = False
    connected = True
    problem = None

    def __init__(self, server: ServerRuntime, *, feed_size: int) -> None:
        super().__init__(server)
        self.feed = server.bus.feed(maxlen=feed_size)

    @property
    def server(self) -> ServerRuntime:
        return self.runtime

    def close(self) -> None:
        """Stop collecting events (the console is leaving)."""
        self.runtime.bus.unsubscribe(self.feed)
