"""``run.py backup`` beside a live ``run.py serve`` under continuous SMTP delivery, then
``run.py restore`` into a new data dir: every message acknowledged before the backup started
is there byte for byte, and a server started on the restored dir lets the user log in."""

from __future__ import annotations

import asyncio
import imaplib
import io
import os
import re
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import aiosmtplib
import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.core.storage import MailStore
from tests.helpers.stores import open_sqlite

from ..helpers.server import dns_toml, free_ports, serve_process
from ..smtp.conftest import strip_received

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 3


def write_config(path: Path, data: Path, smtp: int, imap: int) -> None:
    path.write_text(f'data_dir = "{data}"\nbcrypt_rounds = 4\nhostname = "mail.example.com"\n'
                    f"[ports]\nsmtp = {smtp}\nsubmission = 0\nsmtps = 0\nimap = {imap}\nimaps = 0\napi = 0\n"
                    + "[limits]\nsmtp_message_rate = 100000\nsmtp_connection_rate = 100000\n"   # a load test
                    + dns_toml(), encoding="utf-8")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMAIL_")}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def message(key: str, big: bool) -> bytes:
    padding = ("large message padding line, enough to go past the inline limit\r\n"
               * (INLINE_BLOB_MAX // 60 + 10)) if big else "short body\r\n"
    return (f"From: carol@example.net\r\nTo: alice@example.com\r\nSubject: backup {key}\r\n"
            f"Message-ID: <{key}@backup.test>\r\n\r\n{padding}end of {key}\r\n").encode()


async def messages_by_key(data: Path) -> dict[str, bytes]:
    store_backend = await open_sqlite(data)
    store = store_backend.mail
    try:
        account = await Accounts(store_backend.directory, bcrypt_rounds=4).get_user("alice@example.com")
        box = await store.get_mailbox(account.id, "INBOX")
        out: dict[str, bytes] = {}
        for meta in await store.list_messages(box.id):
            raw = await store.read_message(meta.blob_id)
            key = re.search(rb"Message-ID: <(\w+)@backup\.test>", raw).group(1).decode()
            assert key not in out, f"{key} stored twice"
            out[key] = raw
        return out
    finally:
        await store_backend.close()


async def test_backup_under_load_then_restore_and_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    smtp_port, imap_port = free_ports(2)
    config = tmp_path / "rmail.toml"
    write_config(config, data, smtp_port, imap_port)
    store_backend = await open_sqlite(data)
    store = store_backend.mail
    await Accounts(store_backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "secret-pw")
    await store_backend.close()
    (data / "keys" / "dkim").mkdir(parents=True, exist_ok=True)

    acked: dict[str, bytes] = {}
    archive = tmp_path / "out" / "rmail-backup.tar.gz"
    with serve_process([sys.executable, "run.py", "serve", "--config", str(config)], [smtp_port, imap_port],
                       tmp_path / "server.log", cwd=ROOT):
        stop = asyncio.Event()
        enough = asyncio.Event()

        async def client(n: int) -> None:
            i = 0
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, timeout=30) as smtp:
                while not stop.is_set():
                    key = f"c{n}m{i}"
                    msg = message(key, big=i % 5 == 0)
                    i += 1
                    await smtp.sendmail("carol@example.net", ["alice@example.com"], msg)
                    acked[key] = msg          # only after the 250 reply to DATA
                    if len(acked) >= 40:
                        enough.set()

        tasks = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        await asyncio.wait_for(enough.wait(), 60)
        before = dict(acked)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "run.py"), "backup", str(archive), "--config", str(config),
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        during = len(acked) - len(before)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert proc.returncode == 0, err.decode()
    assert b"backup written" in out
    assert during > 0, "no delivery was acknowledged while the backup ran"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[-1] == "manifest.json" and "rmail.db" in names and "config/rmail.toml" in names
    assert any(n.startswith("blobs/") for n in names)
    keys = sorted(p.relative_to(data).as_posix() for p in (data / "keys").rglob("*") if p.is_file())
    assert keys and keys == sorted(n for n in names if n.startswith("keys/")), (keys, names)

    restored = tmp_path / "restored"
    r = run_cli("restore", str(archive), "--data-dir", str(restored), "--config", str(config), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for path in [restored, *restored.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"

    for key in keys:
        assert (restored / key).read_bytes() == (data / key).read_bytes()
    original = await messages_by_key(data)
    copy = await messages_by_key(restored)
    for key, msg in before.items():
        assert key in copy, f"{key} acknowledged before the backup, missing from the restore"
        assert copy[key] == original[key] and strip_received(copy[key]) == msg
    for key, raw in copy.items():        # later ones may be there too, but intact
        assert raw == original[key]

    config2 = tmp_path / "restored.toml"
    smtp2, imap2 = free_ports(2)
    write_config(config2, restored, smtp2, imap2)
    with serve_process([sys.executable, "run.py", "serve", "--config", str(config2)], [imap2],
                       tmp_path / "server2.log", cwd=ROOT):
        def login() -> tuple[str, int]:
            with imaplib.IMAP4("127.0.0.1", imap2, timeout=10) as imap:
                imap.login("alice@example.com", "secret-pw")
                typ, data_ = imap.select("INBOX", readonly=True)
                return typ, int(data_[0])
        typ, count = await asyncio.to_thread(login)
    assert typ == "OK" and count == len(copy)


def test_restore_refuses_a_non_empty_dir_and_a_damaged_archive(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{data}"\nbcrypt_rounds = 4\n')
    assert run_cli("user", "add", "alice@example.com", "--password", "pw", "--config", str(config),
                   cwd=tmp_path).returncode == 0
    archive = tmp_path / "b.tar.gz"
    assert run_cli("backup", str(archive), "--config", str(config), cwd=tmp_path).returncode == 0
    r = run_cli("backup", str(archive), "--config", str(config), cwd=tmp_path)
    assert r.returncode == 1 and "exists already" in r.stderr

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    r = run_cli("restore", str(archive), "--data-dir", str(busy), "--config", str(config), cwd=tmp_path)
    assert r.returncode == 1 and "is not empty" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["something"]

    # The same archive with one member's bytes changed (re-packed, so only the checksum tells).
    tampered = tmp_path / "t.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src:
            body = src.extractfile(member).read()
            if member.name.startswith("keys/"):
                body = body[:-1] + bytes([body[-1] ^ 1])
            dst.addfile(member, io.BytesIO(body))
    target = tmp_path / "new"
    r = run_cli("restore", str(tampered), "--data-dir", str(target), "--config", str(config), cwd=tmp_path)
    assert r.returncode == 1 and "checksum mismatch" in r.stderr and "Traceback" not in r.stderr
    assert not target.exists()

    r = run_cli("restore", str(archive), "--data-dir", str(target), "--config", str(config), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("user", "list", "--config", str(config), cwd=tmp_path)
    assert "alice@example.com" in r.stdout


def test_restore_refuses_an_archive_whose_manifest_is_not_a_file(tmp_path: Path) -> None:
    """tarfile hands back no reader for a directory member: that is a foreign archive, told
    as InvalidInput like any other, with nothing left behind."""
    from rmail.server.core.errors import InvalidInput
    from rmail.server.core.sqlite.backup import restore_backup

    archive = tmp_path / "odd.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        entry = tarfile.TarInfo("manifest.json")
        entry.type = tarfile.DIRTYPE
        tar.addfile(entry)
    target = tmp_path / "new"
    with pytest.raises(InvalidInput, match="manifest is not a file"):
        restore_backup(archive, target)
    assert not target.exists()


async def test_a_message_file_removed_after_the_snapshot_drops_its_rows(tmp_path: Path) -> None:
    """The state a backup meets when a large message is expunged between the database copy
    and the file copy: a row in the snapshot whose file is gone. The archive leaves it out
    (rows and file) and stays consistent; everything else is there."""
    from rmail.server.core.sqlite.backup import create_backup, restore_backup

    data = tmp_path / "data"
    data.mkdir()
    store_backend = await open_sqlite(data)
    store = store_backend.mail
    try:
        account = await Accounts(store_backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "pw")
        inbox = await store.get_mailbox(account.id, "INBOX")
        for i in range(3):
            await store.append(inbox.id, message(f"k{i}", big=True))
        await store.append(inbox.id, message("small", big=False))
        victim = (await store.list_messages(inbox.id))[1]
        store.blobs.path(victim.blob_id).unlink()
    finally:
        await store_backend.close()
    manifest = await asyncio.to_thread(create_backup, data, tmp_path / "b.tar.gz")
    assert manifest.counts["deleted_during_backup"] == 1 and manifest.counts["messages"] == 3
    assert manifest.counts["blob_files"] == 2
    await asyncio.to_thread(restore_backup, tmp_path / "b.tar.gz", tmp_path / "r")
    copy = await messages_by_key(tmp_path / "r")
    assert sorted(copy) == ["k0", "k2", "small"]
