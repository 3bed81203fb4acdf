"""Message bytes as the contract hands them out: a size and async chunks, never a path."""

from __future__ import annotations

from typing import AsyncIterator, Protocol

from ..errors import TemporaryFailure

__all__ = ["BodyTruncated", "BytesBody", "CHUNK", "MessageBody"]

#: Bytes per chunk when a body is streamed (IMAP FETCH writes one chunk, then drains).
CHUNK = 256 * 1024


class BodyTruncated(TemporaryFailure):
    """The stored bytes ended before ``size``: a reader that already announced the size (an
    IMAP literal) cannot recover and must drop its connection."""


class MessageBody(Protocol):
    """One stored message's bytes, open for reading; ``close`` it when done.

    A body stays readable until closed even if the message is expunged meanwhile: the size a
    FETCH announced must be the size it sends.
    """

    #: Bytes in the message (RFC822.SIZE).
    size: int
    #: The whole message when it is already in memory (small messages); None when it is read
    #: piecewise from elsewhere (a file, a large value in the database).
    inline: bytes | None

    async def read(self, start: int = 0, length: int | None = None) -> bytes:
        """Bytes [start, start+length) (to the end when ``length`` is None).

        Raises:
            BodyTruncated: fewer bytes than asked for are left.
            TemporaryFailure: the bytes could not be read.
        """
        ...

    def chunks(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The same bytes as ``read``, at most ``CHUNK`` at a time, read as they are consumed.

        Raises: BodyTruncated, TemporaryFailure (as ``read``).
        """
        ...

    async def close(self) -> None:
        """Release what the body holds (a file descriptor, a cursor)."""
        ...


class BytesBody:
    """A body already in memory (inline messages, backends that fetch whole values)."""

    __slots__ = ("size", "inline")

    def __init__(self, data: bytes) -> None:
        self.size = len(data)
        self.inline: bytes | None = data

    async def read(self, start: int = 0, length: int | None = None) -> bytes:
        assert self.inline is not None
        end = self.size if length is None else min(self.size, start + length)
        return self.inline[start:end]

    async def chunks(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        assert self.inline is not None
        end = self.size if length is None else min(self.size, start + length)
        while start < end:
            yield self.inline[start:min(end, start + CHUNK)]
            start += CHUNK

    async def close(self) -> None:
        return None
