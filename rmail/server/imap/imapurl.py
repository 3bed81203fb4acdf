"""IMAP URLs (RFC 5092) naming a message or a part of one in the user's own mailboxes, as
CATENATE (RFC 4469 §5) uses them: pure parsing, no store.

`parse_url` (CATENATE) accepts the path-absolute form
``/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]``
(RFC 5092 §6, ``imessagepart``), keys case-insensitive, the mailbox and section %-encoded
UTF-8 (RFC 5092 §3.5, §6.1). Not accepted (`BadUrl`): absolute ``imap://`` URLs — the server
cannot tell which host names are its own, so it would rather refuse than read a foreign
server's URL from the local store — and URLAUTH parts (RFC 4467).

`parse_auth_url` (URLAUTH, RFC 4467 §3) takes the absolute form those need:
``imap://user@host/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o.l]
[;EXPIRE=date-time];URLAUTH=access[:mechanism:token]``. The token is what authenticates the
URL, so the host is not checked; the user (``user@host`` when the user part has no ``@``, as
for a mail domain) names the account whose mailbox it is.

Every value is bounded: the URL's length (`MAX_URL`), numbers (32 bits), section depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import unquote_to_bytes

from .commands import Section, normalize_mailbox

__all__ = ["AuthUrl", "BadUrl", "ImapUrl", "MAX_URL", "parse_auth_url", "parse_url"]

#: Longest URL looked at: a mailbox name (≤ 1024 octets %-encoded three times over) and a
#: section with a few header names; longer ones are refused, not parsed.
MAX_URL: Final = 4096
_MAX_NUMBER: Final = 0xFFFFFFFF
_MAX_PART_DEPTH: Final = 64

# RFC 5092 §11: bchar = achar / ":" / "@" / "/"; achar = uchar / "&" / "="; uchar is
# unreserved / escaped / sub-delims-sh. Everything after the mailbox is a ";KEY=value" piece.
_MESSAGEPART = re.compile(
    r"/(?P<mailbox>[^;]+)"
    r"(?:;UIDVALIDITY=(?P<uidvalidity>\d{1,10}))?"
    r"/;UID=(?P<uid>\d{1,10})"
    r"(?:/;SECTION=(?P<section>[^/;]+))?"
    r"(?:/;PARTIAL=(?P<offset>\d{1,10})(?:\.(?P<length>\d{1,10}))?)?",
    re.IGNORECASE)
_SECTION_TEXT: Final = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext


class BadUrl(ValueError):
    """Not an IMAP URL rmail can resolve; IMAP answers ``NO [BADURL url]`` (RFC 4469 §6)."""


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """A message (or part) in one of the user's mailboxes."""

    mailbox: str
    uidvalidity: int | None
    uid: int
    section: Section | None
    #: (offset, length or None for "to the end").
    partial: tuple[int, int | None] | None


def _number(text: str, *, nonzero: bool) -> int:
    value = int(text)
    if value > _MAX_NUMBER or (nonzero and value == 0):
        raise BadUrl("number out of range")
    return value


def _decode(text: str) -> str:
    """%-decoding into UTF-8 text (RFC 5092 §3.5: mailbox names are UTF-8, %-encoded)."""
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl("not UTF-8") from None


def _section(text: str) -> Section:
    """RFC 5092 enc-section: section-text of RFC 3501 §9, %-decoded."""
    spec = text.strip()
    fields: tuple[str, ...] = ()
    if " " in spec:
        spec, _, rest = spec.partition(" ")
        rest = rest.strip()
        if not (rest.startswith("(") and rest.endswith(")")):
            raise BadUrl("malformed header field list")
        names = rest[1:-1].split()
        if not names or not all(_FIELD_NAME.fullmatch(n) for n in names):
            raise BadUrl("malformed header field list")
        fields = tuple(names)
    pieces = spec.upper().split(".") if spec else []
    part: list[int] = []
    while pieces and pieces[0].isdigit():
        part.append(_number(pieces.pop(0), nonzero=True))
    if len(part) > _MAX_PART_DEPTH:
        raise BadUrl("section too deep")
    rest_text = ".".join(pieces)
    if not rest_text:
        if not part or fields:
            raise BadUrl("empty section")
        return Section(tuple(part))
    if rest_text not in _SECTION_TEXT or (rest_text == "MIME" and not part):
        raise BadUrl("unknown section")
    if rest_text.startswith("HEADER.FIELDS") != bool(fields):
        raise BadUrl("header field list mismatch")
    return Section(tuple(part), rest_text, fields)


@dataclass(frozen=True, slots=True)
class AuthUrl:
    """A URLAUTH URL (RFC 4467 §3): the message it names and who may fetch it."""

    owner: str                     #: the account the mailbox belongs to
    target: ImapUrl
    expire: datetime | None
    #: "anonymous", "authuser", "user+<id>" or "submit+<id>" (keyword lower-cased, id decoded)
    access: str
    rump: str                      #: the URL up to the access identifier: what is signed
    mechanism: str | None          #: upper-cased; None in a rump (GENURLAUTH)
    token: str | None              #: lower-cased hex


_ABSOLUTE = re.compile(r"imap://(?P<user>[^@/;?#]+)@(?P<host>[^/:;?#]+)(?::\d{1,5})?(?P<path>/.*)",
                       re.IGNORECASE | re.DOTALL)
_AUTH_TAIL = re.compile(r"(?:;EXPIRE=(?P<expire>[^;]+))?;URLAUTH=(?P<access>[^:]+)"
                        r"(?::(?P<mechanism>[A-Za-z0-9.-]+):(?P<token>[0-9A-Fa-f]{32,128}))?",
                        re.IGNORECASE)


def _access(text: str) -> str:
    low = text.lower()
    if low in ("anonymous", "authuser"):
        return low
    for prefix in ("user+", "submit+"):
        if low.startswith(prefix) and len(text) > len(prefix):
            return prefix + _decode(text[len(prefix):])
    raise BadUrl("unknown access identifier")


def parse_auth_url(url: str) -> AuthUrl:
    """Parse a URLAUTH URL, its rump (GENURLAUTH: no mechanism and token) or whole.

    Raises:
        BadUrl: malformed, not absolute, or without URLAUTH.
    """
    if len(url) > MAX_URL:
        raise BadUrl("URL too long")
    m = _ABSOLUTE.fullmatch(url)
    if m is None:
        raise BadUrl("not an absolute imap:// URL")
    path = m.group("path")
    upper = path.upper()
    cut = min((i for i in (upper.find(";EXPIRE="), upper.find(";URLAUTH=")) if i >= 0),
              default=-1)
    if cut < 0:
        raise BadUrl("no URLAUTH")
    tail = _AUTH_TAIL.fullmatch(path, cut)
    if tail is None:
        raise BadUrl("malformed URLAUTH")
    expire = None
    if tail.group("expire"):
        try:
            expire = datetime.fromisoformat(tail.group("expire"))
        except ValueError:
            raise BadUrl("malformed EXPIRE") from None
        if expire.tzinfo is None:
            raise BadUrl("EXPIRE needs a time zone")
    owner = _decode(m.group("user"))
    if "@" not in owner:
        owner = f"{owner}@{m.group('host')}"
    mechanism = tail.group("mechanism")
    token = tail.group("token")
    return AuthUrl(owner=owner, target=parse_url(path[:cut]), expire=expire,
                   access=_access(tail.group("access")),
                   rump=url[:len(url) - len(path) + tail.end("access")],
                   mechanism=mechanism.upper() if mechanism else None,
                   token=token.lower() if token else None)


def parse_url(url: str) -> ImapUrl:
    """Parse a path-absolute IMAP URL to a message or part (RFC 5092 §6 imessagepart).

    Raises:
        BadUrl: malformed, absolute (``imap://``), with URLAUTH, or over `MAX_URL`.
    """
    if len(url) > MAX_URL:
        raise BadUrl("URL too long")
    if not url.startswith("/") or url.startswith("//"):
        raise BadUrl("only URLs to this server's mailboxes (/mailbox/;UID=n) are accepted")
    m = _MESSAGEPART.fullmatch(url)
    if m is None:
        raise BadUrl("not a message URL")
    name = _decode(m.group("mailbox"))
    if not name or any(c < " " or c == "\x7f" for c in name):
        raise BadUrl("invalid mailbox name")
    uidvalidity = m.group("uidvalidity")
    section = m.group("section")
    offset = m.group("offset")
    length = m.group("length")
    return ImapUrl(
        mailbox=normalize_mailbox(name),
        uidvalidity=_number(uidvalidity, nonzero=True) if uidvalidity else None,
        uid=_number(m.group("uid"), nonzero=True),
        section=_section(_decode(section)) if section else None,
        partial=((_number(offset, nonzero=False),
                  _number(length, nonzero=True) if length else None) if offset else None))
