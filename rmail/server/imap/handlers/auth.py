"""What a client says before and at login: CAPABILITY, ID, ENABLE, LOGOUT (RFC 3501 §6.1,
RFC 2971, RFC 5161), STARTTLS, LOGIN and AUTHENTICATE with SASL PLAIN (RFC 4616) and LOGIN
(RFC 3501 §6.2), with an initial response (SASL-IR, RFC 4959); and COMPRESS (RFC 4978), which
like STARTTLS changes the transport.

Invariants:

- A password is checked only where one may travel (`protocol.login_allowed`): with TLS, or
  where TLS is not configured at all; elsewhere ``NO [PRIVACYREQUIRED]``.
- Every check goes through the guessing limits (`core.authguard`) and ends in the same place
  (`login`), whichever mechanism carried the credentials; a locked pair gets
  ``NO [UNAVAILABLE]`` without a password check.
- STARTTLS itself is the connection's (it swaps the transport); the handler here only answers
  when it cannot be done. COMPRESS is answered here and carried out by the connection once
  the tagged OK is written (`SessionState.compressing`).
- ENABLE turns on only what `protocol.ENABLE` lists and answers with what it newly enabled.
- A SASL response is base64 of at most `MAX_SASL_RESPONSE` octets; "=" (an empty initial
  response, RFC 4959 §3) only stands in the command line, never in a continuation.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Awaitable, Callable, Final

from rmail.server.core.authguard import LoginLocked
from rmail.server.core.errors import AuthenticationFailed

from .. import commands as c
from ..encode import Atom, Challenge, Data, Status, Tagged, encode
from ..errors import CommandError, SessionClosed
from ..protocol import ENABLE, State, login_allowed
from ..state import SessionState

__all__ = ["HANDLERS", "MAX_SASL_RESPONSE", "login"]

#: Longest SASL response (base64) taken: PLAIN's message is at most 255 octets for each of
#: its three parts (RFC 4616 §2), 1 KiB in base64; twice that leaves room for long UTF-8
#: names and nothing for a client that streams garbage into a continuation.
MAX_SASL_RESPONSE: Final = 2048

#: RFC 2971 §3.3: what the server says of itself (encoded once).
_ID: Final = encode(Data("ID", (("name", "rmail", "vendor", "rmail"),)))


@functools.lru_cache(maxsize=8)
def _capability_data(caps: tuple[str, ...]) -> bytes:
    # A connection has one of a few capability lists (protocol.capabilities).
    return encode(Data("CAPABILITY", tuple(Atom(cap) for cap in caps)))


async def capability(s: SessionState, cmd: c.Capability) -> Tagged:
    s.out.write(_capability_data(s.capabilities()))
    return Tagged(cmd.tag, "OK", "CAPABILITY completed")


async def logout(s: SessionState, cmd: c.Logout) -> Tagged:
    s.send(Status("BYE", "rmail logging out"))
    s.deselect()
    s.state = State.LOGOUT
    return Tagged(cmd.tag, "OK", "LOGOUT completed")


async def id_(s: SessionState, cmd: c.Id) -> Tagged:
    s.out.write(_ID)
    return Tagged(cmd.tag, "OK", "ID completed")


async def enable(s: SessionState, cmd: c.Enable) -> Tagged:
    # RFC 5161 §3.1: names the server does not know, or that need no enabling, are ignored;
    # ENABLED lists what this command enabled (a name already on is not listed again).
    # What a name brings along is turned on silently (RFC 7162: ENABLE QRESYNC answers
    # "* ENABLED QRESYNC" and CONDSTORE is on).
    # Only what is advertised (IMAP4rev2 is listed only beside BINARY, protocol.REV2_REQUIRES).
    offered = {cap.upper() for cap in s.capabilities()}
    newly = list(dict.fromkeys(name for name in cmd.capabilities
                               if name in ENABLE and name in offered and name not in s.enabled))
    for name in newly:
        if "CONDSTORE" in ENABLE[name]:
            s.enable_condstore()     # RFC 7162 §3.1: with a mailbox selected, HIGHESTMODSEQ
        if "IMAP4REV2" in ENABLE[name] and s.selected is not None:
            s.selected.forget_recent()  # RFC 9051 has no \Recent (an ENABLE after SELECT)
        s.enabled.update(ENABLE[name])
    s.send(Data("ENABLED", tuple(Atom(name) for name in newly)))
    return Tagged(cmd.tag, "OK", "ENABLE completed")


async def compress(s: SessionState, cmd: c.Compress) -> Tagged:
    """RFC 4978 §3: DEFLATE is the one mechanism; a second COMPRESS gets
    ``NO [COMPRESSIONACTIVE]``; anything else BAD ("arguments invalid")."""
    if s.compressing:
        raise CommandError("NO", "DEFLATE compression is already active", "COMPRESSIONACTIVE")
    if cmd.mechanism != "DEFLATE":
        raise CommandError("BAD", "unknown compression mechanism (only DEFLATE)")
    s.compressing = True
    return Tagged(cmd.tag, "OK", "DEFLATE active")


async def starttls(s: SessionState, cmd: c.StartTLS) -> Tagged:
    # The connection performs the handshake; reaching here means it cannot.
    if s.tls_active:
        raise CommandError("BAD", "TLS is already active")
    raise CommandError("NO", "TLS is not configured on this server")


def _require_privacy(s: SessionState) -> None:
    if not login_allowed(tls_configured=s.services.tls_configured, tls_active=s.tls_active):
        # RFC 3501 §6.2.3 LOGINDISABLED; RFC 5530 PRIVACYREQUIRED.
        raise CommandError("NO", "use STARTTLS before logging in", "PRIVACYREQUIRED")


async def login(s: SessionState, tag: str, username: str, password: str) -> Tagged:
    """Log in with a user name and password, whichever command carried them: checks,
    throttling, the per-user connection cap."""
    _require_privacy(s)
    services = s.services
    try:
        async with services.throttle.attempt("imap", s.peer, username):
            account = await services.accounts.authenticate(username, password)
    except LoginLocked:
        # RFC 5530 UNAVAILABLE: a temporary refusal; the password was not checked.
        raise CommandError("NO", "too many failed logins; try again later", "UNAVAILABLE") from None
    except AuthenticationFailed:
        raise CommandError("NO", "invalid credentials", "AUTHENTICATIONFAILED") from None
    registry = services.connections
    if registry.count_user("imap", account.address) >= services.max_per_user:
        raise CommandError("NO", "too many connections for this user", "LIMIT")
    s.user = account
    s.state = State.AUTHENTICATED
    if s.info is not None:
        registry.update(s.info, force=True, user=account.address, state="authenticated")
    return Tagged(tag, "OK", "logged in", s.capability_code())


async def login_command(s: SessionState, cmd: c.Login) -> Tagged:
    return await login(s, cmd.tag, cmd.userid, cmd.password)


async def authenticate(s: SessionState, cmd: c.Authenticate) -> Tagged:
    """AUTHENTICATE PLAIN (RFC 4616) and LOGIN; "*" cancels (RFC 3501 §6.2.2)."""
    if cmd.mechanism not in ("PLAIN", "LOGIN"):
        raise CommandError("NO", "unsupported mechanism", "CANNOT")
    _require_privacy(s)
    if cmd.mechanism == "PLAIN":
        raw = cmd.initial_response
        if raw is None:
            raw = await _sasl_step(s, b"")
        parts = _b64(raw).split(b"\x00")
        if len(parts) != 3:
            raise CommandError("BAD", "malformed PLAIN response")
        authz, user, password = parts
        if authz and authz != user:
            raise CommandError("NO", "authorization identity must match", "AUTHORIZATIONFAILED")
    else:
        first = cmd.initial_response
        user = _b64(first if first is not None else await _sasl_step(s, b"Username:"))
        password = _b64(await _sasl_step(s, b"Password:"))
    try:
        username, secret = user.decode("utf-8"), password.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("BAD", "credentials must be UTF-8") from None
    return await login(s, cmd.tag, username, secret)


async def _sasl_step(s: SessionState, challenge: bytes) -> bytes:
    """Send one challenge and read the client's base64 line."""
    if s.read_line is None:
        raise CommandError("NO", "continuations are not available")
    s.send(Challenge(challenge))
    await s.out.drain()
    line = await s.read_line()
    if line is None:
        raise SessionClosed()
    if line.strip() == b"*":
        raise CommandError("BAD", "authentication cancelled")
    if line.strip() == b"=":
        # RFC 4959 §3: "=" is an empty *initial* response; in a continuation an empty
        # response is an empty line (RFC 3501 §6.2.2).
        raise CommandError("BAD", "invalid base64")
    return line.strip()


def _b64(raw: bytes) -> bytes:
    if raw == b"=":
        return b""
    if len(raw) > MAX_SASL_RESPONSE:
        raise CommandError("BAD", "SASL response too long")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("BAD", "invalid base64") from None


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.Capability: capability, c.Logout: logout, c.Id: id_, c.Enable: enable,
    c.StartTLS: starttls, c.Login: login_command, c.Authenticate: authenticate,
    c.Compress: compress,
}
