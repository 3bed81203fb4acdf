"""GET /metrics and /healthz on a live server: numbers move with real traffic, access by address."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import aiosmtplib
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rmail.server.config import ConfigError
from rmail.server.http.ops import allowed
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config

MESSAGE = b"From: carol@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello\r\n"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels); parsing fails on malformed text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with session.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return samples(await resp.text())


async def test_metrics_move_with_smtp_traffic_and_healthz_is_ok(tmp_path: Path) -> None:
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        base = f"http://127.0.0.1:{rt.port('api')}"
        async with aiohttp.ClientSession() as session:
            before = await scrape(session, base)
            assert before[("rmail_messages_received_total", (("protocol", "smtp"),))] == 0
            for _ in range(2):
                await aiosmtplib.send(MESSAGE, sender="carol@example.org", recipients=["alice@example.com"],
                                      hostname="127.0.0.1", port=rt.port("smtp"))
            wrong = {"username": "alice@example.com", "password": "wrong"}
            async with session.post(f"{base}/auth/login", json=wrong) as r:
                assert r.status == 401
            # Counters are fed by the runtime's event watcher: give it its turn.
            for _ in range(50):
                after = await scrape(session, base)
                if after[("rmail_auth_failures_total", (("protocol", "api"),))] >= 1 and \
                        after[("rmail_messages_received_total", (("protocol", "smtp"),))] >= 2:
                    break
            assert after[("rmail_messages_received_total", (("protocol", "smtp"),))] == 2
            assert after[("rmail_messages_delivered_local_total", ())] == 2
            assert after[("rmail_messages_queued_remote_total", ())] == 0
            assert after[("rmail_auth_failures_total", (("protocol", "api"),))] == 1
            assert after[("rmail_outbound_attempts_total", (("outcome", "bounced"),))] == 0
            # Each delivery is at least one durable commit, timed by the writer.
            commits = ("rmail_store_commit_seconds_count", ())
            assert after[commits] >= before[commits] + 2
            assert after[("rmail_queue_entries", ())] == 0
            assert after[("rmail_queue_oldest_age_seconds", ())] == 0
            # This very scrape's connection is open.
            assert after[("rmail_sessions_open", (("protocol", "api"),))] >= 1
            assert after[("rmail_storage_free_bytes", ())] > 0
            assert after[("rmail_storage_reserve_bytes", ())] == rt.config.limits.min_free_space

            async with session.get(f"{base}/healthz") as resp:
                body = await resp.json()
                assert resp.status == 200 and body["status"] == "ok"
                assert any(li.startswith("smtp ") for li in body["listeners"])

            # A queued remote recipient shows up as queue depth with an age.
            await rt.delivery.deliver("alice@example.com", ["dave@remote.test"], MESSAGE, may_relay=True,
                                      protocol="api")
            for _ in range(50):
                queued = await scrape(session, base)
                if queued[("rmail_messages_queued_remote_total", ())] == 1:
                    break
            assert queued[("rmail_messages_queued_remote_total", ())] == 1
            assert queued[("rmail_messages_received_total", (("protocol", "api"),))] == 1
            assert queued[("rmail_queue_entries", ())] == 1
            assert queued[("rmail_queue_oldest_age_seconds", ())] >= 0


async def test_healthz_is_503_once_stopping(runtime: ServerRuntime) -> None:
    async with aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{runtime.port('api')}"
        runtime.stopping = True
        try:
            async with session.get(f"{base}/healthz") as resp:
                body = await resp.json()
                assert resp.status == 503 and body["status"] == "unavailable" and body["error"]
        finally:
            runtime.stopping = False


async def test_metrics_refused_outside_metrics_from(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", api={"metrics_from": ["127.0.0.1/32"]})
    async with ServerRuntime(config, auth_delay=0) as rt:
        base = f"http://127.0.0.1:{rt.port('api')}"
        other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=other) as session:
            for path in ("/metrics", "/healthz"):
                async with session.get(base + path) as resp:
                    assert resp.status == 403
                    assert "metrics_from" in (await resp.json())["error"]
        async with aiohttp.ClientSession() as session:   # 127.0.0.1 itself is allowed
            assert (await scrape(session, base))[("rmail_queue_entries", ())] == 0


def test_allowed_networks() -> None:
    loopback = ("127.0.0.1/8", "::1")
    assert allowed("127.0.0.1", loopback) and allowed("127.9.0.1", loopback) and allowed("::1", loopback)
    assert allowed("::ffff:127.0.0.1", loopback)          # IPv4 client on a dual-stack socket
    assert not allowed("10.0.0.1", loopback) and not allowed("::2", loopback)
    assert not allowed(None, loopback) and not allowed("garbage", loopback)
    assert allowed("10.0.0.7", ("10.0.0.0/24",)) and not allowed("10.0.1.7", ("10.0.0.0/24",))


@pytest.mark.parametrize("section,key,value", [
    ("api", "metrics_from", ["10.0.0.0/33"]), ("api", "metrics_from", "127.0.0.1"),
    ("log", "format", "xml"), ("log", "file", ""),
])
def test_bad_ops_config_names_the_key(tmp_path: Path, section: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^{section}.{key}: "):
        make_config(tmp_path / "data", **{section: {key: value}})
