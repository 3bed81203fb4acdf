"""Streaming a large message's bytes into a FETCH response.

The store hands out a message as a ``MessageBody`` (a size and async chunks, never a path).
FETCH BODY[]/RFC822/BODY[TEXT] of a message the store does not keep in memory is sent as a
literal whose bytes are read chunk by chunk and written only as fast as the transport takes
them (`Output.drain`), so memory stays at one chunk per session instead of the whole message.
The size is fixed when the body is opened: an expunge meanwhile cannot shorten what was
announced; if the bytes end early anyway, the session cannot recover (StreamBroken).
"""

from __future__ import annotations

from typing import Final

from rmail.server.core.storage.body import BodyTruncated, MessageBody

from .state import Output

__all__ = ["HEAD_MAX", "StreamBroken", "head", "read_all", "send"]

#: How much of a message is read to find the end of its header (HEADER, TEXT sections); a
#: header longer than this makes the FETCH read the whole message instead.
HEAD_MAX: Final = 64 * 1024


class StreamBroken(Exception):
    """A body ended before the bytes its literal announced: the session cannot recover."""


async def head(body: MessageBody) -> bytes:
    try:
        return await body.read(0, min(body.size, HEAD_MAX))
    except BodyTruncated as exc:
        raise StreamBroken(str(exc)) from None


async def read_all(body: MessageBody) -> bytes:
    try:
        return await body.read()
    except BodyTruncated as exc:
        raise StreamBroken(str(exc)) from None


async def send(body: MessageBody, out: Output, start: int, length: int) -> None:
    """Write bytes [start, start+length) to `out`, one chunk at a time.

    Raises:
        StreamBroken: the body ended early (the literal's length was already sent).
    """
    try:
        async for chunk in body.chunks(start, length):
            out.write(chunk)
            await out.drain()
    except BodyTruncated as exc:
        raise StreamBroken(str(exc)) from None
