"""Routing, CORS, JSON errors everywhere, autoconfig/autodiscover, and the OpenAPI document."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rmail.server.http import make_app
from rmail.server.runtime import ServerRuntime

from ..helpers.server import make_config


API_METHODS = {"GET", "POST", "PATCH", "DELETE", "OPTIONS"}


@pytest.mark.parametrize("path, allow", [
    ("/folders", {"GET", "HEAD", "OPTIONS"}),
    ("/folders/INBOX/messages/1/flags", {"PATCH", "OPTIONS"}),
    ("/folders/INBOX/messages/1", {"GET", "HEAD", "DELETE", "OPTIONS"}),
    ("/auth/login", {"POST", "OPTIONS"}),
    ("/nothing/here", None),   # unknown: no resource to describe
    ("/", None),
])
async def test_preflight_on_any_path(api: TestClient, path: str, allow: set[str] | None) -> None:
    resp = await api.options(path, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # The same CORS answer everywhere (OPTIONS *); Allow names what this resource supports.
    assert {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")} == API_METHODS
    if allow is None:
        assert "Allow" not in resp.headers
    else:
        assert {m.strip() for m in resp.headers["Allow"].split(",")} == allow
    assert {"authorization", "content-type"} <= {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert int(resp.headers["Access-Control-Max-Age"]) > 0


async def test_normal_and_error_responses_carry_the_origin(api: TestClient, alice) -> None:
    for resp in (await api.get("/folders", headers=alice), await api.get("/folders"), await api.get("/nope")):
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_configured_origins_are_echoed_only_when_listed(tmp_path) -> None:
    cfg = make_config(tmp_path / "data", api={"cors_origins": ["https://mail.example.com"]})
    async with ServerRuntime(cfg, auth_delay=0) as rt, TestClient(TestServer(make_app(rt))) as client:
        ok = await client.options("/folders", headers={"Origin": "https://mail.example.com"})
        assert ok.headers["Access-Control-Allow-Origin"] == "https://mail.example.com" and ok.headers["Vary"] == "Origin"
        other = await client.options("/folders", headers={"Origin": "https://evil.example"})
        assert other.status == 204 and "Access-Control-Allow-Origin" not in other.headers


async def test_unknown_route_and_wrong_method_are_json(api: TestClient, alice) -> None:
    resp = await api.get("/no/such/route", headers=alice)
    assert resp.status == 404 and "error" in await resp.json()
    resp = await api.put("/folders", headers=alice)
    assert resp.status == 405 and "error" in await resp.json() and "GET" in resp.headers["Allow"]
    resp = await api.get("/auth/login")
    assert resp.status == 405 and "error" in await resp.json()


async def test_unexpected_errors_are_503_json_without_traceback(api: TestClient, runtime, alice, monkeypatch, caplog) -> None:
    async def broken(fn):
        raise ZeroDivisionError("boom")
    monkeypatch.setattr(runtime.store.db, "read", broken)
    resp = await api.get("/folders", headers=alice)
    body = await resp.json()
    assert resp.status == 503 and set(body) == {"error"} and "boom" not in body["error"]
    assert "Traceback" not in await resp.text()
    assert any("unexpected error" in r.getMessage() for r in caplog.records)


async def test_thunderbird_autoconfig(api: TestClient, runtime) -> None:
    resp = await api.get("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.com")
    assert resp.status == 200 and resp.content_type == "application/xml"
    root = ET.fromstring(await resp.text())
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider.get("id") == "example.com" and "example.com" in [d.text for d in provider.findall("domain")]
    incoming = provider.find("incomingServer")
    assert incoming.get("type") == "imap" and incoming.findtext("hostname") == "mail.example.com"
    assert incoming.findtext("socketType") == "plain"  # this runtime has no TLS
    assert incoming.findtext("username") == "%EMAILADDRESS%"
    outgoing = provider.find("outgoingServer")
    assert int(outgoing.findtext("port")) == (runtime.port("submission") if any(
        l.protocol == "submission" for l in runtime.listeners) else runtime.config.ports.submission)


async def test_thunderbird_autoconfig_with_tls(tls_runtime) -> None:
    async with TestClient(TestServer(make_app(tls_runtime))) as client:
        root = ET.fromstring(await (await client.get("/.well-known/autoconfig/mail/config-v1.1.xml")).text())
        kinds = [(s.get("type"), s.findtext("socketType")) for s in root.find("emailProvider")
                 if s.tag in ("incomingServer", "outgoingServer")]
        assert kinds == [("imap", "SSL"), ("imap", "STARTTLS"), ("smtp", "SSL"), ("smtp", "STARTTLS")]


AUTODISCOVER_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/'
    'autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@example.com</EMailAddress>'
    '<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a'
    '</AcceptableResponseSchema></Request></Autodiscover>')


@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"])
async def test_outlook_autodiscover(api: TestClient, path: str) -> None:
    resp = await api.post(path, data=AUTODISCOVER_REQUEST, headers={"Content-Type": "text/xml"})
    assert resp.status == 200
    ns = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    root = ET.fromstring(await resp.text())
    protocols = root.findall(".//r:Protocol", ns)
    assert [p.findtext("r:Type", namespaces=ns) for p in protocols] == ["IMAP", "SMTP"]
    assert {p.findtext("r:LoginName", namespaces=ns) for p in protocols} == {"alice@example.com"}
    assert {p.findtext("r:Server", namespaces=ns) for p in protocols} == {"mail.example.com"}


@pytest.mark.parametrize("body", [
    "<Autodiscover/>", "<EMailAddress>not-an-address</EMailAddress>",
    '<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><EMailAddress>&b;</EMailAddress>',
])
async def test_autodiscover_refusals(api: TestClient, body: str) -> None:
    resp = await api.post("/autodiscover/autodiscover.xml", data=body)
    assert resp.status == 400 and "error" in await resp.json()


async def test_autodiscover_escapes_what_it_echoes(api: TestClient) -> None:
    # A valid address can still hold characters that mean something in XML.
    resp = await api.post("/autodiscover/autodiscover.xml", data="<EMailAddress>a&amp;b@example.com</EMailAddress>")
    assert resp.status == 200
    ET.fromstring(await resp.text())  # still well-formed


async def test_openapi_document_lists_every_route(api: TestClient) -> None:
    resp = await api.get("/openapi.json")
    doc = await resp.json()
    assert resp.status == 200 and doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m != "parameters"}
    app = api.server.app
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        path = path.replace("{folder:.+}", "{folder}").replace("{pattern:.+}", "{pattern}")
        if route.method != "HEAD":
            served.add((route.method, path))
    aliases = {("GET", "/mail/config-v1.1.xml"), ("POST", "/Autodiscover/Autodiscover.xml")}
    assert served - aliases == documented
