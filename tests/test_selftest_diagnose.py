"""``python run.py test`` and ``python run.py diagnose`` as a user runs them: real CLI processes
against a live ``python run.py serve`` on free explicit ports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from .helpers.server import dns_toml, free_ports, serve_process

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "run.py")]
PORT_NAMES = ("smtp", "submission", "smtps", "imap", "imaps", "api")
PHASES = ("configuration", "user management", "backend storage", "SMTP protocol", "delivery verification",
          "IMAP protocol", "Exchange API", "cleanup")


def write_config(path: Path, data_dir: Path, ports: dict[str, int], tls: tuple[Path, Path] | None) -> Path:
    lines = ['hostname = "mail.example.com"', f'data_dir = "{data_dir}"', "bcrypt_rounds = 4", "[ports]"]
    lines += [f"{name} = {port}" for name, port in ports.items()]
    if tls:
        lines += ["[tls]", f'cert = "{tls[0]}"', f'key = "{tls[1]}"']
    path.write_text("\n".join(lines) + "\n" + dns_toml())
    return path


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUN, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@dataclass(frozen=True)
class Live:
    config: Path
    data_dir: Path
    key: Path
    ports: dict[str, int]

    def leftovers(self) -> str:
        """Users and domains in the store: diagnose and the suite must leave none of theirs."""
        users = cli("user", "list", "--config", str(self.config))
        domains = cli("domain", "list", "--config", str(self.config))
        assert users.returncode == 0 and domains.returncode == 0, users.stderr + domains.stderr
        return users.stdout + domains.stdout


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]) -> Iterator[Live]:
    d = tmp_path_factory.mktemp("live")
    cert, key = d / "cert.pem", d / "key.pem"
    shutil.copy(tls_files[0], cert)
    shutil.copy(tls_files[1], key)
    key.chmod(0o600)
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
    config = write_config(d / "rmail.toml", d / "data", ports, (cert, key))
    with serve_process([*RUN, "serve", "--config", str(config)], ports.values(), d / "serve.log", cwd=ROOT):
        yield Live(config, d / "data", key, ports)


def test_diagnose_healthy_server_is_all_green(live: Live) -> None:
    result = cli("diagnose", "--config", str(live.config))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.strip().splitlines()[-1].endswith("0 failures, 0 warnings"), out
    for n, phase in enumerate(PHASES, 1):
        assert f"[{n}/8] {phase}" in out
    statuses = {line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert statuses == {"pass"}, out
    for needle in ("send through SMTP", "send through submission", "send through SMTPS", "mail via SMTP stored",
                   "IMAP", "Exchange API", "removed rmail-diag-"):
        assert needle in out, needle
    assert "rmail-diag" not in live.leftovers() and "rmail-diagnose" not in live.leftovers()


def test_diagnose_json(live: Live) -> None:
    result = cli("diagnose", "--json", "--config", str(live.config))
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["failures"] == 0 and data["warnings"] == 0
    assert [c["phase"] for c in data["checks"]][0] == "configuration"
    assert data["checks"][-1]["phase"] == "cleanup"
    assert data["summary"] == f"diagnose: {len(data['checks'])} checks, 0 failures, 0 warnings"


def test_selftest_against_the_running_server(live: Live) -> None:
    result = cli("test", "--target", str(live.config))
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[-1].startswith(tuple(f"{n} passed, 0 failed" for n in range(20, 200))), lines[-1]
    assert any(line.startswith("pass  smtp: relay refused") for line in lines)
    assert any(line.startswith("pass  imap: idle announces new mail") for line in lines)
    assert "e2e-" not in live.leftovers()


def test_selftest_throwaway_server() -> None:
    result = cli("test", "-k", "inbound_delivery or login_after_starttls or send_delivers")
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[0].startswith("starting a throwaway rmail")
    assert lines[-1] == "3 passed, 0 failed"


def test_diagnose_warns_about_readable_secrets(live: Live) -> None:
    jwt_key = live.data_dir / "keys" / "jwt.key"
    assert jwt_key.exists(), "the API keeps its signing key in data_dir/keys"
    jwt_key.chmod(0o644)
    try:
        result = cli("diagnose", "--config", str(live.config))
    finally:
        jwt_key.chmod(0o600)
    assert result.returncode == 0, "warnings alone do not fail diagnose"
    assert f"fix: chmod 600 {jwt_key}" in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith("0 failures, 1 warnings")


def test_diagnose_removed_tls_key(live: Live) -> None:
    hidden = live.key.with_suffix(".moved")
    live.key.rename(hidden)
    try:
        result = cli("diagnose", "--config", str(live.config))
    finally:
        hidden.rename(live.key)
    assert result.returncode == 1
    fail_lines = [line for line in result.stdout.splitlines() if line.strip().startswith("fail")]
    assert len(fail_lines) == 1 and "tls.key" in fail_lines[0] and str(live.key) in fail_lines[0]
    assert f"fix: set tls.key in {live.config}" in fail_lines[0]
    assert result.stdout.strip().splitlines()[-1] == "diagnose: 1 checks, 1 failures, 0 warnings"
    assert "Traceback" not in result.stdout + result.stderr
    assert "rmail-diag" not in live.leftovers()


def test_diagnose_cleans_up_after_a_failed_phase(live: Live, tmp_path: Path) -> None:
    """IMAP points at a port nothing listens on: the IMAP checks fail, the user is still removed."""
    ports = dict(live.ports, imap=free_ports(1)[0])
    cert, key = live.key.with_name("cert.pem"), live.key
    config = write_config(tmp_path / "rmail.toml", live.data_dir, ports, (cert, key))
    result = cli("diagnose", "--config", str(config))
    assert result.returncode == 1
    assert f"nothing listens on 127.0.0.1 for IMAP {ports['imap']}" in result.stdout
    assert "removed rmail-diag-" in result.stdout
    assert "rmail-diag" not in live.leftovers()


def test_diagnose_stopped_server(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
    config = write_config(tmp_path / "rmail.toml", tmp_path / "data", ports, tls_files)
    result = cli("diagnose", "--config", str(config))
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if line.strip().startswith("fail")]
    assert "rmail is not running (connection refused" in line
    assert f"fix: start it with: python run.py serve --config {config}" in line
    assert "skipped: the server is not running" in result.stdout
    users = cli("user", "list", "--config", str(config))
    assert users.returncode == 0 and "rmail-diag" not in users.stdout


# -- the pure parts ------------------------------------------------------------------------------

def test_check_names_read_like_sentences() -> None:
    from rmail.cli.selftest import check_name
    assert check_name("tests/e2e/test_smtp.py::test_relay_refused_without_auth_on_25") == \
        "smtp: relay refused without auth on 25"
    assert check_name("tests/e2e/test_smtp.py::test_auth_mechanisms_log_in[PLAIN]") == "smtp: auth mechanisms log in [PLAIN]"


def test_report_counts_and_requires_a_fix() -> None:
    from rmail.e2e.report import FAIL, PASS, WARN, Check, Report
    report = Report()
    report.add(Check("configuration", "config", PASS, "loaded"))
    report.add(Check("configuration", "tls", WARN, "not configured", "set [tls] cert and key"))
    report.add(Check("cleanup", "user", FAIL, "still there", "python run.py user remove X"))
    with pytest.raises(ValueError):
        report.add(Check("cleanup", "user", FAIL, "no fix given"))
    assert report.summary() == "diagnose: 3 checks, 1 failures, 1 warnings"
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["checks"][1]["fix"] == "set [tls] cert and key"
    assert report.checks[1].line() == "  warn  tls: not configured — fix: set [tls] cert and key"


def test_config_errors_name_their_key_in_the_fix() -> None:
    from rmail.e2e.diagnose import config_fix
    assert config_fix("tls.key: no such file: /k.pem", Path("/etc/rmail.toml")).startswith(
        "set tls.key in /etc/rmail.toml to an existing")
    assert config_fix("ports: two services share one port number", None) == "correct ports in rmail.toml"


def test_selftest_without_pytest_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    from rmail.cli.selftest import selftest
    monkeypatch.setitem(sys.modules, "pytest", None)
    code = selftest(argparse.Namespace(target=None, keyword=None, exitfirst=False, config=None))
    assert code == 1
    assert capsys.readouterr().err.strip() == "rmail: pytest is not installed (it is a test extra); fix: make install"


@pytest.fixture
def smarthost() -> Iterator[int]:
    """A smarthost on loopback that accepts only relay-user / right-password (AUTH in clear)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
        ok = (auth_data.login, auth_data.password) == (b"relay-user", b"right-password")
        return AuthResult(success=ok, handled=False)

    class Sink:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN202
            return "250 OK"

    port = free_ports(1)[0]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.mark.parametrize("password, ok", [("right-password", True), ("wrong-password", False)])
def test_diagnose_checks_the_smarthost_login(live: Live, smarthost: int, tmp_path: Path, password: str,
                                             ok: bool) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(live.config.read_text() + "\n[relay]\nhost = \"127.0.0.1\"\n"
                      f"port = {smarthost}\ntls = \"none\"\nusername = \"relay-user\"\npassword = \"{password}\"\n")
    result = cli("diagnose", "--config", str(config))
    line = next(l for l in result.stdout.splitlines() if f"smarthost 127.0.0.1:{smarthost}" in l)
    if ok:
        assert result.returncode == 0 and line.split()[0] == "pass", result.stdout
    else:
        assert result.returncode == 1 and line.split()[0] == "fail", result.stdout
        assert "relay.password" in line and str(config) in line and "Traceback" not in result.stdout + result.stderr
    assert "rmail-diag" not in live.leftovers()
