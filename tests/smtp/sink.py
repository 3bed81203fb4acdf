"""A scripted SMTP sink on loopback (a second aiosmtpd listener) for outbound-queue tests."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    login: bytes | None


@dataclass
class Sink:
    """Answers RCPT with the scripted replies in order, then 250; records every message."""

    rcpt_replies: list[str] = field(default_factory=list)
    messages: list[Received] = field(default_factory=list)
    attempts: int = 0
    port: int = 0
    server: asyncio.Server | None = None

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        self.attempts += 1
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                      envelope.original_content or b"", session.ssl is not None, login))
        return "250 2.0.0 accepted"


def _check(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth: LoginPassword) -> AuthResult:
    ok = auth.login == b"relayuser" and auth.password == b"relaypass"
    return AuthResult(success=ok, auth_data=auth)


async def start_sink(*, tls: ssl.SSLContext | None = None, auth: bool = False) -> Sink:
    sink = Sink()
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(sink, hostname="sink.example.org", tls_context=tls, enable_SMTPUTF8=True,
                    authenticator=_check if auth else None, auth_require_tls=True, loop=loop)
    sink.server = await loop.create_server(factory, "127.0.0.1", 0)
    sink.port = sink.server.sockets[0].getsockname()[1]
    return sink


async def stop_sink(sink: Sink) -> None:
    assert sink.server is not None
    sink.server.close()
    await sink.server.wait_closed()


async def eventually(predicate, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` (sync or async) is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
