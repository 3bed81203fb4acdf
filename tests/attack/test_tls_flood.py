"""Issue 11: connections that never finish (or never start) their implicit-TLS handshake.

asyncio used to run the handshake of IMAPS (993) and SMTPS (465) before the session existed,
so such connections were bounded in time but not in number: thousands of TCP connections
that never send a ClientHello were invisible to the slot caps. Now each is a pre-login
connection from accept (rmail/server/tlsaccept.py): it counts in the registry, a newcomer
takes its slot when the family's pool is full, and the handshake ends at the login deadline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.server import make_config

from .conn_tools import close, connect_from, read_line, smtp_reply

ATTACKERS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
PREAUTH = 20
SILENT = 60


async def _runtime(tmp_path: Path, tls_files: tuple[Path, Path], **limits: int) -> ServerRuntime:
    rt = ServerRuntime(make_config(tmp_path / "data", tls=tls_files, limits=limits), auth_delay=0)
    await rt.__aenter__()
    await rt.accounts.add_user("alice@example.com", PASSWORD)
    return rt


@pytest.fixture
async def small(tmp_path: Path, tls_files: tuple[Path, Path]) -> AsyncIterator[ServerRuntime]:
    """TLS configured, ``PREAUTH`` pre-login slots per protocol family."""
    rt = await _runtime(tmp_path, tls_files, preauth_connections=PREAUTH)
    try:
        yield rt
    finally:
        await rt.__aexit__(None, None, None)


async def _until(predicate, timeout: float = 20.0) -> None:  # noqa: ANN001
    """Wait (bounded) until ``predicate()`` holds; the server runs in this loop."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


class Silent:
    """Plain TCP connections to a TLS port that never send a byte (not even a ClientHello).

    Each is opened only once the server has registered the previous one, so the registry's
    order is the order here.
    """

    def __init__(self, rt: ServerRuntime, port: int) -> None:
        self.rt = rt
        self.port = port
        self.conns: list[tuple[str, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open(self, count: int, sources: list[str]) -> None:
        for i in range(count):
            opened = self.rt.connections.total
            reader, writer = await connect_from(self.port, sources[i % len(sources)])
            self.conns.append((sources[i % len(sources)], reader, writer))
            await _until(lambda: self.rt.connections.total > opened)

    def closed_by_server(self) -> list[bool]:
        """For each connection in order: whether the server has closed it."""
        return [reader.at_eof() or bool(reader.exception()) for _, reader, _ in self.conns]

    async def poll_eof(self) -> None:
        """Let each reader notice a server close (a read that returns at once if so)."""
        for _, reader, _ in self.conns:
            if not reader.at_eof():
                with contextlib.suppress(asyncio.TimeoutError, OSError):
                    await asyncio.wait_for(reader.read(1), 0.01)

    async def close(self) -> None:
        for _, _, writer in self.conns:
            await close(writer)


def _client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files[0]))


async def imaps_login(port: int, ctx: ssl.SSLContext) -> list[bytes]:
    """Greeting, LOGIN, LOGOUT over implicit TLS from 127.0.0.1; the tagged replies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, local_addr=("127.0.0.1", 0))
    try:
        assert (await read_line(reader, 30)).startswith(b"* OK")
        tagged = []
        for command in (b"a LOGIN alice@example.com " + PASSWORD.encode(), b"c LOGOUT"):
            writer.write(command + b"\r\n")
            while not (line := await read_line(reader, 30)).startswith(command[:2]):
                if not line:
                    raise ConnectionError(f"closed after {tagged!r}")
            tagged.append(line)
        return tagged
    finally:
        await close(writer)


async def smtps_auth(port: int, ctx: ssl.SSLContext) -> list[str]:
    """Greeting, EHLO, AUTH PLAIN, QUIT over implicit TLS from 127.0.0.1; each reply's last line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, local_addr=("127.0.0.1", 0))
    try:
        replies = [await smtp_reply(reader, 30)]
        token = base64.b64encode(f"\0alice@example.com\0{PASSWORD}".encode()).decode()
        for command in ("EHLO client.example.com", f"AUTH PLAIN {token}", "QUIT"):
            writer.write(command.encode() + b"\r\n")
            reply = await smtp_reply(reader, 30)
            replies.append(reply.splitlines()[-1] if reply else "")
        return replies
    finally:
        await close(writer)


@pytest.mark.timeout(120)
async def test_silent_tls_connections_hold_prelogin_slots(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    rt = await _runtime(tmp_path, tls_files)
    try:
        imaps, smtps = Silent(rt, rt.port("imaps")), Silent(rt, rt.port("smtps"))
        await imaps.open(30, ATTACKERS)
        await smtps.open(25, ATTACKERS)
        assert rt.connections.preauth_count("imap") == 30
        assert rt.connections.preauth_count("submission") == 25
        shown = rt.connections.snapshot()
        assert len(shown) == 55 and all(c.tls and not c.authenticated for c in shown)
        assert {c.protocol for c in shown} == {"imap", "smtps"}
        assert {c.port for c in shown} == {rt.port("imaps"), rt.port("smtps")}
        await imaps.close()
        await smtps.close()
        await _until(lambda: len(rt.connections) == 0)
        assert rt.connections.preauth_count() == 0
    finally:
        await rt.__aexit__(None, None, None)


@pytest.mark.timeout(120)
async def test_silent_tls_flood_does_not_lock_users_out(small: ServerRuntime, tls_files: tuple[Path, Path]) -> None:
    rt = small
    ctx = _client_tls(tls_files)
    imaps, smtps = Silent(rt, rt.port("imaps")), Silent(rt, rt.port("smtps"))
    try:
        await imaps.open(SILENT, ATTACKERS)
        await smtps.open(SILENT, ATTACKERS)
        # Each family's pool holds PREAUTH of them: the others were dropped for newcomers.
        assert rt.connections.preauth_count("imap") == PREAUTH
        assert rt.connections.preauth_count("submission") == PREAUTH
        assert rt.connections.evicted == 2 * (SILENT - PREAUTH)

        # A real user gets in over implicit TLS on both ports while the flood holds every slot.
        assert [line.split()[1] for line in await imaps_login(rt.port("imaps"), ctx)] == [b"OK", b"OK"]
        replies = await smtps_auth(rt.port("smtps"), ctx)
        assert replies[0].startswith("220") and replies[1].startswith("250"), replies
        assert replies[2].startswith("235"), replies
        assert rt.connections.evicted == 2 * (SILENT - PREAUTH) + 2

        # The ones dropped are the oldest of each flooding address; the newest survive.
        for silent in (imaps, smtps):
            await silent.poll_eof()
            gone = silent.closed_by_server()
            assert sum(gone) == SILENT - PREAUTH + 1
            for address in ATTACKERS:
                mine = [g for (source, _, _), g in zip(silent.conns, gone) if source == address]
                survivors_from = mine.index(False)
                assert all(mine[:survivors_from]) and not any(mine[survivors_from:]), (address, mine)
    finally:
        await imaps.close()
        await smtps.close()


@pytest.mark.timeout(120)
async def test_handshake_never_completed_is_closed_at_the_login_deadline(
        tmp_path: Path, tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rt = await _runtime(tmp_path, tls_files, login_timeout=2)
    try:
        started = time.monotonic()
        conns = []
        for name in ("imaps", "smtps"):
            silent = await connect_from(rt.port(name), "127.0.0.2")
            # A TLS record header announcing a ClientHello whose body never comes.
            partial = await connect_from(rt.port(name), "127.0.0.3")
            partial[1].write(b"\x16\x03\x01\x02\x00")
            conns += [silent, partial]
        await _until(lambda: rt.connections.preauth_count() == 4)
        for reader, _ in conns:
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), 30) == b""
        elapsed = time.monotonic() - started
        assert 1.5 <= elapsed < 30, elapsed          # at the deadline, not before
        await _until(lambda: len(rt.connections) == 0)
        for _, writer in conns:
            await close(writer)
        lines = [r for r in caplog.records if "TLS handshake with" in r.getMessage()]
        assert len(lines) == 4 and all(r.levelno == logging.INFO and "no handshake within 2 s" in r.getMessage()
                                       for r in lines), [r.getMessage() for r in lines]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    finally:
        await rt.__aexit__(None, None, None)


@pytest.mark.timeout(60)
async def test_failed_handshakes_are_one_info_line_each(
        tmp_path: Path, tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rt = await _runtime(tmp_path, tls_files)
    try:
        untrusting = ssl.create_default_context()          # does not know the test CA
        for name in ("imaps", "smtps"):
            port = rt.port(name)
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.open_connection("127.0.0.1", port, ssl=untrusting)
            reader, writer = await connect_from(port, "127.0.0.2")
            writer.write(b"a LOGIN alice@example.com secret\r\n")      # cleartext to a TLS port
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), 30) == b""
            await close(writer)
        await _until(lambda: len(rt.connections) == 0)
        lines = [r.getMessage() for r in caplog.records if "TLS handshake with" in r.getMessage()]
        assert len(lines) == 4, lines
        assert sum("with 127.0.0.1 failed" in m for m in lines) == 2
        assert sum("with 127.0.0.2 failed" in m for m in lines) == 2
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
        # The server still serves: a trusting client logs in.
        ctx = _client_tls(tls_files)
        assert (await imaps_login(rt.port("imaps"), ctx))[0].split()[1] == b"OK"
    finally:
        await rt.__aexit__(None, None, None)


async def _starttls_rejected(port: int, command: bytes, expect: bytes) -> None:
    """Ask for STARTTLS in cleartext, then reject the server's certificate."""
    reader, writer = await connect_from(port, "127.0.0.5")
    try:
        await read_line(reader)
        if command.startswith(b"STARTTLS"):
            writer.write(b"EHLO client.example.com\r\n")
            while not (await read_line(reader)).startswith(b"250 "):
                pass
        writer.write(command + b"\r\n")
        assert expect in await read_line(reader)
        with pytest.raises(ssl.SSLCertVerificationError):
            await writer.start_tls(ssl.create_default_context())
    finally:
        await close(writer)


@pytest.mark.timeout(60)
async def test_rejected_starttls_is_one_info_line(
        tmp_path: Path, tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    """A client rejecting the certificate on STARTTLS (25, 587, 143) used to log an ERROR
    with two tracebacks on SMTP; now it is one INFO line like a failed implicit handshake."""
    caplog.set_level(logging.INFO)
    rt = await _runtime(tmp_path, tls_files)
    try:
        await _starttls_rejected(rt.port("smtp"), b"STARTTLS", b"220")
        await _starttls_rejected(rt.port("submission"), b"STARTTLS", b"220")
        await _starttls_rejected(rt.port("imap"), b"a STARTTLS", b"a OK")
        await _until(lambda: len(rt.connections) == 0)
        lines = [r for r in caplog.records if "STARTTLS handshake with 127.0.0.5 failed" in r.getMessage()]
        assert [r.name for r in lines] == ["rmail.smtp", "rmail.smtp", "rmail.imap"]
        assert all(r.levelno == logging.INFO for r in lines)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    finally:
        await rt.__aexit__(None, None, None)
