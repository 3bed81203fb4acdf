"""Typed keys for what handlers find on the application."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from rmail.server.runtime import ServerRuntime

RUNTIME: web.AppKey[Any] = web.AppKey("runtime")


def runtime(request: web.Request) -> ServerRuntime:
    return request.app[RUNTIME]
