"""Helpers for the SMTP tests: reading a user's INBOX, raw line-level sessions."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD

__all__ = ["PASSWORD", "inbox", "RawSession"]


async def inbox(rt: ServerRuntime, address: str) -> list[bytes]:
    """The raw bytes of every message in ``address``'s INBOX, oldest first."""
    account = await rt.accounts.get_user(address)
    box = await rt.store.get_mailbox(account.id, "INBOX")
    return [await rt.store.read_message(m.blob_id) for m in await rt.store.list_messages(box.id)]


def _field_end(data: bytes, start: int) -> int:
    end = data.index(b"\r\n", start) + 2
    while data[end:end + 1] in (b"\t", b" "):
        end = data.index(b"\r\n", end) + 2
    return end


#: Fields rmail may put above the one Received header: Return-Path at local delivery
#: (RFC 5321 §4.4), its Authentication-Results on port 25, its DKIM signatures on submission.
TRACE_ABOVE_RECEIVED = (b"Return-Path: ", b"Authentication-Results: ", b"DKIM-Signature: ")


def strip_received(data: bytes) -> bytes:
    """The message without the fields rmail prepends: one Received header (with its folded
    lines) and above it the fields in TRACE_ABOVE_RECEIVED."""
    pos = 0
    while data.startswith(TRACE_ABOVE_RECEIVED, pos):
        pos = _field_end(data, pos)
    assert data.startswith(b"Received: ", pos), data[:300]
    return data[_field_end(data, pos):]


class RawSession:
    """A line-level SMTP client over asyncio streams, for hostile-input tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, *, tls: ssl.SSLContext | None = None) -> RawSession:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls,
                                                       server_hostname="localhost" if tls else None)
        session = cls(reader, writer)
        greeting = await session.reply()
        assert greeting[0].startswith("220 "), greeting
        return session

    async def reply(self) -> list[str]:
        """One (possibly multi-line) reply."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            if not line:
                raise ConnectionError(f"connection closed after {lines!r}")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return lines

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def cmd(self, line: str) -> list[str]:
        await self.send(line + "\r\n")
        return await self.reply()

    async def closed(self) -> bool:
        """True once the server has closed the connection."""
        try:
            return await asyncio.wait_for(self.reader.read(), 10) == b""
        except ConnectionError:
            return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


@pytest.fixture
async def raw():
    """Open RawSessions and close them all at the end of the test."""
    opened: list[RawSession] = []

    async def open_(port: int, **kw) -> RawSession:
        s = await RawSession.open(port, **kw)
        opened.append(s)
        return s
    yield open_
    for s in opened:
        await s.close()
