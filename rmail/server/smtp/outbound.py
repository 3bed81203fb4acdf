"""Outbound SMTP: one message to one recipient, through the smarthost or the recipient's MX.

Route (DESIGN.md → queue.py): ``[relay] host`` set → that host only; otherwise the domain's
MX records by preference (RFC 5321 §5.1), the domain itself when it has none (implicit MX),
and a permanent failure for a null MX (RFC 7505) or a domain that does not exist.

TLS: ``relay.tls = "starttls"`` uses STARTTLS whenever the server offers it (opportunistic,
RFC 7435: MX certificates are not verified, a smarthost's are); ``"tls"`` is implicit TLS;
``"none"`` never encrypts. Credentials are never sent over a cleartext connection unless
``relay.tls = "none"`` says so explicitly.

The conversation uses ``smtplib`` on a dedicated thread pool, so a slow remote server never
ties up the threads the store and bcrypt use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver

from ..config import RelayConfig
from ..core.dns import Resolver
from ..core.queue import AttemptResult, Outcome

log = logging.getLogger("rmail.outbound")

#: RFC 5321 §4.5.3.2: the client should wait minutes per step; 5 minutes covers DATA's end.
TIMEOUT = 300.0
#: Conversations at once (threads); matches the queue's concurrency.
THREADS = 8
#: MX hosts tried per attempt (the rest wait for the next attempt).
MAX_MX = 5
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s*(.*)$", re.S)
_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Route:
    host: str
    port: int
    verify: bool                   #: check the certificate (smarthost) or not (MX)


class RouteError(Exception):
    def __init__(self, result: AttemptResult) -> None:
        super().__init__(result.describe())
        self.result = result


def normalize_line_endings(data: bytes) -> bytes:
    """Bare CR and bare LF become CRLF before relaying, so no receiving server can read an
    end-of-data we did not mean (SMTP smuggling, CVE-2023-51766 and relatives)."""
    return _EOL.sub(b"\r\n", data)


def _reply_result(code: int, text: bytes | str, host: str) -> AttemptResult:
    msg = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    m = _ENHANCED.match(msg)
    status = m.group(1) if m else f"{str(code)[0]}.0.0"
    diagnostic = f"{code} {msg}"
    if 500 <= code < 600:
        return AttemptResult.permanent(status, diagnostic, host)
    return AttemptResult.temporary(status if status[0] == "4" else "4.0.0", diagnostic, host)


async def mx_routes(domain: str, resolver: Any) -> list[Route]:
    """The hosts to try for ``domain``, best first.

    Raises:
        RouteError: the domain does not exist or accepts no mail (permanent), or DNS failed
        (temporary).
    """
    try:
        answer = await resolver.resolve(domain, "MX")
        records = sorted(((r.preference, str(r.exchange).rstrip(".")) for r in answer), key=lambda r: r[0])
    except dns.resolver.NXDOMAIN:
        raise RouteError(AttemptResult.permanent("5.1.2", f"domain {domain} does not exist")) from None
    except dns.resolver.NoAnswer:
        records = []
    except (dns.exception.DNSException, OSError) as exc:
        raise RouteError(AttemptResult.temporary("4.4.3", f"DNS lookup for {domain} failed: {exc}")) from None
    if len(records) == 1 and records[0][1] == "":
        # RFC 7505 §3: a single MX with the root as exchange means "accepts no mail".
        raise RouteError(AttemptResult.permanent("5.1.10", f"domain {domain} accepts no mail (null MX)"))
    hosts = [host for _, host in records if host]
    if not hosts:
        # RFC 5321 §5.1: no MX → the domain itself is the mail host, if it has an address.
        for rdtype in ("A", "AAAA"):
            try:
                await resolver.resolve(domain, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except (dns.exception.DNSException, OSError) as exc:
                raise RouteError(AttemptResult.temporary("4.4.3", f"DNS lookup for {domain} failed: {exc}")) from None
            hosts = [domain]
            break
        if not hosts:
            raise RouteError(AttemptResult.permanent("5.1.2", f"domain {domain} has no mail server"))
    return [Route(host, 25, verify=False) for host in hosts[:MAX_MX]]


class SMTPTransport:
    """``core.queue.Transport`` over SMTP."""

    def __init__(self, relay: RelayConfig, hostname: str, *, resolver: Any = None,
                 tls_context: ssl.SSLContext | None = None, timeout: float = TIMEOUT,
                 threads: int = THREADS) -> None:
        self.relay = relay
        self.hostname = hostname
        self.timeout = timeout
        self._resolver = resolver
        self._verified = tls_context or ssl.create_default_context()
        # Opportunistic TLS to MX hosts: encrypt, but accept any certificate (RFC 7435 §1.3).
        self._unverified = ssl.create_default_context()
        self._unverified.check_hostname = False
        self._unverified.verify_mode = ssl.CERT_NONE
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="rmail-outbound")

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)

    async def routes(self, recipient: str) -> list[Route]:
        if self.relay.host:
            return [Route(self.relay.host, self.relay.port, verify=True)]
        if self._resolver is None:
            self._resolver = Resolver()      # the system resolver; the server passes runtime.dns
        domain = recipient.rpartition("@")[2]
        return await mx_routes(domain.encode("idna").decode("ascii") if not domain.isascii() else domain,
                               self._resolver)

    async def send(self, sender: str, recipient: str, data: bytes) -> AttemptResult:
        try:
            routes = await self.routes(recipient)
        except RouteError as exc:
            return exc.result
        except UnicodeError:
            return AttemptResult.permanent("5.1.2", "the recipient's domain is not a valid host name")
        body = normalize_line_endings(data)
        loop = asyncio.get_running_loop()
        result = AttemptResult.temporary("4.4.1", "no mail server could be reached")
        for route in routes:
            result = await loop.run_in_executor(self._pool, self._converse, route, sender, recipient, body)
            if result.outcome is not Outcome.TEMPORARY:
                return result
            log.info("outbound: %s for <%s>: %s", route.host, recipient, result.describe())
        return result

    # -- the conversation (worker thread) ----------------------------------------------------------

    def check_smarthost(self) -> AttemptResult:
        """Connect to the configured smarthost, negotiate TLS and log in as the queue would,
        then quit without sending (``run.py diagnose``). Runs on a worker thread.

        Returns ``delivered`` when the smarthost accepted the session and credentials.
        """
        if not self.relay.host:
            return AttemptResult.permanent("5.3.0", "no smarthost is configured (relay.host)")
        return self._converse(Route(self.relay.host, self.relay.port, verify=True), None, "", b"")

    def _converse(self, route: Route, sender: str | None, recipient: str, data: bytes) -> AttemptResult:
        """One SMTP session with ``route``; with ``sender`` None it stops after login."""
        host = route.host
        mode = self.relay.tls if self.relay.host else "starttls"
        context = self._verified if route.verify else self._unverified
        try:
            if mode == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(host, route.port, local_hostname=self.hostname,
                                                        timeout=self.timeout, context=context)
            else:
                client = smtplib.SMTP(host, route.port, local_hostname=self.hostname, timeout=self.timeout)
        except smtplib.SMTPConnectError as exc:
            return _reply_result(exc.smtp_code, exc.smtp_error, host)
        except (OSError, smtplib.SMTPException) as exc:
            return AttemptResult.temporary("4.4.1", f"cannot connect to {host}:{route.port}: {exc}", host)
        try:
            refused = self._handshake(client, mode, context, host)
            if refused is not None or sender is None:
                return refused or AttemptResult.delivered(host)
            return self._transaction(client, host, sender, recipient, data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _reply_result(code, text, host)
        except smtplib.SMTPResponseException as exc:
            return _reply_result(exc.smtp_code, exc.smtp_error, host)
        except (OSError, smtplib.SMTPException) as exc:
            return AttemptResult.temporary("4.4.2", f"connection to {host} failed: {exc}", host)
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    def _handshake(self, client: smtplib.SMTP, mode: str, context: ssl.SSLContext, host: str) -> AttemptResult | None:
        """EHLO, STARTTLS when offered (or required), AUTH with the relay credentials.
        Returns a result only when the session cannot go on."""
        client.ehlo()
        encrypted = mode == "tls"
        if mode == "starttls" and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
            encrypted = True
        if self.relay.host and self.relay.username:
            if not encrypted and mode != "none":
                return AttemptResult.temporary(
                    "4.7.10", f"{host} offers no STARTTLS; not sending the relay password in clear", host)
            client.login(self.relay.username, self.relay.password or "")
        return None

    def _transaction(self, client: smtplib.SMTP, host: str, sender: str, recipient: str,
                     data: bytes) -> AttemptResult:
        options: list[str] = []
        if not data.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (sender.isascii() and recipient.isascii()):
            if not client.has_extn("smtputf8"):
                # RFC 6531 §3.4: without SMTPUTF8 the message cannot be relayed as is.
                return AttemptResult.permanent("5.6.7", f"{host} does not support SMTPUTF8 addresses", host)
            options.append("SMTPUTF8")
        client.sendmail(sender, [recipient], data, mail_options=options)
        return AttemptResult.delivered(host)

