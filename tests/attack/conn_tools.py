"""Tools for the connection-level attack tests: many raw sockets from chosen loopback source
addresses, a `run.py serve` subprocess whose memory can be read, and small protocol clients
that return exactly what the server sent."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import PASSWORD
from tests.helpers.server import dns_toml, free_ports

ROOT = Path(__file__).resolve().parents[2]
#: 21 attacker addresses, as in issue 11 (127.0.0.1 stays the real user's).
ATTACKERS = [f"127.0.0.{i}" for i in range(2, 23)]


def raise_nofile(need: int) -> None:
    """Raise this process's soft open-file limit to ``need`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else min(need, hard), hard))


async def connect_from(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to 127.0.0.1:``port`` whose client side is bound to ``source``."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def read_line(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    return await asyncio.wait_for(reader.readline(), timeout)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def imap_login(port: int, user: str = "alice@example.com", *, source: str = "127.0.0.1",
                     select: bool = False) -> list[bytes]:
    """Greeting, LOGIN (and SELECT INBOX), LOGOUT; returns the tagged replies."""
    reader, writer = await connect_from(port, source)
    try:
        greeting = await read_line(reader)
        assert greeting.startswith(b"* OK"), greeting
        tagged = []
        commands = [b"a LOGIN " + user.encode() + b" " + PASSWORD.encode()]
        if select:
            commands.append(b"b SELECT INBOX")
        commands.append(b"c LOGOUT")
        for command in commands:
            writer.write(command + b"\r\n")
            tag = command.split(b" ", 1)[0] + b" "
            while True:
                line = await read_line(reader, 30)
                if not line:
                    raise ConnectionError(f"closed after {tagged!r}")
                if line.startswith(tag):
                    tagged.append(line)
                    break
        return tagged
    finally:
        await close(writer)


async def smtp_reply(reader: asyncio.StreamReader, timeout: float = 10) -> str:
    """One SMTP reply, multi-line replies joined; '' when the server closed."""
    lines = []
    while True:
        line = await read_line(reader, timeout)
        if not line:
            return "\n".join(lines)
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(text)
        if len(text) < 4 or text[3] != "-":
            return "\n".join(lines)


async def smtp_auth(port: int, user: str = "alice@example.com", *, source: str = "127.0.0.1") -> list[str]:
    """Greeting, EHLO, AUTH PLAIN, QUIT on submission; returns the replies' first lines."""
    reader, writer = await connect_from(port, source)
    try:
        replies = [await smtp_reply(reader)]
        token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        for command in ("EHLO client.example.com", f"AUTH PLAIN {token}", "QUIT"):
            writer.write(command.encode() + b"\r\n")
            reply = await smtp_reply(reader, 30)
            replies.append(reply.splitlines()[-1] if reply else "")
        return replies
    finally:
        await close(writer)


async def http_request(port: int, method: str, path: str, body: Any = None, *, token: str | None = None,
                       source: str = "127.0.0.1") -> tuple[int, Any]:
    """One request on a new connection; (status, parsed JSON body)."""
    reader, writer = await connect_from(port, source)
    try:
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        writer.write(head.encode() + b"\r\n" + data)
        raw = await asyncio.wait_for(reader.read(), 30)
        status_line, _, rest = raw.partition(b"\r\n")
        payload = rest.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in rest else b""
        return int(status_line.split()[1]), json.loads(payload) if payload else None
    finally:
        await close(writer)


async def api_login(port: int, user: str = "alice@example.com", *, source: str = "127.0.0.1") -> int:
    """Log in over the API and list folders with the token; the folder request's status."""
    status, body = await http_request(port, "POST", "/auth/login", {"username": user, "password": PASSWORD},
                                      source=source)
    assert status == 200, (status, body)
    status, body = await http_request(port, "GET", "/folders", token=body["token"], source=source)
    return status


# -- a `run.py serve` subprocess -------------------------------------------------------------

PORT_NAMES = ("smtp", "submission", "smtps", "imap", "imaps", "api")


@dataclass
class ServeProcess:
    """`python run.py serve` on free ports with alice@ and bob@example.com."""

    proc: subprocess.Popen
    ports: dict[str, int]
    log: Path
    env: dict[str, str] = field(repr=False)

    @classmethod
    def start(cls, tmp: Path, *, limits: dict[str, int] | None = None, root: Path = ROOT,
              bcrypt_rounds: int = 4) -> ServeProcess:
        """``root``: the checkout whose `run.py` and `rmail` run (bench/conn_flood.py compares)."""
        ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        lines = [f'data_dir = "{tmp / "data"}"', f"bcrypt_rounds = {bcrypt_rounds}", 'hostname = "mail.example.com"',
                 'listen = ["127.0.0.1"]', "[ports]", *(f"{k} = {v}" for k, v in ports.items())]
        if limits:
            lines += ["[limits]", *(f"{k} = {v}" for k, v in limits.items())]
        config = tmp / "rmail.toml"
        config.write_text("\n".join(lines) + "\n" + dns_toml())
        env = {k: v for k, v in os.environ.items() if not k.startswith("RMAIL_")}
        env.update(RMAIL_CONFIG=str(config), PYTHONPATH=str(root))
        for user in ("alice@example.com", "bob@example.com"):
            subprocess.run([sys.executable, str(root / "run.py"), "user", "add", user, "--password", PASSWORD],
                           env=env, check=True, capture_output=True, timeout=60, cwd=tmp)
        log = tmp / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, str(root / "run.py"), "serve", "--log-level", "WARNING"],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        server = cls(proc, ports, log, env)
        server._wait_listening()
        return server

    def _wait_listening(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"run.py serve exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.ports["api"]), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("run.py serve did not start listening")

    def rss(self) -> int:
        """The server's resident memory in bytes (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
