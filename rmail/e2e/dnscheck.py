"""Compare what a domain publishes in DNS with what rmail says it should (``run.py dns``), for
``run.py diagnose``. Lookups go through the configured resolver (``[dns] nameserver``).

Required records (MX, SPF, DKIM, DMARC) that are missing or wrong are named with the line to
publish; recommended ones (SRV, autoconfig, MTA-STS, TLS-RPT) are only listed. Names under
reserved TLDs (RFC 2606, RFC 6761, RFC 6762, RFC 8375) never resolve publicly and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from rmail.server.core.dns import Resolver
from rmail.server.core.mailauth.dmarc import RecordError, parse_record
from rmail.server.core.mailauth.mtasts import parse_txt
from rmail.server.core.mailauth.records import Record

__all__ = ["is_public", "DomainCheck", "check_domain"]

RESERVED_SUFFIXES = (".test", ".example", ".invalid", ".localhost", ".local", ".internal", ".home.arpa",
                     ".lan", ".localdomain")
RESERVED_NAMES = {"example.com", "example.net", "example.org", "localhost", "home.arpa"}


def is_public(domain: str) -> bool:
    d = domain.lower().rstrip(".")
    return "." in d and d not in RESERVED_NAMES and not d.endswith(RESERVED_SUFFIXES) \
        and not any(d.endswith("." + name) for name in RESERVED_NAMES)


@dataclass
class DomainCheck:
    domain: str
    missing: list[Record] = field(default_factory=list)          #: required, not found
    wrong: list[tuple[Record, str]] = field(default_factory=list)  #: required, found with other data
    recommended: list[Record] = field(default_factory=list)      #: recommended, missing or different

    @property
    def ok(self) -> bool:
        return not self.missing and not self.wrong


def _name(record: Record) -> str:
    return record.name.rstrip(".")


def _norm(text: str) -> str:
    return "".join(text.split()).lower()


async def _status(resolver: Resolver, record: Record) -> tuple[str, str]:
    """("ok" | "missing" | "wrong", what was found)."""
    name = _name(record)
    if record.type == "MX":
        want = record.value.split()[-1].rstrip(".").lower()
        found = [str(r.exchange).rstrip(".").lower() for r in await resolver.lookup(name, "MX")]
        return ("ok", "") if want in found else ("wrong" if found else "missing", ", ".join(found))
    if record.type == "CNAME":
        found = [str(r.target).rstrip(".").lower() for r in await resolver.lookup(name, "CNAME")]
        return ("ok", "") if record.value.rstrip(".").lower() in found else \
            ("wrong" if found else "missing", ", ".join(found))
    if record.type == "SRV":
        want = record.value.split()
        found = [f"{r.port} {str(r.target).rstrip('.').lower()}" for r in await resolver.lookup(name, "SRV")]
        return ("ok", "") if f"{want[2]} {want[3].rstrip('.').lower()}" in found else \
            ("wrong" if found else "missing", ", ".join(found))
    texts = await resolver.txt(name)
    value = record.value
    if value.startswith("v=spf1"):
        spf = [t for t in texts if _norm(t).startswith("v=spf1")]
        if len(spf) == 1:
            return "ok", spf[0]        # any single SPF policy is the owner's choice
        return ("wrong", " | ".join(spf)) if spf else ("missing", "")
    if value.startswith("v=DMARC1"):
        dmarc = [t for t in texts if _norm(t).startswith("v=dmarc1")]
        if len(dmarc) != 1:
            return ("wrong", " | ".join(dmarc)) if dmarc else ("missing", "")
        try:
            parse_record(dmarc[0])
        except RecordError as exc:
            return "wrong", f"{dmarc[0]} ({exc})"
        return "ok", dmarc[0]
    if value.startswith("v=STSv1"):
        return ("ok", "") if parse_txt(texts) == parse_txt([value]) else \
            ("wrong" if texts else "missing", " | ".join(texts))
    if value.startswith("v=DKIM1"):
        return ("ok", "") if _norm(value) in {_norm(t) for t in texts} else \
            ("wrong" if texts else "missing", " | ".join(t[:60] for t in texts))
    if value.startswith("v=TLSRPTv1"):
        # Where reports go is the owner's choice; one TLS-RPT record is what matters.
        return ("ok", "") if any(_norm(t).startswith("v=tlsrptv1") for t in texts) else ("missing", "")
    return ("ok", "") if _norm(value) in {_norm(t) for t in texts} else ("wrong" if texts else "missing",
                                                                        " | ".join(texts))


async def check_domain(resolver: Resolver, domain: str, records: Sequence[Record]) -> DomainCheck:
    """Look every record up.

    Raises:
        core.dns.TempDNSError: the resolver did not answer (the caller warns: DNS unreachable).
    """
    result = DomainCheck(domain)
    for record in records:
        status, found = await _status(resolver, record)
        if status == "ok":
            continue
        if not record.required:
            result.recommended.append(record)
        elif status == "missing":
            result.missing.append(record)
        else:
            result.wrong.append((record, found))
    return result

