"""URLAUTH (RFC 4467): GENURLAUTH, RESETKEY, URLFETCH; and URLAUTH=BINARY (RFC 5524).

A URLAUTH URL names a message (or part) in one of its owner's mailboxes and says who may
fetch it; its token is an HMAC of the URL's rump under the mailbox's access key (RFC 4467 §7,
the INTERNAL mechanism), so nobody can make a token without the key, and RESETKEY revokes
every token of a mailbox by forgetting its key.

Invariants:

- A mailbox access key is 32 random bytes kept as a directory secret named after the owner,
  the mailbox id and its UIDVALIDITY (``urlauth-U-M-V``), so it is shared by every node and
  survives restarts; a mailbox deleted and created again (a new UIDVALIDITY) has a new key.
  A key is created by GENURLAUTH (or the first URLFETCH of its mailbox) and dropped by
  RESETKEY (`Directory.drop_secret`, durable before the OK).
- GENURLAUTH only signs URLs of the session user's own mailboxes and existing messages, for
  ``authuser`` or ``user+<someone>``: ``anonymous`` would hand the message to anyone and
  ``submit+`` needs a submission server that fetches by URL (BURL), which rmail has not.
- URLFETCH answers every URL: its data, or NIL when anything is wrong (malformed, expired,
  not for this user, a bad token, gone) without saying which (RFC 4467 §6.3). It reads one
  message at a time and writes its pair before reading the next.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from typing import Awaitable, Callable, Final

from rmail.server.core import mime
from rmail.server.core.errors import NotFound
from rmail.server.core.mime.binary import UnknownEncoding, binary_section, decoded_message
from rmail.server.core.mime.imapstruct import bodystructure
from rmail.server.core.mime.sections import resolve_part
from rmail.server.core.mime.tree import parse_tree
from rmail.server.core.model import Account, Mailbox

from .. import commands as c
from ..encode import CRLF, Atom, Code, Data, Tagged, urlfetch_head, urlfetch_pair
from ..errors import CommandError
from ..imapurl import AuthUrl, BadUrl, parse_auth_url
from ..state import SessionState

__all__ = ["HANDLERS", "MECHANISM"]

#: The one mechanism (RFC 4467 §7: every server implements INTERNAL).
MECHANISM: Final = "INTERNAL"
_KEY_BYTES: Final = 32


def _key_name(owner_id: int, mailbox: Mailbox) -> str:
    return f"urlauth-{owner_id}-{mailbox.id}-{mailbox.uidvalidity}"


async def _key(s: SessionState, owner_id: int, mailbox: Mailbox) -> bytes:
    return await s.services.accounts.directory.secret(
        _key_name(owner_id, mailbox), lambda: secrets.token_bytes(_KEY_BYTES))


def _token(key: bytes, rump: str) -> str:
    """RFC 4467 §7: HMAC of the rump under the mailbox access key (SHA-256 here, 64 hex
    digits; the RFC asks for at least 128 bits)."""
    return hmac.new(key, rump.encode("utf-8"), hashlib.sha256).hexdigest()


def _same_user(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


async def genurlauth(s: SessionState, cmd: c.GenUrlAuth) -> Tagged:
    urls: list[str] = []
    for raw, mechanism in cmd.items:
        if mechanism != MECHANISM:
            raise CommandError("NO", f"unknown mechanism {mechanism[:32]}; only INTERNAL")
        try:
            url = parse_auth_url(raw)
        except BadUrl as exc:
            raise CommandError("BAD", f"invalid URLAUTH URL: {exc}") from None
        if url.mechanism is not None:
            raise CommandError("BAD", "give the URL without a mechanism and token")
        if not _same_user(url.owner, s.account.address):
            raise CommandError("NO", "URLs can be made for your own mailboxes only",
                               f"BADURL {raw}")
        if not url.access.startswith("user+") and url.access != "authuser":
            raise CommandError("NO", "only authuser and user+ access is offered")
        mailbox = await _message_mailbox(s, s.account, url)
        if mailbox is None:
            raise CommandError("NO", "the URL does not name one of your messages",
                               f"BADURL {raw}")
        key = await _key(s, s.account.id, mailbox)
        urls.append(f"{url.rump}:{MECHANISM.lower()}:{_token(key, url.rump)}")
    s.send(Data("GENURLAUTH", tuple(urls)))
    return Tagged(cmd.tag, "OK", "GENURLAUTH completed")


async def resetkey(s: SessionState, cmd: c.ResetKey) -> Tagged:
    for mechanism in cmd.mechanisms:
        if mechanism != MECHANISM:
            raise CommandError("NO", f"unknown mechanism {mechanism[:32]}; only INTERNAL")
    if cmd.mailbox is None:
        mailboxes = await s.store.list_mailboxes(s.account.id)
    else:
        mailboxes = [await s.store.get_mailbox(s.account.id, cmd.mailbox)]  # NO [NONEXISTENT]
    for mailbox in mailboxes:
        await s.services.accounts.directory.drop_secret(_key_name(s.account.id, mailbox))
    if cmd.mailbox is None:
        return Tagged(cmd.tag, "OK", "RESETKEY completed")
    # RFC 4467 §6.2: the mechanisms the mailbox offers now.
    return Tagged(cmd.tag, "OK", "RESETKEY completed", Code("URLMECH", (Atom(MECHANISM),)))


async def _message_mailbox(s: SessionState, owner: Account, url: AuthUrl) -> Mailbox | None:
    """The owner's mailbox the URL names, when it holds the message (and UIDVALIDITY fits)."""
    try:
        mailbox = await s.store.get_mailbox(owner.id, url.target.mailbox)
    except NotFound:
        return None
    if url.target.uidvalidity is not None and url.target.uidvalidity != mailbox.uidvalidity:
        return None
    if not await s.store.get_meta(mailbox.id, [url.target.uid]):
        return None
    return mailbox


def _may_fetch(s: SessionState, url: AuthUrl) -> bool:
    """RFC 4467 §3: authuser is any logged-in user of this server; user+X the user X only.
    anonymous and submit+ URLs are never made here, so none verifies."""
    if url.access == "authuser":
        return True
    return url.access.startswith("user+") and _same_user(url.access[5:], s.account.address)


async def _verified(s: SessionState, raw: str) -> tuple[AuthUrl, bytes] | None:
    """The URL and its message's bytes, when the URL is valid for this user now."""
    try:
        url = parse_auth_url(raw)
    except BadUrl:
        return None
    if url.mechanism != MECHANISM or url.token is None or not _may_fetch(s, url):
        return None
    if url.expire is not None and url.expire <= datetime.now(timezone.utc):
        return None
    owner = await s.services.accounts.find_user(url.owner)
    if owner is None:
        return None
    mailbox = await _message_mailbox(s, owner, url)
    if mailbox is None:
        return None
    key = await _key(s, owner.id, mailbox)
    if not hmac.compare_digest(_token(key, url.rump), url.token):
        return None
    metas = await s.store.get_meta(mailbox.id, [url.target.uid])
    if not metas:
        return None
    try:
        return url, await s.store.read_message(metas[0].blob_id)
    except NotFound:
        return None  # expunged meanwhile


def _cut(url: AuthUrl, data: bytes) -> bytes | None:
    """BODY[section]<partial> of the URL (RFC 5092 §6.1)."""
    target = url.target
    if target.section is not None:
        sect = target.section
        value = mime.body_section(data, sect.part, sect.text, sect.fields)
        if value is None:
            return None
        data = value
    return _partial(url, data)


def _partial(url: AuthUrl, data: bytes) -> bytes:
    if url.target.partial is None:
        return data
    start, length = url.target.partial
    return data[start:] if length is None else data[start:start + length]


def _binary(url: AuthUrl, data: bytes) -> bytes | None:
    """The section decoded (RFC 5524 §3 BINARY): numbered parts only; NIL when a text
    section (HEADER, TEXT, MIME) is named or the encoding cannot be undone."""
    sect = url.target.section
    if sect is not None and sect.text is not None:
        return None
    try:
        value = binary_section(data, sect.part if sect is not None else ())
    except UnknownEncoding:
        return None
    return None if value is None else _partial(url, value)


def _part_structure(url: AuthUrl, data: bytes, decoded: bool) -> bytes | None:
    """BODYPARTSTRUCTURE (RFC 5524 §3): the named part's BODYSTRUCTURE, extension data
    included; NIL for a text section. Beside BINARY (`decoded`) it describes the decoded
    data: its sizes and line counts."""
    sect = url.target.section
    if sect is not None and sect.text is not None:
        return None
    if decoded:
        try:
            data = decoded_message(data)
        except UnknownEncoding:
            return None
    root = parse_tree(data)
    node = root if sect is None else resolve_part(root, sect.part)
    return None if node is None else bodystructure(data, node)


async def urlfetch(s: SessionState, cmd: c.UrlFetch) -> Tagged:
    s.out.write(urlfetch_head())
    for item in cmd.items:
        found = await _verified(s, item.url)
        if item.params is None:
            value = _cut(*found) if found is not None else None
            s.out.write(urlfetch_pair(item.url, value))
        else:
            # RFC 5524 §3: BODYPARTSTRUCTURE first, then the data items asked for.
            names = sorted(item.params, key=lambda p: p != "BODYPARTSTRUCTURE")
            items: list[tuple[str, bytes | None, bool]] = []
            for name in names:
                data = None
                if found is not None:
                    data = (_part_structure(*found, "BINARY" in names)
                            if name == "BODYPARTSTRUCTURE"
                            else _binary(*found) if name == "BINARY" else _cut(*found))
                items.append((name, data, name == "BINARY"))
            s.out.write(urlfetch_pair(item.url, None, extended=True, items=items))
        await s.out.drain()
    s.out.write(CRLF)
    return Tagged(cmd.tag, "OK", "URLFETCH completed")


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.GenUrlAuth: genurlauth, c.ResetKey: resetkey, c.UrlFetch: urlfetch,
}
