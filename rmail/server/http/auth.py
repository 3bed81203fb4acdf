"""Bearer tokens: HS256 JWTs signed with the store's shared secret "jwt" (storage.Directory.secret:
``data_dir/keys/jwt.key``, mode 0600, on the embedded store; a row every node reads on PostgreSQL,
so a token from one node works on all).

Only HS256 is accepted when verifying (RFC 8725 §3.1: never let the token pick its algorithm),
so ``alg: none`` and RS/HS confusion are refused. Tokens carry integer ``iat`` and ``exp``
(``exp - iat == TOKEN_LIFETIME``), ``sub`` (the address), ``domain`` and ``admin``. The key is
created on first use and survives restarts, so tokens do too.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import jwt
from aiohttp import web

from rmail.server.config import ConfigError
from rmail.server.core.errors import InvalidInput
from rmail.server.core.model import Address

from .errors import ApiError
from .listener import authenticated

TOKEN_LIFETIME = 3600
ALGORITHM = "HS256"
#: RFC 7518 §3.2: the HMAC key must be at least as long as the hash output (32 bytes).
KEY_BYTES = 64
MIN_KEY_BYTES = 32
#: Longest Authorization header value we look at; our tokens are ~250 characters.
MAX_TOKEN_LENGTH = 4096
#: Verified tokens remembered at most (each entry is a few hundred bytes).
MAX_VERIFIED = 10000

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="rmail"'}
INVALID = {"WWW-Authenticate": 'Bearer realm="rmail", error="invalid_token"'}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for (as of when it was issued)."""

    address: str
    local: str
    domain: str
    admin: bool


#: The name of the signing key among the store's shared secrets.
SECRET_NAME = "jwt"


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


class TokenService:
    """Issues and verifies tokens with one cached key (no store read per request).

    ``fetch_key(name, create)`` is the store's ``Directory.secret``: the first node to start
    creates the key, every other one reads the same bytes.
    """

    def __init__(self, fetch_key: Callable[[str, Callable[[], bytes]], Awaitable[bytes]]) -> None:
        self._fetch_key = fetch_key
        self._key: bytes | None = None
        # Tokens already verified → (principal, exp). A client sends the same token on every
        # request; re-checking its HMAC and re-parsing its JSON was the largest cost of a
        # message-list request. Keyed by the exact token text, so only what passed is served.
        self._verified: dict[str, tuple[Principal, int]] = {}

    async def load(self) -> None:
        """Fetch (or create) the key once, at start-up.

        Raises:
            ConfigError: the stored key is too short to be one (RFC 7518 §3.2).
        """
        try:
            key = await self._fetch_key(SECRET_NAME, new_key)
        except InvalidInput as exc:   # an embedded store's key file that holds no key
            raise ConfigError(f"API signing key: {exc}") from None
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"the API signing key is {len(key)} bytes, fewer than {MIN_KEY_BYTES}; "
                              "remove it (data_dir/keys/jwt.key on the embedded store) to generate a new one")
        self._key = key

    @property
    def key(self) -> bytes:
        if self._key is None:
            raise RuntimeError("TokenService.load() was not called")
        return self._key

    def issue(self, address: str, domain: str, admin: bool, *, now: int | None = None) -> str:
        iat = int(time.time()) if now is None else now
        claims = {"sub": address, "domain": domain, "admin": admin, "iat": iat, "exp": iat + TOKEN_LIFETIME}
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """Check signature, algorithm, expiry and claim types.

        Raises:
            ApiError: 401 for any token that is not one of ours and current.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise ApiError(401, "invalid token", INVALID)
        hit = self._verified.get(token)
        if hit is not None:
            if hit[1] > time.time():
                return hit[0]
            del self._verified[token]
        try:
            claims = jwt.decode(token, self.key, algorithms=[ALGORITHM],
                                options={"require": ["exp", "iat", "sub"], "verify_iat": True})
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "token expired", INVALID) from None
        except jwt.InvalidTokenError:
            raise ApiError(401, "invalid token", INVALID) from None
        sub, domain, admin = claims.get("sub"), claims.get("domain"), claims.get("admin")
        if not isinstance(sub, str) or not isinstance(domain, str) or not isinstance(admin, bool):
            raise ApiError(401, "invalid token", INVALID)
        try:
            addr = Address.parse(sub)
        except InvalidInput:
            raise ApiError(401, "invalid token", INVALID) from None
        if addr.domain != domain:
            raise ApiError(401, "invalid token", INVALID)
        who = Principal(str(addr), addr.local, addr.domain, admin)
        if len(self._verified) >= MAX_VERIFIED:
            self._verified.clear()  # bounded: an attacker minting valid tokens is already a user
        self._verified[token] = (who, int(claims["exp"]))
        return who


TOKENS = web.AppKey("tokens", TokenService)


def principal(request: web.Request) -> Principal:
    """The caller behind ``Authorization: Bearer <token>`` (RFC 6750 §2.1).

    Raises:
        ApiError: 401 when the header is missing, not a bearer token, or the token is invalid.
    """
    header = request.headers.get("Authorization")
    if header is None:
        raise ApiError(401, "missing bearer token", CHALLENGE)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise ApiError(401, "authorization must be a Bearer token", CHALLENGE)
    who = request.app[TOKENS].verify(token.strip())
    authenticated(request, who.address)   # the connection no longer holds a pre-login slot
    return who
