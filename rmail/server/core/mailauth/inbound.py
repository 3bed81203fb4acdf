"""The checks on mail from unauthenticated port-25 clients, run once per message, and the one
place their policy is decided: SPF (HELO and MAIL FROM), DKIM (every signature), ARC, DMARC,
and DNS blocklists for the client's address.

``InboundChecker.check`` returns a ``Verdict``: the Authentication-Results field to add and
what to do (deliver, file in Junk, refuse). Library calls run on worker threads; the SPF and
the DKIM/ARC work run side by side, each bounded by the resolver's per-lookup timeout, and
the whole check by ``[antispam] check_seconds``: past it the message is delivered with
``temperror`` verdicts (a slow DNS must not cost anyone their mail).
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable

from ..dns import Resolver, TempDNSError
from ..mime.address import parse_addresses
from ..mime.headers import parse_fields, split_header, unfold
from . import dkim as dkim_checks
from . import dmarc as dmarc_checks
from . import spf as spf_checks
from .dkim import ArcResult, DkimResult
from .dmarc import DmarcResult
from .results import authentication_results, without_forged_results
from .spf import SpfResult

__all__ = ["Action", "Verdict", "InboundChecker", "from_domain"]

log = logging.getLogger("rmail.mailauth")

#: Blocklist answers remembered per client address (a connection sends several MAILs).
DNSBL_CACHE_SECONDS = 300
DNSBL_CACHE_SIZE = 4096


class Action(enum.Enum):
    DELIVER = "deliver"        #: INBOX
    JUNK = "junk"              #: the recipients' Junk mailbox (DMARC quarantine)
    REJECT = "reject"          #: 550 5.7.1 at the end of DATA (DMARC reject)


@dataclass(frozen=True, slots=True)
class Verdict:
    header: bytes                          #: the Authentication-Results field
    action: Action
    reply: str | None = None               #: the SMTP reply when refused
    spf: SpfResult | None = None
    spf_helo: SpfResult | None = None
    dkim: tuple[DkimResult, ...] = ()
    arc: ArcResult | None = None
    dmarc: DmarcResult | None = None

    @property
    def junk(self) -> bool:
        return self.action is Action.JUNK


def from_domain(data: bytes) -> tuple[str | None, str]:
    """RFC 7489 §6.6.1: the domain of the single RFC5322.From address, or (None, why not)."""
    end, _ = split_header(data, 0, len(data))
    froms = [f for f in parse_fields(data, 0, end) if f.key == "from"]
    if len(froms) != 1:
        return None, "no From field" if not froms else "more than one From field"
    addrs = [a for a in parse_addresses(unfold(froms[0].value).decode("utf-8", "replace")) if a.host]
    domains = {a.host.lower().rstrip(".") for a in addrs if a.host}
    if len(domains) != 1:
        return None, "From has no address" if not domains else "From has addresses in several domains"
    domain = domains.pop()
    try:
        return domain.encode("idna").decode("ascii"), ""
    except UnicodeError:
        return None, "From domain is not a host name"


def _reverse(ip: str) -> str | None:
    """The DNSBL query prefix of an address (RFC 5782 §2.1 IPv4, §2.4 IPv6 nibbles)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr.version == 4:
        return ".".join(reversed(str(addr).split(".")))
    return ".".join(reversed(addr.exploded.replace(":", "")))


class InboundChecker:
    def __init__(self, resolver: Resolver, hostname: str, antispam: object, *,
                 rand: Callable[[], float] = random.random, clock: Callable[[], float] = time.monotonic) -> None:
        self.resolver = resolver
        self.hostname = hostname.lower()
        self.cfg = antispam
        self.rand = rand
        self.clock = clock
        self._dnsbl: dict[str, tuple[float, str | None]] = {}

    # -- DNS blocklists (RFC 5782) ------------------------------------------------------------------

    async def blocklisted(self, ip: str) -> str | None:
        """The refusal for a client listed on one of ``[antispam] dnsbl``, else None. A list
        that does not answer is skipped (its outage must not stop mail)."""
        zones = getattr(self.cfg, "dnsbl", ())
        if not zones:
            return None
        now = self.clock()
        cached = self._dnsbl.get(ip)
        if cached is not None and cached[0] > now:
            return cached[1]
        prefix = _reverse(ip)
        if prefix is None:
            return None
        listed: str | None = None
        for zone in zones:
            try:
                answers = await self.resolver.lookup(f"{prefix}.{zone}", "A")
            except TempDNSError as exc:
                log.info("dnsbl: %s did not answer for %s: %s", zone, ip, exc)
                continue
            # RFC 5782 §2.3: listings answer in 127.0.0.0/8; anything else is an error reply.
            if any(ipaddress.ip_address(a.address) in ipaddress.ip_network("127.0.0.0/8") for a in answers):
                listed = f"554 5.7.1 Service unavailable; client [{ip}] blocked using {zone}"
                break
        if len(self._dnsbl) >= DNSBL_CACHE_SIZE:
            self._dnsbl.clear()
        self._dnsbl[ip] = (now + DNSBL_CACHE_SECONDS, listed)
        return listed

    # -- SPF, DKIM, ARC, DMARC ----------------------------------------------------------------------

    async def check(self, data: bytes, *, peer_ip: str, helo: str, mail_from: str) -> Verdict:
        """Evaluate a message as received (with rmail's Received on top) and decide."""
        try:
            return await asyncio.wait_for(self._check(data, peer_ip, helo, mail_from),
                                          getattr(self.cfg, "check_seconds", 20))
        except asyncio.TimeoutError:
            log.warning("mailauth: checks for mail from [%s] timed out; delivering with temperror", peer_ip)
            spf = SpfResult("temperror", "mailfrom", mail_from.rpartition("@")[2], "timed out")
            helo_r = SpfResult("temperror", "helo", helo, "timed out")
            arc = ArcResult("none", "not checked (timed out)")
            dm = DmarcResult("temperror", from_domain(data)[0] or "", reason="timed out")
            header = authentication_results(self.hostname, spf_mailfrom=spf, spf_helo=helo_r,
                                            dkim=[DkimResult("temperror", reason="timed out")], arc=arc, dmarc=dm)
            return Verdict(header, Action.DELIVER, None, spf, helo_r, (), arc, dm)

    async def _check(self, data: bytes, peer_ip: str, helo: str, mail_from: str) -> Verdict:
        txt = self.resolver.txt_sync

        def signatures() -> tuple[list[DkimResult], ArcResult]:
            return dkim_checks.verify_all(data, txt), dkim_checks.verify_arc(data, txt)
        spf_task = asyncio.to_thread(spf_checks.check_identities, peer_ip, mail_from, helo, self.resolver)
        (spf, spf_helo), (dkim, arc) = await asyncio.gather(spf_task, asyncio.to_thread(signatures))
        domain, why = from_domain(data)
        if domain is None:
            dm = DmarcResult("permerror", "", reason=why)
        else:
            found = await dmarc_checks.find_record(domain, self.resolver)
            dm = dmarc_checks.evaluate(domain, found, spf, dkim, rand=self.rand)
        header = authentication_results(self.hostname, spf_mailfrom=spf, spf_helo=spf_helo, dkim=dkim, arc=arc,
                                        dmarc=dm)
        action, reply = self._decide(dm)
        return Verdict(header, action, reply, spf, spf_helo, tuple(dkim), arc, dm)

    def _decide(self, dm: DmarcResult) -> tuple[Action, str | None]:
        """The policy, in one place: DMARC's disposition under ``[antispam]``."""
        if dm.result != "fail" or dm.disposition == "none":
            return Action.DELIVER, None
        if dm.disposition == "reject" and getattr(self.cfg, "dmarc_reject", True):
            return Action.REJECT, (f"550 5.7.1 Message refused: the DMARC policy of {dm.from_domain} rejects mail "
                                   "without an aligned SPF or DKIM pass")
        # quarantine, or reject with dmarc_reject = false: file it where the user can look.
        quarantine = getattr(self.cfg, "dmarc_quarantine", "junk")
        return (Action.JUNK if quarantine == "junk" else Action.DELIVER), None

    def stamp(self, data: bytes, verdict: Verdict) -> bytes:
        """``data`` as stored: our Authentication-Results on top, forged ones removed."""
        return verdict.header + without_forged_results(data, self.hostname)

