"""The admin CLI through the real entry point (run.py), as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers.server import cli_runner

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(tmp_path: Path):
    return cli_runner(tmp_path)


def test_users_domains_aliases(cli) -> None:
    assert cli("user", "add", "alice@example.com", "--password", "pw").returncode == 0
    r = cli("user", "add", "bob@example.com", "--admin", stdin="secret\n", config_first=True)
    assert r.returncode == 0 and "admin" in r.stdout
    r = cli("user", "list")
    assert "alice@example.com" in r.stdout and "bob@example.com\tadmin" in r.stdout
    assert "example.com\t2 users" in cli("domain", "list").stdout
    assert cli("alias", "add", "example.com", "sales-.*", "alice").returncode == 0
    assert cli("alias", "add", "example.com", ".*", "bob@example.com").returncode == 0
    listing = cli("alias", "list", "example.com").stdout.splitlines()
    assert listing[0].split("\t")[:2] == ["1", "sales-.*"] and listing[1].split("\t")[:2] == ["2", ".*"]
    r = cli("alias", "resolve", "example.com", "sales-eu")
    assert r.returncode == 0 and "alice@example.com" in r.stdout and "sales-.*" in r.stdout
    assert cli("alias", "remove", "example.com", "sales-.*").returncode == 0
    assert "bob@example.com" in cli("alias", "resolve", "example.com", "sales-eu").stdout
    assert cli("user", "passwd", "alice@example.com", "--password", "new").returncode == 0
    assert cli("user", "remove", "alice@example.com").returncode == 0
    assert "alice" not in cli("user", "list").stdout


@pytest.mark.parametrize("args, message", [
    (("alias", "add", "nowhere.org", ".*", "alice"), "no domain nowhere.org"),
    (("alias", "add", "example.com", "(a+)+", "alice"), "catastrophically"),
    (("alias", "add", "example.com", "(", "alice"), "invalid alias pattern"),
    (("alias", "add", "example.com", ".*", "carol"), "not an existing user"),
    (("alias", "remove", "example.com", "nope"), "no alias pattern"),
    (("user", "add", "alice@example.com", "--password", "pw"), "already exists"),
    (("user", "add", "x@example.com", "--password", "p" * 73), "72 bytes"),
    (("user", "remove", "nobody@example.com"), "no user"),
    (("user", "add", "not-an-address", "--password", "pw"), "not an email address"),
])
def test_clear_errors(cli, args: tuple[str, ...], message: str) -> None:
    cli("user", "add", "alice@example.com", "--password", "pw")
    r = cli(*args)
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[ports]\nsmtp = 'twenty-five'\n")
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "user", "list", "--config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "ports.smtp" in r.stderr and "Traceback" not in r.stderr


def test_env_config(tmp_path: Path) -> None:
    config = tmp_path / "env.toml"
    config.write_text(f'data_dir = "{tmp_path / "d"}"\nbcrypt_rounds = 4\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RMAIL_")}, "RMAIL_CONFIG": str(config)}
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "domain", "add", "example.net"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0
    assert (tmp_path / "d" / "rmail.db").exists()


@pytest.mark.parametrize("command", [("user", "list"), ("serve",)])
def test_a_broken_database_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rmail.db").write_bytes(b"this is not an SQLite database " * 10)
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{data}"\nbcrypt_rounds = 4\n[ports]\nsmtp = 0\nsubmission = 0\nsmtps = 0\n'
                      "imap = 0\nimaps = 0\napi = 0\n")
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), *command, "--config", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "not a database" in r.stderr and "Traceback" not in r.stderr
