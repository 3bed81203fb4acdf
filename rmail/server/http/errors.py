"""One middleware that turns every failure into a JSON ``{"error": ...}`` reply.

Core errors are mapped once here (STYLE.md, "let an error know its reply"); aiohttp's own
HTTP exceptions (unknown route 404, wrong method 405, body too large 413) get the same JSON
shape. Anything else is a bug: it is logged with its traceback and answered 503 without one.
SPEC Part 3 forbids a 500; 503 is the one server-side status that does not blame the client
for our fault, and a client may retry it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Mapping

from aiohttp import web

from rmail.server.core.errors import (AlreadyExists, AuthenticationFailed, InvalidInput, LimitExceeded, NotFound,
                                      PermissionDenied, QuotaExceeded, RmailError, StorageFull,
                                      TemporaryFailure)

log = logging.getLogger("rmail.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: RFC 9110 statuses for the core error hierarchy (SPEC Part 3 "Errors").
STATUS: tuple[tuple[type[RmailError], int], ...] = (
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (AlreadyExists, 409),
    (QuotaExceeded, 507),   # RFC 4918 §11.5 Insufficient Storage: the mailbox is full
    (LimitExceeded, 413),
    (InvalidInput, 400),
    (StorageFull, 507),          # RFC 4918 §11.5 Insufficient Storage: the disk, not the client
    (TemporaryFailure, 503),
)


class ApiError(Exception):
    """An HTTP-level refusal with its status and extra headers (401 challenge, 429 Retry-After)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def status_for(exc: RmailError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def reply_for(exc: BaseException) -> web.Response:
    """The JSON reply for an exception raised while handling a request."""
    if isinstance(exc, ApiError):
        return json_error(exc.status, exc.message, exc.headers)
    if isinstance(exc, RmailError):
        status = status_for(exc)
        headers: dict[str, str] = {}
        if status == 401:
            # RFC 6750 §3: a bearer-protected resource names its scheme in the challenge.
            headers["WWW-Authenticate"] = 'Bearer realm="rmail", error="invalid_token"'
        elif status in (503, 507):
            headers["Retry-After"] = "60"
        return json_error(status, str(exc) or type(exc).__name__, headers)
    if isinstance(exc, web.HTTPException):
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_error(exc.status, exc.reason or "error", headers)
    log.error("http: unexpected error", exc_info=exc)
    return json_error(503, "internal error; it has been logged", {"Retry-After": "5"})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes a reply
        return reply_for(exc)
    if isinstance(response, web.HTTPException):  # returned rather than raised
        return reply_for(response)
    return response
