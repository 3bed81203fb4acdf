"""Mail client auto-configuration: Thunderbird autoconfig and Outlook autodiscover (POX).

Both describe this server as it runs: its hostname, the ports actually bound, and the socket
types its TLS setup gives (implicit TLS on 993/465 and STARTTLS on 143/587 when TLS is
configured; plain otherwise). The autodiscover request is never parsed as XML: the one value
we need is taken from a bounded body with a regular expression, so no entity expansion or
external entity can be triggered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape, unescape

from aiohttp import web

from rmail.server.core.errors import InvalidInput
from rmail.server.core.model import Address

from .context import runtime
from .inputs import read_body

MAX_AUTODISCOVER_BODY = 16 * 1024
_EMAIL_RE = re.compile(rb"<(?:\w+:)?EMailAddress\s*>\s*([^<]{1,320}?)\s*</(?:\w+:)?EMailAddress\s*>")
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str        #: "imap" or "smtp"
    port: int
    socket: str      #: Thunderbird socketType: "SSL", "STARTTLS" or "plain"


def endpoints(rt) -> list[Endpoint]:  # type: ignore[no-untyped-def]
    """Preferred first: implicit TLS, then STARTTLS, then plain (only without TLS)."""
    bound = {listener.protocol: listener.port for listener in rt.listeners}
    ports = rt.config.ports

    def port(name: str) -> int:
        return bound.get(name) or getattr(ports, name)

    tls = rt.tls is not None
    if tls:
        return [Endpoint("imap", port("imaps"), "SSL"), Endpoint("imap", port("imap"), "STARTTLS"),
                Endpoint("smtp", port("smtps"), "SSL"), Endpoint("smtp", port("submission"), "STARTTLS")]
    return [Endpoint("imap", port("imap"), "plain"), Endpoint("smtp", port("submission"), "plain")]


def clientconfig_xml(hostname: str, domains: list[str], email_domain: str, eps: list[Endpoint]) -> str:
    """Thunderbird clientConfig version 1.1."""
    h = escape(hostname)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<clientConfig version="1.1">',
             f'  <emailProvider id="{escape(email_domain, {chr(34): "&quot;"})}">']
    lines += [f"    <domain>{escape(d)}</domain>" for d in domains]
    lines += [f"    <displayName>rmail on {h}</displayName>", f"    <displayShortName>{h}</displayShortName>"]
    for ep in eps:
        tag = "incomingServer" if ep.kind == "imap" else "outgoingServer"
        lines += [f'    <{tag} type="{ep.kind}">', f"      <hostname>{h}</hostname>",
                  f"      <port>{ep.port}</port>", f"      <socketType>{ep.socket}</socketType>",
                  "      <authentication>password-cleartext</authentication>",
                  "      <username>%EMAILADDRESS%</username>", f"    </{tag}>"]
    lines += ["  </emailProvider>", "</clientConfig>", ""]
    return "\n".join(lines)


def autodiscover_xml(hostname: str, email: str, eps: list[Endpoint]) -> str:
    """Outlook POX autodiscover response (MS-OXDSCLI), one Protocol per protocol, TLS preferred."""
    h, e = escape(hostname), escape(email)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', f'<Autodiscover xmlns="{AUTODISCOVER_RESPONSE_NS}">',
             f'  <Response xmlns="{OUTLOOK_NS}">', "    <Account>", "      <AccountType>email</AccountType>",
             "      <Action>settings</Action>"]
    chosen: dict[str, Endpoint] = {}
    for ep in eps:
        chosen.setdefault(ep.kind, ep)
    for kind, ep in chosen.items():
        lines += ["      <Protocol>", f"        <Type>{kind.upper()}</Type>", f"        <Server>{h}</Server>",
                  f"        <Port>{ep.port}</Port>", "        <DomainRequired>off</DomainRequired>",
                  f"        <LoginName>{e}</LoginName>", "        <SPA>off</SPA>"]
        if ep.socket == "STARTTLS":
            lines += ["        <SSL>on</SSL>", "        <Encryption>TLS</Encryption>"]
        else:
            lines += [f"        <SSL>{'on' if ep.socket == 'SSL' else 'off'}</SSL>"]
        lines += ["        <AuthRequired>on</AuthRequired>", "      </Protocol>"]
    lines += ["    </Account>", "  </Response>", "</Autodiscover>", ""]
    return "\n".join(lines)


def email_from_autodiscover(body: bytes) -> str:
    match = _EMAIL_RE.search(body)
    if match is None:
        raise InvalidInput("autodiscover request has no EMailAddress")
    try:
        text = match.group(1).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("EMailAddress is not UTF-8") from None
    # Only the predefined XML entities (XML 1.0 §4.6); a DTD's entities are never expanded.
    return str(Address.parse(unescape(text, {"&quot;": '"', "&apos;": "'"})))


async def thunderbird(request: web.Request) -> web.Response:
    rt = runtime(request)
    domains = [name for name, _ in await rt.accounts.list_domains()]
    email_domain = rt.config.hostname
    given = request.query.get("emailaddress")
    if given is not None:
        email_domain = Address.parse(given[:320]).domain
    return web.Response(text=clientconfig_xml(rt.config.hostname, domains, email_domain, endpoints(rt)),
                        content_type="application/xml", charset="utf-8")


async def outlook(request: web.Request) -> web.Response:
    rt = runtime(request)
    email = email_from_autodiscover(await read_body(request, MAX_AUTODISCOVER_BODY))
    return web.Response(text=autodiscover_xml(rt.config.hostname, email, endpoints(rt)),
                        content_type="application/xml", charset="utf-8")
