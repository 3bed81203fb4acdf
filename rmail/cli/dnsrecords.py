"""``dns DOMAIN``: every DNS record to publish for a local domain, in zone-file form ready to
paste (core.mailauth.records). Makes the domain's DKIM keys if it has none yet."""

from __future__ import annotations

import argparse
import json

from rmail.server.core.errors import NotFound
from rmail.server.core.mailauth.records import records_for, zone_text

from .common import AdminContext, run_admin


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dns", parents=[common],
                       help="print the DNS records to publish for a domain (MX, SPF, DKIM, DMARC, SRV, MTA-STS...)")
    p.add_argument("domain")
    p.add_argument("--json", action="store_true", help="one JSON document instead of zone-file text")
    p.set_defaults(func=lambda args: run_admin(args, lambda c: print_records(c, args)))


async def print_records(ctx: AdminContext, args: argparse.Namespace) -> int:
    domain = args.domain.lower().rstrip(".")
    if not await ctx.accounts.is_local_domain(domain):
        raise NotFound(f"{domain} is not a local domain (add it with: run.py domain add {domain})")
    records = await records_for(ctx.config, ctx.dkim, domain)
    if args.json:
        print(json.dumps({"domain": domain, "records": [r.as_json() for r in records]}, indent=1))
    else:
        print(zone_text(domain, records, hostname=ctx.config.hostname), end="")
    return 0
