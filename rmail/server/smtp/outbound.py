"""Outbound SMTP: one message to one recipient, through the smarthost or the recipient's MX.

Route (DESIGN.md → queue.py): ``[relay] host`` set → that host only; otherwise the domain's
MX records by preference (RFC 5321 §5.1), the domain itself when it has none (implicit MX),
and a permanent failure for a null MX (RFC 7505) or a domain that does not exist.

TLS: ``relay.tls = "starttls"`` uses STARTTLS whenever the server offers it (opportunistic,
RFC 7435: MX certificates are not verified, a smarthost's are); ``"tls"`` is implicit TLS;
``"none"`` never encrypts. A recipient domain with an MTA-STS policy in enforce mode (RFC
8461, ``mtasts``) gets only the MX hosts its policy names, each with STARTTLS and a verified
certificate, or the attempt fails temporarily. Credentials are never sent over a cleartext connection unless
``relay.tls = "none"`` says so explicitly.

The conversation uses ``smtplib`` on a dedicated thread pool, so a slow remote server never
ties up the threads the store and bcrypt use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import ipaddress
import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver

from ..config import RelayConfig
from ..core.dns import Resolver, TempDNSError
from ..core.mailauth.mtasts import mx_matches
from ..core.queue import AttemptResult, Outcome
from .mtasts import MtaSts

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
    verify: bool                   #: check the certificate (smarthost, MTA-STS enforce) or not (MX)
    require_tls: bool = False      #: no STARTTLS, no delivery (RFC 8461 §5, policy in enforce mode)


class _PinnedSMTP(smtplib.SMTP):
    """smtplib connecting to addresses rmail's resolver found for the host, while TLS still
    checks the certificate against the host *name* (smtplib uses ``_host`` for SNI and the
    name check). Without addresses it resolves as smtplib does."""

    def __init__(self, *args: Any, addresses: tuple[str, ...] = (), **kwargs: Any) -> None:
        self._addresses = addresses      # set first: SMTP.__init__ connects at once
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        if not self._addresses:
            return super()._get_socket(host, port, timeout)
        error: OSError | None = None
        for address in self._addresses:
            try:
                return socket.create_connection((address, port), timeout, self.source_address)
            except OSError as exc:
                error = exc
        assert error is not None
        raise error


class _PinnedSMTPSSL(smtplib.SMTP_SSL, _PinnedSMTP):
    """Implicit TLS over ``_PinnedSMTP``'s connection (SMTP_SSL wraps what it returns)."""


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


async def mx_routes(domain: str, resolver: Any, port: int = 25) -> list[Route]:
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
    return [Route(host, port, verify=False) for host in hosts[:MAX_MX]]


async def apply_mta_sts(domain: str, routes: list[Route], mta_sts: MtaSts) -> list[Route]:
    """RFC 8461 §4: under an enforced policy only matching MX hosts, each with a verified
    certificate; a testing policy only logs what enforcement would refuse (§5.2)."""
    policy = await mta_sts.policy(domain)
    if policy is None or policy.mode == "none":
        return routes
    matching = [r for r in routes if any(mx_matches(p, r.host) for p in policy.mx)]
    if not policy.enforced:
        if len(matching) != len(routes):
            log.info("outbound: MTA-STS testing for %s: %s not in the policy", domain,
                     ", ".join(r.host for r in routes if r not in matching))
        return routes
    if not matching:
        raise RouteError(AttemptResult.temporary(
            "4.7.5", f"no MX host of {domain} matches its MTA-STS policy ({', '.join(policy.mx)})"))
    return [Route(r.host, r.port, verify=True, require_tls=True) for r in matching]


class SMTPTransport:
    """``core.queue.Transport`` over SMTP."""

    def __init__(self, relay: RelayConfig, hostname: str, *, resolver: Any = None,
                 tls_context: ssl.SSLContext | None = None, timeout: float = TIMEOUT,
                 threads: int = THREADS, mta_sts: MtaSts | None = None, mx_port: int = 25) -> None:
        self.relay = relay
        self.hostname = hostname
        self.timeout = timeout
        self.mta_sts = mta_sts         #: recipient domains' MTA-STS policies (None: opportunistic only)
        self.mx_port = mx_port         #: 25; tests point MX delivery at a loopback port
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
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain.lower()
        routes = await mx_routes(domain, self._resolver, self.mx_port)
        if self.mta_sts is not None:
            routes = await apply_mta_sts(domain, routes, self.mta_sts)
        return routes

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
            addresses = self._addresses(host)
        except TempDNSError as exc:
            return AttemptResult.temporary("4.4.3", f"cannot resolve {host}: {exc}", host)
        try:
            if mode == "tls":
                client: smtplib.SMTP = _PinnedSMTPSSL(host, route.port, local_hostname=self.hostname,
                                                      timeout=self.timeout, context=context, addresses=addresses)
            else:
                client = _PinnedSMTP(host, route.port, local_hostname=self.hostname, timeout=self.timeout,
                                     addresses=addresses)
        except smtplib.SMTPConnectError as exc:
            return _reply_result(exc.smtp_code, exc.smtp_error, host)
        except (OSError, smtplib.SMTPException) as exc:
            return AttemptResult.temporary("4.4.1", f"cannot connect to {host}:{route.port}: {exc}", host)
        try:
            refused = self._handshake(client, mode, context, host, route.require_tls)
            if refused is not None or sender is None:
                return refused or AttemptResult.delivered(host)
            return self._transaction(client, host, sender, recipient, data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _reply_result(code, text, host)
        except smtplib.SMTPResponseException as exc:
            return _reply_result(exc.smtp_code, exc.smtp_error, host)
        except ssl.SSLError as exc:
            # A certificate that does not verify where verification is required (smarthost,
            # MTA-STS enforce): RFC 8461 §5 says do not deliver, try again later.
            return AttemptResult.temporary("4.7.5", f"TLS with {host} failed: {exc}", host)
        except (OSError, smtplib.SMTPException) as exc:
            return AttemptResult.temporary("4.4.2", f"connection to {host} failed: {exc}", host)
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    def _addresses(self, host: str) -> tuple[str, ...]:
        """The host's addresses through rmail's resolver (``[dns] nameserver`` applies to the
        MX and smarthost names too); () to let smtplib resolve when no such resolver is set.
        Runs on a worker thread.

        Raises:
            TempDNSError: the lookup failed, or the name has no address.
        """
        try:
            ipaddress.ip_address(host.strip("[]"))
            return (host.strip("[]"),)
        except ValueError:
            pass
        lookup = getattr(self._resolver, "lookup_sync", None)
        if lookup is None:
            return ()
        found = [r.address for rdtype in ("A", "AAAA") for r in lookup(host, rdtype)]
        if not found:
            raise TempDNSError(f"{host} has no address")
        return tuple(found)

    def _handshake(self, client: smtplib.SMTP, mode: str, context: ssl.SSLContext, host: str,
                   require_tls: bool = False) -> AttemptResult | None:
        """EHLO, STARTTLS when offered (or required), AUTH with the relay credentials.
        Returns a result only when the session cannot go on."""
        client.ehlo()
        if require_tls and mode != "tls" and not client.has_extn("starttls"):
            return AttemptResult.temporary("4.7.10", f"{host} offers no STARTTLS, which the recipient domain's "
                                                     "MTA-STS policy requires", host)
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

