"""CORS (Fetch standard, "CORS protocol"): preflight on any path, the origin header on every reply.

``*`` is the default and safe here: the API authenticates with a bearer token a page must
hold explicitly, never with cookies, so a foreign origin gains nothing it could not do
without a browser. With configured origins, only those are echoed (with ``Vary: Origin``).
"""

from __future__ import annotations

from aiohttp import web

from .errors import Handler

ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Accept"
EXPOSE_HEADERS = "Location, Retry-After, WWW-Authenticate"
MAX_AGE = "86400"


def allowed_origin(origins: tuple[str, ...], origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for a request from ``origin``, or None."""
    if "*" in origins:
        return "*"
    if origin is not None and origin in origins:
        return origin
    return None


def resource_methods(request: web.Request) -> str | None:
    """The methods the requested path supports, from the router's 405 for OPTIONS."""
    exc = getattr(request.match_info, "http_exception", None)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        methods = set(exc.allowed_methods) | {"OPTIONS"}
        return ", ".join(m for m in ("GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS") if m in methods)
    return None


def cors_middleware(origins: tuple[str, ...]):  # type: ignore[no-untyped-def]
    wildcard = "*" in origins

    def decorate(response: web.StreamResponse, origin: str | None) -> None:
        value = allowed_origin(origins, origin)
        if value is not None:
            response.headers["Access-Control-Allow-Origin"] = value
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        if not wildcard:
            response.headers["Vary"] = "Origin"

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            # Preflight for any path, known or not: the browser only asks what it may send.
            response: web.StreamResponse = web.Response(status=204, headers={
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
            })
            # One CORS answer for every path (SPEC: OPTIONS *): the API's whole method set, so a
            # preflight never depends on routing; Allow stays precise for the resource.
            methods = resource_methods(request)
            response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            if methods:
                response.headers["Allow"] = methods  # RFC 9110 §9.3.7: what this resource supports
        else:
            response = await handler(request)
        decorate(response, origin)
        return response

    return middleware
