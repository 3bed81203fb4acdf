"""Starting the IMAP listeners for the runtime (143 always, 993 only with TLS configured)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from rmail.server.core.connections import LISTEN_BACKLOG

from .connection import ImapServer
from .state import AUTOLOGOUT, Services
__all__ = ["start"]

log = logging.getLogger("rmail.imap")



async def start(runtime, stack: contextlib.AsyncExitStack, *,  # noqa: ANN001
                autologout: float = AUTOLOGOUT, login_timeout: float | None = None,
                ports: tuple[int, int] | None = None) -> ImapServer:
    """Open the IMAP listeners of `runtime` and register their shutdown on `stack`.

    Port 143 serves plain IMAP with STARTTLS when TLS is configured; 993 (implicit TLS) listens
    only when TLS is configured (SPEC.md "Protocol details"). `login_timeout` defaults to
    ``limits.login_timeout``. Tests pass short timers and
    `ports` (imap, imaps) to run a second server beside the runtime's.
    """
    from rmail.server.runtime import Listener  # runtime imports adapters, not the reverse

    cfg = runtime.config
    limits = cfg.limits
    services = Services(
        store=runtime.store, accounts=runtime.accounts, throttle=runtime.throttle,
        bus=runtime.bus, connections=runtime.connections, tls_configured=runtime.tls is not None,
        max_per_user=limits.connections_per_user, autologout=autologout,
        search_budget=limits.search_budget or None, quotas=runtime.quotas,
        append_limit=limits.message_size)
    server = ImapServer(services, tls=runtime.tls, max_literal=limits.message_size,
                        max_line=limits.line_length, preauth_literal=limits.preauth_literal,
                        login_timeout=limits.login_timeout if login_timeout is None else login_timeout)
    loop = asyncio.get_running_loop()
    listeners = []
    imap_port, imaps_port = ports if ports is not None else (cfg.ports.imap, cfg.ports.imaps)
    plans = [("imap", imap_port, False)]
    if runtime.tls is not None:
        plans.append(("imaps", imaps_port, True))
    else:
        log.info("imaps (993) not started: TLS is not configured")
    for protocol, port, implicit in plans:
        for host in cfg.listen:
            # 993 accepts plain TCP: the connection holds a pre-login slot from its first
            # moment, and tlsaccept runs the handshake (within the login deadline) before the
            # session starts.
            bound_port: list[int] = []
            if implicit:
                assert server.tls_accept is not None
                factory = server.tls_accept.protocol_factory(
                    "imap", "imaps", lambda b=bound_port, p=port: b[0] if b else p,
                    lambda accepted, b=bound_port, p=port: server.protocol_factory(
                        b[0] if b else p, implicit_tls=True, accepted=accepted))
            else:
                factory = lambda port=port: server.protocol_factory(port, implicit_tls=False)  # noqa: E731
            srv = await loop.create_server(factory, host, port, reuse_address=True, backlog=LISTEN_BACKLOG)
            listeners.append(srv)
            bound = srv.sockets[0].getsockname()[1]
            bound_port.append(bound)
            mode = "implicit" if implicit else ("starttls" if runtime.tls is not None else "none")
            server.ports.setdefault(protocol, bound)
            if ports is None:
                runtime.add_listener(Listener(protocol, host, bound, mode))

    async def stop() -> None:
        for srv in listeners:
            srv.close()
        await server.close()
        for srv in listeners:
            await srv.wait_closed()
    stack.push_async_callback(stop)
    return server
