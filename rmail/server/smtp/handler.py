"""The aiosmtpd handler: rmail's rules at each hook (aiosmtpd ``docs/handlers.rst``).

One handler per listener; per-connection state lives on the ``RmailSMTP`` protocol passed to
every hook. AUTH is implemented here as async ``auth_PLAIN`` / ``auth_LOGIN`` methods, because
aiosmtpd's ``authenticator`` callback is synchronous and bcrypt would block the event loop.
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
import logging
import math
import time
from base64 import b64decode
from typing import TYPE_CHECKING

from aiosmtpd.smtp import MISSING, AuthResult, Envelope, Session, TLSSetupException

from ..core.aliases import Resolution
from ..core.authguard import LoginLocked
from ..core.errors import (AuthenticationFailed, InvalidInput, NotFound, PermissionDenied, QuotaExceeded,
                           RmailError)
from ..core.events import AccountsChanged, AliasesChanged, ExternalChange
from ..core.model import Address
from .mailauth import blocklist_check, inbound_checks
from .policy import Policy
from .received import TraceInfo, received_header
from .replies import (AUTH_INVALID, AUTH_LOCKED, AUTH_OK, AUTH_REQUIRED, AUTH_TOO_MANY, BAD_ADDRESS,
                      INTERNAL_ERROR, MAILBOX_FULL, NOT_OWNER, RATE_EXCEEDED, RECIPIENT_OK, SENDER_OK, SHUTTING_DOWN,
                      TOO_MANY_RECIPIENTS, error_reply)
from .session import RmailEnvelope, RmailSMTP

if TYPE_CHECKING:
    from ..runtime import ServerRuntime

log = logging.getLogger("rmail.smtp")

#: Failed or refused AUTH attempts in one session before it is closed; the guard
#: (core.authguard) is what stops a patient attacker across sessions.
MAX_AUTH_FAILURES = 3
#: Extensions aiosmtpd does not list itself (RFC 2920, RFC 2034).
EXTRA_EHLO = ("250-PIPELINING", "250-ENHANCEDSTATUSCODES")
#: Recipient resolutions remembered between account/alias changes (cleared when full).
RESOLUTION_CACHE = 4096
#: Trace ids: unique per process run without a getrandom() call per message.
_TRACE_PREFIX = f"{int(time.time()) & 0xFFFFFFF:07x}"
_trace_counter = itertools.count(1)


def _declared_size(envelope: Envelope) -> int:
    """The MAIL FROM SIZE= value (RFC 1870 §5), 0 when none or malformed (aiosmtpd has
    already refused a SIZE over the limit)."""
    for option in envelope.mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit() and len(value) <= 20:
            return int(value)
    return 0


def _is_directory_change(event: object) -> bool:
    return isinstance(event, (AccountsChanged, AliasesChanged, ExternalChange))


class SMTPHandler:
    def __init__(self, runtime: ServerRuntime, policy: Policy) -> None:
        self.runtime = runtime
        self.policy = policy
        # Resolving a recipient is a store read on another thread; a busy MX sees the same
        # few recipients again and again. Any user or alias change empties the cache.
        self._resolutions: dict[str, Resolution] = {}
        self._directory = runtime.bus.doorbell(_is_directory_change)

    def close(self) -> None:
        self.runtime.bus.unsubscribe(self._directory)

    async def check_recipient(self, address: str, *, may_relay: bool) -> Resolution:
        """``Delivery.check_recipient`` with a cache in front (same rules, same errors)."""
        if self._directory.rung:
            self._directory.clear()
            self._resolutions.clear()
        key = address.lower()
        resolution = self._resolutions.get(key)
        if resolution is None:
            resolution = await self.runtime.delivery.check_recipient(address, may_relay=True)
            if len(self._resolutions) >= RESOLUTION_CACHE:
                self._resolutions.clear()
            self._resolutions[key] = resolution
        if resolution.local_domain and resolution.account is None:
            raise NotFound(f"no mailbox here for {resolution.address}")
        if not resolution.local_domain and not may_relay:
            raise PermissionDenied(f"relay access denied for {resolution.address}")
        return resolution

    # -- EHLO ------------------------------------------------------------------------------

    async def handle_EHLO(self, server: RmailSMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        # With this (5-argument) hook aiosmtpd leaves recording the name to us.
        session.host_name = hostname
        return [*responses[:-1], *EXTRA_EHLO, responses[-1]]

    # -- MAIL / RCPT -------------------------------------------------------------------------

    async def handle_MAIL(self, server: RmailSMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if server.service.stopping:
            # Graceful stop: the transaction in DATA may finish, new ones may not start.
            asyncio.get_running_loop().call_soon(server.close)  # after the reply is written
            return SHUTTING_DOWN
        if self.policy.auth_required and not session.authenticated:
            return AUTH_REQUIRED
        try:
            # Below the free-space reserve: refuse before the client sends the message
            # (RFC 5321 §4.5.3.1.10 lets MAIL answer 452); DATA is checked again at the end.
            await self.runtime.store.space.require()
        except RmailError as exc:
            return error_reply(exc)
        refused = await blocklist_check(self.runtime, self.policy, session, server.peer_ip)
        if refused:
            return refused
        sender = "" if address == "<>" else address
        if sender:
            try:
                parsed = Address.parse(sender)
            except InvalidInput:
                return BAD_ADDRESS
            if session.authenticated and server.account is not None:
                # RFC 6409 §6.1: a submission server may check the sender; rmail insists, so
                # users cannot send as each other. Owned = the user's address or an alias to it.
                resolution = await self.runtime.aliases.resolve(parsed)
                if resolution.account is None or resolution.account.id != server.account.id:
                    return NOT_OWNER
        if session.authenticated and server.account is not None:
            # One limiter for REST send and SMTP: a user's messages a minute (Postfix counts
            # MAIL FROM requests the same way).
            wait = self.runtime.send_rate.take(server.account.address.lower())
            if wait:
                return f"{RATE_EXCEEDED} for {server.account.address}; try again in {math.ceil(wait)} s"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        server.set_state("mail")
        return SENDER_OK

    async def handle_RCPT(self, server: RmailSMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        assert isinstance(envelope, RmailEnvelope)
        if len(envelope.rcpt_tos) >= self.runtime.config.limits.recipients:
            # RFC 5321 §4.5.3.1.10: 452 for "too many recipients", the client may retry the rest.
            return TOO_MANY_RECIPIENTS
        try:
            resolution = await self.check_recipient(address, may_relay=bool(session.authenticated))
        except RmailError as exc:
            return error_reply(exc, recipient=True)
        if resolution.account is not None:
            # A full mailbox is refused per recipient here, where SMTP can say so per
            # recipient; the declared SIZE (RFC 1870) counts when the client gave one.
            try:
                await self.runtime.quotas.check(resolution.account, _declared_size(envelope))
            except QuotaExceeded:
                return f"{MAILBOX_FULL}: {resolution.address}"
            except RmailError as exc:
                return error_reply(exc, recipient=True)
        if all(r.address != resolution.address for r in envelope.resolutions):
            envelope.resolutions.append(resolution)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        server.set_state("rcpt")
        return RECIPIENT_OK

    # -- DATA --------------------------------------------------------------------------------

    async def handle_DATA(self, server: RmailSMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, RmailEnvelope) and envelope.original_content is not None
        version, cipher, bits = server.tls_info()
        trace_id = f"{_TRACE_PREFIX}{next(_trace_counter):08x}"
        trace = TraceInfo(
            helo=session.host_name or "unknown", peer_ip=server.peer_ip, hostname=server.hostname,
            esmtp=bool(session.extended_smtp), tls_version=version, tls_cipher=cipher, tls_bits=bits,
            user=server.account.address if session.authenticated and server.account else None,
            recipients=tuple(str(r.address) for r in envelope.resolutions),
            smtputf8=bool(envelope.smtp_utf8))
        received = received_header(trace, trace_id)
        data = received + envelope.original_content
        sender = "" if envelope.mail_from == "<>" else (envelope.mail_from or "")
        server.set_state("delivering")
        checked = await inbound_checks(self.runtime, self.policy, session, server.peer_ip, sender, data,
                                       len(received))
        if checked.refusal:
            return checked.refusal
        try:
            report = await self.runtime.delivery.deliver(sender, envelope.resolutions, checked.data,
                                                         may_relay=bool(session.authenticated),
                                                         protocol=self.policy.protocol,
                                                         sign_as=server.account.domain if session.authenticated
                                                         and server.account else None, junk=checked.junk)
        except RmailError as exc:
            log.warning("smtp: delivery from %s refused: %s", server.peer_ip, exc)
            return error_reply(exc)
        recipients = [str(r.address) for r in envelope.resolutions]
        # The one line per accepted message: what an operator greps by id, sender or recipient.
        log.info("smtp: accepted id=%s from=<%s> to=%s size=%d protocol=%s client=%s queued=%s", trace_id, sender,
                 ",".join(f"<{r}>" for r in recipients), len(checked.data), self.policy.protocol, server.peer_ip,
                 ",".join(map(str, report.queued)) or "-",
                 extra={"message_id": trace_id, "sender": sender, "recipients": recipients,
                        "size": len(checked.data), "protocol": self.policy.protocol, "client": server.peer_ip,
                        "queue_ids": list(report.queued)})
        return f"250 2.0.0 OK queued as {trace_id}"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A failed STARTTLS handshake: logged by the session, and aiosmtpd closes it.
            return INTERNAL_ERROR
        log.error("smtp: unexpected error in a session", exc_info=error)
        return INTERNAL_ERROR

    # -- AUTH (RFC 4954) ----------------------------------------------------------------------

    async def auth_PLAIN(self, server: RmailSMTP, args: list[str]) -> AuthResult:
        """RFC 4616: ``authzid NUL authcid NUL passwd``, inline or after an empty challenge."""
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Cannot split the PLAIN response")
            return AuthResult(success=False, handled=True)
        authz, login, password = parts
        # Acting as another user is not supported; refuse rather than ignore it.
        return await self._login(server, login, password, authz_ok=not authz or authz == login)

    async def auth_LOGIN(self, server: RmailSMTP, args: list[str]) -> AuthResult:
        """The widely deployed LOGIN mechanism (draft-murchison-sasl-login)."""
        if len(args) == 1:
            login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(login, bytes) and isinstance(password, bytes)
        return await self._login(server, login, password)

    async def _login(self, server: RmailSMTP, login: bytes, password: bytes, *, authz_ok: bool = True) -> AuthResult:
        username = login.decode("utf-8", "surrogateescape")
        try:
            async with self.runtime.throttle.attempt(self.policy.protocol, server.peer_ip, username) as attempt:
                if not authz_ok:
                    attempt.reason = "authzid-mismatch"
                    raise AuthenticationFailed("authorization identity must match")
                account = await self.runtime.accounts.authenticate(
                    username, password.decode("utf-8", "surrogateescape"))
        except LoginLocked:
            # RFC 4954 §6: 454 4.7.0 is the temporary authentication failure; the client is
            # told it is locked, never that its password is wrong.
            return await self._refused(server, AUTH_LOCKED)
        except AuthenticationFailed:
            return await self._refused(server, AUTH_INVALID)
        server.account = account
        server.set_state("authenticated", user=account.address)
        return AuthResult(success=True, auth_data=account, message=AUTH_OK)

    async def _refused(self, server: RmailSMTP, reply: str) -> AuthResult:
        server.auth_failures += 1
        if server.auth_failures >= MAX_AUTH_FAILURES:
            await server.push(reply)
            await server.push(AUTH_TOO_MANY)
            server.close()
            return AuthResult(success=False, handled=True)
        if reply == AUTH_INVALID:
            return AuthResult(success=False, handled=False, message=AUTH_INVALID)
        await server.push(reply)
        return AuthResult(success=False, handled=True)
