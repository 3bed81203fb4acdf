"""IMAP test helpers: a raw line client for exact-byte transcripts."""

from __future__ import annotations

import asyncio
import re
import ssl

import pytest

from tests.conftest import PASSWORD

__all__ = ["RawClient", "PASSWORD"]


class RawClient:
    """A minimal IMAP client over asyncio streams that returns bytes exactly as received."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, *, tls: ssl.SSLContext | None = None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
        return cls(reader, writer)

    async def line(self, timeout: float = 5) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), timeout)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_tagged(self, tag: bytes, timeout: float = 5) -> bytes:
        """Everything up to and including the tagged response line of `tag`."""
        out = b""
        while True:
            line = await self.line(timeout)
            if not line:
                raise ConnectionError(f"closed before {tag!r} completed; got {out!r}")
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                out += await asyncio.wait_for(self.reader.readexactly(int(m.group(1))), timeout)
                continue
            if line.startswith(tag + b" "):
                return out

    async def cmd(self, tag: bytes, text: bytes) -> bytes:
        await self.send(tag + b" " + text + b"\r\n")
        return await self.until_tagged(tag)

    async def login(self, user: bytes = b"alice@example.com", *, greeting: bool = True) -> None:
        if greeting:
            await self.line()
        reply = await self.cmd(b"L", b"LOGIN " + user + b" " + PASSWORD.encode())
        assert reply.startswith(b"L OK"), reply

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


@pytest.fixture
def imap_port(runtime) -> int:  # noqa: ANN001
    return runtime.port("imap")
