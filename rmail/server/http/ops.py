"""``GET /metrics`` (Prometheus text format) and ``GET /healthz`` for monitoring.

Neither takes a token: a scraper or a load balancer has none. Instead both answer only
clients inside ``[api] metrics_from`` (loopback by default); anyone else gets 403 JSON. The
numbers say how busy the server is and how much mail flows, which is not for the internet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from functools import lru_cache

from aiohttp import web

from rmail.server.metrics import CONTENT_TYPE

from .context import runtime
from .errors import json_error

#: Seconds the health check waits for the store to answer a read before saying 503.
HEALTH_READ_TIMEOUT = 5.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def allowed(peer: str | None, cidrs: tuple[str, ...]) -> bool:
    """True when ``peer`` (an IP address string) lies in one of ``cidrs``."""
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped     # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
    return any(address.version == net.version and address in net for net in _networks(cidrs))


def _refused(request: web.Request) -> web.Response | None:
    if allowed(request.remote, runtime(request).config.api.metrics_from):
        return None
    return json_error(403, "not allowed from this address; see [api] metrics_from")


async def metrics(request: web.Request) -> web.Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    body = await runtime(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def healthz(request: web.Request) -> web.Response:
    """200 when the store answers a read and the listeners are up, else 503 naming the cause."""
    refused = _refused(request)
    if refused is not None:
        return refused
    rt = runtime(request)
    if rt.stopping or not rt.started or not rt.listeners:
        return _unhealthy("the server is not serving (starting or shutting down)")
    try:
        await asyncio.wait_for(rt.backend.ping(), HEALTH_READ_TIMEOUT)
    except asyncio.TimeoutError:
        return _unhealthy(f"the store did not answer a read within {HEALTH_READ_TIMEOUT:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure to read is the answer, not a crash
        return _unhealthy(f"the store cannot be read: {type(exc).__name__}")
    space = rt.store.space.state
    return web.json_response({
        "status": "ok",
        "listeners": [f"{li.protocol} {li.host}:{li.port}" for li in rt.listeners],
        "uptime_seconds": round(time.time() - rt.started, 1),
        "storage_low": bool(space and space.low),
    })


def _unhealthy(reason: str) -> web.Response:
    return web.json_response({"status": "unavailable", "error": reason}, status=503)
