"""AdminService: everything the console does to a server, as calls on a running runtime.

The embedded console calls it directly; the admin socket maps each request onto it (``api.OPS``).
So one piece of code decides what "add a user" or "retry a queue entry" means, whether the
console runs in the server's process or attaches to it from another one.

Every method answers with plain values (``views.py``, ``Account``, ``AliasRule``, ``Snapshot``,
``MetricsSummary``) and raises only core errors (``RmailError`` subclasses), whose messages are
meant for the user.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import rmail

from ..config import default_config_path
from ..core.errors import NotFound, TemporaryFailure
from ..core.mailauth.records import records_for, zone_text
from ..core.model import Account, AliasRule, QueueEntry
from ..core.queue import OutboundQueue
from ..metrics import MetricsSummary
from .firstrun import CertificateView, make_certificate
from .views import ConnectionView, QueueView, ResolveView, ServerInfo, UserView

if TYPE_CHECKING:
    from ..runtime import ServerRuntime, Snapshot

#: Queue entries listed at most; a queue this long needs the CLI, not a scrolling table.
MAX_QUEUE_ROWS = 1000
#: Bytes of a queued message read for its header preview; the header of any real message fits.
PREVIEW_BYTES = 8192


def queue_view(e: QueueEntry) -> QueueView:
    return QueueView(e.id, e.sender, e.recipient, e.size, e.created.timestamp(), e.attempts,
                     e.next_attempt.timestamp(), e.last_error)


class AdminService:
    """The console's operations on ``runtime`` (which must be started)."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime

    # -- the server ------------------------------------------------------------------------

    def info(self) -> ServerInfo:
        cfg = self.runtime.config
        return ServerInfo(cfg.hostname, str(cfg.data_dir), os.getpid(), rmail.__version__, cfg.tls.configured,
                          str(cfg.source) if cfg.source is not None else None)

    def snapshot(self) -> Snapshot:
        return self.runtime.snapshot()

    async def metrics(self) -> MetricsSummary:
        return await self.runtime.metrics.summary()

    # -- connections -----------------------------------------------------------------------

    async def connections(self) -> list[ConnectionView]:
        return [ConnectionView(c.id, c.protocol, c.peer, c.user, c.tls, c.state, c.since, c.bytes_in, c.bytes_out)
                for c in self.runtime.connections.snapshot()]

    async def disconnect(self, conn_id: int) -> bool:
        """Ask a connection to close; False when it is gone or cannot be closed."""
        return self.runtime.connections.disconnect(conn_id)

    # -- the outbound queue ----------------------------------------------------------------

    async def queue(self) -> list[QueueView]:
        """Entries in the order they will be tried (at most MAX_QUEUE_ROWS)."""
        entries = await self.runtime.backend.queue.list(by_next_attempt=True, limit=MAX_QUEUE_ROWS)
        return [queue_view(e) for e in entries]

    async def queue_entry(self, entry_id: int) -> QueueView | None:
        try:
            return queue_view(await self.runtime.backend.queue.get(entry_id))
        except NotFound:
            return None

    def _outbound(self) -> OutboundQueue:
        """The queue the SMTP service runs (it owns the delivery attempts)."""
        outbound = getattr(self.runtime.delivery, "outbound", None)
        if not isinstance(outbound, OutboundQueue):
            raise TemporaryFailure("the outbound queue is not running (the SMTP service has not started)")
        return outbound

    async def queue_retry(self, entry_id: int) -> None:
        await self._outbound().retry(entry_id)

    async def queue_delete(self, entry_id: int) -> None:
        await self._outbound().delete(entry_id)

    async def queue_message_head(self, entry_id: int) -> str:
        """The header of a queued message, as text."""
        entry = await self.runtime.backend.queue.get(entry_id)
        try:
            data = await self.runtime.store.read_message(entry.blob_id)
        except OSError as exc:
            raise TemporaryFailure(f"cannot read the message: {exc.strerror or exc}") from None
        head = data[:PREVIEW_BYTES].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        return head.decode("utf-8", "replace").replace("\r", "")

    # -- users -----------------------------------------------------------------------------

    async def users(self) -> list[UserView]:
        rt = self.runtime
        limits = await rt.quotas.limits()
        return [UserView(u.account.address, u.account.admin, u.mailboxes, u.messages, u.size,
                         limits.get(u.account.id, (rt.quotas.default, False))[0])
                for u in await rt.accounts.usage()]

    async def has_users(self) -> bool:
        return bool(await self.runtime.accounts.list_users())

    async def add_user(self, address: str, password: str, admin: bool = False) -> Account:
        return await self.runtime.accounts.add_user(address, password, admin=admin)

    async def get_user(self, address: str) -> Account:
        return await self.runtime.accounts.get_user(address)

    async def set_password(self, address: str, password: str) -> None:
        await self.runtime.accounts.set_password(address, password)

    async def set_admin(self, address: str, admin: bool) -> Account:
        return await self.runtime.accounts.set_admin(address, admin)

    async def remove_user(self, address: str) -> None:
        await self.runtime.accounts.remove_user(address)

    # -- domains and aliases ---------------------------------------------------------------

    async def domains(self) -> list[str]:
        return [name for name, _ in await self.runtime.accounts.list_domains()]

    async def aliases(self, domain: str) -> list[AliasRule]:
        return await self.runtime.aliases.list(domain)

    async def add_alias(self, domain: str, pattern: str, target: str) -> AliasRule:
        return await self.runtime.aliases.add(domain, pattern, target)

    async def remove_alias(self, domain: str, pattern: str) -> None:
        await self.runtime.aliases.remove(domain, pattern)

    async def move_alias(self, domain: str, pattern: str, position: int) -> list[AliasRule]:
        return await self.runtime.aliases.move(domain, pattern, position)

    async def resolve(self, address: str) -> ResolveView:
        resolution = await self.runtime.aliases.resolve(address)
        return ResolveView(resolution.describe(), resolution.account is not None)

    async def dns_records(self, domain: str) -> str:
        """The records ``domain`` should publish, as ``run.py dns DOMAIN`` prints them."""
        cfg = self.runtime.config
        try:
            records = await records_for(cfg, self.runtime.dkim, domain)
        except OSError as exc:
            raise TemporaryFailure(f"DKIM keys: {exc.strerror or exc}") from None
        return zone_text(domain, records, hostname=cfg.hostname)

    # -- first run -------------------------------------------------------------------------

    async def make_certificate(self, config_path: str | None = None) -> CertificateView:
        """A self-signed certificate in the data dir's keys/, and a new config file with the
        ``[tls]`` lines when the server runs without one (never overwriting a file)."""
        cfg = self.runtime.config
        path = Path(config_path) if config_path else (cfg.source or default_config_path())
        try:
            return await asyncio.to_thread(make_certificate, cfg, path)
        except OSError as exc:
            raise TemporaryFailure(f"cannot write the certificate: {exc.strerror or exc}") from None

