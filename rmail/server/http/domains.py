"""/domains/{domain}/dns for a domain's admins, and the MTA-STS policy file.

``GET /domains/{domain}/dns`` gives the same records ``run.py dns DOMAIN`` prints, as JSON
and as zone-file text. ``GET /.well-known/mta-sts.txt`` serves the policy (RFC 8461 §3.3)
when asked for ``mta-sts.<a local domain>``; RFC 8461 requires HTTPS with a certificate
valid for that name, so in production a TLS reverse proxy sits in front of this port.
"""

from __future__ import annotations

from aiohttp import web

from rmail.server.core.errors import NotFound, PermissionDenied
from rmail.server.core.mailauth.records import mta_sts_policy, records_for, zone_text

from .auth import principal
from .context import runtime
from .inputs import check_text


async def dns_records(request: web.Request) -> web.Response:
    who = principal(request)
    rt = runtime(request)
    domain = check_text(request.match_info["domain"], "domain", max_length=253).lower().rstrip(".")
    account = await rt.accounts.find_user(who.address) if who.admin else None
    if account is None or not account.admin or domain != who.domain:
        raise PermissionDenied(f"only an admin of {domain} may see its DNS records")
    records = await records_for(rt.config, rt.dkim, domain)
    return web.json_response({"domain": domain, "records": [r.as_json() for r in records],
                              "zone": zone_text(domain, records, hostname=rt.config.hostname)})


async def mta_sts(request: web.Request) -> web.Response:
    rt = runtime(request)
    host = (request.host or "").lower()
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    domain = host.removeprefix("mta-sts.") if host.startswith("mta-sts.") else ""
    if not domain or not await rt.accounts.is_local_domain(domain.rstrip(".")):
        raise NotFound("no MTA-STS policy for this host name")
    # RFC 8461 §3.2: media type text/plain; the policy is the same for every domain here.
    return web.Response(text=mta_sts_policy(rt.config), content_type="text/plain")
