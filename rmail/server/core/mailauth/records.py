"""The DNS records a domain hosted by rmail should publish, in zone-file form: MX, SPF,
DKIM (every published selector), DMARC, SRV for mail clients (RFC 6186, RFC 8314),
autoconfig/autodiscover names, MTA-STS (RFC 8461) and TLS-RPT (RFC 8460).

``run.py dns``, ``GET /domains/{domain}/dns``, the console and ``run.py diagnose`` all print
or compare exactly this list. Names are absolute (trailing dot), so the text pastes into any
zone and loads with any zone-file parser.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Sequence

from ..dkimkeys import DkimKeys, Generation
from .mtasts import build_policy, policy_id

__all__ = ["Record", "domain_records", "records_for", "zone_text", "mta_sts_policy", "TTL"]

TTL = 3600
#: RFC 1035 §3.3.14: one character-string holds at most 255 octets; longer TXT values are
#: split into several strings, which receivers concatenate (RFC 6376 §3.6.2.2, RFC 7208 §3.3).
TXT_CHUNK = 255


@dataclass(frozen=True, slots=True)
class Record:
    name: str              #: absolute, with the trailing dot
    type: str
    value: str             #: the record data as text: for TXT the unquoted, joined value
    purpose: str           #: what it is for (printed as a comment)
    required: bool = True  #: False: recommended (clients, MTA-STS, TLS-RPT)

    @property
    def rdata(self) -> str:
        """The data as it appears in a zone file (TXT quoted and split at 255 octets)."""
        if self.type != "TXT":
            return self.value
        chunks = [self.value[i:i + TXT_CHUNK] for i in range(0, len(self.value), TXT_CHUNK)] or [""]
        return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)

    @property
    def line(self) -> str:
        return f"{self.name}\t{TTL}\tIN\t{self.type}\t{self.rdata}"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "ttl": TTL, "value": self.value, "rdata": self.rdata,
                "purpose": self.purpose, "required": self.required}


def mta_sts_policy(cfg: Any) -> str:
    """The policy rmail serves at https://mta-sts.<domain>/.well-known/mta-sts.txt: this
    server is the one MX of every domain it hosts."""
    return build_policy(cfg.mta_sts.mode, [cfg.hostname], cfg.mta_sts.max_age)


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


def _ports(cfg: Any) -> dict[str, int]:
    p = cfg.ports
    return {"submission": p.submission, "smtps": p.smtps, "imap": p.imap, "imaps": p.imaps}


def domain_records(cfg: Any, domain: str, generations: Sequence[Generation]) -> list[Record]:
    """Every record ``domain`` should publish for this server (``cfg`` is the Config)."""
    d, host = _fqdn(domain.lower()), _fqdn(cfg.hostname.lower())
    out = [
        Record(d, "MX", f"10 {host}", "mail for the domain goes to this server (RFC 5321 §5.1)"),
        Record(d, "TXT", "v=spf1 mx ~all", "SPF: the MX hosts send the domain's mail (RFC 7208)"),
    ]
    if host != d:
        # A second SPF record at one name would be a permerror (RFC 7208 §4.5).
        out.append(Record(host, "TXT", "v=spf1 a -all",
                          "SPF for the server's own name, checked on HELO (RFC 7208 §2.3)"))
    for g in generations:
        for key in g.keys:
            out.append(Record(_fqdn(key.dns_name), "TXT", key.dns_value,
                              f"DKIM {key.algorithm} key, generation {g.name} ({g.state.value})"))
    out.append(Record(f"_dmarc.{d}", "TXT", "v=DMARC1; p=reject",
                      "DMARC: refuse mail using the domain without an aligned SPF or DKIM pass (RFC 7489)"))
    tls = cfg.tls.configured
    ports = _ports(cfg)
    # RFC 6186 §4: target "." says "this service is not offered here".
    srv = [("_submissions._tcp", "smtps", tls), ("_submission._tcp", "submission", True),
           ("_imaps._tcp", "imaps", tls), ("_imap._tcp", "imap", True)]
    for label, service, offered in srv:
        value = f"0 1 {ports[service]} {host}" if offered and ports[service] else "0 0 0 ."
        out.append(Record(f"{label}.{d}", "SRV", value, f"mail clients find {service} (RFC 6186, RFC 8314)",
                          required=False))
    out.append(Record(f"autoconfig.{d}", "CNAME", host, "Thunderbird autoconfig (served by the API port)",
                      required=False))
    out.append(Record(f"autodiscover.{d}", "CNAME", host, "Outlook autodiscover (served by the API port)",
                      required=False))
    # With mode "none" the record still matters: it is how a domain withdraws a policy (§8.3).
    policy = mta_sts_policy(cfg)
    out.append(Record(f"_mta-sts.{d}", "TXT", f"v=STSv1; id={policy_id(policy)}",
                      f"MTA-STS policy id (RFC 8461 §3.1; mode {cfg.mta_sts.mode})", required=False))
    out.append(Record(f"mta-sts.{d}", "CNAME", host, "serves the MTA-STS policy over HTTPS (RFC 8461 §3.3)",
                      required=False))
    out.append(Record(f"_smtp._tls.{d}", "TXT", f"v=TLSRPTv1; rua=mailto:postmaster@{domain.lower()}",
                      "TLS-RPT: where senders report TLS failures (RFC 8460)", required=False))
    return out


def zone_text(domain: str, records: Sequence[Record], *, hostname: str) -> str:
    """The records as a zone-file fragment with a comment per group."""
    lines = [f"; DNS records for {domain.lower()} served by {hostname} (rmail)",
             f"; {hostname.rstrip('.')} also needs A/AAAA records with this server's public addresses,",
             "; and the PTR record of each address should name it.", ""]
    last = None
    for r in records:
        if r.purpose != last:
            lines.append(f"; {r.purpose}" + ("" if r.required else " [recommended]"))
            last = r.purpose
        lines.append(r.line)
    return "\n".join(lines) + "\n"


async def records_for(cfg: Any, keys: DkimKeys, domain: str) -> list[Record]:
    """``domain_records`` with the domain's DKIM generations (made on first use), off the loop."""
    generations = await asyncio.to_thread(keys.published, domain)
    return domain_records(cfg, domain, generations)
