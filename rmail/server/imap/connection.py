"""The I/O shell: the only IMAP module that touches sockets, TLS, timers and tasks.

Each connection is an `asyncio.Protocol` feeding a `wire.Framer` plus one task running the
session loop (frame → parse → state check → handler). Reading pauses while unprocessed input
piles up; writing waits when the transport's buffer is full.

Before login a connection is held to small bounds (issue 11, docs/SECURITY.md): literals of
at most ``limits.preauth_literal`` bytes (a larger literal is refused before any "+"; a
LITERAL+ one ends the connection) and command lines of at most ``PREAUTH_LINE``, a deadline of ``limits.login_timeout`` seconds
from connect that received bytes do not extend, and its slot may be taken by a newcomer when
the registry is full (``* BYE``).

STARTTLS (RFC 3501 §6.2.1): after the tagged OK, bytes the client pipelined in cleartext are
dropped and the transport is upgraded with `loop.start_tls` in the same step, so no cleartext
byte can be read as part of the TLS session.

COMPRESS=DEFLATE (RFC 4978): once the session has accepted COMPRESS, everything after its
tagged OK is compressed both ways (`deflate`; above TLS when both are on, §3). Writes are
queued and compressed by a task in pieces that give the loop back every few milliseconds,
ending each burst with a sync flush; `drain` waits for it, so a streamed FETCH body still
goes chunk by chunk. Received bytes are inflated only when the framer needs more, one
bounded step at a time, so the framer's line, literal and command limits apply to the
inflated stream exactly as to cleartext (a decompression bomb is dropped as fast as it
inflates, never buffered).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Final

from rmail.server.core.connections import ConnectionInfo
from rmail.server.core.slicing import Slicer
from rmail.server.tlsaccept import Accepted, TLSAcceptor, handshake_failure

from . import commands as c
from .deflate import Deflater, DeflateError, Inflater
from .encode import Continuation, Status, Tagged, encode
from .errors import BYE_AUTOLOGOUT, BYE_LOGIN_TIMEOUT, SessionClosed, reply
from .session import Session
from .state import Services
from .parser import ParseError, parse_command
from .context import drop_saved
from .wire import NEED_DATA, Frame, Framer, NeedContinuation, RawLine, ReplyError, WireError

__all__ = ["ImapConnection", "ImapServer"]

log = logging.getLogger("rmail.imap")

#: Stop reading while this much received input waits to be parsed (pipelining bound).
PAUSE_AT: Final = 256 * 1024
#: Seconds from connect to logged in, when the config does not say (``limits.login_timeout``);
#: RFC 3501 §5.4's 30-minute autologout applies after login.
LOGIN_TIMEOUT: Final = 60
#: Pre-login literal cap when the config does not say (``limits.preauth_literal``).
PREAUTH_LITERAL: Final = 8 * 1024
#: Pre-login command line cap (without literals). Larger than the literal cap: clients send
#: long ID lists before login (imaptest's ID test sends a 32 KiB line, which Dovecot takes).
PREAUTH_LINE: Final = 64 * 1024
#: Before login a whole command (LOGIN with two literals) holds at most the line cap plus
#: this many literal caps, and reading pauses there, so the 256 pre-login slots of a family
#: hold at most ~24 MiB together.
PREAUTH_COMMAND_CAPS: Final = 4
#: Queued output is handed to the transport at the end of the event loop's turn, or at once
#: when this much is queued (so a session never holds more than this beyond the transport's
#: own buffer, which `drain` bounds).
SEND_AT: Final = 64 * 1024
#: Octets inflated per step of a compressed connection before the framer looks at them: the
#: most the framer's buffer can grow past its own caps (RFC 4978 sessions only).
INFLATE_STEP: Final = 64 * 1024


class ImapServer:
    """Shared state of all IMAP listeners: services, TLS context, live connections."""

    def __init__(self, services: Services, *, tls: ssl.SSLContext | None, max_literal: int,
                 max_line: int, login_timeout: float = LOGIN_TIMEOUT,
                 preauth_literal: int = PREAUTH_LITERAL) -> None:
        self.services = services
        self.tls = tls
        self.max_literal = max_literal
        self.max_line = max_line
        self.login_timeout = login_timeout
        self.preauth_literal = preauth_literal
        self.connections: set[ImapConnection] = set()
        self.ports: dict[str, int] = {}   # protocol → first bound port
        #: The 993 listeners' front: connections in their TLS handshake (tlsaccept).
        self.tls_accept = (TLSAcceptor(services.connections, tls, handshake_timeout=login_timeout, log=log)
                           if tls is not None else None)

    def protocol_factory(self, port: int, *, implicit_tls: bool,
                         accepted: Accepted | None = None) -> ImapConnection:
        return ImapConnection(self, port, implicit_tls=implicit_tls, accepted=accepted)

    async def close(self) -> None:
        """Say BYE to every session and wait for their tasks (graceful shutdown)."""
        if self.tls_accept is not None:
            await self.tls_accept.close()
        for conn in list(self.connections):
            conn.shutdown("server shutting down")
        tasks = [conn.task for conn in self.connections if conn.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)


class ImapConnection(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: ImapServer, port: int, *, implicit_tls: bool,
                 accepted: Accepted | None = None) -> None:
        self.server = server
        #: Set on 993: the connection was admitted and registered at accept, before its
        #: handshake (tlsaccept); this session takes over that entry and deadline.
        self.accepted = accepted
        self.port = port
        self.tls_active = implicit_tls
        small, line = server.preauth_literal, min(PREAUTH_LINE, server.max_line)
        self.framer = Framer(max_line=line, max_literal=small, max_command=line + PREAUTH_COMMAND_CAPS * small)
        self._pause_at = line + PREAUTH_COMMAND_CAPS * small
        self._logged_in = False
        self._deadline = 0.0
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.info: ConnectionInfo | None = None
        self.session: Session | None = None
        self._data = asyncio.Event()
        self._closed = False
        self._paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        #: Bytes written but not yet handed to the transport (`write`), and their size.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._send_scheduled = False
        #: COMPRESS=DEFLATE, both directions, once the session has turned it on.
        self._deflater: Deflater | None = None
        self._inflater: Inflater | None = None
        #: The task compressing queued writes (None while nothing waits).
        self._pump: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        peer_ip = peer[0] if isinstance(peer, tuple) else "unknown"
        registry = self.server.services.connections
        loop = asyncio.get_running_loop()
        if self.accepted is not None:
            self.info = self.accepted.info
            self.info.close, self.info.evict = self._kick, self._evicted
            self._deadline = self.accepted.accepted_at + self.server.login_timeout
        else:
            refusal = registry.admit("imap", peer_ip)
            if refusal is not None:
                transport.write(encode(Status("BYE", refusal)))
                transport.close()
                self._closed = True
                return
            self.info = registry.open("imap", self.port, peer_ip, self.tls_active, close=self._kick,
                                      evict=self._evicted)
            self._deadline = loop.time() + self.server.login_timeout
        self.server.connections.add(self)
        self.session = Session(self.server.services, self, peer=peer_ip,
                               tls_active=self.tls_active, info=self.info,
                               read_line=self._read_line)
        self.task = loop.create_task(self._run(), name="imap-session")

    def data_received(self, data: bytes) -> None:
        backlog = self.framer.unprocessed
        if self._inflater is not None:
            self._inflater.receive(data)    # inflated step by step in _next_event
            backlog += self._inflater.pending
        else:
            self.framer.receive_data(data)
            backlog += len(data)
        if self.info is not None:
            self.info.bytes_in += len(data)
        self._data.set()
        if backlog > self._pause_at and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self._closed = True
        self._data.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._data.set()
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- Output (for the session) -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data``; what a command writes within one turn of the event loop goes out
        in one send (see `_send_pending`)."""
        if not data or self.transport is None or self.transport.is_closing():
            return
        if self.info is not None:
            self.info.bytes_out += len(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= SEND_AT:
            self._send_pending()
        elif not self._send_scheduled:
            self._send_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_pending)

    def _send_pending(self) -> None:
        """Hand the queued bytes to the transport as one write. Every write to an idle
        socket is a send() and a wakeup of the client: the untagged responses, the tagged
        reply and the next command's output written piecewise cost a send each (a third of
        the event loop's time in imaptest's steady mix went to socket writes)."""
        self._send_scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if self._deflater is not None:
            self._deflater.push(data)
            if self._pump is None:
                # The task runs after the current burst of writes: one flush per burst.
                self._pump = asyncio.get_running_loop().create_task(self._compress_queued())
        else:
            self._send_raw(data)

    def _send_raw(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def _compress_queued(self) -> None:
        """Compress what the session wrote, a piece at a time, then sync-flush (RFC 4978 §4:
        the client can decode every response it has been sent before it answers)."""
        deflater = self._deflater
        assert deflater is not None
        slicer = Slicer()
        try:
            while deflater.pending:
                self._send_raw(deflater.step())
                if deflater.pending and slicer.due():
                    await slicer.pause()
            self._send_raw(deflater.flush())
        finally:
            self._pump = None

    def _flush_compressed(self) -> None:
        """Compress and flush what is queued now (last words before closing: small)."""
        if self._deflater is not None:
            self._send_raw(self._deflater.drain())

    async def drain(self) -> None:
        if self._pending_size >= SEND_AT:
            self._send_pending()
        while self._pump is not None:
            await asyncio.wait({self._pump})
        if not self._can_write.is_set():
            await self._can_write.wait()
        if self._closed:
            raise SessionClosed()

    # -- the session loop -----------------------------------------------------------------------

    def _kick(self) -> None:
        """Console action: disconnect this client."""
        self.shutdown("disconnected by the administrator")

    def _evicted(self) -> None:
        """The registry gave this pre-login slot to a newer connection."""
        self.shutdown("too many connections; try again later")

    def _became_authenticated(self) -> None:
        """Lift the pre-login caps once the session has logged in."""
        self._logged_in = True
        self._pause_at = PAUSE_AT
        self.framer.set_limits(max_line=self.server.max_line, max_literal=self.server.max_literal)

    def shutdown(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.write(encode(Status("BYE", reason)))
            self._send_pending()
            self._flush_compressed()
            self.transport.close()
        self._closed = True
        self._data.set()

    def _timeout(self) -> float:
        """Seconds the next wait for input may last: what is left of the login deadline
        before login, RFC 3501 §5.4's autologout (restarted by each command) after."""
        session = self.session
        if session is None or session.user is None:
            return self._deadline - asyncio.get_running_loop().time()
        return self.server.services.autologout

    async def _next_event(self) -> object:
        """The framer's next event, waiting for bytes (or timing out) as needed."""
        slicer: Slicer | None = None
        while True:
            event = self.framer.next_event()
            if event is not NEED_DATA:
                return event
            if self._inflater is not None and self._inflater.pending:
                # One bounded step, then the framer again (it drops or refuses what is over
                # its limits before the next step inflates more).
                try:
                    self.framer.receive_data(self._inflater.inflate(INFLATE_STEP))
                except DeflateError as exc:
                    log.info("imap: %s from %s", exc, self.info.peer if self.info else "?")
                    self.shutdown("corrupt compressed data")
                    raise SessionClosed() from None
                slicer = slicer or Slicer()
                if slicer.due():
                    await slicer.pause()
                continue
            if self._closed:
                raise SessionClosed()
            if self._paused and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()
            self._data.clear()
            timeout = self._timeout()
            try:
                if timeout <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(self._data.wait(), timeout)
            except asyncio.TimeoutError:
                self.write(encode(BYE_AUTOLOGOUT if self._logged_in else BYE_LOGIN_TIMEOUT))
                raise SessionClosed() from None

    async def _read_line(self) -> bytes | None:
        """One raw line for AUTHENTICATE/IDLE; None when the client went away."""
        self.framer.expect_line()
        try:
            while True:
                try:
                    event = await self._next_event()
                except WireError as exc:
                    self._reply_error(exc)
                    continue
                if isinstance(event, RawLine):
                    return event.line
        except SessionClosed:
            return None

    def _reply_error(self, exc: ReplyError) -> None:
        self.write(encode(reply(exc)))
        if isinstance(exc, WireError) and not self._logged_in and self.framer.draining:
            # A LITERAL+ literal over the pre-login cap is on its way already: draining it
            # would only spend bandwidth on a client that cannot be a real one.
            self.shutdown("literal too large before login")
            raise SessionClosed()

    async def _run(self) -> None:
        session = self.session
        assert session is not None
        try:
            await session.greeting()
            while True:
                try:
                    event = await self._next_event()
                except WireError as exc:
                    self._reply_error(exc)
                    continue
                if isinstance(event, NeedContinuation):
                    self.write(encode(Continuation("Ready for literal data")))
                    continue
                if not isinstance(event, Frame):
                    continue
                try:
                    cmd = parse_command(event, utf8=session.utf8)
                except ParseError as exc:
                    self._reply_error(exc)
                    if exc.drops_saved_result:
                        drop_saved(session)  # RFC 5182 §2.1: a NO to SEARCH (SAVE) empties "$"
                    continue
                if isinstance(cmd, c.StartTLS) and self._can_starttls(session):
                    await self._starttls(cmd, session)
                    continue
                await session.execute(cmd)
                if session.compressing and self._deflater is None:
                    self._start_compression()
                if session.user is not None and not self._logged_in:
                    self._became_authenticated()
                if self.info is not None:
                    self.server.services.connections.update(
                        self.info, state=session.state.value)
        except SessionClosed:
            pass
        except (ConnectionError, ssl.SSLError):
            pass
        except Exception:  # noqa: BLE001 - a bug: log it and drop the connection quietly
            log.exception("imap: session crashed")
        finally:
            await self._finish()

    def _start_compression(self) -> None:
        """COMPRESS DEFLATE was answered OK (written uncompressed): from here on both
        directions are compressed (RFC 4978 §3). Bytes already received after the command
        were compressed by the client, so they go to the inflater."""
        self._send_pending()      # the tagged OK still uncompressed
        self._deflater = Deflater()
        self._inflater = Inflater()
        pipelined = self.framer.take_buffered()
        if pipelined:
            self._inflater.receive(pipelined)

    def _can_starttls(self, session: Session) -> bool:
        return (self.server.tls is not None and not self.tls_active
                and session.user is None)

    async def _starttls(self, cmd: c.StartTLS, session: Session) -> None:
        transport = self.transport
        assert transport is not None and self.server.tls is not None
        self.write(encode(Tagged(cmd.tag, "OK", "begin TLS negotiation now")))
        self._send_pending()      # in cleartext, before the transport changes
        # No await between the OK and start_tls: nothing else can be read in cleartext.
        self.framer.discard_buffered()
        loop = asyncio.get_running_loop()
        # The handshake is part of the login: it gets what is left of the deadline.
        timeout = max(self._timeout(), 0.1)
        peer = self.info.peer if self.info is not None else "?"
        try:
            new = await loop.start_tls(transport, self, self.server.tls, server_side=True,
                                       ssl_handshake_timeout=timeout)
        except OSError as exc:              # ssl.SSLError, the handshake timer, a reset
            log.info("imap: STARTTLS handshake with %s failed: %s", peer, handshake_failure(exc, timeout))
            raise SessionClosed() from None
        if new is None:
            log.info("imap: STARTTLS handshake with %s failed: %s", peer, handshake_failure(None))
            raise SessionClosed()
        self.transport = new
        self.tls_active = True
        session.tls_active = True
        if self.info is not None:
            self.server.services.connections.update(self.info, force=True, tls=True)

    async def _finish(self) -> None:
        if self.session is not None:
            self.session.close()
        if self.transport is not None and not self.transport.is_closing():
            self._send_pending()
            self._flush_compressed()
            self.transport.close()
        if self._pump is not None:
            self._pump.cancel()
        if self.info is not None:
            self.server.services.connections.closed(self.info)
            self.info = None
        self.server.connections.discard(self)
