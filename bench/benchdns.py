"""A loopback DNS server for the benchmarks, so that port-25 mail authentication (SPF, DKIM,
DMARC) does its real lookups against records on this machine and never against the system
resolver. The senders' domains publish SPF for loopback and a DMARC policy of none."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.dns import DNSServer  # noqa: E402

#: The envelope and From: domains the benchmarks send from.
SENDER_DOMAINS = ("remote.example", "sender.example")


def start_bench_dns() -> DNSServer:
    server = DNSServer().start()
    for domain in SENDER_DOMAINS:
        server.add(domain, "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
        server.add(f"_dmarc.{domain}", "TXT", "v=DMARC1; p=none")
    return server


def dns_toml(server: DNSServer) -> str:
    return f'[dns]\nnameserver = "{server.address}"\n'
