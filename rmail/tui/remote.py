"""RemoteRuntime: the console attached to a running server over its admin socket.

It presents the same ``ConsoleRuntime`` as the embedded server: each method is one request of
the admin protocol (rmail/server/admin/protocol.py), answered with the same values and core
errors. Events the server forwards land in a local ``Feed``; a ``resync`` from the server, or a
reconnection, sets its ``overflowed`` flag so every pane reloads.

``connect`` makes the first connection (and says in words why it cannot); ``run`` then reads
the socket until ``close``, asks for the header's status once a second, and when the connection
drops says so (``connected``, ``problem``) and connects again, every ``retry`` seconds, up to
``MAX_RETRY``. Requests made while it is down fail at once with TemporaryFailure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from pathlib import Path
from typing import Any, Final

from rmail.server.admin import values
from rmail.server.admin.api import ERROR_TYPES, EVENT_TYPES, OPS
from rmail.server.admin.firstrun import CertificateView
from rmail.server.admin.protocol import (MAX_SERVER_LINE, VERSION, Bye, EventLine, Failure, Hello, LineBuffer,
                                         Message, ProtocolError, Refused, Reply, Request, Resync, decode_from_server,
                                         encode)
from rmail.server.admin.views import ConnectionView, QueueView, ResolveView, ServerInfo, UserView
from rmail.server.core.errors import LimitExceeded, RmailError, TemporaryFailure
from rmail.server.core.events import Feed
from rmail.server.core.model import Account, AliasRule
from rmail.server.metrics import MetricsSummary
from rmail.server.runtime import Snapshot

#: Seconds between two status requests (the header's uptime and counters tick once a second).
STATUS_INTERVAL: Final = 1.0
#: Seconds a request may take; adding a user costs a bcrypt hash, a DNS records list a key.
REQUEST_TIMEOUT: Final = 30.0
#: Seconds the server has to greet a new connection.
HELLO_TIMEOUT: Final = 5.0
#: Longest wait between two reconnection attempts.
MAX_RETRY: Final = 5.0
#: Bytes read from the socket at once.
READ_CHUNK: Final = 256 * 1024


class AttachError(Exception):
    """The console cannot attach; the message says why in words."""


def unreachable(path: Path, timeout: float = 1.0) -> str | None:
    """Why no server can be reached on the admin socket ``path`` right now, or None when one
    accepts the connection (blocking, quick; whether it lets this user in is told later)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            return connect_problem(path, exc)
    return None


def probe(path: Path) -> bool:
    """Whether a server answers on the admin socket ``path``."""
    return unreachable(path) is None


def connect_problem(path: Path, exc: OSError) -> str:
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return f"no rmail server is running on {path.parent}"
    if isinstance(exc, PermissionError):
        return f"{path}: permission denied; run the console as the user the server runs as"
    return f"cannot connect to {path}: {exc.strerror or exc}"


def error_for(failure: Failure) -> RmailError:
    """The core error a server's Failure stands for (forms show it inline, as with a local server)."""
    cls = ERROR_TYPES.get(failure.kind)
    if cls is not None:
        return cls(failure.message)
    if failure.kind == "RateLimited":
        return LimitExceeded(failure.message)
    if failure.kind == "UnknownOperation":
        return RmailError(f"{failure.message}: the server runs an older rmail than this console")
    return RmailError(failure.message)


def _retrieve(future: asyncio.Future[Message]) -> Message | None:
    """The answer, or None for a request that failed (the failure counts as seen: nobody else
    awaits this future, and asyncio would log it as never retrieved)."""
    if future.cancelled() or future.exception() is not None:
        return None
    return future.result()


class _Connection:
    __slots__ = ("reader", "writer", "buffer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, buffer: LineBuffer) -> None:
        self.reader, self.writer, self.buffer = reader, writer, buffer


class RemoteRuntime:
    """``ConsoleRuntime`` over the admin socket at ``path`` (DATA_DIR/rmail.sock)."""

    attached = True

    def __init__(self, path: Path, *, feed_size: int = 20000, retry: float = 1.0,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.path = path
        self.feed = Feed(lambda _: True, maxlen=feed_size)
        self.retry = retry
        self.request_timeout = request_timeout
        self.problem: str | None = "not attached yet"
        #: Why the last connection ended (``problem`` moves on with each reconnection attempt).
        self.lost_because: str | None = None
        #: Connections made so far: the app notices a reconnection when it grows.
        self.generation = 0
        self._info: ServerInfo | None = None
        self._snapshot: Snapshot | None = None
        self._conn: _Connection | None = None
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._wake = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    # -- connection ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, check the server's hello and subscribe to its events.

        Raises:
            AttachError: no server listens, it refused this user, or it speaks another version.
        """
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.path))
        except OSError as exc:
            raise AttachError(connect_problem(self.path, exc)) from None
        buffer = LineBuffer(MAX_SERVER_LINE)
        try:
            first = await asyncio.wait_for(self._next_message(reader, buffer), HELLO_TIMEOUT)
            if isinstance(first, Refused):
                raise AttachError(f"the server refused the console: {first.reason}")
            if not isinstance(first, Hello):
                raise AttachError("the server did not greet the console (is it an rmail admin socket?)")
            if VERSION not in first.versions:
                raise AttachError(f"the server speaks admin protocol version(s) {', '.join(map(str, first.versions))}, "
                                  f"this console {VERSION}: run the console of the same rmail version")
            self._info = values.load(ServerInfo, first.info, "hello")
        except (TimeoutError, EOFError, ConnectionError, ProtocolError, ValueError) as exc:
            writer.close()
            reason = "it did not greet the console in time" if isinstance(exc, TimeoutError) else str(exc) or \
                "it closed the connection"
            raise AttachError(f"cannot attach to {self.path}: {reason}") from None
        except AttachError:
            writer.close()
            raise
        self._conn = _Connection(reader, writer, buffer)
        self.generation += 1
        self.problem = None
        # Whatever happened while detached is unknown: the panes reload.
        self.feed.overflowed = True
        self._send_nowait("subscribe", {}).add_done_callback(_retrieve)
        self._request_status()

    async def run(self) -> None:
        """Read until ``close``; reconnect whenever the connection drops."""
        delay = self.retry
        while not self._closing:
            conn = self._conn
            if conn is None:
                try:
                    await self.connect()
                except AttachError as exc:
                    self.problem = str(exc)
                    await self._sleep(delay)
                    delay = min(delay * 2, MAX_RETRY)
                    continue
                conn = self._conn
                assert conn is not None
            delay = self.retry
            reason = await self._serve(conn)
            self._lost(conn, reason)
        if self._conn is not None:       # closed while a connection was being made
            self._lost(self._conn, "the console closed the connection")

    def close(self) -> None:
        """Leave: close the connection (the server keeps running) and stop ``run``."""
        self._closing = True
        self._wake.set()
        if self._conn is not None:
            self._lost(self._conn, "the console closed the connection")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _serve(self, conn: _Connection) -> str:
        """Read and dispatch lines, asking for status once a second; the reason it ended."""
        loop = asyncio.get_running_loop()
        next_status = loop.time() + STATUS_INTERVAL
        bye: str | None = None
        while self._conn is conn:
            wait = next_status - loop.time()
            if wait <= 0:
                self._request_status()
                next_status = loop.time() + STATUS_INTERVAL
                continue
            try:
                data = await asyncio.wait_for(conn.reader.read(READ_CHUNK), wait)
            except TimeoutError:
                continue
            except (ConnectionError, OSError) as exc:
                return f"the connection to the server broke ({exc.strerror or exc})" if isinstance(exc, OSError) \
                    else "the connection to the server broke"
            if not data:
                return bye or "the server closed the connection"
            conn.buffer.feed(data)
            try:
                while (line := conn.buffer.next_line()) is not None:
                    message = decode_from_server(line)
                    if isinstance(message, Bye):
                        bye = f"the server said goodbye: {message.reason}"
                    else:
                        self._dispatch(message)
            except ProtocolError as exc:
                return f"the server sent something this console does not understand ({exc})"
        return "the console closed the connection"

    def _lost(self, conn: _Connection, reason: str) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        self.problem = self.lost_because = reason
        conn.writer.close()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(TemporaryFailure(f"no answer: {reason}"))

    @staticmethod
    async def _next_message(reader: asyncio.StreamReader, buffer: LineBuffer) -> Message:
        while (line := buffer.next_line()) is None:
            data = await reader.read(READ_CHUNK)
            if not data:
                raise EOFError("the server closed the connection")
            buffer.feed(data)
        return decode_from_server(line)

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, (Reply, Failure)):
            future = self._pending.pop(message.id, None) if message.id is not None else None
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, EventLine):
            cls = EVENT_TYPES.get(message.kind)
            if cls is None:
                return          # a kind a newer server added: nothing here would react to it
            try:
                self.feed.offer(values.load(cls, message.data, message.kind))
            except ValueError:
                self.feed.overflowed = True     # cannot tell what changed: reload everything
        elif isinstance(message, Resync):
            self.feed.overflowed = True
        else:
            raise ProtocolError(f"unexpected {type(message).__name__} after the hello")

    # -- requests --------------------------------------------------------------------------

    def _send_nowait(self, op: str, args: dict[str, Any]) -> asyncio.Future[Message]:
        conn = self._conn
        if conn is None:
            raise TemporaryFailure(f"not connected to the server: {self.problem or 'reconnecting'}")
        request_id = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        # Requests are a few hundred bytes and the server reads them as they come, so the
        # write buffer stays small without waiting for drain().
        conn.writer.write(encode(Request(request_id, op, args)))
        return future

    def _request_status(self) -> None:
        future = self._send_nowait("status", {})

        def received(f: asyncio.Future[Message]) -> None:
            if _retrieve(f) is None:
                return
            message = f.result()
            if isinstance(message, Reply) and message.result is not None:
                with contextlib.suppress(ValueError):
                    self._snapshot = values.load(Snapshot, message.result, "status")
        future.add_done_callback(received)

    async def call(self, op: str, **args: Any) -> Any:
        """Run one operation on the server (``api.OPS``) and return its decoded result.

        Raises:
            RmailError: the server's error, or TemporaryFailure when it cannot be reached.
        """
        future = self._send_nowait(op, values.dump(args))
        try:
            message = await asyncio.wait_for(future, self.request_timeout)
        except TimeoutError:
            raise TemporaryFailure(f"the server did not answer {op} within {self.request_timeout:.0f} s") from None
        if isinstance(message, Failure):
            raise error_for(message)
        assert isinstance(message, Reply)
        try:
            return values.load(OPS[op].result, message.result, op)
        except ValueError as exc:
            raise TemporaryFailure(f"the server's answer to {op} does not fit this console: {exc}") from None

    # -- ConsoleRuntime --------------------------------------------------------------------

    def info(self) -> ServerInfo:
        if self._info is None:
            raise TemporaryFailure("not attached yet")
        return self._info

    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    async def metrics(self) -> MetricsSummary:
        return await self.call("metrics")

    async def connections(self) -> list[ConnectionView]:
        return await self.call("connections.list")

    async def disconnect(self, conn_id: int) -> bool:
        return await self.call("connections.close", conn_id=conn_id)

    async def queue(self) -> list[QueueView]:
        return await self.call("queue.list")

    async def queue_entry(self, entry_id: int) -> QueueView | None:
        return await self.call("queue.get", entry_id=entry_id)

    async def queue_retry(self, entry_id: int) -> None:
        await self.call("queue.retry", entry_id=entry_id)

    async def queue_delete(self, entry_id: int) -> None:
        await self.call("queue.delete", entry_id=entry_id)

    async def queue_message_head(self, entry_id: int) -> str:
        return await self.call("queue.head", entry_id=entry_id)

    async def users(self) -> list[UserView]:
        return await self.call("users.list")

    async def has_users(self) -> bool:
        return await self.call("users.any")

    async def add_user(self, address: str, password: str, admin: bool = False) -> Account:
        return await self.call("users.add", address=address, password=password, admin=admin)

    async def get_user(self, address: str) -> Account:
        return await self.call("users.get", address=address)

    async def set_password(self, address: str, password: str) -> None:
        await self.call("users.passwd", address=address, password=password)

    async def set_admin(self, address: str, admin: bool) -> Account:
        return await self.call("users.admin", address=address, admin=admin)

    async def remove_user(self, address: str) -> None:
        await self.call("users.remove", address=address)

    async def domains(self) -> list[str]:
        return await self.call("domains.list")

    async def aliases(self, domain: str) -> list[AliasRule]:
        return await self.call("aliases.list", domain=domain)

    async def add_alias(self, domain: str, pattern: str, target: str) -> AliasRule:
        return await self.call("aliases.add", domain=domain, pattern=pattern, target=target)

    async def remove_alias(self, domain: str, pattern: str) -> None:
        await self.call("aliases.remove", domain=domain, pattern=pattern)

    async def move_alias(self, domain: str, pattern: str, position: int) -> list[AliasRule]:
        return await self.call("aliases.move", domain=domain, pattern=pattern, position=position)

    async def resolve(self, address: str) -> ResolveView:
        return await self.call("aliases.resolve", address=address)

    async def dns_records(self, domain: str) -> str:
        return await self.call("dns.records", domain=domain)

    async def make_certificate(self, config_path: str | None = None) -> CertificateView:
        return await self.call("tls.self_signed", config_path=config_path)
