"""CATENATE (RFC 4469): an APPENDed message built from TEXT literals and IMAP URLs to
messages or parts the user can read.

Invariants:

- A URL names a message in one of the session user's own mailboxes (`imapurl`); one that is
  malformed, names another server, a mailbox or message that does not exist, a UIDVALIDITY
  that does not match, or a section the message does not have, gets ``NO [BADURL url]``
  (RFC 4469 §6) and nothing is stored.
- The result is bounded by the message-size limit: ``NO [TOOBIG]`` (RFC 4469 §6) as soon as
  the parts so far pass it, before a message larger than what is left is read.
- The bytes of a URL are the stored bytes (`BODY[section]<partial>`, RFC 5092 §6.1); a part
  that came as a literal8 makes the result a binary message, re-encoded as one
  (`mime.binary.storable`).
"""

from __future__ import annotations

import asyncio
from typing import Final, Sequence

from rmail.server.core import mime
from rmail.server.core.errors import NotFound
from rmail.server.core.mime.binary import storable

from .commands import CatPart
from .errors import CommandError
from .imapurl import BadUrl, ImapUrl, parse_url
from .state import SessionState

__all__ = ["PARSE_ON_LOOP", "build", "made_storable"]


def _bad_url(url: str) -> CommandError:
    return CommandError("NO", "the URL does not name a message you can read",
                        f"BADURL {url}")


def _too_big() -> CommandError:
    return CommandError("NO", "the message would be larger than the server allows", "TOOBIG")


async def _resolve(s: SessionState, raw: str, room: int) -> bytes:
    """The bytes `raw` names; at most `room` of them, else TOOBIG."""
    try:
        url: ImapUrl = parse_url(raw)
    except BadUrl:
        raise _bad_url(raw) from None
    try:
        mailbox = await s.store.get_mailbox(s.account.id, url.mailbox)
    except NotFound:
        raise _bad_url(raw) from None
    if url.uidvalidity is not None and url.uidvalidity != mailbox.uidvalidity:
        raise _bad_url(raw)
    metas = await s.store.get_meta(mailbox.id, [url.uid])
    if not metas:
        raise _bad_url(raw)
    meta = metas[0]
    if url.section is None and url.partial is None and meta.size > room:
        raise _too_big()  # known before reading it
    try:
        data = await s.store.read_message(meta.blob_id)
    except NotFound:
        raise _bad_url(raw) from None  # expunged meanwhile
    if url.section is not None:
        sect = url.section
        value = mime.body_section(data, sect.part, sect.text, sect.fields)
        if value is None:
            raise _bad_url(raw)
        data = value
    if url.partial is not None:
        start, length = url.partial
        data = data[start:] if length is None else data[start:start + length]
    if len(data) > room:
        raise _too_big()
    return data


async def build(s: SessionState, parts: Sequence[CatPart], limit: int) -> bytes:
    """The message `parts` make, at most `limit` octets.

    Raises:
        CommandError: NO [BADURL url], NO [TOOBIG].
    """
    out = bytearray()
    binary = False
    for part in parts:
        if part.text is not None:
            if len(out) + len(part.text) > limit:
                raise _too_big()
            out += part.text
            binary = binary or part.binary
        else:
            assert part.url is not None
            out += await _resolve(s, part.url, limit - len(out))
    data = bytes(out)
    return await made_storable(data) if binary else data


#: A binary message up to this size is re-encoded on the event loop (as the store parses small
#: messages there); a larger one on a worker thread (DESIGN.md: large parses off the loop).
PARSE_ON_LOOP: Final = 128 * 1024


async def made_storable(data: bytes) -> bytes:
    """`mime.binary.storable` of a message sent as a literal8 (RFC 3516 §4.4)."""
    if len(data) > PARSE_ON_LOOP:
        return await asyncio.to_thread(storable, data)
    return storable(data)
