"""POST /auth/login: password → bearer token, under the same guard as IMAP and SMTP
(core/authguard.py): a locked login gets 429 with ``Retry-After``, never 401."""

from __future__ import annotations

import math

from aiohttp import web

from rmail.server.core.authguard import LoginLocked
from rmail.server.core.errors import AuthenticationFailed, InvalidInput

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
    try:
        async with rt.throttle.attempt("api", peer, address):
            account = await rt.accounts.authenticate(address, password)
    except LoginLocked as exc:
        # RFC 6585 §4: 429 with Retry-After (whole seconds, at least 1).
        raise ApiError(429, "too many failed logins; try again later",
                       {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}) from None
    except AuthenticationFailed:
        raise AuthenticationFailed("invalid credentials") from None
    authenticated(request, account.address)
    token = request.app[TOKENS].issue(account.address, account.domain, account.admin)
    return web.json_response({"token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                              "user": account.address, "admin": account.admin},
                             headers={"Cache-Control": "no-store"})
