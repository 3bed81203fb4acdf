"""SIGKILL during load: every message that got 250 after DATA is in the store after restart,
exactly once and byte-identical apart from the Received header (SPEC Part 3)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiosmtplib

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import MailStore
from tests.helpers.stores import open_sqlite

from ..helpers.dns import shared_server
from .conftest import strip_received

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 6
KILL_AFTER_ACKS = 80


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _message(key: str) -> bytes:
    return (f"From: carol@example.net\r\nTo: alice@example.com\r\nSubject: load {key}\r\n"
            f"Message-ID: <{key}@load.test>\r\n\r\n.a line starting with a dot\r\n"
            f"body of {key}\r\n" + "padding line for a realistic size\r\n" * 50).encode()


async def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        assert proc.poll() is None, "the server exited during start-up"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("server did not start listening")


async def test_sigkill_loses_no_acknowledged_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{data}"\nbcrypt_rounds = 4\nhostname = "mail.example.com"\n'
                      f"[ports]\nsmtp = {port}\nsubmission = 0\nsmtps = 0\nimap = 0\nimaps = 0\napi = 0\n"
                      f'[dns]\nnameserver = "{shared_server().address}"\n')   # hermetic: no real DNS
    data.mkdir()
    store_backend = await open_sqlite(data)
    store = store_backend.mail
    await Accounts(store_backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "pw")
    await store_backend.close()

    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(config)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    acked: dict[str, bytes] = {}
    sent: dict[str, bytes] = {}
    enough = asyncio.Event()
    try:
        await _wait_listening(port, proc)

        async def client(n: int) -> None:
            i = 0
            try:
                async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as smtp:
                    while True:
                        key = f"c{n}m{i}"
                        i += 1
                        msg = _message(key)
                        sent[key] = msg
                        await smtp.sendmail("carol@example.net", ["alice@example.com"], msg)
                        acked[key] = msg      # only after the 250 reply to DATA
                        if len(acked) >= KILL_AFTER_ACKS:
                            enough.set()
            except (aiosmtplib.SMTPException, OSError):
                return   # the server died under us

        tasks = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        await asyncio.wait_for(enough.wait(), 60)
        os.kill(proc.pid, signal.SIGKILL)        # mid-load: other transactions are in flight
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL

    store_backend = await open_sqlite(data, recover=True)
    store = store_backend.mail
    try:
        account = await Accounts(store_backend.directory, bcrypt_rounds=4).get_user("alice@example.com")
        box = await store.get_mailbox(account.id, "INBOX")
        stored: dict[str, list[bytes]] = {}
        for meta in await store.list_messages(box.id):
            raw = await store.read_message(meta.blob_id)
            key = re.search(rb"Message-ID: <(\w+)@load\.test>", raw).group(1).decode()
            stored.setdefault(key, []).append(raw)
    finally:
        await store_backend.close()
    assert len(acked) >= KILL_AFTER_ACKS
    for key, msg in acked.items():
        copies = stored.get(key, [])
        assert len(copies) == 1, f"{key}: acknowledged, found {len(copies)} times"
        assert strip_received(copies[0]) == msg
    for key, copies in stored.items():   # unacknowledged ones may or may not be there, never twice
        assert len(copies) == 1 and strip_received(copies[0]) == sent[key]
