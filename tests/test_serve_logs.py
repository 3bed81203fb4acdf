"""``run.py serve`` with ``[log] format = "json"`` and ``[log] file``: parseable JSON lines with the
accepted-message line, the API access log and the structured fields, appended to the file."""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import MailStore
from rmail.server.logformat import JsonFormatter
from tests.helpers.stores import open_sqlite

from .conftest import PASSWORD
from .helpers.server import dns_toml, free_ports, stop_process

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = b"From: carol@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello\r\n"


def wait_port(port: int, proc: subprocess.Popen, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def login(api: int) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{api}/auth/login?password=never-logged", method="POST",
                                 data=json.dumps({"username": "alice@example.com", "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["token"]


async def test_serve_writes_json_lines_to_the_log_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store_backend = await open_sqlite(data)
    store = store_backend.mail
    await Accounts(store_backend.directory, bcrypt_rounds=4).add_user("alice@example.com", PASSWORD)
    await store_backend.close()
    smtp_port, submission, imap_port, api = free_ports(4)
    log_file = tmp_path / "logs" / "rmail.log"
    log_file.parent.mkdir()
    log_file.write_text("an earlier line\n", encoding="utf-8")       # appended to, never truncated
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{data}"\nbcrypt_rounds = 4\nhostname = "mail.example.com"\n'
                      f"[ports]\nsmtp = {smtp_port}\nsubmission = {submission}\nsmtps = 0\n"
                      f"imap = {imap_port}\nimaps = 0\napi = {api}\n"
                      f'[log]\nformat = "json"\nfile = "{log_file}"\n' + dns_toml(), encoding="utf-8")
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(config)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_port(api, proc)
        wait_port(smtp_port, proc)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail("carol@example.org", ["alice@example.com"], MESSAGE)
        token = login(api)
        req = urllib.request.Request(f"http://127.0.0.1:{api}/folders", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    finally:
        stop_process(proc)
    assert proc.returncode == 0, stderr.read_text()
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "an earlier line"
    entries = [json.loads(line) for line in lines[1:]]          # every line parses
    assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    accepted = [e for e in entries if e["message"].startswith("smtp: accepted")]
    assert len(accepted) == 1
    a = accepted[0]
    assert a["sender"] == "carol@example.org" and a["recipients"] == ["alice@example.com"]
    assert a["protocol"] == "smtp" and a["client"] == "127.0.0.1" and a["size"] > len(MESSAGE)
    assert a["message_id"] in a["message"]
    access = [e for e in entries if e["logger"] == "rmail.access"]
    by_path = {e["path"]: e for e in access}
    assert by_path["/auth/login"]["status"] == 200 and by_path["/auth/login"]["method"] == "POST"
    assert by_path["/folders"]["user"] == "alice@example.com" and by_path["/folders"]["bytes"] > 0
    assert all(e["client"] == "127.0.0.1" and e["duration_ms"] >= 0 for e in access)
    assert "never-logged" not in log_file.read_text(encoding="utf-8")   # the query string stays out
    assert any(e["message"] == "stopped" for e in entries)
    assert stderr.read_text(encoding="utf-8").strip() == ""               # the file took stderr's place


def test_json_formatter_shape() -> None:
    record = logging.LogRecord("rmail.queue", logging.INFO, __file__, 1, "entry %d\nforged", (7,), None)
    record.recipient = "dave@remote.test"
    record.ids = (1, 2)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "entry 7\nforged" and entry["level"] == "INFO" and entry["logger"] == "rmail.queue"
    assert entry["recipient"] == "dave@remote.test" and entry["ids"] == [1, 2]
    assert entry["time"].endswith("Z")


def test_unwritable_log_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[log]\nfile = "{blocker / "rmail.log"}"\n',
                      encoding="utf-8")
    r = subprocess.run([sys.executable, "run.py", "serve", "--config", str(config)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("rmail: config: log.file: cannot open")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_formats_validate(tmp_path: Path, fmt: str) -> None:
    from .helpers.server import make_config
    assert make_config(tmp_path / "d", log={"format": fmt}).log.format == fmt
