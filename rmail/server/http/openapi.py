"""GET /openapi.json (placeholder replaced below)."""
from __future__ import annotations
from aiohttp import web
async def serve(request: web.Request) -> web.Response:
    return web.json_response({})
