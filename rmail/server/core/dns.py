"""The one DNS resolver every lookup goes through: MX for the outbound queue, SPF, DKIM keys,
DMARC policies, MTA-STS, DNS blocklists, and ``run.py diagnose``.

``[dns] nameserver = "HOST:PORT"`` sends all of them to one server (a local validating
resolver, or the loopback server of the tests); without it the system's resolv.conf is used.

Two faces over the same settings, because the libraries that evaluate SPF and DKIM (pyspf,
dkimpy) call a synchronous lookup function: ``resolve`` is async (dnspython's asyncio
resolver) and runs on the event loop; the ``*_sync`` methods block and must only be called
on a worker thread (rmail runs those libraries under ``asyncio.to_thread``).

The server's resolver caches answers for their TTL (``cache=True``, as a local caching
resolver would): every message on port 25 asks for its sender's SPF and DMARC records, and a
busy sender's are the same for thousands of messages. ``run.py diagnose`` makes its own,
uncached resolver, so a record just published is seen at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

__all__ = ["Resolver", "TempDNSError", "parse_nameserver", "DEFAULT_TIMEOUT"]

_R = TypeVar("_R", dns.resolver.Resolver, dns.asyncresolver.Resolver)

#: Answers the server's cache holds at most (least recently used dropped first).
CACHE_SIZE = 10_000
#: Seconds one lookup may take in total (all retries). RFC 7208 §4.6.4 asks SPF checks to
#: bound their total time to about 20 s; 5 s per query keeps a whole check well inside that.
DEFAULT_TIMEOUT = 5.0


class TempDNSError(Exception):
    """The lookup failed for now (timeout, SERVFAIL, no server answered): try later."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"HOST"``, ``"HOST:PORT"``, ``"[V6]:PORT"`` or a bare IPv6 address → (host, port).

    Raises:
        ValueError: not one of those forms, or the port is out of range.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad bracketed address {text!r}")
        port_text = rest[1:] if rest else "53"
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, "53"      # a host name, IPv4, or a bare IPv6 address
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad host or port in {text!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class _Settings:
    nameserver: tuple[str, int] | None
    timeout: float


class Resolver:
    """DNS lookups with rmail's settings. Thread-safe; one per runtime (``runtime.dns``)."""

    def __init__(self, nameserver: tuple[str, int] | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 cache: bool = False) -> None:
        self.settings = _Settings(nameserver, timeout)
        #: One TTL-honouring cache shared by both faces (dnspython's LRUCache is thread-safe).
        self.cache = dns.resolver.LRUCache(CACHE_SIZE) if cache else None
        self._lock = threading.Lock()
        self._async: dns.asyncresolver.Resolver | None = None
        self._sync: dns.resolver.Resolver | None = None

    @classmethod
    def from_config(cls, cfg: Any, *, cache: bool = False) -> Resolver:
        """From a ``DnsConfig`` (``[dns]`` in rmail.toml)."""
        server = parse_nameserver(cfg.nameserver) if cfg.nameserver else None
        return cls(server, timeout=float(cfg.timeout), cache=cache)

    @property
    def description(self) -> str:
        if self.settings.nameserver is None:
            return "the system resolver"
        host, port = self.settings.nameserver
        return f"{host}:{port}"

    def _configure(self, resolver: _R) -> _R:
        if self.settings.nameserver is not None:
            host, port = self.settings.nameserver
            resolver.nameservers = [host]
            resolver.port = port
        resolver.lifetime = self.settings.timeout
        resolver.timeout = self.settings.timeout
        resolver.cache = self.cache
        return resolver

    def _make(self, cls: type[_R]) -> _R:
        if self.settings.nameserver is not None:
            return self._configure(cls(configure=False))
        try:
            return self._configure(cls(configure=True))
        except dns.resolver.NoResolverConfiguration:
            # No resolv.conf (a minimal container): a local resolver is the only sane guess.
            resolver = cls(configure=False)
            resolver.nameservers = ["127.0.0.1"]
            return self._configure(resolver)

    @property
    def async_resolver(self) -> dns.asyncresolver.Resolver:
        """dnspython's asyncio resolver with these settings (created on first use)."""
        with self._lock:
            if self._async is None:
                self._async = self._make(dns.asyncresolver.Resolver)
            return self._async

    @property
    def sync_resolver(self) -> dns.resolver.Resolver:
        with self._lock:
            if self._sync is None:
                self._sync = self._make(dns.resolver.Resolver)
            return self._sync

    # -- async (event loop) ---------------------------------------------------------------------

    async def resolve(self, name: str, rdtype: str) -> dns.resolver.Answer:
        """dnspython's ``resolve`` (its exceptions: NXDOMAIN, NoAnswer, Timeout, ...)."""
        return await self.async_resolver.resolve(name, rdtype, search=False)

    async def lookup(self, name: str, rdtype: str) -> list[Any]:
        """The rdatas of ``name``/``rdtype``; [] when the name or the type does not exist.

        Raises:
            TempDNSError: timeout, SERVFAIL, or no server answered.
        """
        try:
            answer = await self.resolve(name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise TempDNSError(f"{rdtype} {name}: {_describe(exc)}") from None
        return list(answer)

    async def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name`` with its strings joined (RFC 7208 §3.3), as text."""
        return [_txt_text(r) for r in await self.lookup(name, "TXT")]

    async def exists(self, name: str) -> bool:
        """Whether ``name`` has an A or AAAA record (DNS blocklists answer with 127.0.0.x)."""
        return bool(await self.lookup(name, "A")) or bool(await self.lookup(name, "AAAA"))

    # -- blocking (worker threads only) -------------------------------------------------------

    def lookup_sync(self, name: str, rdtype: str) -> list[Any]:
        """``lookup`` for library callbacks running on a worker thread."""
        try:
            answer = self.sync_resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise TempDNSError(f"{rdtype} {name}: {_describe(exc)}") from None
        return list(answer)

    def txt_sync(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self.lookup_sync(name, "TXT")]


def _txt_text(rdata: Any) -> str:
    return b"".join(rdata.strings).decode("utf-8", "replace")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return "timed out"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "no server answered (SERVFAIL or refused)"
    return str(exc) or type(exc).__name__
