"""``RmailSMTP``: aiosmtpd's protocol, wrapped only where rmail needs more than the hooks give.

aiosmtpd owns the wire (STYLE.md). This subclass adds what its hooks cannot see:

- admission (connection caps) and registration with the connection registry, with byte counts;
- one ``push`` for every reply: enhanced status codes (RFC 2034), no control characters, and a
  budget of error replies after which the session ends (421);
- in-flight DATA tracking, so a graceful stop lets a transaction that has begun finish;
- an idle timeout that counts received bytes as activity (a slow 25 MiB upload is not idle),
  and a deadline no byte extends: ``limits.login_timeout`` to authenticate on submission and
  SMTPS, ``limits.smtp_session_timeout`` for a session on port 25 that has not (421 4.4.2);
- rates per client address on port 25 (``limits.smtp_connection_rate``: 421 4.7.0 at connect,
  ``limits.smtp_message_rate``: 450 4.7.1 at MAIL);
- command lines end only at CRLF: a bare LF or CR in one gets 500 5.5.2 and nothing of that
  line up to its CRLF runs (the command-line half of SMTP smuggling, CVE-2023-51764; Postfix's
  ``smtpd_forbid_bare_newline``). aiosmtpd alone takes an LF as the end of a command.

DATA is read in bulk rather than aiosmtpd's line at a time (one ``readuntil`` per line was most
of a 100 KiB message's cost), with aiosmtpd 1.4.6's outcomes kept exactly: only CRLF "." CRLF
ends DATA, so a bare LF or CR never does (SMTP smuggling); dot-unstuffing; 500 for a long line
and 552 for too much data, both after the end line. A bare LF or CR inside message text is
kept as received (Postfix's default lets it through too; refusing it would bounce mail from
old software), since it can no longer end anything. tests/smtp/test_data_reader.py checks this
against aiosmtpd's line-by-line algorithm. Bytes pipelined after STARTTLS are still discarded
by aiosmtpd when TLS starts (RFC 3207 §4.2, STARTTLS injection).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import ssl
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiosmtpd.smtp import MISSING, SMTP, Envelope, TLSSetupException, syntax

from ..core.aliases import Resolution
from ..core.connections import ConnectionInfo
from ..core.model import Account
from ..tlsaccept import Accepted, handshake_failure
from .data import DataStatus, find_data_end, judge_data, unstuff
from .policy import Policy
from .replies import (BARE_NEWLINE, LOGIN_TIMEOUT, SESSION_TIMEOUT, SHUTTING_DOWN, TOO_MANY_CONNECTIONS,
                      TOO_MANY_ERRORS, TOO_MUCH_MAIL, finish_reply, reply_code)

if TYPE_CHECKING:
    from .service import SMTPService

log = logging.getLogger("rmail.smtp")

#: Error replies (4xx/5xx) one session may collect before it is closed (Postfix's
#: smtpd_hard_error_limit is 20; a legitimate sender rarely gets more than a few).
MAX_ERRORS = 20
#: Reset the idle timer on received bytes at most this often (it allocates a timer handle).
IDLE_RESET_INTERVAL = 1.0
#: Receive-buffer marks for flow control. aiosmtpd's reader pauses the socket above twice its
#: line limit (2 KB), which stalls every message body; these bound a connection's buffer at
#: 64 KiB (1000 connections: 64 MiB) while letting a body stream.
READ_HIGH_WATER = 64 * 1024
READ_LOW_WATER = 16 * 1024


#: The common path of MAIL/RCPT: ``<dot-atom@hostname>`` then parameters. Anything else (null
#: sender, quoted local parts, address literals, UTF-8) goes to aiosmtpd's full RFC 5322 parser.
_PLAIN_PATH = re.compile(r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)>(.*)",
                         re.DOTALL)


class _SMTPReader(asyncio.StreamReader):
    """aiosmtpd's StreamReader with its line limit kept but wider flow-control marks, and
    command lines that end only at CRLF.

    ``on_bare_newline`` is awaited when a command line holds a bare LF or CR (the session
    answers 500 5.5.2); the rest of that line, up to its CRLF, is then dropped unseen.
    """

    on_bare_newline: Callable[[], Awaitable[None]] | None = None
    #: Inside a command line that had a bare LF or CR: drop segments until one ends in CRLF.
    _tainted = False
    #: The last read hit the line limit: aiosmtpd reads the line's tail next (its CR may
    #: have gone with the part it dropped), then answers 500 for the whole line.
    _overrun = False

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        if separator != b"\n":
            return await super().readuntil(separator)
        while True:
            try:
                line = await super().readuntil(b"\n")
            except asyncio.LimitOverrunError:
                self._overrun = True
                raise
            if self._overrun:
                self._overrun = False
                return line            # the tail of an over-long line: never executed
            bare = not line.endswith(b"\r\n") or b"\r" in line[:-2]
            if not bare and not self._tainted:
                return line
            if not self._tainted and self.on_bare_newline is not None:
                await self.on_bare_newline()
            # The line (by RFC 5321 §2.3.8, up to CRLF) ends with this segment if it ends in CRLF.
            self._tainted = not line.endswith(b"\r\n")

    async def readline(self) -> bytes:
        """StreamReader's readline (aiosmtpd's AUTH dialogue) through the CRLF check above."""
        try:
            return await super().readline()
        finally:
            self._overrun = False      # readline drops an over-long line's tail itself

    def untaint(self) -> None:
        """Forget a partial command line (STARTTLS discards buffered bytes)."""
        self._tainted = False

    def feed_data(self, data: bytes) -> None:
        if not data:
            return
        self._buffer.extend(data)  # type: ignore[attr-defined]
        self._wakeup_waiter()  # type: ignore[attr-defined]
        transport = self._transport  # type: ignore[attr-defined]
        if transport is not None and not self._paused and len(self._buffer) > READ_HIGH_WATER:  # type: ignore[attr-defined]
            transport.pause_reading()
            self._paused = True

    def _maybe_resume_transport(self) -> None:
        if self._paused and len(self._buffer) <= READ_LOW_WATER:  # type: ignore[attr-defined]
            self._paused = False
            self._transport.resume_reading()  # type: ignore[attr-defined]

    async def read_data(self, size_limit: int | None, line_limit: int) -> tuple[DataStatus, bytes]:
        """Read a DATA section through its end line; what follows stays buffered (pipelining).

        Returns the status and the raw (still dot-stuffed) body, empty unless OK. Once more
        than ``size_limit`` bytes have come, the verdict is known and the rest is discarded,
        keeping only the 4 bytes an end line may begin in.
        """
        if self._exception is not None:  # type: ignore[attr-defined]
            raise self._exception  # type: ignore[attr-defined]
        buffer: bytearray = self._buffer  # type: ignore[attr-defined]
        read_limit: int = self._limit  # type: ignore[attr-defined]
        # Past this many bytes without an end line, the line crossing the size limit has ended
        # or is overlong, so judge_data can decide and the body need not be kept.
        decide_at = size_limit + read_limit + 2 if size_limit else None
        body = bytearray()
        status: DataStatus | None = None       # None: undecided, the body is kept
        scanned = 0                            # body[:scanned] cannot begin the end line
        while True:
            if buffer:
                body += buffer
                buffer.clear()
                self._maybe_resume_transport()
                end = find_data_end(body, scanned, line_start=status is None)
                if end >= 0:
                    buffer += memoryview(body)[end + 3:]
                    del body[end:]
                    break
                scanned = max(len(body) - 4, 0)
                if status is None and decide_at is not None and len(body) > decide_at:
                    status = judge_data(body, size_limit, line_limit, read_limit)
                if status is not None:
                    del body[:scanned]
                    scanned = 0
            elif self._eof:  # type: ignore[attr-defined]
                raise asyncio.IncompleteReadError(bytes(body), None)
            else:
                await self._wait_for_data("read_data")  # type: ignore[attr-defined]
        if status is None:
            status = judge_data(body, size_limit, line_limit, read_limit)
        return status, bytes(body) if status is DataStatus.OK else b""


class RmailEnvelope(Envelope):
    """aiosmtpd's envelope plus the recipients' resolutions, decided once at RCPT."""

    def __init__(self) -> None:
        super().__init__()
        self.resolutions: list[Resolution] = []


class RmailSMTP(SMTP):
    """One SMTP connection on one listener."""

    # RFC 4954 §4 leaves the challenge text open; these are what clients expect to see.
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, service: SMTPService, policy: Policy, port: int, handler: Any, *,
                 accepted: Accepted | None = None) -> None:
        # aiosmtpd 1.4.6 keeps command_size_limits on the class, shared by every session, and
        # grows it on each EHLO; a per-session dict keeps sessions independent.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        tls = service.runtime.tls
        starttls = tls if (tls is not None and not policy.implicit_tls) else None
        super().__init__(
            handler,
            data_size_limit=service.runtime.config.limits.message_size,
            enable_SMTPUTF8=True,
            hostname=service.runtime.config.hostname,
            ident="rmail ESMTP",
            tls_context=starttls,
            # AUTH only over TLS when TLS is configured; implicit TLS is TLS from the start.
            auth_require_tls=starttls is not None,
            timeout=service.timeout,
            loop=asyncio.get_running_loop(),
        )
        reader = self._stream_reader
        if reader is not None and type(reader) is asyncio.StreamReader:
            reader.__class__ = _SMTPReader   # same state, other flow-control marks and line ends
        if isinstance(reader, _SMTPReader):
            reader.on_bare_newline = self._bare_newline
        self.service = service
        self.policy = policy
        self.port = port
        self.info: ConnectionInfo | None = None
        #: Set on 465: admitted and registered at accept, before the handshake (tlsaccept);
        #: this session takes over that entry, and its login deadline counts from accept.
        self.accepted = accepted
        self._connected = False
        self.account: Account | None = None
        self.peer_ip = "?"
        self.errors = 0
        self.auth_failures = 0
        self.in_data = False
        self._refused = False
        self._greeted = False
        self._raw_replies = False
        self._last_activity = 0.0
        self._pending: list[bytes] = []
        self._deadline: asyncio.TimerHandle | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._connected:
            # The second call: STARTTLS finished (aiosmtpd resets the session, RFC 3207 §4.2).
            super().connection_made(transport)
            if isinstance(self._reader, _SMTPReader):
                self._reader.untaint()
            if self.info is not None:
                self.service.runtime.connections.update(self.info, tls=True, state="tls", force=True)
            return
        self._connected = True
        peer = transport.get_extra_info("peername")
        self.peer_ip = str(peer[0]) if peer else "?"
        registry = self.service.runtime.connections
        inbound = self.policy.protocol == "smtp"
        limits = self.service.runtime.config.limits
        seconds = limits.smtp_session_timeout if inbound else limits.login_timeout
        loop = asyncio.get_running_loop()
        if self.accepted is not None:
            self.info = self.accepted.info
            self.info.close, self.info.evict = self.close, self._evicted
            self.service.sessions.add(self)
            left = self.accepted.accepted_at + seconds - loop.time()
            self._deadline = loop.call_later(max(left, 0.0), self._deadline_passed)
            super().connection_made(transport)
            return
        if self.service.stopping:
            reason: str | None = SHUTTING_DOWN
        elif inbound and not self.service.connection_rate.allow(self.peer_ip):
            # Postfix anvil's smtpd_client_connection_rate_limit answers the same way.
            reason = f"421 4.7.0 {self.hostname} too many connections from your address; try again later"
        else:
            refusal = registry.admit(self.policy.protocol, self.peer_ip)
            reason = None if refusal is None else f"421 4.7.0 {self.hostname} {refusal}"
        if reason is not None:
            self._refused = True
            transport.write(finish_reply(reason) + b"\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        self.info = registry.open(self.policy.protocol, self.port, self.peer_ip, self.policy.implicit_tls,
                                  close=self.close, evict=self._evicted)
        self.service.sessions.add(self)
        self._deadline = loop.call_later(seconds, self._deadline_passed)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.info is not None:
            self.service.runtime.connections.closed(self.info)
        self.service.sessions.discard(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self.info is not None:
            self.service.runtime.connections.update(self.info, bytes_in=self.info.bytes_in + len(data))
            now = time.monotonic()
            if now - self._last_activity >= IDLE_RESET_INTERVAL and self.transport is not None:
                self._last_activity = now
                self._reset_timeout()
        super().data_received(data)

    def close(self) -> None:
        """Drop the connection (console "disconnect", shutdown)."""
        if self.transport is not None:
            self.transport.close()

    def shutdown(self, reply: str = SHUTTING_DOWN) -> None:
        """Tell the client we are going away (RFC 5321 §3.8) and close."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._pending) + finish_reply(reply) + b"\r\n")  # type: ignore[attr-defined]
            self.transport.close()

    def _evicted(self) -> None:
        """The registry gave this unauthenticated session's slot to a newer connection."""
        self.shutdown(TOO_MANY_CONNECTIONS)

    def _deadline_passed(self) -> None:
        """Not authenticated in time (587/465), or a port-25 session that went on too long."""
        self._deadline = None
        if self.info is not None and self.info.authenticated:
            return
        self.shutdown(SESSION_TIMEOUT if self.policy.protocol == "smtp" else LOGIN_TIMEOUT)

    async def _bare_newline(self) -> None:
        await self.push(BARE_NEWLINE)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every MAIL/RCPT address with email's header parser and defines a
        # typing.Protocol class per call; on the plain path that was a fifth of the loop's time.
        m = _PLAIN_PATH.match(arg)
        if m is not None and ".." not in m.group(1) and not m.group(1).startswith("."):
            return m.group(1), m.group(2).lstrip()
        return super()._getaddr(arg)

    def _create_envelope(self) -> RmailEnvelope:
        return RmailEnvelope()

    # -- state for the registry ---------------------------------------------------------------

    def set_state(self, state: str, **changes: Any) -> None:
        if self.info is not None:
            self.service.runtime.connections.update(self.info, state=state, force=bool(changes), **changes)
        if changes.get("user") is not None and self._deadline is not None:
            self._deadline.cancel()        # logged in: only the idle timeout applies now
            self._deadline = None

    def tls_info(self) -> tuple[str | None, str | None, int | None]:
        """(version, cipher, bits) of this connection's TLS, or Nones in clear."""
        obj: ssl.SSLObject | None = None
        if self._tls_protocol is not None and self.transport is not None:
            obj = self.transport.get_extra_info("ssl_object")
        elif self.policy.implicit_tls and self.transport is not None:
            obj = self.transport.get_extra_info("ssl_object")
        if obj is None:
            return None, None, None
        cipher = obj.cipher()
        return obj.version(), cipher[0] if cipher else None, cipher[2] if cipher else None

    @property
    def encrypted(self) -> bool:
        return self.policy.implicit_tls or self._tls_protocol is not None

    # -- replies -------------------------------------------------------------------------------

    async def push(self, status: str | bytes) -> None:
        text = status if isinstance(status, str) else status.decode("utf-8", "surrogateescape")
        # RFC 2034 §3: no enhanced code in the greeting or the HELO/EHLO response.
        raw = self._raw_replies or not self._greeted
        self._greeted = True
        data = finish_reply(text, enhanced=not raw) + b"\r\n"
        if self.info is not None:
            self.service.runtime.connections.update(self.info, bytes_out=self.info.bytes_out + len(data))
        code = reply_code(text)
        if code == 250 and b"\n" in self._reader._buffer:  # type: ignore[attr-defined]
            # RFC 2920 §3.1: while the client's next pipelined command is already here, hold
            # the reply and send the group in one segment (one send instead of one per reply).
            # Only 250s wait: 354, 334, 220 (STARTTLS) and errors go out at once.
            self._pending.append(data)
            return
        if self._pending:
            data = b"".join(self._pending) + data
            self._pending.clear()
        self._writer.write(data)
        await self._writer.drain()
        if code >= 400 and code != 421 and not raw:
            self.errors += 1
            if self.errors >= MAX_ERRORS and self.transport is not None:
                log.info("smtp: %s sent too many bad commands; closing", self.peer_ip)
                self._writer.write(finish_reply(TOO_MANY_ERRORS) + b"\r\n")
                self.transport.close()

    # -- commands wrapped (each keeps aiosmtpd's syntax text for HELP) ---------------------------

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        self._raw_replies = bool(hostname)
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._raw_replies = False
        self.set_state("ehlo")

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        self._raw_replies = bool(hostname)
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._raw_replies = False
        self.set_state("helo")

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        # A client that rejects the certificate (or goes away mid-handshake) is one INFO line,
        # like a failed implicit-TLS handshake; aiosmtpd then closes the connection, and the
        # handler's handle_exception stays quiet about it.
        try:
            await super().smtp_STARTTLS(arg)
        except TLSSetupException as exc:
            log.info("smtp: STARTTLS handshake with %s failed: %s", self.peer_ip, handshake_failure(exc.__cause__))
            raise

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        # Port 25's message rate counts each MAIL of a client that has not logged in, as
        # Postfix's smtpd_client_message_rate_limit does; 450 asks the sender to retry later.
        if (self.policy.protocol == "smtp" and not (self.info is not None and self.info.authenticated)
                and not self.service.message_rate.allow(self.peer_ip)):
            await self.push(TOO_MUCH_MAIL)
            return
        await super().smtp_MAIL(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self.in_data = True
        self.service.transaction_started()
        self.set_state("data")
        try:
            await self._receive_data(arg)
        finally:
            self.in_data = False
            self.service.transaction_finished()
            self.set_state("idle")

    async def _receive_data(self, arg: str) -> None:
        """aiosmtpd 1.4.6's ``smtp_DATA`` with the body read by ``_SMTPReader.read_data``."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader = self._reader
        assert isinstance(reader, _SMTPReader)
        try:
            status, raw = await reader.read_data(self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:
            log.info("smtp: %s connection lost during DATA", self.peer_ip)
            self._writer.close()
            raise
        # RFC 5321 §4.2.5: the error comes after the end line, so the session stays in step.
        if status is DataStatus.TOO_LONG:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()
            return
        if status is DataStatus.TOO_MUCH:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        original_content = unstuff(raw)
        content: str | bytes = original_content
        if self._decode_data:
            if self.enable_SMTPUTF8:
                content = original_content.decode("utf-8", errors="surrogateescape")
            else:
                try:
                    content = original_content.decode("ascii", errors="strict")
                except UnicodeDecodeError:
                    await self.push("500 Error: strict ASCII mode")
                    return
        self.envelope.content = content
        self.envelope.original_content = original_content
        # rmail's handler has handle_DATA; aiosmtpd's deprecated process_message is not offered.
        hook_status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if hook_status is MISSING else hook_status)
