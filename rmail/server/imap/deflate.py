"""COMPRESS=DEFLATE (RFC 4978) as pure code: bytes in, bytes out, every step bounded.

Raw DEFLATE (RFC 1951, no zlib or gzip wrapper: window bits -15) in both directions. The
connection decides when to run a step; nothing here touches a socket or the event loop.

- `Deflater` compresses what the session writes in pieces of at most `PIECE` octets, so the
  caller can give the loop back between pieces (a 2 MiB FETCH burst at level 6 would hold
  it for about 40 ms in one call), and ends each burst of responses with a sync flush
  (RFC 4978 §4: the peer must be able to decompress everything sent so far before it
  answers).
- `Inflater` takes the client's compressed bytes and gives back at most a requested number
  of inflated octets per step, keeping the rest compressed (zlib's ``unconsumed_tail``). The
  connection feeds those octets to the framer, which applies its line, literal and command
  limits as to cleartext, so a decompression bomb inflates no faster than the framer drops
  or refuses it: memory stays at the framer's bounds plus one step.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Final

__all__ = ["LEVEL", "PIECE", "Deflater", "DeflateError", "Inflater"]

#: zlib's default level: within a few percent of level 9's ratio on mail, about half the CPU.
LEVEL: Final = 6
#: Octets compressed per step: about 1 ms at level 6 on incompressible data.
PIECE: Final = 64 * 1024
#: RFC 4978 §4 (raw DEFLATE): negative window bits mean no zlib header or trailer.
_RAW: Final = -15


class DeflateError(Exception):
    """The client's compressed stream is corrupt or was ended; the connection must close."""


class Deflater:
    """The server-to-client direction: queued writes in, compressed bytes out."""

    __slots__ = ("_z", "_queue", "pending")

    def __init__(self, *, level: int = LEVEL) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, _RAW)
        self._queue: deque[memoryview] = deque()
        #: Octets queued and not yet compressed.
        self.pending = 0

    def push(self, data: bytes) -> None:
        """Queue bytes the session wrote (kept in order, compressed by `step`)."""
        if data:
            self._queue.append(memoryview(data))
            self.pending += len(data)

    def step(self, budget: int = PIECE) -> bytes:
        """Compress up to `budget` queued octets; return what zlib emits (often nothing
        until a flush)."""
        out: list[bytes] = []
        while self._queue and budget > 0:
            head = self._queue[0]
            piece = head[:budget]
            if len(piece) == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[budget:]
            budget -= len(piece)
            self.pending -= len(piece)
            out.append(self._z.compress(piece))
        return b"".join(out)

    def flush(self) -> bytes:
        """Everything compressed so far, decodable by the peer now (Z_SYNC_FLUSH)."""
        return self._z.flush(zlib.Z_SYNC_FLUSH)

    def drain(self) -> bytes:
        """Compress all that is queued and flush, in one call (for the last words before
        the connection closes, which are small)."""
        out = []
        while self.pending:
            out.append(self.step())
        out.append(self.flush())
        return b"".join(out)


class Inflater:
    """The client-to-server direction: compressed bytes in, bounded steps of cleartext out."""

    __slots__ = ("_z", "_tail")

    def __init__(self) -> None:
        self._z = zlib.decompressobj(_RAW)
        self._tail = b""   # compressed input not yet given to zlib

    def receive(self, data: bytes) -> None:
        """Add compressed bytes from the client (the caller bounds how many wait here)."""
        self._tail = self._tail + data if self._tail else bytes(data)

    @property
    def pending(self) -> int:
        """Compressed octets waiting: `inflate` may have more to give while this is not 0."""
        return len(self._tail)

    def inflate(self, limit: int) -> bytes:
        """At most `limit` octets of cleartext; the input they did not need stays queued.

        Raises:
            DeflateError: the stream is corrupt, or the client ended it (RFC 4978 has no
                way to stop compressing, so data after a final block is not IMAP).
        """
        if not self._tail:
            return b""
        try:
            out = self._z.decompress(self._tail, limit)
        except zlib.error as exc:
            raise DeflateError(f"corrupt DEFLATE stream: {exc}") from None
        self._tail = self._z.unconsumed_tail
        if self._z.eof:
            raise DeflateError("the client ended its DEFLATE stream")
        return out
