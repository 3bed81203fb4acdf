"""Outbound MTA-STS (RFC 8461) against a loopback DNS server, an HTTPS policy server and SMTP
sinks: enforce mode requires a matching MX with STARTTLS and a valid certificate, testing
mode only reports, no policy stays opportunistic; policies are cached by id."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from aiohttp import web

from rmail.server.config import RelayConfig
from rmail.server.core.dns import Resolver
from rmail.server.core.queue import Outcome
from rmail.server.smtp.mtasts import MtaSts, fetch_policy
from rmail.server.smtp.outbound import SMTPTransport
from rmail.server.tls import generate_self_signed
from tests.helpers.dns import DNSServer

from .sink import Sink, start_sink, stop_sink

MESSAGE = b"From: alice@a.test\r\nTo: dave@remote.test\r\nSubject: sts\r\n\r\nhello\r\n"


def cert_pair(d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    generate_self_signed(cert, key, name)
    return cert, key


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


class World:
    def __init__(self, tmp: Path, zone: DNSServer) -> None:
        self.tmp, self.zone = tmp, zone
        self.policy = "version: STSv1\r\nmode: enforce\r\nmx: mx.remote.test\r\nmax_age: 86400\r\n"
        self.status = 200
        self.requests = 0
        self.resolver = Resolver(("127.0.0.1", zone.port), timeout=2)
        self.mx_cert = cert_pair(tmp, "mx.remote.test")
        self.web_cert = cert_pair(tmp, "mta-sts.remote.test")
        trust = ssl.create_default_context()
        for cert, _ in (self.mx_cert, self.web_cert):
            trust.load_verify_locations(str(cert))
        self.trust = trust

    async def serve_policy(self, request: web.Request) -> web.Response:
        self.requests += 1
        assert request.host.startswith("mta-sts.remote.test")
        return web.Response(text=self.policy, status=self.status, content_type="text/plain")

    def transport(self, sink: Sink, port: int) -> SMTPTransport:
        sts = MtaSts(self.resolver, fetch=lambda d: fetch_policy(d, self.resolver, port=port, ssl_context=self.trust))
        self.sts = sts
        return SMTPTransport(RelayConfig(), "mail.a.test", resolver=self.resolver, tls_context=self.trust,
                             mta_sts=sts, mx_port=sink.port, threads=2, timeout=10)


@pytest.fixture
def zone() -> Iterator[DNSServer]:
    with DNSServer() as server:
        server.add("remote.test", "MX", "10 mx.remote.test.")
        server.add("mx.remote.test", "A", "127.0.0.1")
        server.add("mta-sts.remote.test", "A", "127.0.0.1")
        server.add("_mta-sts.remote.test", "TXT", "v=STSv1; id=20240101")
        yield server


@pytest.fixture
async def world(tmp_path: Path, zone: DNSServer) -> AsyncIterator[tuple[World, int]]:
    w = World(tmp_path, zone)
    app = web.Application()
    app.router.add_get("/.well-known/mta-sts.txt", w.serve_policy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(w.web_cert))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield w, port
    await runner.cleanup()


async def send(w: World, port: int, *, tls: bool) -> tuple[Sink, object]:
    sink = await start_sink(tls=server_context(w.mx_cert) if tls else None)
    transport = w.transport(sink, port)
    try:
        result = await transport.send("alice@a.test", "dave@remote.test", MESSAGE)
    finally:
        await transport.close()
        await stop_sink(sink)
    return sink, result


async def test_enforce_delivers_over_verified_tls(world) -> None:  # noqa: ANN001
    w, port = world
    sink, result = await send(w, port, tls=True)
    assert result.outcome is Outcome.DELIVERED
    [got] = sink.messages
    assert got.tls and w.requests == 1


async def test_enforce_refuses_an_mx_without_starttls(world) -> None:  # noqa: ANN001
    w, port = world
    sink, result = await send(w, port, tls=False)
    assert (result.outcome, result.status) == (Outcome.TEMPORARY, "4.7.10") and sink.messages == []


async def test_enforce_refuses_a_certificate_for_another_name(world, tmp_path: Path) -> None:  # noqa: ANN001
    w, port = world
    w.mx_cert = cert_pair(tmp_path, "other.test")
    w.trust.load_verify_locations(str(w.mx_cert[0]))
    sink, result = await send(w, port, tls=True)
    assert (result.outcome, result.status) == (Outcome.TEMPORARY, "4.7.5") and sink.messages == []


async def test_enforce_refuses_mx_hosts_outside_the_policy(world) -> None:  # noqa: ANN001
    w, port = world
    w.policy = w.policy.replace("mx: mx.remote.test", "mx: *.elsewhere.test")
    sink, result = await send(w, port, tls=True)
    assert (result.outcome, result.status) == (Outcome.TEMPORARY, "4.7.5")
    assert "matches its MTA-STS policy" in result.diagnostic and sink.attempts == 0


@pytest.mark.parametrize("change", ["testing", "no record", "policy 404"])
async def test_without_enforcement_delivery_stays_opportunistic(world, zone: DNSServer,  # noqa: ANN001
                                                               change: str) -> None:
    w, port = world
    if change == "testing":
        w.policy = w.policy.replace("mode: enforce", "mode: testing")
    elif change == "no record":
        zone.remove("_mta-sts.remote.test")
    else:
        w.status = 404
    sink, result = await send(w, port, tls=False)
    assert result.outcome is Outcome.DELIVERED and not sink.messages[0].tls


async def test_policies_are_cached_by_id(world, zone: DNSServer) -> None:  # noqa: ANN001
    w, port = world
    sts = MtaSts(w.resolver, fetch=lambda d: fetch_policy(d, w.resolver, port=port, ssl_context=w.trust))
    first = await sts.policy("remote.test")
    assert first is not None and first.enforced and await sts.policy("Remote.Test") == first
    assert w.requests == 1
    zone.remove("_mta-sts.remote.test")                 # §5.1: a cached policy outlives its record
    assert await sts.policy("remote.test") == first and w.requests == 1
    zone.add("_mta-sts.remote.test", "TXT", "v=STSv1; id=20240202")
    w.policy = w.policy.replace("enforce", "testing")
    assert (await sts.policy("remote.test")).mode == "testing" and w.requests == 2
    w.status = 500
    zone.remove("_mta-sts.remote.test")
    zone.add("_mta-sts.remote.test", "TXT", "v=STSv1; id=20240303")
    assert (await sts.policy("remote.test")).mode == "testing"    # fetch failed: the cached one holds
