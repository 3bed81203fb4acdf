"""Issue 11: inbound SMTP rates per client address on port 25 (connections and messages per
minute, Postfix anvil's two limits), and the token bucket behind them."""

from __future__ import annotations

import base64
from pathlib import Path

from rmail.server.core.rates import RateLimiter
from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.server import make_config

from .conn_tools import close, connect_from, smtp_reply


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_minute_then_the_average_rate() -> None:
    clock = Clock()
    rate = RateLimiter(6, clock=clock)
    assert [rate.allow("a") for _ in range(7)] == [True] * 6 + [False]
    assert rate.allow("b")                      # per key
    assert rate.retry_after("a") == 10.0        # one token every 60 / 6 s
    clock.now += 9.9
    assert not rate.allow("a")
    clock.now += 0.1
    assert rate.allow("a") and not rate.allow("a")
    clock.now += 3600                           # refilled, never beyond one minute's worth
    assert [rate.allow("a") for _ in range(7)] == [True] * 6 + [False]


def test_bucket_memory_is_bounded() -> None:
    clock = Clock()
    rate = RateLimiter(2, max_keys=100, clock=clock)
    for i in range(1000):
        rate.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(rate) <= 100
    # When full, keys whose bucket has refilled go first: an address over its rate stays so.
    rate = RateLimiter(1, max_keys=10, clock=clock)
    for i in range(9):
        rate.allow(f"k{i}")
    clock.now += 61
    assert rate.allow("busy")
    assert rate.allow("new")
    assert len(rate) == 2 and not rate.allow("busy")


async def _greeting(port: int, source: str) -> tuple[str, object]:
    reader, writer = await connect_from(port, source)
    return await smtp_reply(reader), (reader, writer)


async def test_port_25_connection_rate_per_address(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", limits={"smtp_connection_rate": 5})
    async with ServerRuntime(config, auth_delay=0) as rt:
        port = rt.port("smtp")
        opened = []
        for _ in range(5):
            greeting, conn = await _greeting(port, "127.0.0.2")
            assert greeting.startswith("220 "), greeting
            opened.append(conn)
        greeting, conn = await _greeting(port, "127.0.0.2")
        assert greeting == ("421 4.7.0 mail.example.com too many connections from your address; "
                            "try again later")
        reader, _ = conn
        assert await reader.read() == b""
        opened.append(conn)
        # Closing does not give the allowance back (it is a rate, not a count) ...
        for _, writer in opened:
            await close(writer)
        greeting, conn = await _greeting(port, "127.0.0.2")
        assert greeting.startswith("421 4.7.0")
        await close(conn[1])
        # ... other addresses have their own, and submission is not rate limited.
        for source, listener in (("127.0.0.3", "smtp"), ("127.0.0.2", "submission")):
            greeting, conn = await _greeting(rt.port(listener), source)
            assert greeting.startswith("220 "), (source, listener, greeting)
            await close(conn[1])


async def test_port_25_message_rate_per_address(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", limits={"smtp_message_rate": 3})
    async with ServerRuntime(config, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        reader, writer = await connect_from(rt.port("smtp"), "127.0.0.4")
        await smtp_reply(reader)
        writer.write(b"EHLO relay.example.net\r\n")
        await smtp_reply(reader)
        replies = []
        for _ in range(4):
            writer.write(b"MAIL FROM:<carol@example.net>\r\n")
            replies.append(await smtp_reply(reader))
            writer.write(b"RSET\r\n")
            await smtp_reply(reader)
        assert replies == ["250 2.1.0 Sender OK"] * 3 + ["450 4.7.1 Too much mail from your address; try again later"]
        # Once logged in, the sender is a user of ours and port 25's rate no longer applies.
        token = base64.b64encode(f"\0alice@example.com\0{PASSWORD}".encode()).decode()
        writer.write(f"AUTH PLAIN {token}\r\n".encode())
        assert (await smtp_reply(reader)).startswith("235")
        writer.write(b"MAIL FROM:<alice@example.com>\r\n")
        assert await smtp_reply(reader) == "250 2.1.0 Sender OK"
        await close(writer)
        # Another address still may.
        reader, writer = await connect_from(rt.port("smtp"), "127.0.0.5")
        await smtp_reply(reader)
        writer.write(b"EHLO other.example.net\r\nMAIL FROM:<dave@example.net>\r\n")
        await smtp_reply(reader)
        assert await smtp_reply(reader) == "250 2.1.0 Sender OK"
        await close(writer)
