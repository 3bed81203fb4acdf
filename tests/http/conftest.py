"""Fixtures for the REST API tests: the app on aiohttp's test client, tokens, sample mail."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rmail.server.http import make_app
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD

SAMPLE = (b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
          b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello Alice\r\n")


def sample(n: int) -> bytes:
    return SAMPLE.replace(b"Hello Alice", b"Message number %d" % n).replace(b"<m1@", b"<m%d@" % n)


@pytest.fixture
async def api(runtime: ServerRuntime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(runtime))) as client:
        yield client


async def token_for(client: TestClient, username: str, password: str = PASSWORD) -> str:
    resp = await client.post("/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def alice(api: TestClient) -> dict[str, str]:
    """Authorization headers for alice@example.com (not an admin)."""
    return bearer(await token_for(api, "alice@example.com"))


@pytest.fixture
async def bob(api: TestClient) -> dict[str, str]:
    """Authorization headers for bob@example.com (an admin)."""
    return bearer(await token_for(api, "bob@example.com"))


async def inbox_id(rt: ServerRuntime, address: str, folder: str = "INBOX") -> int:
    account = await rt.accounts.get_user(address)
    return (await rt.store.get_mailbox(account.id, folder)).id


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "schemathesis: property-based run against /openapi.json")
