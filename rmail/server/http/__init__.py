"""rmail's REST API (SPEC.md Part 1 "Exchange REST API", Part 3 "REST shapes fixed here").

Modules: ``app`` (routes), ``auth`` (JWT HS256 bearer tokens), ``errors`` (the one
error→JSON middleware), ``cors``, ``inputs`` (bounded request reading), ``queries`` (one-hop
reads), ``login``, ``folders``, ``messages``, ``send`` + ``compose`` (MIME building),
``aliases``, ``autoconfig`` (Thunderbird/Outlook), ``openapi`` (the document at /openapi.json).

Invariants:

- Every reply to a request our code sees is JSON ``{"error": ...}`` with a 4xx when it fails;
  an unexpected exception is logged and answered 503, never 500 and never with a traceback.
- Every body is read with a cap (JSON 64 KiB, raw messages ``limits.message_size``).
- A token names a user; every mailbox lookup is scoped to that user's id, found afresh in the
  same read, so no path can reach another user's mail or the filesystem.
- Writes go through the store, so IMAP sessions see API changes through the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from .access import AccessLogger
from .access import log as access_log
from .app import make_app
from .listener import listen

__all__ = ["make_app", "start"]

log = logging.getLogger("rmail.http")

#: Seconds in-flight requests get to finish at shutdown.
SHUTDOWN_TIMEOUT = 10.0


async def start(runtime: Any, stack: contextlib.AsyncExitStack) -> None:
    """Serve the API on every ``config.listen`` address (port 0 picks a free port, shared by all)."""
    from rmail.server.runtime import Listener

    app = make_app(runtime)
    limits = runtime.config.limits
    # The access log goes to "rmail.access" (access.py); the console's log pane leaves it out
    # (runtime.BusLogHandler), where per-request lines would flood it under load.
    # aiohttp's keep-alive timer (default about an hour) also closes a connection that never
    # sends a request; listener.py adds the request-head deadline aiohttp lacks.
    runner = web.AppRunner(app, access_log=access_log, access_log_class=AccessLogger, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT, keepalive_timeout=limits.api_keepalive_timeout)
    await runner.setup()
    servers: list[asyncio.AbstractServer] = []
    # Unwound in reverse: stop accepting, let the runner finish requests and close keep-alive
    # connections, then wait for the listening sockets to be gone.
    stack.push_async_callback(_wait_closed, servers)
    stack.push_async_callback(runner.cleanup)
    stack.callback(_close, servers)
    port = runtime.config.ports.api
    make_protocol = runner.server
    assert make_protocol is not None
    for host in runtime.config.listen:
        # Our own listener rather than a TCPSite, so connections pass the registry's caps.
        server = await listen(make_protocol, runtime.connections, host, port,
                              header_timeout=limits.api_header_timeout)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        runtime.add_listener(Listener("api", host, port, "none"))


def _close(servers: list[asyncio.AbstractServer]) -> None:
    for server in servers:
        server.close()


async def _wait_closed(servers: list[asyncio.AbstractServer]) -> None:
    for server in servers:
        await server.wait_closed()
