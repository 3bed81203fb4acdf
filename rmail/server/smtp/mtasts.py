"""MTA-STS for outbound delivery (RFC 8461 §4, §5): find a recipient domain's policy, fetch
it over HTTPS with aiohttp, cache it by id until max_age, and tell the transport which MX
hosts it may use and whether they must offer a valid certificate.

Every name is resolved through rmail's resolver (``[dns] nameserver``): the ``_mta-sts`` TXT
lookup, and the HTTPS host itself through an aiohttp resolver over it. The fetch is bounded
(time, body size, no redirects, RFC 8461 §3.3). When the policy cannot be had, a cached
unexpired one still applies (§5.1); otherwise delivery stays opportunistic (RFC 7435).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..core.dns import Resolver, TempDNSError
from ..core.mailauth.mtasts import MAX_POLICY_BYTES, Policy, PolicyError, parse_policy, parse_txt

__all__ = ["MtaSts", "fetch_policy"]

log = logging.getLogger("rmail.outbound")

#: RFC 8461 §3.3: senders should not wait long for a policy; 10 s bounds connect + read.
FETCH_SECONDS = 10.0
#: Domains whose policy is remembered; the oldest entries go first beyond this.
CACHE_SIZE = 10000


class _DnsResolver(AbstractResolver):
    """aiohttp's name resolution through rmail's resolver."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
        out: list[ResolveResult] = []
        for rdtype, fam in (("AAAA", socket.AF_INET6), ("A", socket.AF_INET)):
            if family not in (socket.AF_UNSPEC, fam):
                continue
            try:
                answers = await self.resolver.lookup(host, rdtype)
            except TempDNSError as exc:
                raise OSError(f"cannot resolve {host}: {exc}") from None
            out += [ResolveResult(hostname=host, host=a.address, port=port, family=fam, proto=0,
                                  flags=socket.AI_NUMERICHOST) for a in answers]
        if not out:
            raise OSError(f"{host} has no address")
        return out

    async def close(self) -> None:
        return None


async def fetch_policy(domain: str, resolver: Resolver, *, port: int = 443, ssl_context: ssl.SSLContext | None = None,
                       timeout: float = FETCH_SECONDS) -> str:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt (§3.3): a valid certificate for
    that name, no redirects, text/plain, at most MAX_POLICY_BYTES.

    Raises:
        OSError, aiohttp.ClientError, asyncio.TimeoutError, PolicyError.
    """
    host = f"mta-sts.{domain}"
    url = f"https://{host}{'' if port == 443 else f':{port}'}/.well-known/mta-sts.txt"
    connector = aiohttp.TCPConnector(resolver=_DnsResolver(resolver), ssl=ssl_context or ssl.create_default_context(),
                                     use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        async with http.get(url, allow_redirects=False) as resp:
            if resp.status != 200:
                raise PolicyError(f"{url} answered {resp.status}")
            if resp.content_type != "text/plain":
                raise PolicyError(f"{url} is {resp.content_type}, not text/plain")
            body = await resp.content.read(MAX_POLICY_BYTES + 1)
            if len(body) > MAX_POLICY_BYTES:
                raise PolicyError(f"{url} is larger than {MAX_POLICY_BYTES} bytes")
            return body.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class _Cached:
    ident: str
    policy: Policy
    expires: float


class MtaSts:
    """Recipient domains' policies, cached by id (RFC 8461 §5.1)."""

    def __init__(self, resolver: Resolver, *, fetch: Callable[[str], Awaitable[str]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.resolver = resolver
        self.fetch = fetch or (lambda domain: fetch_policy(domain, resolver))
        self.clock = clock
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Future[Policy | None]] = {}
        self.fetches = 0

    def _valid(self, domain: str) -> _Cached | None:
        cached = self._cache.get(domain)
        return cached if cached is not None and cached.expires > self.clock() else None

    async def policy(self, domain: str) -> Policy | None:
        """The policy in force for ``domain``, or None (deliver opportunistically)."""
        domain = domain.lower().rstrip(".")
        running = self._inflight.get(domain)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Policy | None] = asyncio.get_running_loop().create_future()
        self._inflight[domain] = future
        try:
            result = await self._lookup(domain)
            future.set_result(result)
            return result
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()          # marked retrieved: concurrent waiters re-raise it themselves
            raise
        finally:
            del self._inflight[domain]

    async def _lookup(self, domain: str) -> Policy | None:
        cached = self._valid(domain)
        try:
            ident = parse_txt(await self.resolver.txt(f"_mta-sts.{domain}"))
        except TempDNSError:
            return cached.policy if cached else None
        if ident is None:
            # §5.1: without a record a cached, unexpired policy still holds.
            return cached.policy if cached else None
        if cached is not None and cached.ident == ident:
            return cached.policy
        self.fetches += 1
        try:
            policy = parse_policy(await self.fetch(domain))
        except (OSError, aiohttp.ClientError, asyncio.TimeoutError, PolicyError, UnicodeError) as exc:
            log.info("mta-sts: no policy for %s (%s)%s", domain, exc, "; using the cached one" if cached else "")
            return cached.policy if cached else None
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[domain] = _Cached(ident, policy, self.clock() + policy.max_age)
        return policy

    def forget(self) -> None:
        self._cache.clear()

