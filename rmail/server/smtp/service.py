"""Listeners and their lifecycle: one asyncio server per (address, port), graceful stop.

Stop order (SPEC Part 3, "in-flight deliveries finish"): stop accepting; wait, up to
``grace`` seconds, for every transaction that has reached DATA to be answered; then tell the
remaining sessions 421 and close them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Callable

from ..core.connections import LISTEN_BACKLOG
from ..core.rates import RateLimiter
from ..tlsaccept import Accepted, TLSAcceptor
from .handler import SMTPHandler
from .policy import Policy
from .session import RmailSMTP

if TYPE_CHECKING:
    from ..runtime import ServerRuntime


log = logging.getLogger("rmail.smtp")

#: RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
IDLE_TIMEOUT = 300.0
#: How long a graceful stop waits for transactions in DATA.
STOP_GRACE = 30.0


class SMTPService:
    def __init__(self, runtime: ServerRuntime, *, timeout: float = IDLE_TIMEOUT) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.sessions: set[RmailSMTP] = set()
        self.servers: list[asyncio.Server] = []
        self.handlers: list[SMTPHandler] = []
        self.stopping = False
        limits = runtime.config.limits
        #: Port 25, per client address: connections and MAIL commands per minute.
        self.connection_rate = RateLimiter(limits.smtp_connection_rate)
        self.message_rate = RateLimiter(limits.smtp_message_rate)
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: The 465 listeners' front: connections in their TLS handshake (tlsaccept).
        self.tls_accept: TLSAcceptor | None = None

    async def listen(self, policy: Policy, host: str, port: int, tls: ssl.SSLContext | None) -> int:
        """Bind one listener; returns the bound port (``port`` 0 picks a free one)."""
        handler = SMTPHandler(self.runtime, policy)
        self.handlers.append(handler)
        loop = asyncio.get_running_loop()
        bound: list[int] = []

        def session(accepted: Accepted | None = None) -> RmailSMTP:
            return RmailSMTP(self, policy, bound[0] if bound else port, handler, accepted=accepted)

        factory: Callable[[], asyncio.Protocol] = session
        if policy.implicit_tls and tls is not None:
            # 465 accepts plain TCP: the connection holds a pre-login slot from its first
            # moment, and tlsaccept runs the handshake (within the login deadline) first.
            if self.tls_accept is None:
                self.tls_accept = TLSAcceptor(self.runtime.connections, tls, log=log,
                                              handshake_timeout=self.runtime.config.limits.login_timeout)
            factory = self.tls_accept.protocol_factory(policy.protocol, policy.protocol,
                                                       lambda: bound[0] if bound else port, session)
        server = await loop.create_server(factory, host, port, reuse_address=True, backlog=LISTEN_BACKLOG)
        self.servers.append(server)
        bound.append(server.sockets[0].getsockname()[1])
        return bound[0]

    def transaction_started(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def transaction_finished(self) -> None:
        self._inflight -= 1
        if self._inflight <= 0:
            self._inflight = 0
            self._idle.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        self.stopping = True
        for server in self.servers:
            server.close()
        if self.tls_accept is not None:
            await self.tls_accept.close()
        if self._inflight:
            log.info("smtp: waiting for %d transaction(s) in DATA", self._inflight)
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except asyncio.TimeoutError:
                log.warning("smtp: %d transaction(s) still in DATA after %.0f s; closing", self._inflight, grace)
        for session in list(self.sessions):
            session.shutdown()
        for server in self.servers:
            await server.wait_closed()
        # Let connection_lost run for the sessions just closed.
        await asyncio.sleep(0)
        for handler in self.handlers:
            handler.close()
