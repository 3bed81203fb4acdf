"""The REST API's access log: one line per request on the ``rmail.access`` logger.

Method, path, status, bytes sent, duration, client address and, once a token or a login proved
it, the user. The path is the raw one up to "?": a query string can carry secrets (and its
percent-encoding keeps control characters from the network out of a text log line).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

#: Request key under which ``listener.authenticated`` records who the request proved to be
#: (a typed key where aiohttp has them, 3.12+; a string before).
USER_KEY: Any = web.RequestKey("rmail.user", str) if hasattr(web, "RequestKey") else "rmail.user"

log = logging.getLogger("rmail.access")


class AccessLogger(AbstractAccessLogger):
    """aiohttp calls ``log`` once a response has been sent."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.raw_path.split("?", 1)[0]
        user = request.get(USER_KEY) or "-"
        size = response.body_length
        self.logger.info("api: %s %s %d %dB %.1fms client=%s user=%s", request.method, path, response.status,
                         size, time * 1000, request.remote or "-", user,
                         extra={"method": request.method, "path": path, "status": response.status, "bytes": size,
                                "duration_ms": round(time * 1000, 2), "client": request.remote, "user":
                                    None if user == "-" else user})

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
