"""The admin socket on a live runtime, spoken to with raw lines: its mode, who may connect, and
what a misbehaving console costs (its own connection, never the server's service)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from rmail.server.admin import listener, socket_path
from rmail.server.admin.listener import AdminServer, bind_socket, coalesce
from rmail.server.admin.peer import PeerCredentials, peer_credentials, refusal
from rmail.server.core.events import (AccountsChanged, ConnectionOpened, ConnectionUpdated, LogRecord,
                                      MessageReceived)
from rmail.server.runtime import ServerRuntime

from ..helpers.server import make_config

ADMIN_ONLY = ("rmail.server.admin",)


class RawConsole:
    """A console speaking the protocol by hand, line by line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ids = 0

    @classmethod
    async def connect(cls, path: Path) -> tuple[RawConsole, dict[str, Any]]:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 24)
        console = cls(reader, writer)
        return console, await console.line()

    async def line(self, timeout: float = 5) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        if not raw:
            raise EOFError
        return json.loads(raw)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one request and return its answer (events read meanwhile are skipped)."""
        self.ids += 1
        self.send_raw(json.dumps({"v": 1, "id": self.ids, "op": op, "args": args}).encode() + b"\n")
        while True:
            message = await self.line()
            if message.get("id") == self.ids:
                return message

    async def closed(self, timeout: float = 5) -> bool:
        """True once the server has closed the connection (lines before that are read)."""
        async with asyncio.timeout(timeout):
            while await self.reader.readline():
                pass
        return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[ServerRuntime]:
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=ADMIN_ONLY) as rt:
        await rt.accounts.add_user("alice@example.com", "pw")
        yield rt


@pytest.fixture
def lax_umask():  # noqa: ANN201
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def test_the_socket_is_0600_in_the_0700_data_dir_and_goes_at_stop(tmp_path: Path, lax_umask: None) -> None:
    data = tmp_path / "data"
    async with ServerRuntime(make_config(data), auth_delay=0, services=ADMIN_ONLY) as rt:
        path = socket_path(data)
        assert rt.admin is not None and rt.admin.path == path
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert mode(path) == 0o600
        assert mode(data) == 0o700
    assert not path.exists()


def test_bind_makes_the_socket_0600_whatever_the_umask(tmp_path: Path, lax_umask: None) -> None:
    path = tmp_path / "x.sock"
    sock = bind_socket(path)
    try:
        assert mode(path) == 0o600
    finally:
        sock.close()
    # A socket left behind (a server that died) is replaced; the lock says nobody owns it.
    sock = bind_socket(path)
    sock.close()


def test_bind_leaves_a_file_that_is_not_a_socket_alone(tmp_path: Path) -> None:
    path = tmp_path / "rmail.sock"
    path.write_text("mine")
    with pytest.raises(FileExistsError):
        bind_socket(path)
    assert path.read_text() == "mine"


async def test_without_a_socket_the_server_still_serves(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "rmail.sock").write_text("in the way")
    async with ServerRuntime(make_config(data), auth_delay=0, services=ADMIN_ONLY) as rt:
        assert rt.admin is None
        await rt.accounts.add_user("a@example.com", "pw")
    assert "cannot attach" in caplog.text


def test_peer_credentials_are_the_kernels() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        creds = peer_credentials(a)
    assert creds == PeerCredentials(os.getpid(), os.geteuid(), os.getegid())
    assert refusal(creds) is None


@pytest.mark.parametrize(("peer_uid", "server_uid", "refused"), [
    (1000, 1000, False), (0, 998, True), (1001, 1000, True), (998, 0, True),
])
def test_only_the_servers_own_uid_may_attach(peer_uid: int, server_uid: int, refused: bool) -> None:
    why = refusal(PeerCredentials(123, peer_uid, peer_uid), server_uid)
    assert (why is not None) == refused
    if why:
        assert f"uid {peer_uid} may not use" in why and f"uid {server_uid}" in why


CONNECT_AS = """
import os, socket, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(type(exc).__name__); sys.exit()
data = b""
while not data.endswith(b"\\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode().strip())
print("EOF" if s.recv(4096) == b"" else "OPEN")
"""


def connect_as_nobody(path: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CONNECT_AS, str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
async def test_another_uid_is_refused_by_so_peercred(admin: ServerRuntime) -> None:
    """Even with the file modes out of the way (a socket made 0666 in a 0755 directory), the
    kernel's record of who connected decides: uid 65534 gets a refusal and a closed socket."""
    here = Path(tempfile.mkdtemp(prefix="rmail-peer-"))
    try:
        here.chmod(0o755)
        server = AdminServer(admin)
        await server.start(here / "open.sock")
        (here / "open.sock").chmod(0o666)
        try:
            first, closed = await asyncio.to_thread(connect_as_nobody, here / "open.sock")
            refused = json.loads(first)
            assert refused["v"] == 1 and "uid 65534 may not use" in refused["refused"]
            assert closed == "EOF"
            console, hello = await RawConsole.connect(here / "open.sock")    # root is the server's uid
            assert "hello" in hello
            console.close()
        finally:
            await server.close()
    finally:
        for p in here.iterdir():
            p.unlink()
        here.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
async def test_another_uid_cannot_even_reach_the_real_socket(admin: ServerRuntime) -> None:
    assert await asyncio.to_thread(connect_as_nobody, socket_path(admin.config.data_dir)) == ["PermissionError"]


async def test_requests_are_answered_by_id(admin: ServerRuntime) -> None:
    console, hello = await RawConsole.connect(socket_path(admin.config.data_dir))
    try:
        assert hello["hello"]["versions"] == [1]
        assert hello["hello"]["info"]["pid"] == os.getpid()
        assert (await console.request("users.add", address="bob@example.com", password="pw"))["ok"]["local"] == "bob"
        assert await admin.accounts.find_user("bob@example.com") is not None
        failed = await console.request("users.add", address="bob@example.com", password="pw")
        assert failed["error"] == {"type": "AlreadyExists", "message": "user bob@example.com already exists"}
        assert [u["address"] for u in (await console.request("users.list"))["ok"]] == \
            ["alice@example.com", "bob@example.com"]
        # UnknownUser is an AuthenticationFailed the console knows by that name.
        assert (await console.request("users.get", address="nobody@example.com"))["error"]["type"] == "NotFound"
    finally:
        console.close()


async def test_bad_lines_get_errors_and_the_connection_stays(admin: ServerRuntime) -> None:
    console, _ = await RawConsole.connect(socket_path(admin.config.data_dir))
    try:
        console.send_raw(b"garbage\n")
        assert (await console.line())["error"]["type"] == "BadRequest"
        console.send_raw(b'{"v": 9, "id": 5, "op": "status"}\n')
        assert await console.line() == {"v": 1, "id": 5, "error": {
            "type": "UnsupportedVersion", "message": "admin protocol version 9 is not supported (this side speaks 1)"}}
        assert (await console.request("format.disk"))["error"]["type"] == "UnknownOperation"
        assert (await console.request("users.get", address=["x"]))["error"]["type"] == "InvalidInput"
        assert (await console.request("status"))["ok"]["hostname"] == "mail.example.com"
    finally:
        console.close()


async def test_an_oversize_line_closes_only_that_console(admin: ServerRuntime) -> None:
    path = socket_path(admin.config.data_dir)
    bad, _ = await RawConsole.connect(path)
    good, _ = await RawConsole.connect(path)
    try:
        bad.send_raw(b'{"v":1,"id":1,"op":"users.get","args":{"address":"' + b"a" * 70000)
        error = await bad.line()
        assert error["id"] is None and "longer than 65536 bytes" in error["error"]["message"]
        assert await bad.closed()
        assert (await good.request("users.list"))["ok"][0]["address"] == "alice@example.com"
    finally:
        bad.close()
        good.close()


async def test_a_request_that_fails_inside_answers_and_the_server_goes_on(
        admin: ServerRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from rmail.server.admin.service import AdminService

    async def broken(self: AdminService) -> list[str]:
        raise RuntimeError("a bug")
    monkeypatch.setattr(AdminService, "domains", broken)
    console, _ = await RawConsole.connect(socket_path(admin.config.data_dir))
    try:
        answer = await console.request("domains.list")
        assert answer["error"] == {"type": "InternalError", "message": "domains.list failed; the server log has the details"}
        assert "a bug" in caplog.text
        assert (await console.request("users.any"))["ok"] is True
    finally:
        console.close()


async def test_requests_over_the_rate_are_refused_not_run(admin: ServerRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener, "REQUESTS_PER_MINUTE", 5)
    console, _ = await RawConsole.connect(socket_path(admin.config.data_dir))
    try:
        for _ in range(5):
            assert "ok" in await console.request("status")
        refused = await console.request("users.add", address="eve@example.com", password="pw")
        assert refused["error"]["type"] == "RateLimited"
        assert await admin.accounts.find_user("eve@example.com") is None
    finally:
        console.close()


async def test_too_many_consoles_are_refused(admin: ServerRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener, "MAX_CONSOLES", 2)
    path = socket_path(admin.config.data_dir)
    consoles = [await RawConsole.connect(path) for _ in range(2)]
    extra, refused = await RawConsole.connect(path)
    try:
        assert refused == {"v": 1, "refused": "too many consoles attached (at most 2)"}
        assert await extra.closed()
    finally:
        for console, _ in consoles:
            console.close()
        extra.close()


async def test_events_flow_after_subscribe_and_a_console_that_lags_is_told_to_resync(
        admin: ServerRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener, "EVENT_QUEUE", 10)
    console, _ = await RawConsole.connect(socket_path(admin.config.data_dir))
    try:
        assert (await console.request("subscribe"))["ok"] is None
        admin.bus.publish(AccountsChanged())
        assert await console.line() == {"v": 1, "event": "AccountsChanged", "data": {}}
        # More events than the console's queue holds, between two sends: the oldest go.
        for i in range(50):
            admin.bus.publish(LogRecord("INFO", "rmail.test", f"line {i}", 1.0))
        seen = [await console.line() for _ in range(11)]
        assert seen[0] == {"v": 1, "resync": True}
        assert [m["data"]["message"] for m in seen[1:]] == [f"line {i}" for i in range(40, 50)]
    finally:
        console.close()


async def test_the_log_reaches_an_attached_console_once(admin: ServerRuntime) -> None:
    import logging
    path = socket_path(admin.config.data_dir)
    a, _ = await RawConsole.connect(path)
    b, _ = await RawConsole.connect(path)
    try:
        for console in (a, b):
            await console.request("subscribe")
        logging.getLogger("rmail.test").warning("something to see")
        for console in (a, b):
            messages = []
            while not any("something to see" in m for m in messages):
                line = await console.line()
                if line.get("event") == "LogRecord":
                    messages.append(line["data"]["message"])
            assert messages.count("something to see") == 1
    finally:
        a.close()
        b.close()
    # Once no console watches, the server's log no longer goes to the bus.
    await asyncio.sleep(0.3)
    assert admin._log_forwarders == 0  # noqa: SLF001


async def test_a_console_that_never_reads_is_disconnected(admin: ServerRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener, "WRITE_TIMEOUT", 0.5)
    path = socket_path(admin.config.data_dir)
    # A plain socket that is never read from (asyncio's reader would read ahead into memory).
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setblocking(False)
    await asyncio.get_running_loop().sock_connect(stuck, str(path))
    stuck.send(b'{"v":1,"id":1,"op":"subscribe"}\n')
    await asyncio.sleep(0.2)
    assert admin.admin is not None and len(admin.admin.sessions) == 1
    big = "x" * 3000
    for _ in range(30):                         # ~ 3 MB of log lines it never reads
        for i in range(100):
            admin.bus.publish(LogRecord("INFO", "rmail.test", big, float(i)))
        await asyncio.sleep(0.05)
    async with asyncio.timeout(10):
        while admin.admin.sessions:
            await asyncio.sleep(0.05)
    good, _ = await RawConsole.connect(path)
    try:
        assert "ok" in await good.request("status")
    finally:
        good.close()
        stuck.close()


async def test_consoles_are_told_goodbye_when_the_server_stops(tmp_path: Path) -> None:
    rt = ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=ADMIN_ONLY)
    await rt.start()
    try:
        console, _ = await RawConsole.connect(socket_path(rt.config.data_dir))
        await console.request("subscribe")
    finally:
        await rt.stop()
    lines = []
    while True:
        try:
            lines.append(await console.line())
        except EOFError:
            break
    assert {"v": 1, "bye": "the server is shutting down"} in lines


def test_coalesce_keeps_what_the_log_pane_shows_and_one_hint_per_kind() -> None:
    long = "y" * 10000
    batch = [ConnectionOpened(1, "smtp", 25, "192.0.2.1", False), ConnectionUpdated(1, "DATA", None, False, 1, 2),
             ConnectionUpdated(1, "DATA", None, False, 3, 4), LogRecord("INFO", "rmail", long, 1.0),
             MessageReceived("smtp", "a@b", 1, 0, 10), MessageReceived("smtp", "c@d", 1, 0, 10),
             ConnectionUpdated(1, "QUIT", None, False, 5, 6), AccountsChanged(), AccountsChanged()]
    out = coalesce(batch)
    assert [type(e).__name__ for e in out] == ["ConnectionOpened", "ConnectionUpdated", "LogRecord",
                                               "MessageReceived", "MessageReceived", "AccountsChanged"]
    record = out[2]
    assert isinstance(record, LogRecord) and len(record.message) == listener.MAX_LOG_MESSAGE + 1
