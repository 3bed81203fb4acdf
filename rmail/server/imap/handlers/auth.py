"""What a client says before and at login: CAPABILITY, ID, ENABLE, LOGOUT (RFC 3501 §6.1,
RFC 2971, RFC 5161), STARTTLS, LOGIN and AUTHENTICATE with SASL PLAIN (RFC 4616) and LOGIN
(RFC 3501 §6.2).

Invariants:

- A password is checked only where one may travel (`protocol.login_allowed`): with TLS, or
  where TLS is not configured at all; elsewhere ``NO [PRIVACYREQUIRED]``.
- Every check goes through the guessing limits (`core.authguard`) and ends in the same place
  (`login`), whichever mechanism carried the credentials; a locked pair gets
  ``NO [UNAVAILABLE]`` without a password check.
- STARTTLS itself is the connection's (it swaps the transport); the handler here only answers
  when it cannot be done.
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
from ..protocol import State, login_allowed
from ..state import SessionState

__all__ = ["HANDLERS", "login"]

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
    """RFC 5161: ENABLED lists what this command turned on; CONDSTORE and QRESYNC (RFC 7162
    §3.1, §3.2.3; QRESYNC turns CONDSTORE on too) are rmail's ENABLE-able extensions, any
    other name is ignored."""
    enabled = []
    for name in cmd.capabilities:
        if name == "CONDSTORE" and not s.condstore:
            s.enable_condstore()
        elif name == "QRESYNC" and not s.qresync:
            s.qresync = True
            s.enable_condstore()
        else:
            continue
        enabled.append(Atom(name))
    s.send(Data("ENABLED", tuple(enabled)))
    return Tagged(cmd.tag, "OK", "ENABLE completed")


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
    return line.strip()


def _b64(raw: bytes) -> bytes:
    if raw == b"=":
        return b""
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("BAD", "invalid base64") from None


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.Capability: capability, c.Logout: logout, c.Id: id_, c.Enable: enable,
    c.StartTLS: starttls, c.Login: login_command, c.Authenticate: authenticate,
}
