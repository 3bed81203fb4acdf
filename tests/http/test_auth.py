"""Login, tokens and the JWT attacks (RFC 8725): none, wrong key, expired, garbage."""

from __future__ import annotations

import base64
import json
import stat
import time

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from rmail.server.http import make_app

from ..conftest import PASSWORD
from .conftest import bearer, token_for


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def test_login_returns_the_fixed_shape(api: TestClient) -> None:
    resp = await api.post("/auth/login", json={"username": "alice", "password": PASSWORD, "domain": "example.com"})
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"token", "token_type", "expires_in", "user", "admin"}
    assert (body["token_type"], body["expires_in"], body["user"], body["admin"]) == \
        ("Bearer", 3600, "alice@example.com", False)
    header = jwt.get_unverified_header(body["token"])
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 3600
    assert (claims["sub"], claims["domain"], claims["admin"]) == ("alice@example.com", "example.com", False)


async def test_full_address_and_admin_flag(api: TestClient) -> None:
    resp = await api.post("/auth/login", json={"username": "BOB@Example.com", "password": PASSWORD})
    body = await resp.json()
    assert resp.status == 200 and body["user"] == "bob@example.com" and body["admin"] is True


@pytest.mark.parametrize("payload, status", [
    ({"username": "alice", "password": PASSWORD}, 400),                     # no domain
    ({"username": "alice@example.com"}, 400),                                # no password
    ({"username": 5, "password": PASSWORD}, 400),
    ({"username": "alice@example.com", "password": "wrong"}, 401),
    ({"username": "nobody@example.com", "password": PASSWORD}, 401),
    ({"username": "alice\r\nX: y@example.com", "password": PASSWORD}, 400),
    ({"username": "alice@example.com", "password": "\ud800"}, 400),         # lone surrogate
])
async def test_login_refusals(api: TestClient, payload: dict, status: int) -> None:
    resp = await api.post("/auth/login", json=payload)
    assert resp.status == status
    assert "error" in await resp.json()


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'"x"', b"{" * 100000])
async def test_login_malformed_bodies(api: TestClient, body: bytes) -> None:
    resp = await api.post("/auth/login", data=body, headers={"Content-Type": "application/json"})
    assert resp.status in (400, 413)
    assert "error" in await resp.json()


async def test_login_oversized_body_is_413(api: TestClient) -> None:
    resp = await api.post("/auth/login", json={"username": "a" * 70000, "password": "x"})
    assert resp.status == 413 and "error" in await resp.json()


async def test_failed_logins_are_throttled(api: TestClient, runtime) -> None:
    # One user from one address is locked first (core/authguard.py: the pair limit).
    for _ in range(runtime.config.limits.auth_pair_failures):
        resp = await api.post("/auth/login", json={"username": "alice@example.com", "password": "bad"})
        assert resp.status == 401
    resp = await api.post("/auth/login", json={"username": "alice@example.com", "password": PASSWORD})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0


async def test_success_clears_failures(api: TestClient, runtime) -> None:
    for _ in range(runtime.config.limits.auth_pair_failures - 1):
        await api.post("/auth/login", json={"username": "alice@example.com", "password": "bad"})
    await token_for(api, "alice@example.com")
    resp = await api.post("/auth/login", json={"username": "alice@example.com", "password": "bad"})
    assert resp.status == 401


def forged(runtime, **overrides) -> dict:
    now = int(time.time())
    claims = {"sub": "alice@example.com", "domain": "example.com", "admin": False, "iat": now, "exp": now + 3600}
    claims.update(overrides)
    return claims


def real_key(runtime) -> bytes:
    return bytes.fromhex((runtime.config.data_dir / "keys" / "jwt.key").read_text().strip())


async def test_valid_token_works(api: TestClient, runtime) -> None:
    token = jwt.encode(forged(runtime), real_key(runtime), algorithm="HS256")
    assert (await api.get("/folders", headers=bearer(token))).status == 200


@pytest.mark.parametrize("attack", ["none", "wrong-key", "expired", "garbage", "empty", "tampered",
                                    "hs512", "future-iat", "no-exp", "bad-sub", "domain-mismatch",
                                    "admin-string", "basic-scheme", "no-header", "removed-user"])
async def test_token_attacks_get_401(api: TestClient, runtime, attack: str) -> None:
    key = real_key(runtime)
    headers: dict[str, str]
    if attack == "none":
        token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(forged(runtime, admin=True))}."
    elif attack == "wrong-key":
        token = jwt.encode(forged(runtime), b"k" * 64, algorithm="HS256")
    elif attack == "expired":
        token = jwt.encode(forged(runtime, iat=1000, exp=4600), key, algorithm="HS256")
    elif attack == "garbage":
        token = "a.b.c"
    elif attack == "empty":
        token = ""
    elif attack == "tampered":
        good = jwt.encode(forged(runtime), key, algorithm="HS256")
        head, _, sig = good.split(".")
        token = f"{head}.{b64(forged(runtime, sub='bob@example.com', admin=True))}.{sig}"
    elif attack == "hs512":
        token = jwt.encode(forged(runtime), key, algorithm="HS512")
    elif attack == "future-iat":
        token = jwt.encode(forged(runtime, iat=int(time.time()) + 10000), key, algorithm="HS256")
    elif attack == "no-exp":
        claims = forged(runtime)
        del claims["exp"]
        token = jwt.encode(claims, key, algorithm="HS256")
    elif attack == "bad-sub":
        token = jwt.encode(forged(runtime, sub="../../etc"), key, algorithm="HS256")
    elif attack == "domain-mismatch":
        token = jwt.encode(forged(runtime, domain="other.org"), key, algorithm="HS256")
    elif attack == "admin-string":
        token = jwt.encode(forged(runtime, admin="yes"), key, algorithm="HS256")
    elif attack == "removed-user":
        await runtime.accounts.add_user("carol@example.com", PASSWORD)
        token = await token_for(api, "carol@example.com")
        await runtime.accounts.remove_user("carol@example.com")
    if attack == "basic-scheme":
        headers = {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="}
    elif attack == "no-header":
        headers = {}
    else:
        headers = bearer(token)
    resp = await api.get("/folders", headers=headers)
    assert resp.status == 401
    assert "error" in await resp.json()
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_key_is_private_and_survives_a_restart(api: TestClient, runtime) -> None:
    token = await token_for(api, "alice@example.com")
    path = runtime.config.data_dir / "keys" / "jwt.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    async with TestClient(TestServer(make_app(runtime))) as again:
        assert (await again.get("/folders", headers=bearer(token))).status == 200


@pytest.mark.parametrize("text", ["abcd", "not hex at all"])
async def test_a_key_file_that_holds_no_key_is_refused(runtime, text: str) -> None:
    from rmail.server.config import ConfigError
    from rmail.server.http.auth import TokenService
    path = runtime.config.data_dir / "keys" / "jwt.key"
    path.write_text(text)
    with pytest.raises(ConfigError, match="remove"):
        await TokenService(runtime.backend.directory.secret).load()
