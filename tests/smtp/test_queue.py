"""The outbound queue against a sink SMTP server on loopback: retry on 4xx, bounce on 5xx,
delayed notice and expiry with an injected clock, smarthost STARTTLS and credentials."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from pathlib import Path
from typing import AsyncIterator

import aiosmtplib
import pytest

from rmail.server.config import RelayConfig
from rmail.server.core.queue import AttemptResult, OutboundQueue, Outcome, build_dsn, retry_delay
from rmail.server.runtime import ServerRuntime
from rmail.server.smtp.outbound import SMTPTransport
from tests.helpers.server import make_config

from .conftest import PASSWORD, inbox, strip_received
from .sink import Sink, eventually, start_sink, stop_sink

MESSAGE = b"From: alice@example.com\r\nTo: dave@remote.example.org\r\nSubject: out\r\n\r\nhello\r\n"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = await start_sink()
    yield s
    await stop_sink(s)


@pytest.fixture
async def relay_runtime(tmp_path: Path, sink: Sink) -> AsyncIterator[ServerRuntime]:
    cfg = make_config(tmp_path / "d", relay={"host": "127.0.0.1", "port": sink.port, "tls": "none"})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        rt.queue.schedule = (0,)      # retry at once: the backoff is injectable
        yield rt


async def _submit(rt: ServerRuntime, rcpts: list[str], data: bytes = MESSAGE) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=rt.port("submission")) as client:
        await client.login("alice@example.com", PASSWORD)
        await client.sendmail("alice@example.com", rcpts, data)


async def test_4xx_then_250_retries_and_delivers(relay_runtime: ServerRuntime, sink: Sink) -> None:
    sink.rcpt_replies = ["451 4.3.0 busy, try later", "421 4.3.2 going down"]
    await _submit(relay_runtime, ["dave@remote.example.org"])
    await eventually(lambda: sink.messages)
    [got] = sink.messages
    assert sink.attempts == 3
    assert (got.sender, got.recipients) == ("alice@example.com", ["dave@remote.example.org"])
    assert strip_received(got.data) == MESSAGE
    await eventually(lambda: _empty(relay_runtime))
    assert await inbox(relay_runtime, "alice@example.com") == []   # no DSN for a success


async def _empty(rt: ServerRuntime) -> bool:
    return await rt.queue.list() == []


async def test_retry_is_recorded_between_attempts(relay_runtime: ServerRuntime, sink: Sink) -> None:
    relay_runtime.queue.schedule = (3600,)
    sink.rcpt_replies = ["450 4.2.1 mailbox busy"]
    await _submit(relay_runtime, ["dave@remote.example.org"])

    async def retried() -> bool:
        entries = await relay_runtime.queue.list()
        return bool(entries) and entries[0].attempts == 1
    await eventually(retried)
    [entry] = await relay_runtime.queue.list()
    assert entry.last_error.startswith("4.2.1 450 4.2.1 mailbox busy")
    assert (entry.next_attempt - entry.created).total_seconds() >= 3599
    await relay_runtime.queue.retry(entry.id)       # `queue retry`: due now
    await eventually(lambda: sink.messages)
    await eventually(lambda: _empty(relay_runtime))


async def test_5xx_bounces_with_dsn_into_sender_inbox(relay_runtime: ServerRuntime, sink: Sink) -> None:
    sink.rcpt_replies = ["550 5.1.1 no such user here"]
    await _submit(relay_runtime, ["dave@remote.example.org"])
    await eventually(lambda: _inbox_count(relay_runtime, 1))
    [dsn] = await inbox(relay_runtime, "alice@example.com")
    msg = email.message_from_bytes(dsn, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = dsn.split(b"message/delivery-status", 1)[1]
    for field in (b"Reporting-MTA: dns; mail.example.com", b"Final-Recipient: rfc822; dave@remote.example.org",
                  b"Action: failed", b"Status: 5.1.1", b"Remote-MTA: dns; 127.0.0.1",
                  b"Diagnostic-Code: smtp; 550 5.1.1 no such user here"):
        assert field in status, field
    assert b"Subject: out" in dsn.split(b"text/rfc822-headers", 1)[1]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert await relay_runtime.queue.list() == []
    await eventually(lambda: relay_runtime.counters.bounced == 1)
    assert sink.messages == []


async def _inbox_count(rt: ServerRuntime, n: int) -> bool:
    return len(await inbox(rt, "alice@example.com")) >= n


async def test_one_entry_per_remote_recipient(relay_runtime: ServerRuntime, sink: Sink) -> None:
    sink.rcpt_replies = ["550 5.1.1 unknown"]     # the first attempt fails, the other succeeds
    await _submit(relay_runtime, ["dave@remote.example.org", "erin@remote.example.org"])
    await eventually(lambda: sink.messages)
    await eventually(lambda: _inbox_count(relay_runtime, 1))
    await eventually(lambda: _empty(relay_runtime))
    assert len(sink.messages) == 1 and len(await inbox(relay_runtime, "alice@example.com")) == 1


# -- scheduler rules with an injected clock and transport ------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class ScriptedTransport:
    def __init__(self, *results: AttemptResult) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, str]] = []

    async def send(self, sender: str, recipient: str, data: bytes) -> AttemptResult:
        self.calls.append((sender, recipient))
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]

    async def close(self) -> None:
        pass


async def _calls(transport: ScriptedTransport, n: int) -> None:
    await eventually(lambda: len(transport.calls) >= n)
    await asyncio.sleep(0.05)   # let the attempt's bookkeeping commit


async def test_delayed_notice_then_expiry(runtime: ServerRuntime) -> None:
    clock = FakeClock()
    busy = AttemptResult.temporary("4.4.1", "connection refused", "mx.remote.example.org")
    transport = ScriptedTransport(busy)
    q = OutboundQueue(runtime.store, runtime.backend.queue, runtime.aliases, runtime.bus, transport, hostname="mail.example.com",
                      lifetime=1000, delay_notice=100, schedule=(60, 120), clock=clock)
    await q.start()
    try:
        await q.enqueue("alice@example.com", ["dave@remote.example.org"], MESSAGE)
        await _calls(transport, 1)
        [entry] = await q.list()
        assert entry.attempts == 1 and (entry.next_attempt.timestamp() - clock.now) == 60
        clock.now += 60
        q.wake()
        await _calls(transport, 2)
        [entry] = await q.list()
        assert entry.attempts == 2 and entry.next_attempt.timestamp() == clock.now + 120  # schedule's last step
        assert await inbox(runtime, "alice@example.com") == []
        clock.now += 120                   # 180 s old: past delay_notice
        q.wake()
        await _calls(transport, 3)
        [entry] = await q.list()
        assert entry.delayed_notified
        [notice] = await inbox(runtime, "alice@example.com")
        assert b"Action: delayed" in notice and b"Will-Retry-Until:" in notice and b"Status: 4.4.1" in notice
        clock.now += 120
        q.wake()
        await _calls(transport, 4)
        assert len(await inbox(runtime, "alice@example.com")) == 1      # the notice is sent once
        clock.now += 1000                  # past the lifetime: bounce as expired
        q.wake()
        await _calls(transport, 5)
        await eventually(lambda: _inbox_count(runtime, 2))
        assert await q.list() == []
        bounce = (await inbox(runtime, "alice@example.com"))[1]
        assert b"Action: failed" in bounce and b"Status: 4.4.7" in bounce
    finally:
        await q.stop()


async def test_no_dsn_for_null_or_remote_sender(runtime: ServerRuntime) -> None:
    transport = ScriptedTransport(AttemptResult.permanent("5.1.1", "550 unknown"))
    q = OutboundQueue(runtime.store, runtime.backend.queue, runtime.aliases, runtime.bus, transport, hostname="mail.example.com")
    await q.start()
    try:
        await q.enqueue("", ["dave@remote.example.org"], MESSAGE)
        await q.enqueue("someone@remote.example.org", ["dave@remote.example.org"], MESSAGE)
        await _calls(transport, 2)
        await eventually(lambda: _queue_empty(q))
        assert await inbox(runtime, "alice@example.com") == []
        assert await inbox(runtime, "bob@example.com") == []
    finally:
        await q.stop()


async def _queue_empty(q: OutboundQueue) -> bool:
    return await q.list() == []


async def test_entries_survive_a_restart(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "d", relay={"host": "127.0.0.1", "port": 9, "tls": "none"})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        rt.queue.schedule = (3600,)
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await rt.delivery.deliver("alice@example.com", ["dave@remote.example.org"], MESSAGE, may_relay=True)
        await eventually(lambda: _attempted(rt))
    sink = await start_sink()
    try:
        cfg = make_config(tmp_path / "d", relay={"host": "127.0.0.1", "port": sink.port, "tls": "none"})
        async with ServerRuntime(cfg, auth_delay=0) as rt:
            [entry] = await rt.queue.list()
            assert entry.attempts == 1 and "cannot connect" in entry.last_error
            await rt.queue.retry(entry.id)
            await eventually(lambda: sink.messages)
            assert sink.messages[0].data == MESSAGE
    finally:
        await stop_sink(sink)


async def _attempted(rt: ServerRuntime) -> bool:
    entries = await rt.queue.list()
    return bool(entries) and entries[0].attempts == 1


def test_retry_delay_schedule() -> None:
    schedule = (60, 300, 900)
    assert [retry_delay(n, schedule) for n in (1, 2, 3, 4, 10)] == [60, 300, 900, 900, 900]


def test_dsn_for_internationalised_recipient_uses_utf8_type() -> None:
    from datetime import datetime, timezone
    from rmail.server.core.model import QueueEntry
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    entry = QueueEntry(1, "alice@example.com", "jörg@exämple.org", "0" * 32, 10, now, 1, now, "", False)
    dsn = build_dsn(hostname="mail.example.com", entry=entry, original=b"Subject: x\r\n\r\nbody",
                    result=AttemptResult.permanent("5.1.1", "550 no"), action="failed", now=now)
    assert "Final-Recipient: utf-8; jörg@exämple.org".encode() in dsn
    assert b"body" not in dsn.split(b"text/rfc822-headers")[1]   # headers only, never the body


# -- smarthost with STARTTLS and credentials -------------------------------------------------------

async def test_smarthost_starttls_with_credentials(tls_files, client_tls_context: ssl.SSLContext) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*map(str, tls_files))
    sink = await start_sink(tls=server_ctx, auth=True)
    try:
        relay = RelayConfig(host="localhost", port=sink.port, tls="starttls", username="relayuser",
                            password="relaypass")
        transport = SMTPTransport(relay, "mail.example.com", tls_context=client_tls_context, timeout=10)
        try:
            result = await transport.send("alice@example.com", "dave@remote.example.org", b"Subject: x\r\n\r\nhi\n")
            assert result.outcome is Outcome.DELIVERED, result
            [got] = sink.messages
            assert got.tls and got.login == b"relayuser"
            assert got.data == b"Subject: x\r\n\r\nhi\r\n"     # bare LF normalised before relaying
            # An untrusted certificate is a temporary failure, never a cleartext fallback with the password.
            strict = SMTPTransport(relay, "mail.example.com", timeout=10)
            failed = await strict.send("alice@example.com", "dave@remote.example.org", b"Subject: x\r\n\r\nhi\r\n")
            assert failed.outcome is Outcome.TEMPORARY
            await strict.close()
        finally:
            await transport.close()
    finally:
        await stop_sink(sink)


async def test_no_password_over_cleartext(sink: Sink) -> None:
    relay = RelayConfig(host="127.0.0.1", port=sink.port, tls="starttls", username="relayuser", password="relaypass")
    transport = SMTPTransport(relay, "mail.example.com", timeout=10)
    try:
        result = await transport.send("alice@example.com", "dave@remote.example.org", MESSAGE)
        assert result.outcome is Outcome.TEMPORARY and result.status == "4.7.10"
        assert sink.messages == []
    finally:
        await transport.close()
