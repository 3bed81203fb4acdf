"""Implicit TLS (IMAPS 993, SMTPS 465) accepted as plain TCP, so the handshake holds a slot.

``loop.create_server(ssl=ctx)`` runs the TLS handshake before the application protocol's
``connection_made``: a connection that never sends a ClientHello was invisible to the
connection registry, bounded in time by the handshake timeout but not in number by
``limits.preauth_connections``, ``connections`` or ``connections_per_ip`` (issue 11). Here a
listener accepts plain TCP instead; each connection is admitted and registered at once as a
pre-login connection of its protocol family, exactly like a cleartext one (a newcomer may
take its slot), and only then is TLS started with ``loop.start_tls``. When the handshake
completes, the session protocol is made and *adopts the same registry entry* (``Accepted``):
one entry from accept to close, never two, and the login deadline still counts from accept.

A handshake that fails or does not finish within ``handshake_timeout`` (the login deadline)
is one INFO line naming the peer and the reason, then the connection closes; never a
traceback. A connection dropped for a newcomer (or by the console, or at shutdown) before
its handshake has finished is closed without a word: there is no TLS yet to say it in.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Callable, Final

from .core.connections import ConnectionInfo, ConnectionRegistry

__all__ = ["Accepted", "TLSAcceptor", "handshake_failure"]

#: Bytes a client may send after its handshake completes and before the session takes over
#: (a turn or two of the event loop; a real client waits for the greeting and sends none).
#: Past it the connection is dropped: nothing reads them yet.
EARLY_DATA_CAP: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Accepted:
    """A connection whose TLS handshake has completed, handed to the session protocol.

    The session uses ``info`` as its registry entry (setting ``info.close`` and ``info.evict``
    to its own) instead of asking ``admit``/``open`` again, and counts its login deadline from
    ``accepted_at`` (``loop.time()`` at accept), not from the end of the handshake.
    """

    info: ConnectionInfo
    accepted_at: float


SessionFactory = Callable[[Accepted], asyncio.Protocol]


def handshake_failure(exc: BaseException | None, timeout: float | None = None) -> str:
    """Why a server-side TLS handshake failed, for its one log line (implicit TLS and STARTTLS).

    ``exc`` is what ``loop.start_tls`` raised (None: it returned no transport, the client
    closed); ``timeout`` the handshake timeout it was given.
    """
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, ConnectionAbortedError):
        # asyncio's handshake timer aborts the transport with this error.
        return f"no handshake within {timeout:g} s" if timeout is not None else "aborted"
    if exc is None or isinstance(exc, ConnectionError):
        return "closed by the client"
    return str(exc) or type(exc).__name__


class TLSAcceptor:
    """The implicit-TLS front of one service's listeners; knows its handshakes in flight.

    Args:
        registry: the runtime's connection registry (admission and pre-login slots).
        context: the server-side TLS context.
        handshake_timeout: seconds from accept for the handshake (``limits.login_timeout``).
        log: the service's logger; failed handshakes are INFO lines on it.
    """

    def __init__(self, registry: ConnectionRegistry, context: ssl.SSLContext, *,
                 handshake_timeout: float, log: logging.Logger) -> None:
        self.registry = registry
        self.context = context
        self.handshake_timeout = handshake_timeout
        self.log = log
        self.pending: set[_Handshake] = set()

    def protocol_factory(self, protocol: str, label: str, port: Callable[[], int],
                         session: SessionFactory) -> Callable[[], asyncio.Protocol]:
        """The ``create_server`` factory of one listener.

        ``protocol`` is the registry's name for the connection (its family decides the
        pre-login pool), ``label`` the listener's name in log lines ("imaps", "smtps"),
        ``port`` the bound port, ``session`` makes the real protocol once TLS is up.
        """
        def make() -> _Handshake:
            return _Handshake(self, protocol, label, port(), session)
        return make

    async def close(self) -> None:
        """Drop every connection still in its handshake and wait until each is cleaned up."""
        tasks = [h.task for h in self.pending if h.task is not None]
        for handshake in list(self.pending):
            handshake.drop()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


class _Handshake(asyncio.Protocol):
    """One accepted connection until its session takes over.

    First the plain transport's protocol (only ``connection_made`` runs: reading is paused
    at once so the ClientHello waits for the TLS layer ``start_tls`` installs), then the
    TLS transport's until the session is connected (it only keeps the few bytes a client
    may send in between).
    """

    def __init__(self, acceptor: TLSAcceptor, protocol: str, label: str, port: int,
                 session: SessionFactory) -> None:
        self.acceptor = acceptor
        self.protocol = protocol
        self.label = label
        self.port = port
        self.session = session
        self.raw: asyncio.Transport | None = None
        self.info: ConnectionInfo | None = None
        self.task: asyncio.Task[None] | None = None
        self.accepted_at = 0.0
        self._early = bytearray()
        self._client_left = False
        self._dropped = False

    # -- the plain transport ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # Before the event loop first polls this socket (it does so after connection_made):
        # the ClientHello is for the TLS layer, never for us.
        transport.pause_reading()
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else "?"
        registry = self.acceptor.registry
        if registry.admit(self.protocol, ip) is not None:
            # Over connections_per_ip, or every slot held by logged-in sessions: no TLS to
            # say it in, so just close (the client sees a handshake failure and retries).
            transport.close()
            return
        self.raw = transport
        self.info = registry.open(self.protocol, self.port, ip, True, close=self.drop, evict=self.drop)
        loop = asyncio.get_running_loop()
        self.accepted_at = loop.time()
        self.acceptor.pending.add(self)
        self.task = loop.create_task(self._handshake(), name=f"{self.label}-handshake")

    def drop(self) -> None:
        """Evicted for a newcomer, disconnected by the console, or shutdown: close at once."""
        self._dropped = True
        if self.raw is not None:
            self.raw.abort()

    # -- the TLS transport, between handshake and session -------------------------------------

    def data_received(self, data: bytes) -> None:
        self._early += data
        if len(self._early) > EARLY_DATA_CAP:
            self.drop()

    def eof_received(self) -> bool | None:
        self._client_left = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._client_left = True

    # -- the handshake ------------------------------------------------------------------------

    async def _handshake(self) -> None:
        raw, info = self.raw, self.info
        assert raw is not None and info is not None
        acceptor = self.acceptor
        handed_over = False
        try:
            if self._dropped or raw.is_closing():
                # Evicted before this task first ran (a burst of accepts in one loop turn).
                # start_tls on a transport already closing would never see its
                # connection_made/connection_lost in order, and its handshake timer would keep
                # a 256 KiB read buffer alive for the whole timeout.
                return
            try:
                tls = await asyncio.get_running_loop().start_tls(
                    raw, self, acceptor.context, server_side=True,
                    ssl_handshake_timeout=acceptor.handshake_timeout)
            except OSError as exc:          # ssl.SSLError, the handshake timer, a reset
                self._failed(handshake_failure(exc, acceptor.handshake_timeout))
                # The traceback holds start_tls's frame, whose waiter holds this exception: a
                # cycle keeping asyncio's 256 KiB TLS read buffer alive until the cyclic GC
                # runs. A flood of timed-out handshakes would pile them up.
                exc.__traceback__ = None
                return
            if tls is None:
                self._failed(handshake_failure(None))
                return
            if self._dropped or self._client_left:
                tls.abort()
                return
            session = self.session(Accepted(info, self.accepted_at))
            tls.set_protocol(session)
            handed_over = True
            session.connection_made(tls)
            if self._early and not tls.is_closing():
                session.data_received(bytes(self._early))
            self._early.clear()
        finally:
            acceptor.pending.discard(self)
            if not handed_over:
                raw.abort()
                acceptor.registry.closed(info)

    def _failed(self, reason: str) -> None:
        if not self._dropped and self.info is not None:
            self.acceptor.log.info("%s: TLS handshake with %s failed: %s", self.label, self.info.peer, reason)
