"""SIGKILL of one node under load on PostgreSQL: nothing it acknowledged (SMTP 250) is lost,
each message is stored once, and the other node keeps serving throughout (issue 13)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiosmtplib

from rmail.server.core.storage import StoreLocation, open_backend
from rmail.server.runtime import ServerRuntime

from ..helpers.dns import shared_server
from ..helpers.server import make_config
from ..helpers.stores import accounts_of
from ..smtp.conftest import strip_received
from ..smtp.test_durability import CLIENTS, KILL_AFTER_ACKS, ROOT, _free_port, _message, _wait_listening


async def test_sigkill_of_a_node_loses_nothing_and_the_other_node_serves_on(tmp_path: Path, pg_url: str) -> None:
    backend = await open_backend(StoreLocation(tmp_path, pg_url))
    await accounts_of(backend).add_user("alice@example.com", "pw")
    await backend.close()

    port = _free_port()
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{tmp_path / "killed"}"\nbcrypt_rounds = 4\nhostname = "mail.example.com"\n'
                      f"[ports]\nsmtp = {port}\nsubmission = 0\nsmtps = 0\nimap = 0\nimaps = 0\napi = 0\n"
                      f'[dns]\nnameserver = "{shared_server().address}"\n'
                      f'[store]\nurl = "{pg_url}"\n')
    survivor = ServerRuntime(make_config(tmp_path / "survivor", store={"url": pg_url}), auth_delay=0)
    await survivor.start()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(config)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    acked: dict[str, bytes] = {}
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
                        await smtp.sendmail("carol@example.net", ["alice@example.com"], msg)
                        acked[key] = msg      # only after the 250 reply to DATA
                        if len(acked) >= KILL_AFTER_ACKS:
                            enough.set()
            except (aiosmtplib.SMTPException, OSError):
                return   # the node died under us

        tasks = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        await asyncio.wait_for(enough.wait(), 60)
        os.kill(proc.pid, signal.SIGKILL)        # mid-load: other transactions are in flight
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

        # The other node serves on, unaware of the loss beyond its notices stopping.
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=survivor.port("smtp"), timeout=10) as smtp:
            await smtp.sendmail("carol@example.net", ["alice@example.com"], _message("after"))
        acked["after"] = _message("after")

        account = await survivor.accounts.get_user("alice@example.com")
        box = await survivor.store.get_mailbox(account.id, "INBOX")
        stored: dict[str, list[bytes]] = {}
        for meta in await survivor.store.list_messages(box.id):
            raw = await survivor.store.read_message(meta.blob_id)
            found = re.search(rb"Message-ID: <(\w+)@load\.test>", raw)
            assert found is not None
            stored.setdefault(found.group(1).decode(), []).append(raw)
        assert await survivor.backend.integrity_check() == "ok"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
        await survivor.stop()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= KILL_AFTER_ACKS
    for key, msg in acked.items():
        copies = stored.get(key, [])
        assert len(copies) == 1, f"{key}: acknowledged, found {len(copies)} times"
        assert strip_received(copies[0]) == msg
