"""Starting the IMAP listeners for the runtime (143 always, 993 only with TLS configured)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .connection import ImapServer
from .handlers import Services

__all__ = ["start"]

log = logging.getLogger("rmail.imap")


async def start(runtime, stack: contextlib.AsyncExitStack) -> ImapServer:  # noqa: ANN001
    """Open the IMAP listeners of `runtime` and register their shutdown on `stack`.

    Port 143 serves plain IMAP with STARTTLS when TLS is configured; 993 (implicit TLS) listens
    only when TLS is configured (SPEC.md "Protocol details").
    """
    from rmail.server.runtime import Listener  # runtime imports adapters, not the reverse

    cfg = runtime.config
    limits = cfg.limits
    services = Services(
        store=runtime.store, accounts=runtime.accounts, throttle=runtime.throttle,
        bus=runtime.bus, connections=runtime.connections, tls_configured=runtime.tls is not None,
        max_per_user=limits.connections_per_user)
    server = ImapServer(services, tls=runtime.tls, max_literal=limits.message_size,
                        max_line=limits.line_length)
    loop = asyncio.get_running_loop()
    listeners = []
    plans = [("imap", cfg.ports.imap, False)]
    if runtime.tls is not None:
        plans.append(("imaps", cfg.ports.imaps, True))
    else:
        log.info("imaps (993) not started: TLS is not configured")
    for protocol, port, implicit in plans:
        for host in cfg.listen:
            srv = await loop.create_server(
                lambda port=port, implicit=implicit: server.protocol_factory(port, implicit_tls=implicit),
                host, port, ssl=runtime.tls if implicit else None, reuse_address=True)
            listeners.append(srv)
            bound = srv.sockets[0].getsockname()[1]
            mode = "implicit" if implicit else ("starttls" if runtime.tls is not None else "none")
            runtime.add_listener(Listener(protocol, host, bound, mode))

    async def stop() -> None:
        for srv in listeners:
            srv.close()
        await server.close()
        for srv in listeners:
            await srv.wait_closed()
    stack.push_async_callback(stop)
    return server
