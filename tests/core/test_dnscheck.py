"""run.py diagnose's DNS comparison (rmail.e2e.dnscheck) against the loopback DNS server:
what run.py dns prints, once published, passes; each missing or wrong required record is
named with its line; an unreachable resolver is a temporary error, not a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import dns.name
import pytest

from rmail.e2e.dnscheck import check_domain, is_public
from rmail.server.core.dkimkeys import DkimKeys, FileKeyStore
from rmail.server.core.dns import Resolver, TempDNSError
from rmail.server.core.mailauth.records import domain_records, zone_text
from tests.helpers.dns import DNSServer
from tests.helpers.server import make_config


@pytest.fixture
def zone() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, zone: DNSServer):  # noqa: ANN201
    cfg = make_config(tmp_path / "d", hostname="mail.rmail-example.net")
    keys = DkimKeys(FileKeyStore(tmp_path / "keys"))
    records = domain_records(cfg, "rmail-example.net", keys.published("rmail-example.net"))
    return cfg, records, Resolver(("127.0.0.1", zone.port), timeout=0.5)


@pytest.mark.parametrize("domain, public", [
    ("example.com", False), ("mail.example.org", False), ("a.test", False), ("x.invalid", False),
    ("host.local", False), ("home.arpa", False), ("rmail-example.net", True), ("bücher.de", True),
])
def test_reserved_names_are_not_looked_up(domain: str, public: bool) -> None:
    assert is_public(domain) is public


async def test_published_zone_passes(setup, zone: DNSServer) -> None:  # noqa: ANN001
    cfg, records, resolver = setup
    zone.load_zone(zone_text("rmail-example.net", records, hostname=cfg.hostname))
    result = await check_domain(resolver, "rmail-example.net", records)
    assert result.ok and result.recommended == []


async def test_missing_and_wrong_records_are_named(setup, zone: DNSServer) -> None:  # noqa: ANN001
    cfg, records, resolver = setup
    required = [r for r in records if r.required and "._domainkey." not in r.name and not r.name.startswith("_dmarc")]
    zone.load_zone("\n".join(r.line for r in required))                         # no DKIM, no DMARC, no extras
    rsa = next(r for r in records if "-rsa._domainkey" in r.name)
    zone.add(rsa.name, "TXT", "v=DKIM1; k=rsa; p=AAAAold")                      # a stale key
    result = await check_domain(resolver, "rmail-example.net", records)
    assert {r.name for r in result.missing} == {"_dmarc.rmail-example.net.", rsa.name.replace("-rsa.", "-ed.")}
    assert [(r.name, found) for r, found in result.wrong] == [(rsa.name, "v=DKIM1; k=rsa; p=AAAAold")]
    assert {r.type for r in result.recommended} == {"SRV", "CNAME", "TXT"}
    assert not result.ok


async def test_two_spf_records_are_wrong(setup, zone: DNSServer) -> None:  # noqa: ANN001
    cfg, records, resolver = setup
    zone.load_zone(zone_text("rmail-example.net", records, hostname=cfg.hostname))
    zone.add("rmail-example.net", "TXT", "v=spf1 -all")
    result = await check_domain(resolver, "rmail-example.net", records)
    assert [r.value for r, _ in result.wrong] == ["v=spf1 mx ~all"]


async def test_unreachable_dns_is_temporary(setup, zone: DNSServer) -> None:  # noqa: ANN001
    _, records, resolver = setup
    zone.drop.add(dns.name.from_text("rmail-example.net."))
    with pytest.raises(TempDNSError):
        await check_domain(resolver, "rmail-example.net", records)


async def test_diagnose_reports_each_domain(tmp_path: Path, zone: DNSServer) -> None:
    from types import SimpleNamespace

    from rmail.e2e.diagnose import Diagnosis
    from rmail.e2e.report import Report
    cfg = make_config(tmp_path / "d", hostname="mail.rmail-example.net", dns={"nameserver": zone.address, "timeout": 1})
    keys = DkimKeys(FileKeyStore(tmp_path / "keys"))
    diag = Diagnosis(None, Report())
    diag.config, diag.ctx = cfg, SimpleNamespace(dkim=keys)

    await diag.dns_records("user management", ["a.test", "example.com"])
    [only] = diag.report.checks
    assert only.status == "pass" and "reserved names" in only.reason

    await diag.dns_records("user management", ["rmail-example.net"])        # no keys yet, nothing published
    last = diag.report.checks[-1]
    assert last.status == "warn" and "MX rmail-example.net. missing" in last.reason
    assert "no DKIM keys yet" in last.reason and "python run.py dns rmail-example.net" in last.fix
    assert "rmail-example.net.\t3600\tIN\tMX\t10 mail.rmail-example.net." in last.fix
    assert keys.generations("rmail-example.net") == []                        # diagnose made none

    records = domain_records(cfg, "rmail-example.net", keys.published("rmail-example.net"))
    zone.load_zone(zone_text("rmail-example.net", records, hostname=cfg.hostname))
    await diag.dns_records("user management", ["rmail-example.net"])
    assert diag.report.checks[-1].status == "pass", diag.report.checks[-1]

    zone.drop.add(dns.name.from_text("rmail-example.net."))
    await diag.dns_records("user management", ["rmail-example.net"])
    last = diag.report.checks[-1]
    assert last.status == "warn" and "not reachable" in last.reason and diag.report.failures == 0
