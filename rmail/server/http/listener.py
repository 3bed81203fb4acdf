"""The API's listening sockets: aiohttp's request handler behind rmail's connection registry.

aiohttp's sites accept every connection; rmail caps connections per address and in total, and
shows each one in the console like SMTP and IMAP sessions. ``AdmittedProtocol`` wraps the
protocol aiohttp's ``runner.server`` makes for each connection: it asks the registry first
(refusing with a JSON 503 when over a cap), then forwards every protocol callback unchanged.
"""

from __future__ import annotations

import asyncio
import json
from typing import Callable

from rmail.server.core.connections import LISTEN_BACKLOG, ConnectionInfo, ConnectionRegistry


def refusal(reason: str) -> bytes:
    body = json.dumps({"error": reason}).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Retry-After: 5\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))


class AdmittedProtocol(asyncio.Protocol):
    """One API connection: admitted and registered, then handled by aiohttp."""

    def __init__(self, inner: asyncio.Protocol, registry: ConnectionRegistry, port: Callable[[], int]) -> None:
        self.inner: asyncio.Protocol | None = inner
        self.registry = registry
        self.port = port
        self.info: ConnectionInfo | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        reason = self.registry.admit("api", ip)
        if reason is not None:
            self.inner = None
            transport.write(refusal(reason))  # type: ignore[attr-defined]
            transport.close()
            return
        self.info = self.registry.open("api", self.port(), ip, False, close=transport.close)
        assert self.inner is not None
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if self.info is not None:
            self.info.bytes_in += len(data)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.info is not None:
            self.registry.closed(self.info)
            self.info = None
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


async def listen(make_protocol: Callable[[], asyncio.Protocol], registry: ConnectionRegistry,
                 host: str, port: int) -> asyncio.AbstractServer:
    """Listen on ``host:port`` (0: any free port) with every connection admitted first."""
    bound: list[int] = []

    def factory() -> AdmittedProtocol:
        return AdmittedProtocol(make_protocol(), registry, lambda: bound[0] if bound else port)

    server = await asyncio.get_running_loop().create_server(factory, host, port, reuse_address=True,
                                                            backlog=LISTEN_BACKLOG)
    bound.append(server.sockets[0].getsockname()[1])
    return server
