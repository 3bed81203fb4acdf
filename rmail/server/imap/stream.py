"""File-backed message bytes for FETCH: read on worker threads, written in chunks.

Messages over the store's inline limit live in immutable files (`store.blobs.path`). FETCH
BODY[]/RFC822/BODY[TEXT] of such a message is sent as a literal whose bytes are read chunk by
chunk with `os.pread` on a worker thread (never on the loop) and written only as fast as the
transport takes them (`Output.drain`), so memory stays at one chunk per session instead of
the whole message. The file is opened once and its size taken from that descriptor: an
expunge that unlinks it mid-literal cannot shorten what was announced.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Final

from rmail.server.core.blobs import CHUNK
from rmail.server.core.errors import NotFound

__all__ = ["HEAD_MAX", "MessageFile", "StreamBroken"]

#: How much of a file is read to find the end of its header (HEADER, TEXT sections); a
#: header longer than this makes the FETCH read the whole message instead.
HEAD_MAX: Final = 64 * 1024


class StreamBroken(Exception):
    """A file ended before the bytes its literal announced: the session cannot recover."""


def _open(path: Path) -> tuple[int, int]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return fd, os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise


def _read(fd: int, offset: int, length: int) -> bytes:
    parts = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(parts)


class MessageFile:
    """One open message file; `close` it when done."""

    __slots__ = ("fd", "size")

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size

    @classmethod
    async def open(cls, path: Path) -> MessageFile:
        """Raises: NotFound: the file is gone (the message was expunged meanwhile)."""
        try:
            return cls(*await asyncio.to_thread(_open, path))
        except FileNotFoundError:
            raise NotFound("message no longer exists") from None

    async def head(self) -> bytes:
        return await asyncio.to_thread(_read, self.fd, 0, min(self.size, HEAD_MAX))

    async def read_all(self) -> bytes:
        data = await asyncio.to_thread(_read, self.fd, 0, self.size)
        if len(data) != self.size:
            raise StreamBroken("message file shorter than its size")
        return data

    async def send(self, out, start: int, length: int) -> None:  # noqa: ANN001 - Output
        """Write bytes [start, start+length) to `out`, one chunk at a time.

        Raises:
            StreamBroken: the file ended early (the literal's length was already sent).
        """
        end = start + length
        while start < end:
            chunk = await asyncio.to_thread(_read, self.fd, start, min(CHUNK, end - start))
            if not chunk:
                raise StreamBroken("message file shorter than its size")
            out.write(chunk)
            start += len(chunk)
            await out.drain()

    async def close(self) -> None:
        await asyncio.to_thread(os.close, self.fd)
