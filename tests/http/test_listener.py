"""API connections go through the connection registry: shown like SMTP/IMAP sessions, capped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rmail.server.runtime import ServerRuntime

from ..helpers.server import make_config


async def http_get(port: int, path: str = "/openapi.json") -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return reader, writer, head + await reader.readexactly(length)


async def test_api_connections_are_registered_and_capped(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", limits={"connections_per_ip": 2})
    async with ServerRuntime(config, auth_delay=0) as rt:
        port = rt.port("api")
        first = await http_get(port)
        second = await http_get(port)
        assert first[2].startswith(b"HTTP/1.1 200") and second[2].startswith(b"HTTP/1.1 200")
        open_api = [c for c in rt.connections.snapshot() if c.protocol == "api"]
        assert len(open_api) == 2 and all(c.port == port and c.bytes_in > 0 for c in open_api)
        # A third keep-alive connection from the same address is over the cap: JSON 503, closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await reader.read()
        assert refused.startswith(b"HTTP/1.1 503")
        assert "error" in json.loads(refused.split(b"\r\n\r\n", 1)[1])
        writer.close()
        for _, w, _ in (first, second):
            w.close()
        for _ in range(100):
            if not any(c.protocol == "api" for c in rt.connections.snapshot()):
                break
            await asyncio.sleep(0.01)
        assert not any(c.protocol == "api" for c in rt.connections.snapshot())
        # The console can drop an API connection like any other.
        _, writer, _ = await http_get(port)
        [info] = [c for c in rt.connections.snapshot() if c.protocol == "api"]
        assert rt.connections.disconnect(info.id)
        writer.close()
