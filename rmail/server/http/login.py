"""POST /auth/login: password → bearer token, throttled per client address like IMAP and SMTP."""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from rmail.server.core.errors import AuthenticationFailed, InvalidInput
from rmail.server.core.events import AuthFailed

from .auth import TOKEN_LIFETIME, TOKENS
from .context import runtime
from .errors import ApiError
from .listener import authenticated
from .inputs import get_str, read_json

#: Longer than any address (RFC 5321 §4.5.3.1.3) or password bcrypt can check (72 bytes).
MAX_USERNAME = 320
MAX_PASSWORD = 1024
MAX_DOMAIN = 253


def login_address(username: str, domain: str | None) -> str:
    """``alice`` + ``example.com``, or a full address in ``username`` (its domain wins)."""
    if "@" in username:
        return username
    if not domain:
        raise InvalidInput("domain is required unless username is a full address")
    return f"{username}@{domain}"


async def login(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_json(request)
    username = get_str(body, "username", max_length=MAX_USERNAME, single_line=True) or ""
    password = get_str(body, "password", max_length=MAX_PASSWORD) or ""
    domain = get_str(body, "domain", max_length=MAX_DOMAIN, required=False, single_line=True)
    address = login_address(username.strip(), domain.strip() if domain else None)
    peer = request.remote or "unknown"
    locked = rt.throttle.locked_for(peer)
    if locked > 0:
        raise ApiError(429, "too many failed logins; try again later",
                       {"Retry-After": str(math.ceil(locked))})
    try:
        account = await rt.accounts.authenticate(address, password)
    except AuthenticationFailed:
        delay = rt.throttle.failure(peer)
        rt.bus.publish(AuthFailed("api", peer, address[:MAX_USERNAME]))
        if delay:
            await asyncio.sleep(delay)
        raise AuthenticationFailed("invalid credentials") from None
    rt.throttle.success(peer)
    authenticated(request, account.address)
    token = request.app[TOKENS].issue(account.address, account.domain, account.admin)
    return web.json_response({"token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                              "user": account.address, "admin": account.admin},
                             headers={"Cache-Control": "no-store"})
