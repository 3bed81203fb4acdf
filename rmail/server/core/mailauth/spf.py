"""SPF (RFC 7208) for the HELO and MAIL FROM identities, evaluated by pyspf. Blocking: run
under ``asyncio.to_thread``.

pyspf implements the whole of check_host() (macros, include/redirect, the 10-lookup and
2-void-lookup limits of §4.6.4, exp=) but resolves through one module-level function,
``spf.DNSLookup``. rmail replaces that function once with a dispatcher that uses the
resolver bound to the calling thread (``_bound``), so every lookup honours ``[dns]
nameserver`` and two runtimes in one process never share a resolver; without a bound
resolver it falls back to pyspf's own.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from typing import Callable

import spf as pyspf

from ..dns import Resolver, TempDNSError

__all__ = ["SpfResult", "check_host", "check_identities", "RESULTS"]

#: RFC 7208 §2.6 results (pyspf's spellings are the RFC's).
RESULTS = ("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")
#: RFC 7208 §4.6.4: a check_host() evaluation should be bounded to about 20 seconds.
QUERY_SECONDS = 20

#: pyspf's DNSLookup contract: (name, type, strict, timeout) → [((name, type), data), ...],
#: where strict is pyspf's False, True or 2 ("harsh") and data depends on the type.
Answers = list[tuple[tuple[str, str], object]]
Lookup = Callable[[str, str, bool | int, float], Answers]

_bound = threading.local()
_pyspf_lookup: Lookup = pyspf.DNSLookup


def _lookup(name: str, qtype: str, strict: bool | int = True, timeout: float = 20) -> Answers:
    """pyspf's DNSLookup contract: [((name, type), data), ...]; TempError on trouble."""
    resolver: Resolver | None = getattr(_bound, "resolver", None)
    if resolver is None:
        return _pyspf_lookup(name, qtype, strict, timeout)
    try:
        rdatas = resolver.lookup_sync(name, qtype)
    except TempDNSError as exc:
        raise pyspf.TempError(f"DNS {exc}") from None
    out: Answers = []
    for rdata in rdatas:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            out.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), rdata.strings))
    return out


pyspf.DNSLookup = _lookup


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: str            #: one of RESULTS
    identity: str          #: "mailfrom" or "helo"
    domain: str            #: the domain checked ("" when there was none to check)
    reason: str = ""


def _helo_domain(helo: str) -> str | None:
    """The HELO name when it is a checkable domain (RFC 7208 §2.3): not an address literal,
    with a dot."""
    name = helo.strip().rstrip(".").lower()
    if not name or name.startswith("[") or "." not in name:
        return None
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        return name


def check_host(ip: str, sender: str, helo: str, resolver: Resolver, *, identity: str = "mailfrom") -> SpfResult:
    """RFC 7208 §4 check_host() for ``sender`` (a full address) connecting from ``ip``."""
    domain = sender.rpartition("@")[2].lower()
    _bound.resolver = resolver
    try:
        query = pyspf.query(i=ip, s=sender, h=helo or "unknown", querytime=QUERY_SECONDS,
                            timeout=resolver.settings.timeout)
        result, _code, explanation = query.check()
    except Exception as exc:  # noqa: BLE001 - pyspf raising on hostile records is a permerror
        return SpfResult("permerror", identity, domain, f"{type(exc).__name__}: {exc}"[:160])
    finally:
        _bound.resolver = None
    result = result.lower()
    if result not in RESULTS:
        result = "permerror"
    return SpfResult(result, identity, domain, " ".join(str(explanation).split())[:160])


def check_identities(ip: str, mail_from: str, helo: str, resolver: Resolver) -> tuple[SpfResult, SpfResult]:
    """(MAIL FROM result, HELO result). RFC 7208 §2.4: with a null MAIL FROM the MAIL FROM
    identity is ``postmaster@<HELO>``; §2.3: the HELO identity is checked on its own."""
    helo_domain = _helo_domain(helo)
    if helo_domain is not None:
        helo_result = check_host(ip, f"postmaster@{helo_domain}", helo_domain, resolver, identity="helo")
    else:
        helo_result = SpfResult("none", "helo", "", "HELO is not a domain name")
    if mail_from:
        return check_host(ip, mail_from, helo, resolver), helo_result
    if helo_domain is None:
        return SpfResult("none", "mailfrom", "", "null sender and no HELO domain"), helo_result
    return SpfResult(helo_result.result, "mailfrom", helo_domain, helo_result.reason), helo_result
