"""Every outbound attempt is one rmail.queue log line in one shape (id, recipient, outcome,
reply) and moves rmail_outbound_attempts_total{outcome} on GET /metrics' registry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import AsyncIterator

import aiosmtplib
import pytest

from rmail.server.runtime import ServerRuntime
from tests.helpers.server import make_config

from .conftest import PASSWORD
from .sink import Sink, eventually, start_sink, stop_sink

MESSAGE = b"From: alice@example.com\r\nTo: dave@remote.example.org\r\nSubject: out\r\n\r\nhello\r\n"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = await start_sink()
    yield s
    await stop_sink(s)


def outbound(rt: ServerRuntime, outcome: str) -> float:
    value = rt.metrics.registry.get_sample_value("rmail_outbound_attempts_total", {"outcome": outcome})
    assert value is not None
    return value


async def test_each_attempt_is_logged_and_counted(tmp_path: Path, sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rmail.queue")
    cfg = make_config(tmp_path / "d", relay={"host": "127.0.0.1", "port": sink.port, "tls": "none"})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        rt.queue.schedule = (0,)      # retry at once
        # dave: 451 then 250 (deferred, delivered); then erin: 550 (bounced).
        sink.rcpt_replies = ["451 4.3.0 busy, try later"]
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=rt.port("submission")) as client:
            await client.login("alice@example.com", PASSWORD)
            await client.sendmail("alice@example.com", ["dave@remote.example.org"], MESSAGE)
        await eventually(lambda: outbound(rt, "deferred") == 1 and outbound(rt, "delivered") == 1)
        sink.rcpt_replies = ["550 5.1.1 no such user"]
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=rt.port("submission")) as client:
            await client.login("alice@example.com", PASSWORD)
            await client.sendmail("alice@example.com", ["erin@remote.example.org"], MESSAGE)
        await eventually(lambda: outbound(rt, "delivered") == 1 and outbound(rt, "bounced") == 1)
        assert outbound(rt, "deferred") == 1
    lines = [r for r in caplog.records if r.name == "rmail.queue" and r.getMessage().startswith("queue: id=")]
    by_outcome = {r.outcome: r for r in lines}          # type: ignore[attr-defined]
    assert sorted(r.outcome for r in lines) == ["bounced", "deferred", "delivered"]  # type: ignore[attr-defined]
    assert by_outcome["deferred"].recipient == by_outcome["delivered"].recipient == "dave@remote.example.org"
    assert by_outcome["deferred"].queue_id == by_outcome["delivered"].queue_id
    assert by_outcome["bounced"].recipient == "erin@remote.example.org"
    assert by_outcome["deferred"].reply.startswith("4.3.0 451 4.3.0 busy")
    assert by_outcome["bounced"].reply.startswith("5.1.1 550 5.1.1 no such user")
    for r in lines:
        text = r.getMessage()
        assert f"id={r.queue_id} " in text and f"to=<{r.recipient}>" in text  # type: ignore[attr-defined]
        assert f"outcome={r.outcome} reply={r.reply}" in text                  # type: ignore[attr-defined]
