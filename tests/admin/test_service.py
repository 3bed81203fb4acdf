"""AdminService on a live runtime: the console's metrics are the /metrics numbers, and the
operations answer with core errors the forms can show."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosmtplib
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rmail.server.admin.service import AdminService
from rmail.server.core.errors import NotFound, TemporaryFailure
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config

MESSAGE = b"From: carol@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello\r\n"


def by_sample(text: str) -> dict[tuple[str, str], float]:
    """Scrape samples by (name, the one label value or "")."""
    return {(s.name, next(iter(s.labels.values()), "")): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if not s.name.endswith("_bucket")}


async def test_the_summary_has_the_numbers_metrics_serves(runtime: ServerRuntime) -> None:
    for _ in range(3):
        await aiosmtplib.send(MESSAGE, sender="carol@example.org", recipients=["alice@example.com"],
                              hostname="127.0.0.1", port=runtime.port("smtp"))
    with pytest.raises(Exception):  # noqa: B017 - any refusal; the failed login is what counts
        await aiosmtplib.send(MESSAGE, sender="alice@example.com", recipients=["alice@example.com"],
                              hostname="127.0.0.1", port=runtime.port("submission"),
                              username="alice@example.com", password="wrong")
    service = AdminService(runtime)
    for _ in range(100):
        summary = await service.metrics()
        if summary.received.get("smtp") == 3 and summary.auth_failures["submission"] >= 1:
            break
        await asyncio.sleep(0.02)
    scraped = by_sample((await runtime.metrics.render()).decode())
    assert summary.received == {p: int(v) for (n, p), v in scraped.items() if n == "rmail_messages_received_total"}
    assert summary.received["smtp"] == 3
    assert summary.delivered_local == scraped[("rmail_messages_delivered_local_total", "")] == 3
    assert summary.queued_remote == 0
    assert summary.outbound == {"bounced": 0, "deferred": 0, "delivered": 0}
    assert summary.auth_failures == {p: int(v) for (n, p), v in scraped.items() if n == "rmail_auth_failures_total"}
    assert summary.auth_failures["submission"] >= 1          # one per mechanism the client tried
    assert summary.sessions == {p: int(v) for (n, p), v in scraped.items() if n == "rmail_sessions_open"}
    assert (summary.queue_entries, summary.queue_oldest_age) == (0, 0.0)
    assert summary.commits >= 3 and summary.commits == scraped[("rmail_store_commit_seconds_count", "")]
    assert summary.commit_seconds == pytest.approx(scraped[("rmail_store_commit_seconds_sum", "")])
    # Every commit of a test store takes well under a second: the median's bucket is finite.
    assert summary.commit_quantile(0.5) is not None and summary.commit_quantile(0.5) <= 1.0
    assert summary.commit_buckets[-1][1] <= summary.commits


async def test_queue_depth_and_age_come_from_the_store(tmp_path: Path) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    config = make_config(tmp_path / "data", relay={"host": "127.0.0.1", "port": dead, "tls": "none"})
    async with ServerRuntime(config, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        service = AdminService(rt)
        [entry] = await rt.delivery.outbound.enqueue("alice@example.com", ["x@example.net"],
                                                     b"Subject: queued\r\n\r\nhi\r\n")
        await asyncio.sleep(1.1)
        summary = await service.metrics()
        assert summary.queue_entries == 1 and summary.queue_oldest_age >= 1.0
        [view] = await service.queue()
        assert (view.id, view.recipient) == (entry, "x@example.net")
        assert "Subject: queued" in await service.queue_message_head(entry)
        await service.queue_delete(entry)
        assert await service.queue_entry(entry) is None
        with pytest.raises(NotFound):
            await service.queue_message_head(entry)


async def test_queue_actions_without_smtp_say_why(tmp_path: Path) -> None:
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=()) as rt:
        with pytest.raises(TemporaryFailure, match="outbound queue is not running"):
            await AdminService(rt).queue_retry(1)


async def test_resolve_and_dns_records(runtime: ServerRuntime) -> None:
    service = AdminService(runtime)
    await service.add_alias("example.com", "sales-.*", "alice")
    routed = await service.resolve("sales-eu@example.com")
    assert routed.delivered and "alias rule #1 'sales-.*' → alice@example.com" in routed.text
    refused = await service.resolve("nobody@example.com")
    assert not refused.delivered and "refused" in refused.text
    assert "_dmarc.example.com." in await service.dns_records("example.com")
