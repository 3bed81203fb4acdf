"""DMARC (RFC 7489): the policy record, organisational domains, identifier alignment, and
the disposition. Pure code apart from ``find_record``, which asks the resolver.

Organisational domains come from the Public Suffix List that the publicsuffixlist package
ships (RFC 7489 §3.2 names the PSL; no download at run time). The record grammar (§6.4) is
a short tag list, parsed here with RFC-cited rules rather than pulling in a record checker
with a dozen dependencies.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from publicsuffixlist import PublicSuffixList

from ..dns import Resolver, TempDNSError
from .dkim import DkimResult
from .spf import SpfResult

__all__ = ["DmarcRecord", "DmarcResult", "parse_record", "org_domain", "aligned", "find_record", "evaluate",
           "RecordError"]

_psl: PublicSuffixList | None = None
_psl_lock = threading.Lock()
POLICIES = ("none", "quarantine", "reject")


class RecordError(ValueError):
    """A record that starts with v=DMARC1 but is not valid."""


def _list() -> PublicSuffixList:
    global _psl
    with _psl_lock:
        if _psl is None:
            _psl = PublicSuffixList()      # ~0.1 s to load: once per process
        return _psl


def org_domain(domain: str) -> str:
    """RFC 7489 §3.2: the registrable domain, one label below the longest public suffix.
    A name that is itself a public suffix is its own organisational domain."""
    name = domain.lower().rstrip(".")
    return _list().privatesuffix(name) or name


def aligned(a: str, b: str, mode: str) -> bool:
    """RFC 7489 §3.1: strict ("s") needs the same name; relaxed ("r") the same organisational
    domain."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    p: str                        #: policy for the domain itself
    sp: str | None = None         #: policy for subdomains (§6.3); None = same as p
    np: str | None = None         #: RFC 9091: policy for non-existent subdomains (parsed only)
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()


def _uris(value: str) -> tuple[str, ...]:
    # §6.4: a comma-separated list of URIs, each optionally with "!size".
    return tuple(u.strip() for u in value.split(",") if u.strip())


def parse_record(text: str) -> DmarcRecord:
    """Parse one TXT record (§6.4). Tags are case-insensitive names; unknown ones are
    ignored (§6.3); v=DMARC1 must come first.

    Raises:
        RecordError: v=DMARC1 is not first, or adkim/aspf/pct are invalid, or p/sp are and
        there is no rua (§6.6.3: then no DMARC processing; with a rua, p=none is returned).
    """
    parts = [p.strip() for p in text.split(";")]
    tags: dict[str, str] = {}
    for part in parts:
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise RecordError(f"not a tag=value pair: {part[:40]!r}")
        tags.setdefault(name.strip().lower(), value.strip())
    first = parts[0].replace(" ", "").lower() if parts else ""
    if first != "v=dmarc1":
        raise RecordError("v=DMARC1 must be the first tag")
    rua, ruf = _uris(tags.get("rua", "")), _uris(tags.get("ruf", ""))
    p, sp = tags.get("p", "").lower(), tags.get("sp")
    if p not in POLICIES or (sp is not None and sp.lower() not in POLICIES):
        if rua:
            # §6.6.3: a bad p or sp with a usable rua is read as p=none (reports still flow).
            return DmarcRecord("none", rua=rua, ruf=ruf)
        raise RecordError(f"p={p or '(missing)'} sp={sp or '(none)'}: must be none, quarantine or reject")
    np = tags.get("np")
    if np is not None and np.lower() not in POLICIES:
        np = None
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    if adkim not in ("r", "s") or aspf not in ("r", "s"):
        raise RecordError("adkim and aspf must be r or s")
    pct_text = tags.get("pct", "100")
    if not pct_text.isdigit() or not 0 <= int(pct_text) <= 100:
        raise RecordError(f"pct={pct_text} is not an integer from 0 to 100")
    return DmarcRecord(p, sp.lower() if sp else None, np.lower() if np else None, adkim, aspf, int(pct_text), rua, ruf)


@dataclass(frozen=True, slots=True)
class Found:
    """What the DNS said about a From domain's policy."""

    record: DmarcRecord | None
    domain: str = ""              #: where the record was found (the From domain or its org domain)
    error: str = ""               #: "temperror" or "permerror" with ``reason``
    reason: str = ""


async def find_record(from_domain: str, resolver: Resolver) -> Found:
    """§6.6.3: ``_dmarc.<From domain>``, else ``_dmarc.<organisational domain>``. Only TXT
    records starting with v=DMARC1 count; more than one of them means no policy."""
    candidates = [from_domain]
    org = org_domain(from_domain)
    if org != from_domain:
        candidates.append(org)
    for name in candidates:
        try:
            texts = await resolver.txt(f"_dmarc.{name}")
        except TempDNSError as exc:
            return Found(None, name, "temperror", str(exc))
        records = [t for t in texts if t.replace(" ", "").lower().startswith("v=dmarc1")]
        if not records:
            continue
        if len(records) > 1:
            return Found(None, name, "permerror", "more than one DMARC record")
        try:
            return Found(parse_record(records[0]), name)
        except RecordError as exc:
            return Found(None, name, "permerror", str(exc))
    return Found(None)


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: str                   #: pass, fail, none, temperror, permerror (RFC 8601 §2.7.1 / RFC 7489 §11.2)
    from_domain: str
    policy: str = "none"          #: the policy that applies (p or sp), before pct
    disposition: str = "none"     #: none, quarantine or reject: what to do with this message
    reason: str = ""
    record_domain: str = ""
    details: dict[str, str] = field(default_factory=dict)


def evaluate(from_domain: str, found: Found, spf: SpfResult, dkim: Sequence[DkimResult], *,
             rand: Callable[[], float] = random.random) -> DmarcResult:
    """§6.6.2 and §6.6.4: pass when an SPF or DKIM pass is aligned with the From domain; on
    failure the policy of the record (sp for a subdomain), sampled by pct."""
    if found.error:
        return DmarcResult(found.error, from_domain, reason=found.reason, record_domain=found.domain)
    record = found.record
    if record is None:
        return DmarcResult("none", from_domain, reason="no DMARC record")
    spf_ok = spf.result == "pass" and aligned(spf.domain, from_domain, record.aspf)
    dkim_ok = [d.domain for d in dkim if d.result == "pass" and aligned(d.domain, from_domain, record.adkim)]
    subdomain = found.domain != from_domain
    policy = (record.sp or record.p) if subdomain else record.p
    if spf_ok or dkim_ok:
        how = f"aligned DKIM d={dkim_ok[0]}" if dkim_ok else f"aligned SPF {spf.domain}"
        return DmarcResult("pass", from_domain, policy, "none", how, found.domain)
    temporary = spf.result == "temperror" or any(
        d.result == "temperror" and aligned(d.domain, from_domain, record.adkim) for d in dkim)
    if temporary:
        return DmarcResult("temperror", from_domain, policy, "none", "SPF or DKIM lookup failed for now",
                           found.domain)
    disposition = policy
    if record.pct < 100 and rand() * 100 >= record.pct:
        # §6.6.4: outside the sampled percentage, apply the next less strict policy.
        disposition = {"reject": "quarantine", "quarantine": "none"}.get(policy, "none")
    reason = "no aligned SPF or DKIM pass"
    return DmarcResult("fail", from_domain, policy, disposition, reason, found.domain)
