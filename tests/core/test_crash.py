"""Durability: SIGKILL a process mid-delivery; every acknowledged message must survive,
byte-identical, exactly once."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import MailStore
from tests.helpers.stores import open_sqlite

WORKER = Path(__file__).with_name("crash_worker.py")


def run_and_kill(data_dir: Path, *, min_acks: int) -> dict[int, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(data_dir), "16"], stdout=subprocess.PIPE,
                            env=env, text=True, bufsize=1)
    acks: dict[int, str] = {}
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:
            if line.startswith("ACK"):
                _, uid, digest = line.split()
                acks[int(uid)] = digest
                if len(acks) >= min_acks:
                    break
            assert time.monotonic() < deadline, "worker too slow"
    finally:
        proc.send_signal(signal.SIGKILL)
        # Acks already written to the pipe before the kill count too: they were acknowledged.
        rest = proc.stdout.read()
        proc.wait()
    for line in rest.splitlines():
        if line.startswith("ACK") and len(line.split()) == 3:
            _, uid, digest = line.split()
            acks[int(uid)] = digest
    return acks


async def test_acknowledged_messages_survive_sigkill(tmp_path: Path) -> None:
    acked: dict[int, str] = {}
    for round_ in range(2):  # kill twice, recovering in between
        acked.update(run_and_kill(tmp_path, min_acks=150 * (round_ + 1)))
    store_backend = await open_sqlite(tmp_path, recover=True)
    store = store_backend.mail
    try:
        user = await Accounts(store_backend.directory, bcrypt_rounds=4).get_user("crash@example.com")
        inbox = await store.get_mailbox(user.id, "INBOX")
        metas = {m.uid: m for m in await store.list_messages(inbox.id)}
        for uid, digest in acked.items():
            assert uid in metas, f"acknowledged message {uid} lost"
            data = await store.read_message(metas[uid].blob_id)
            assert hashlib.sha256(data).hexdigest() == digest
        # Exactly once: no two rows share a blob; every blob file belongs to a row.
        assert len({m.blob_id for m in metas.values()}) == len(metas)
        assert store.blob_ids() == {m.blob_id for m in metas.values()}
    finally:
        await store_backend.close()
