"""One login attempt per connection, as a guesser sends them: IMAP LOGIN or AUTHENTICATE PLAIN,
SMTP AUTH PLAIN on the submission port, REST POST /auth/login. Each can leave from any
127.0.0.0/8 source address (Linux routes all of it to loopback), so one test can play many
client addresses. Each returns the server's verdict as ``Outcome`` plus the raw reply.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import threading
from dataclasses import dataclass
from typing import Callable

import aiohttp

from rmail.server.runtime import ServerRuntime

TIMEOUT = 20


class Outcome(enum.Enum):
    OK = "ok"              #: logged in
    WRONG = "wrong"        #: the password was checked and refused
    LOCKED = "locked"      #: refused as locked, not checked


@dataclass(frozen=True, slots=True)
class Reply:
    outcome: Outcome
    text: str
    headers: dict[str, str] | None = None


async def _open(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), TIMEOUT)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        pass


async def _line(reader: asyncio.StreamReader) -> str:
    line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    if not line:
        raise ConnectionError("closed by the server")
    return line.decode("utf-8", "replace").rstrip("\r\n")


async def imap(port: int, user: str, password: str, *, source: str = "127.0.0.1", plain: bool = False) -> Reply:
    reader, writer = await _open(port, source)
    try:
        await _line(reader)                                     # greeting
        if plain:
            token = base64.b64encode(f"\0{user}\0{password}".encode("utf-8", "surrogateescape")).decode()
            writer.write(f"a AUTHENTICATE PLAIN {token}\r\n".encode())
        else:
            writer.write(f'a LOGIN "{user}" "{password}"\r\n'.encode())
        while True:
            line = await _line(reader)
            if line.startswith("a "):
                break
        writer.write(b"z LOGOUT\r\n")
    finally:
        await _close(writer)
    if line.startswith("a OK"):
        return Reply(Outcome.OK, line)
    if line.startswith("a NO [AUTHENTICATIONFAILED]"):
        return Reply(Outcome.WRONG, line)
    if line.startswith("a NO [UNAVAILABLE]"):
        return Reply(Outcome.LOCKED, line)
    raise AssertionError(f"unexpected IMAP reply {line!r}")


async def smtp(port: int, user: str, password: str, *, source: str = "127.0.0.1") -> Reply:
    reader, writer = await _open(port, source)
    try:
        async def reply() -> str:
            while True:
                line = await _line(reader)
                if len(line) < 4 or line[3] != "-":
                    return line
        await reply()                                           # 220 greeting
        writer.write(b"EHLO attacker.example\r\n")
        await reply()
        token = base64.b64encode(f"\0{user}\0{password}".encode("utf-8", "surrogateescape")).decode()
        writer.write(f"AUTH PLAIN {token}\r\n".encode())
        line = await reply()
        writer.write(b"QUIT\r\n")
    finally:
        await _close(writer)
    if line.startswith("235 "):
        return Reply(Outcome.OK, line)
    if line.startswith("535 5.7.8"):
        return Reply(Outcome.WRONG, line)
    if line.startswith("454 4.7.0"):
        return Reply(Outcome.LOCKED, line)
    raise AssertionError(f"unexpected SMTP reply {line!r}")


async def api(port: int, user: str, password: str, *, source: str = "127.0.0.1") -> Reply:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
        async with http.post(f"http://127.0.0.1:{port}/auth/login",
                             json={"username": user, "password": password}) as resp:
            body = await resp.json()
            headers = dict(resp.headers)
            status = resp.status
    text = f"{status} {json.dumps(body)}"
    if status == 200 and "token" in body:
        return Reply(Outcome.OK, text, headers)
    if status == 401 and "error" in body:
        return Reply(Outcome.WRONG, text, headers)
    if status == 429 and "error" in body:
        return Reply(Outcome.LOCKED, text, headers)
    raise AssertionError(f"unexpected API reply {text}")


PROTOCOLS = ("imap", "smtp", "api")


def attempt(rt: ServerRuntime, protocol: str) -> Callable[..., "asyncio.Future[Reply]"]:
    """``attempt(rt, "imap")(user, password, source=...)`` for the protocol's listener."""
    if protocol == "imap":
        port = rt.port("imap")
        return lambda user, password, **kw: imap(port, user, password, **kw)
    if protocol == "smtp":
        port = rt.port("submission")
        return lambda user, password, **kw: smtp(port, user, password, **kw)
    port = rt.port("api")
    return lambda user, password, **kw: api(port, user, password, **kw)


class CheckCounter:
    """Wraps ``Accounts.check_hash`` (the bcrypt call) to count checks and the most in flight
    at once. Calls run on worker threads, hence the lock."""

    def __init__(self, rt: ServerRuntime) -> None:
        self.real = rt.accounts.check_hash
        self.lock = threading.Lock()
        self.checked: list[bytes] = []
        self.running = 0
        self.peak = 0
        rt.accounts.check_hash = self._check  # type: ignore[method-assign]

    def _check(self, raw: bytes, hashed: bytes) -> bool:
        with self.lock:
            self.checked.append(raw)
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            # A check long enough that parallel ones overlap, as they do at bcrypt cost 12.
            threading.Event().wait(0.02)
            return self.real(raw, hashed)
        finally:
            with self.lock:
                self.running -= 1

    @property
    def count(self) -> int:
        return len(self.checked)
