"""Data at rest is private whatever existed before: the data dir and its subdirectories 0700,
rmail.db with its -wal and -shm files, blob files and keys 0600, checked on real files. A data
dir that an older version (or an installer) left 0755 with 0644 files is narrowed at start;
and a fresh setup made by the first-run wizard gives ``run.py diagnose`` nothing to warn about.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rmail.server.config import ensure_data_dir
from rmail.server.runtime import ServerRuntime
from rmail.tui.app import ConsoleApp

from ..conftest import PASSWORD
from ..helpers.server import dns_toml, free_ports, make_config, serve_process
from ..tui.test_wizard import run_wizard

ROOT = Path(__file__).resolve().parents[2]
PORT_NAMES = ("smtp", "submission", "smtps", "imap", "imaps", "api")
BIG = b"Subject: big\r\n\r\n" + b"y" * (200 * 1024) + b"\r\n"   # above INLINE_BLOB_MAX: a file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(data: Path) -> dict[str, int]:
    """Mode of everything under ``data`` that is not private, by relative path."""
    out = {}
    for path in [data, *data.rglob("*")]:
        m = mode(path)
        if m & 0o077:
            out[str(path.relative_to(data))] = m
    return out


@pytest.fixture
def lax_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_fresh_data_dir_is_private_under_a_lax_umask(tmp_path: Path, lax_umask: None) -> None:
    data = tmp_path / "data"
    async with ServerRuntime(make_config(data), auth_delay=0) as rt:
        alice = await rt.accounts.add_user("alice@example.com", PASSWORD)
        inbox = await rt.store.get_mailbox(alice.id, "INBOX")
        uid = await rt.store.append(inbox.id, BIG)
        [meta] = await rt.store.get_meta(inbox.id, [uid])
        blob = rt.store.blobs.path(meta.blob_id)
        assert blob.exists(), "the large message is a file"
        # While the server runs, SQLite has its -wal and -shm files open.
        for name in ("rmail.db", "rmail.db-wal", "rmail.db-shm"):
            assert mode(data / name) == 0o600, name
        assert mode(blob) == 0o600 and mode(blob.parent) == 0o700
        assert mode(data / "keys" / "jwt.key") == 0o600
        assert modes(data) == {}
    assert modes(data) == {}


async def test_open_data_dir_left_by_an_older_version_is_narrowed(tmp_path: Path, lax_umask: None) -> None:
    data = tmp_path / "data"
    async with ServerRuntime(make_config(data), auth_delay=0) as rt:
        alice = await rt.accounts.add_user("alice@example.com", PASSWORD)
        await rt.store.append((await rt.store.get_mailbox(alice.id, "INBOX")).id, BIG)
    # What the issue found: the dir 0755 and the database files 0644.
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    # Another process (an old CLI) keeps the WAL open, so -wal and -shm exist, 0644 too.
    other = sqlite3.connect(data / "rmail.db")
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("SELECT count(*) FROM users").fetchone()
    try:
        assert mode(data / "rmail.db-shm") == 0o644
        assert len(modes(data)) > 8
        async with ServerRuntime(make_config(data), auth_delay=0) as rt:
            # Every directory is 0700 now, which puts what is inside out of reach; the
            # database files are 0600 whatever their past.
            assert all(mode(p) == 0o700 for p in [data, *data.rglob("*")] if p.is_dir())
            assert all(mode(data / f"rmail.db{s}") == 0o600 for s in ("", "-wal", "-shm"))
            # Other files keep their mode (start-up does not stat every message file, and
            # diagnose reports a key file made readable).
            assert {n.split("/")[0] for n in modes(data) if mode(data / n) & 0o077} <= {"blobs", "keys", "rmail.lock"}
            await rt.accounts.authenticate("alice@example.com", PASSWORD)
    finally:
        other.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_a_dir_owned_by_someone_else_is_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    os.chown(data, 65534, 65534)   # nobody: an administrator's choice, not rmail's to undo
    ensure_data_dir(make_config(data))
    assert mode(data) == 0o755
    assert mode(data / "keys") == 0o700 and mode(data / "blobs") == 0o700


def test_self_signed_certificate_and_key_are_0600(tmp_path: Path, lax_umask: None) -> None:
    from rmail.server.tls import generate_self_signed
    cert, key = tmp_path / "keys" / "cert.pem", tmp_path / "keys" / "key.pem"
    cert.parent.mkdir()
    cert.write_text("an old certificate")
    cert.chmod(0o644)
    generate_self_signed(cert, key, "mail.example.com")
    assert (mode(cert), mode(key)) == (0o600, 0o600)
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


async def test_wizard_setup_gives_diagnose_nothing_to_warn_about(tmp_path: Path, lax_umask: None) -> None:
    """The first-run wizard on an empty data dir (admin user, self-signed certificate, config),
    then ``run.py serve`` on that setup and ``run.py diagnose``: no warning, no failure."""
    data, wizard_config = tmp_path / "data", tmp_path / "wizard.toml"
    async with ServerRuntime(make_config(data), auth_delay=0, services=()) as rt:
        app = ConsoleApp(rt, config_path=wizard_config, tick=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.wait_until_running()
            await run_wizard(pilot, "postmaster@example.org", "first-pass")
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
    config = tmp_path / "rmail.toml"
    config.write_text("\n".join([
        'hostname = "mail.example.com"', f'data_dir = "{data}"', "bcrypt_rounds = 4", "[ports]",
        *(f"{name} = {port}" for name, port in ports.items())]) + "\n"
        + "".join(line for line in wizard_config.read_text().splitlines(keepends=True)
                  if not line.startswith("#")) + dns_toml())
    run = [sys.executable, str(ROOT / "run.py")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with serve_process([*run, "serve", "--config", str(config)], ports.values(), tmp_path / "serve.log",
                       cwd=ROOT, env=env):
        result = subprocess.run([*run, "diagnose", "--config", str(config)], capture_output=True, text=True,
                                timeout=120, cwd=ROOT, env=env)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.strip().splitlines()[-1].endswith("0 failures, 0 warnings"), out
    assert "blobs/ are 0700; rmail.db and keys/ files are 0600" in out
    assert modes(data) == {}


