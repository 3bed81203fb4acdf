"""The API's listening sockets: aiohttp's request handler behind rmail's connection registry.

aiohttp's sites accept every connection; rmail caps connections per address and in total, and
shows each one in the console like SMTP and IMAP sessions. ``AdmittedProtocol`` wraps the
protocol aiohttp's ``runner.server`` makes for each connection: it asks the registry first
(refusing with a JSON 503 when over a cap), then forwards every protocol callback unchanged.

Time bounds (issue 11; nginx's ``client_header_timeout`` and ``keepalive_timeout``):

- a request's head must be complete within ``limits.api_header_timeout`` of the connection
  opening or of the first byte after the previous request was handled, however slowly the
  bytes trickle in; past it the client gets ``408`` and the connection closes. aiohttp has no
  such timer: its keep-alive timer stops an idle connection but not one that sends a byte now
  and then. ``request_middleware`` tells the wrapper when a request head has been read;
- an idle keep-alive connection closes after ``limits.api_keepalive_timeout``: that one is
  aiohttp's own ``keepalive_timeout`` (``http.start`` passes it to the runner).

A connection counts as authenticated (it then no longer holds a pre-login slot, see
``core.connections``) once a request on it carried a valid token or logged in: the API
modules call ``authenticated(request, user)``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Awaitable, Callable

from aiohttp import web

from rmail.server.core.connections import LISTEN_BACKLOG, ConnectionInfo, ConnectionRegistry

from .access import USER_KEY

#: Seconds for a request head when the caller does not say (``limits.api_header_timeout``).
HEADER_TIMEOUT = 30.0

#: The wrapper of each open connection, by transport, for the middleware and the auth hook.
_ADMITTED: dict[asyncio.BaseTransport, AdmittedProtocol] = {}


def _json_reply(status: str, reason: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"error": reason}).encode()
    return (b"HTTP/1.1 %b\r\nContent-Type: application/json\r\nConnection: close\r\n%b"
            b"Content-Length: %d\r\n\r\n%b" % (status.encode(), extra, len(body), body))


def refusal(reason: str) -> bytes:
    return _json_reply("503 Service Unavailable", reason, b"Retry-After: 5\r\n")


class AdmittedProtocol(asyncio.Protocol):
    """One API connection: admitted and registered, then handled by aiohttp."""

    def __init__(self, inner: asyncio.Protocol, registry: ConnectionRegistry, port: Callable[[], int],
                 header_timeout: float = HEADER_TIMEOUT) -> None:
        self.inner: asyncio.Protocol | None = inner
        self.registry = registry
        self.port = port
        self.header_timeout = header_timeout
        self.info: ConnectionInfo | None = None
        self.transport: asyncio.Transport | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._busy = False          # a request head has been read and is being handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        reason = self.registry.admit("api", ip)
        if reason is not None:
            self.inner = None
            transport.write(refusal(reason))
            transport.close()
            return
        self.transport = transport
        self.info = self.registry.open("api", self.port(), ip, False, close=transport.close)
        _ADMITTED[transport] = self
        self._arm()                 # the first request head is due within the timeout too
        assert self.inner is not None
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if self.info is not None:
            self.info.bytes_in += len(data)
        if not self._busy and self._head_timer is None:
            self._arm()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.transport is not None:
            _ADMITTED.pop(self.transport, None)
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

    # -- request head deadline ---------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = asyncio.get_running_loop().call_later(self.header_timeout, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        transport = self.transport
        if self._busy or transport is None or transport.is_closing():
            return
        transport.write(_json_reply("408 Request Timeout", "request header timeout"))
        transport.close()

    def request_started(self) -> None:
        self._disarm()
        self._busy = True

    def request_finished(self) -> None:
        # The next head's timer starts with its first byte (data_received); until then only
        # aiohttp's keep-alive timer runs.
        self._busy = False


def _admitted(request: web.BaseRequest) -> AdmittedProtocol | None:
    transport = request.transport
    return _ADMITTED.get(transport) if transport is not None else None


@web.middleware
async def request_middleware(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Stops the head timer while a request is handled (its body has its own caps)."""
    conn = _admitted(request)
    if conn is None:                # aiohttp's test client: no listener of ours
        return await handler(request)
    conn.request_started()
    try:
        return await handler(request)
    finally:
        conn.request_finished()


def authenticated(request: web.BaseRequest, user: str) -> None:
    """The request on this connection proved who it is (valid token, or a login)."""
    request[USER_KEY] = user             # for the access log
    conn = _admitted(request)
    if conn is not None and conn.info is not None and not conn.info.authenticated:
        conn.registry.authenticated(conn.info, user)


async def listen(make_protocol: Callable[[], asyncio.Protocol], registry: ConnectionRegistry,
                 host: str, port: int, *, header_timeout: float = HEADER_TIMEOUT) -> asyncio.AbstractServer:
    """Listen on ``host:port`` (0: any free port) with every connection admitted first."""
    bound: list[int] = []

    def factory() -> AdmittedProtocol:
        return AdmittedProtocol(make_protocol(), registry, lambda: bound[0] if bound else port,
                                header_timeout)

    server = await asyncio.get_running_loop().create_server(factory, host, port, reuse_address=True,
                                                            backlog=LISTEN_BACKLOG)
    bound.append(server.sockets[0].getsockname()[1])
    return server
