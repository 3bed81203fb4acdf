"""The one resolver (core.dns) against the loopback test DNS server: `[dns] nameserver` is where
every lookup goes, including the outbound queue's MX lookups; errors are classified."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import dns.name
import pytest

from rmail.server.config import ConfigError, build_config
from rmail.server.core.dns import Resolver, TempDNSError, parse_nameserver
from rmail.server.runtime import ServerRuntime
from tests.helpers.dns import DNSServer
from tests.helpers.server import make_config


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


def resolver_for(server: DNSServer, timeout: float = 2.0) -> Resolver:
    return Resolver(("127.0.0.1", server.port), timeout=timeout)


@pytest.mark.parametrize("text, parsed", [
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("127.0.0.1", ("127.0.0.1", 53)),
    ("[::1]:5300", ("::1", 5300)),
    ("[::1]", ("::1", 53)),
    ("::1", ("::1", 53)),
    ("resolver.lan:53", ("resolver.lan", 53)),
])
def test_parse_nameserver(text: str, parsed: tuple[str, int]) -> None:
    assert parse_nameserver(text) == parsed


@pytest.mark.parametrize("raw, key", [
    ({"dns": {"nameserver": "127.0.0.1:99999"}}, "dns.nameserver"),
    ({"dns": {"nameserver": "[::1"}}, "dns.nameserver"),
    ({"dns": {"timeout": 0}}, "dns.timeout"),
    ({"antispam": {"dmarc_quarantine": "spam"}}, "antispam.dmarc_quarantine"),
    ({"antispam": {"dnsbl": "zen.spamhaus.org"}}, "antispam.dnsbl"),
    ({"antispam": {"dnsbl": ["bad zone"]}}, "antispam.dnsbl"),
    ({"antispam": {"dmarc_reject": "yes"}}, "antispam.dmarc_reject"),
    ({"mta_sts": {"mode": "strict"}}, "mta_sts.mode"),
    ({"mta_sts": {"max_age": 99999999}}, "mta_sts.max_age"),
    ({"mta_sts": {"outbound": 1}}, "mta_sts.outbound"),
])
def test_bad_dns_and_antispam_values_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(raw, {})
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_defaults() -> None:
    cfg = build_config({}, {})
    assert cfg.dns.nameserver is None and cfg.dns.timeout == 5
    assert cfg.antispam.checks and cfg.antispam.dmarc_reject and cfg.antispam.dmarc_quarantine == "junk"
    assert cfg.antispam.dnsbl == ()
    assert (cfg.mta_sts.mode, cfg.mta_sts.max_age, cfg.mta_sts.outbound) == ("testing", 604800, True)


async def test_lookups_go_to_the_configured_server(dns_server: DNSServer) -> None:
    dns_server.add("a.test", "TXT", "v=spf1 -all")
    dns_server.add("a.test", "MX", "10 mail.a.test.")
    dns_server.add("mail.a.test", "A", "127.0.0.1")
    r = resolver_for(dns_server)
    assert await r.txt("a.test") == ["v=spf1 -all"]
    assert [str(x.exchange) for x in await r.lookup("a.test", "MX")] == ["mail.a.test."]
    assert await r.exists("mail.a.test")
    assert await r.lookup("a.test", "AAAA") == []             # name exists, type does not: NOERROR
    assert await r.txt("nothing.a.test") == []                 # NXDOMAIN
    assert await asyncio.to_thread(r.txt_sync, "a.test") == [b"v=spf1 -all"]
    assert dns_server.queries[("a.test", "TXT")] == 2


async def test_long_txt_is_joined_and_truncation_retries_over_tcp(dns_server: DNSServer) -> None:
    key = "v=DKIM1; k=rsa; p=" + "A" * 1600      # larger than any UDP size: truncated, TCP retry
    dns_server.add("s._domainkey.a.test", "TXT", key)
    r = resolver_for(dns_server)
    assert await r.txt("s._domainkey.a.test") == [key]
    assert await asyncio.to_thread(r.txt_sync, "s._domainkey.a.test") == [key.encode()]
    assert dns_server.tcp_queries == 2


async def test_servfail_and_timeout_are_temporary(dns_server: DNSServer) -> None:
    dns_server.add("broken.test", "TXT", "x")
    dns_server.servfail.add(dns.name.from_text("broken.test."))
    dns_server.drop.add(dns.name.from_text("silent.test."))
    r = resolver_for(dns_server, timeout=0.5)
    with pytest.raises(TempDNSError):
        await r.txt("broken.test")
    with pytest.raises(TempDNSError):
        await r.txt("silent.test")
    with pytest.raises(TempDNSError):
        await asyncio.to_thread(r.txt_sync, "silent.test")


async def test_outbound_mx_lookup_uses_the_configured_nameserver(tmp_path: Path, dns_server: DNSServer) -> None:
    dns_server.add("remote.test", "MX", "20 mx2.remote.test.", "10 mx1.remote.test.")
    cfg = make_config(tmp_path / "d", dns={"nameserver": dns_server.address})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        routes = await rt.queue.transport.routes("dave@remote.test")
    assert [r.host for r in routes] == ["mx1.remote.test", "mx2.remote.test"]
    assert dns_server.queries[("remote.test", "MX")] == 1


def test_zone_text_loads(dns_server: DNSServer) -> None:
    dns_server.load_zone('a.test. 3600 IN MX 10 mail.a.test.\n'
                         'a.test. 3600 IN TXT "v=spf1 mx -all"\n'
                         '_dmarc.a.test. 3600 IN TXT "v=DMARC1; p=reject"\n')
    r = resolver_for(dns_server)
    assert asyncio.run(r.txt("_dmarc.a.test")) == ["v=DMARC1; p=reject"]


async def test_the_servers_resolver_caches_answers_for_their_ttl() -> None:
    """A busy sender's SPF and DMARC records are asked for once per TTL, not per message;
    an uncached resolver (diagnose's) asks every time."""
    with DNSServer() as zone:
        zone.add("cached.test", "TXT", "v=spf1 -all", ttl=300)
        host, port = zone.address.rsplit(":", 1)
        cached = Resolver((host, int(port)), timeout=2, cache=True)
        plain = Resolver((host, int(port)), timeout=2)
        for _ in range(3):
            assert await cached.txt("cached.test") == ["v=spf1 -all"]
            assert cached.txt_sync("cached.test") == [b"v=spf1 -all"]
        assert zone.queries[("cached.test", "TXT")] == 1
        for _ in range(3):
            assert await plain.txt("cached.test") == ["v=spf1 -all"]
        assert zone.queries[("cached.test", "TXT")] == 4
