"""The admin socket: a Unix socket in the data dir where consoles attach to a running server.

One ``ConsoleSession`` per connection reads request lines (``protocol.LineBuffer``), answers
each through ``AdminService`` (``api.OPS``), and, once subscribed, forwards bus events. What a
console can cost the server is bounded, and a console that misbehaves loses its own
connection, never the server's service:

- lines of at most ``MAX_REQUEST_LINE`` bytes (longer: an error, then the connection closes);
- ``REQUESTS_PER_MINUTE`` requests (more are answered RateLimited, not run);
- ``MAX_INFLIGHT`` requests running at once (more wait unread in the socket: backpressure);
- ``EVENT_QUEUE`` events waiting per console: when it does not keep up, the oldest are
  dropped and it is told to resync, as the embedded console's own ``Feed`` does;
- a write that does not drain in ``WRITE_TIMEOUT`` seconds ends the connection;
- ``MAX_CONSOLES`` connections at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Final, Iterable

from ..core.errors import RmailError
from ..core.events import Event, LogRecord, MessageReceived
from ..core.rates import RateLimiter
from . import values
from .api import ERROR_TYPES, OPS
from .peer import PeerCredentials, peer_credentials, refusal
from .protocol import (MAX_REQUEST_LINE, VERSION, Bye, EventLine, Failure, Hello, LineBuffer, LineTooLong, Message,
                       ProtocolError, Refused, Reply, Resync, decode_request, encode)
from .service import AdminService

if TYPE_CHECKING:
    from ..runtime import ServerRuntime

log = logging.getLogger("rmail.admin")

SOCKET_NAME: Final = "rmail.sock"
#: Consoles attached at once; a person needs one or two, a runaway script should not get more.
MAX_CONSOLES: Final = 16
#: Requests one console may run at once (a pane reload is one; a form submit another).
MAX_INFLIGHT: Final = 8
#: A console polls status and metrics once a second and reloads a pane or two: ~5 a second.
REQUESTS_PER_MINUTE: Final = 1200
#: Events held for a console between two sends (the embedded console's Feed holds 20000).
EVENT_QUEUE: Final = 5000
#: Seconds between two batches of events: coalesces a burst into one look-again per kind.
EVENT_INTERVAL: Final = 0.1
#: Seconds a write may wait for a console that reads nothing before it is disconnected.
WRITE_TIMEOUT: Final = 30.0
#: Longest log message forwarded (a line in the Log pane, not a core dump).
MAX_LOG_MESSAGE: Final = 4000
#: Seconds requests in progress get to finish at shutdown.
SHUTDOWN_TIMEOUT: Final = 10.0
#: Bytes read from the socket at once.
READ_CHUNK: Final = 65536


def socket_path(data_dir: Path) -> Path:
    """Where the admin socket of the server on ``data_dir`` is."""
    return data_dir / SOCKET_NAME


def bind_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from the moment it exists.

    A socket file left by a server that died is replaced: the caller holds the data dir lock,
    so no live server owns it. Anything else at ``path`` is left alone (OSError).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # On Linux bind() gives the new file the socket inode's mode (less the umask): set it
        # first, so there is no moment at which another user could connect.
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(str(path))
        if stat.S_IMODE(os.stat(path).st_mode) & 0o077:   # a platform without that behaviour
            os.chmod(path, 0o600)
        sock.listen(MAX_CONSOLES)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def coalesce(events: Iterable[Event]) -> list[Event]:
    """What a console needs of a batch of events: every log line and accepted message (the
    Log pane shows each), and of every other kind only the first, since those only say "look
    again" (docs/CONSOLE.md). Long log messages are cut."""
    out: list[Event] = []
    seen: set[type] = set()
    for event in events:
        if isinstance(event, LogRecord):
            if len(event.message) > MAX_LOG_MESSAGE:
                event = LogRecord(event.level, event.logger, event.message[:MAX_LOG_MESSAGE] + "…", event.created)
            out.append(event)
        elif isinstance(event, MessageReceived):
            out.append(event)
        elif type(event) not in seen:
            seen.add(type(event))
            out.append(event)
    return out


def error_type(exc: RmailError) -> str:
    """The name a console knows for ``exc``: its class, or the nearest public base."""
    return next(c.__name__ for c in type(exc).__mro__ if c.__name__ in ERROR_TYPES)


class ConsoleSession:
    """One attached console."""

    def __init__(self, server: AdminServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 peer: PeerCredentials | None) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.rate = RateLimiter(REQUESTS_PER_MINUTE)
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._events: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def who(self) -> str:
        return f"pid {self.peer.pid}" if self.peer is not None else "a console"

    async def run(self) -> None:
        service = self.server.service
        await self.send(Hello((VERSION,), values.dump(service.info())))
        buffer = LineBuffer(MAX_REQUEST_LINE)
        inflight = asyncio.Semaphore(MAX_INFLIGHT)
        try:
            while not self.closed:
                data = await self.reader.read(READ_CHUNK)
                if not data:
                    break
                buffer.feed(data)
                while (line := buffer.next_line()) is not None:
                    if not line.strip():
                        continue
                    await inflight.acquire()
                    task = asyncio.create_task(self._answer(line, inflight), name="rmail-admin-request")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except LineTooLong as exc:
            log.warning("admin: %s sent a line over %d bytes; disconnected", self.who, MAX_REQUEST_LINE)
            await self.send(Failure(None, exc.kind, f"{exc}; closing the connection"))
        except (ConnectionError, OSError):
            pass
        finally:
            if self._events is not None:
                self._events.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._events
            # Requests already running finish (a user being added is added), unanswered if gone.
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self.close()

    async def _answer(self, line: bytes, inflight: asyncio.Semaphore) -> None:
        try:
            await self.send(await self.reply_to(line))
        finally:
            inflight.release()

    async def reply_to(self, line: bytes) -> Message:
        """The answer to one request line; never raises."""
        try:
            request = decode_request(line)
        except ProtocolError as exc:
            return Failure(exc.request_id, exc.kind, str(exc))
        if not self.rate.allow(None):
            return Failure(request.id, "RateLimited",
                           f"too many requests (at most {REQUESTS_PER_MINUTE} a minute); slow down")
        if request.op == "subscribe":
            self.subscribe()
            return Reply(request.id, None)
        op = OPS.get(request.op)
        if op is None:
            return Failure(request.id, "UnknownOperation", f"unknown operation {request.op[:64]!r}")
        try:
            args = op.parse_args(request.args)
            result = getattr(self.server.service, op.method)(**args)
            if inspect.isawaitable(result):
                result = await result
            return Reply(request.id, values.dump(result))
        except RmailError as exc:
            return Failure(request.id, error_type(exc), str(exc))
        except Exception:  # noqa: BLE001 - a bug answers this request; the server goes on serving
            log.exception("admin: %s failed", request.op)
            return Failure(request.id, "InternalError", f"{request.op} failed; the server log has the details")

    def subscribe(self) -> None:
        """Start forwarding bus events (again: a second subscribe is a no-op)."""
        if self._events is None:
            self._events = asyncio.create_task(self._forward_events(), name="rmail-admin-events")

    async def _forward_events(self) -> None:
        runtime = self.server.runtime
        feed = runtime.bus.feed(maxlen=EVENT_QUEUE)
        release = runtime.forward_logs()
        try:
            while not self.closed:
                await feed.wait()
                overflowed = feed.overflowed
                batch = feed.drain()
                if overflowed:
                    await self.send(Resync())
                for event in coalesce(batch):
                    await self.send(EventLine(type(event).__name__, values.dump(event)))
                await asyncio.sleep(EVENT_INTERVAL)
        finally:
            runtime.bus.unsubscribe(feed)
            release()

    async def send(self, message: Message) -> None:
        """Write one line; a console that does not read for WRITE_TIMEOUT is disconnected."""
        data = encode(message)
        async with self._write_lock:
            if self.closed:
                return
            try:
                self.writer.write(data)
                await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT)
            except TimeoutError:
                log.warning("admin: %s has not read for %.0f s; disconnected", self.who, WRITE_TIMEOUT)
                self.close(abort=True)
            except (ConnectionError, OSError):
                self.close(abort=True)

    def close(self, *, abort: bool = False) -> None:
        """``abort``: drop what is unsent (a console that does not read would otherwise keep
        the connection, and its buffer, open forever)."""
        if abort:
            self.writer.transport.abort()
        if not self.closed:
            self.closed = True
            self.writer.close()


class AdminServer:
    """The listener and its sessions; ``close`` says goodbye to every console."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime
        self.service = AdminService(runtime)
        self.sessions: set[ConsoleSession] = set()
        self.path: Path | None = None
        self._server: asyncio.AbstractServer | None = None
        self._inode: tuple[int, int] | None = None
        self._handlers: set[asyncio.Task[object]] = set()

    async def start(self, path: Path) -> None:
        sock = bind_socket(path)
        st = os.stat(path)
        self.path, self._inode = path, (st.st_dev, st.st_ino)
        self._server = await asyncio.start_unix_server(self._connected, sock=sock)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = peer_credentials(writer.get_extra_info("socket"))
        except OSError:
            peer = None
        why = refusal(peer)
        if why is None and len(self.sessions) >= MAX_CONSOLES:
            why = f"too many consoles attached (at most {MAX_CONSOLES})"
        if why is not None:
            log.warning("admin: refused a console (pid %s): %s", peer.pid if peer else "?", why)
            writer.write(encode(Refused(why)))
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(writer.drain(), 5)
            writer.close()
            return
        session = ConsoleSession(self, reader, writer, peer)
        self.sessions.add(session)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        log.info("admin: console attached (%s)", session.who)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if handler is not None:
                self._handlers.discard(handler)
            log.info("admin: console detached (%s)", session.who)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.send(Bye("the server is shutting down")), 1)
            session.close()
        if self._handlers:
            # Requests in progress finish before the store they use closes.
            await asyncio.wait(self._handlers, timeout=SHUTDOWN_TIMEOUT)
        if self._server is not None:
            await self._server.wait_closed()
        if self.path is not None:
            # Only our own socket: a server started since (after a crash of ours) owns a new one.
            with contextlib.suppress(OSError):
                st = os.lstat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self.path)
