"""GET /domains/{domain}/dns (admins of that domain) and the MTA-STS policy file."""

from __future__ import annotations

import dns.zone
from aiohttp.test_utils import TestClient

from rmail.server.core.mailauth.mtasts import parse_policy, policy_id
from rmail.server.runtime import ServerRuntime

from .conftest import bearer, token_for


async def _admin(api: TestClient) -> dict[str, str]:
    return bearer(await token_for(api, "bob@example.com"))


async def test_admin_gets_the_records_as_json_and_zone_text(api: TestClient, runtime: ServerRuntime, bob) -> None:
    resp = await api.get("/domains/example.com/dns", headers=bob)
    assert resp.status == 200
    body = await resp.json()
    assert body["domain"] == "example.com"
    types = [(r["name"], r["type"]) for r in body["records"]]
    assert ("example.com.", "MX") in types and ("_dmarc.example.com.", "TXT") in types
    assert ("_submission._tcp.example.com.", "SRV") in types and ("_mta-sts.example.com.", "TXT") in types
    [gen] = runtime.dkim.generations("example.com")          # made by the request
    dkim = {r["name"]: r["value"] for r in body["records"] if "._domainkey." in r["name"]}
    assert dkim == {f"{k.dns_name}.": k.dns_value for k in gen.keys}
    zone = dns.zone.from_text(body["zone"], origin="example.com.", relativize=False, check_origin=False)
    assert len(list(zone.iterate_rdatas())) == len(body["records"])


async def test_others_are_refused(api: TestClient, runtime: ServerRuntime, alice, bob) -> None:
    assert (await api.get("/domains/example.com/dns", headers=alice)).status == 403
    resp = await api.get("/domains/other.example/dns", headers=bob)
    assert resp.status == 403 and "error" in await resp.json()
    assert (await api.get("/domains/example.com/dns")).status == 401
    assert runtime.dkim.generations("other.example") == []


async def test_mta_sts_policy_for_local_domains_only(api: TestClient, runtime: ServerRuntime) -> None:
    resp = await api.get("/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.com"})
    assert resp.status == 200 and resp.content_type == "text/plain"
    text = await resp.text()
    policy = parse_policy(text)
    assert (policy.mode, policy.mx, policy.max_age) == ("testing", ("mail.example.com",), 604800)
    assert (await api.get("/.well-known/mta-sts.txt", headers={"Host": "MTA-STS.example.com:8443"})).status == 200
    # The id published in _mta-sts is a digest of exactly the text served.
    resp = await api.get("/domains/example.com/dns", headers=await _admin(api))
    [record] = [r for r in (await resp.json())["records"] if r["name"] == "_mta-sts.example.com."]
    assert record["value"] == f"v=STSv1; id={policy_id(text)}"
    for host in ("mta-sts.elsewhere.example", "example.com", "mta-sts."):
        assert (await api.get("/.well-known/mta-sts.txt", headers={"Host": host})).status == 404
