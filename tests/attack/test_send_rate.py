"""Sending rate per user ([limits] send_per_minute): REST /messages/send answers 429 with
Retry-After, SMTP (an authenticated MAIL FROM) 450 4.7.1; one limiter for both, so a user
cannot double its rate by using both; other users are not affected (issue 11)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from rmail.server.core.rates import RateLimiter
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config
from ..smtp.conftest import RawSession, inbox


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_one_per_interval() -> None:
    clock = Clock()
    rates = RateLimiter(6, clock=clock)        # 6 a minute: one every 10 s
    assert [rates.take("a") for _ in range(6)] == [0.0] * 6
    assert rates.take("a") == pytest.approx(10.0)
    assert rates.take("b") == 0.0              # keys are independent
    clock.now += 4
    assert rates.take("a") == pytest.approx(6.0)   # a refused attempt spends nothing
    clock.now += 6
    assert rates.take("a") == 0.0
    assert rates.take("a") == pytest.approx(10.0)
    clock.now += 3600                          # refills only up to the burst size
    assert [rates.take("a") for _ in range(7)].count(0.0) == 6


def test_zero_disables_and_the_table_is_bounded() -> None:
    assert all(RateLimiter(0).take("a") == 0.0 for _ in range(1000))
    clock = Clock()
    rates = RateLimiter(1, max_keys=100, clock=clock)
    rates.take("first")
    for n in range(1000):
        rates.take(n)
    assert len(rates) <= 100
    assert rates.take("first") == 0.0          # forgotten: it starts with a full bucket again


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[ServerRuntime]:
    async with ServerRuntime(make_config(tmp_path / "data", limits={"send_per_minute": 3}), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await rt.accounts.add_user("bob@example.com", PASSWORD)
        yield rt


async def login(http: aiohttp.ClientSession, base: str, user: str) -> dict[str, str]:
    async with http.post(f"{base}/auth/login", json={"username": user, "password": PASSWORD}) as resp:
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def smtp_session(rt: ServerRuntime, user: str) -> RawSession:
    s = await RawSession.open(rt.port("submission"))
    await s.cmd("EHLO client.example.net")
    auth = base64.b64encode(b"\0" + user.encode() + b"\0" + PASSWORD.encode()).decode()
    assert (await s.cmd(f"AUTH PLAIN {auth}"))[0].startswith("235 ")
    return s


async def test_rest_and_submission_share_one_rate(limited: ServerRuntime) -> None:
    base = f"http://127.0.0.1:{limited.port('api')}"
    send = {"to": ["bob@example.com"], "subject": "hi", "body": "hello"}
    async with aiohttp.ClientSession() as http:
        alice = await login(http, base, "alice@example.com")
        for _ in range(2):
            async with http.post(f"{base}/messages/send", json=send, headers=alice) as resp:
                assert resp.status == 202
        s = await smtp_session(limited, "alice@example.com")
        assert (await s.cmd("MAIL FROM:<alice@example.com>"))[0].startswith("250 ")   # the third
        assert (await s.cmd("RCPT TO:<bob@example.com>"))[0].startswith("250 ")
        assert (await s.cmd("DATA"))[0].startswith("354 ")
        await s.send(b"Subject: third\r\n\r\nvia SMTP\r\n.\r\n")
        assert (await s.reply())[0].startswith("250 ")
        refused = await s.cmd("MAIL FROM:<alice@example.com>")
        assert len(refused) == 1 and refused[0].startswith(
            "450 4.7.1 Sending rate exceeded for alice@example.com; try again in ")
        assert 1 <= int(refused[0].split(" in ")[1].split()[0]) <= 20
        async with http.post(f"{base}/messages/send", json=send, headers=alice) as resp:
            assert resp.status == 429
            assert 1 <= int(resp.headers["Retry-After"]) <= 20
            assert await resp.json() == {"error": "sending rate exceeded (3 messages a minute); try again later"}
        # Bob has his own budget, by either way.
        bob = await login(http, base, "bob@example.com")
        async with http.post(f"{base}/messages/send", json={**send, "to": ["alice@example.com"]},
                             headers=bob) as resp:
            assert resp.status == 202
        b = await smtp_session(limited, "bob@example.com")
        assert (await b.cmd("MAIL FROM:<bob@example.com>"))[0].startswith("250 ")
        await b.close()
        await s.close()
    assert len(await inbox(limited, "bob@example.com")) == 3


async def test_port_25_without_auth_is_not_counted(limited: ServerRuntime) -> None:
    """Inbound mail from other servers has no user to count: this limit is per user."""
    s = await RawSession.open(limited.port("smtp"))
    await s.cmd("EHLO mx.example.net")
    for _ in range(5):
        assert (await s.cmd("MAIL FROM:<someone@example.net>"))[0].startswith("250 ")
        assert (await s.cmd("RSET"))[0].startswith("250 ")
    await s.close()
