"""contrib/rmail.service: the directives docs/OPERATIONS.md promises, checked by parsing the unit
(and by ``systemd-analyze verify`` where installed); and the port rule the unit relies on."""

from __future__ import annotations

import configparser
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from rmail.server.config import may_bind_privileged_ports

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "rmail.service"


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str          # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    return parser["Service"]


def test_unit_directives() -> None:
    svc = _service()
    assert svc["User"] == "rmail" and svc["Group"] == "rmail"
    assert svc["ExecStart"] == "/usr/local/bin/rmail serve --config /etc/rmail/rmail.toml"
    assert svc["AmbientCapabilities"] == svc["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict" and svc["ReadWritePaths"] == "/var/lib/rmail"
    assert svc["ProtectHome"] == "yes" and svc["PrivateTmp"] == "yes"
    assert svc["LimitNOFILE"] == "65536" and svc["Restart"] == "on-failure"
    # The venv variant is documented next to the system one.
    assert "#ExecStart=/opt/rmail/.venv/bin/rmail serve --config /etc/rmail/rmail.toml" in UNIT.read_text()


def test_reload_sends_sighup() -> None:
    reload = _service()["ExecReload"].split()
    assert reload == ["/bin/kill", "-HUP", "$MAINPID"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        print("systemd-analyze is not installed: only the parsed directives were checked")
        return
    # verify insists that ExecStart's program exists; stand one in for /usr/local/bin/rmail so
    # every other complaint still fails the test.
    program = tmp_path / "rmail"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    unit = tmp_path / "rmail.service"
    unit.write_text(UNIT.read_text().replace("ExecStart=/usr/local/bin/rmail", f"ExecStart={program}"))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # A directive systemd cannot parse is only a warning naming the file ("rmail.service:44: ...").
    assert f"{unit}:" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize(("cap_eff", "expected"), [
    ("0000000000000400", True),       # CAP_NET_BIND_SERVICE alone, as the unit grants it
    ("000001ffffffffff", True),
    ("0000000000000000", False),
    ("00000000000003ff", False),      # bits 0-9, not 10
])
def test_net_bind_capability_keeps_standard_ports(cap_eff: str, expected: bool) -> None:
    status = f"Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\nCapBnd:\t000001ffffffffff\n"
    assert may_bind_privileged_ports(euid=1000, proc_status=status) is expected
    assert may_bind_privileged_ports(euid=0, proc_status=status) is True
    assert may_bind_privileged_ports(euid=1000, proc_status="Name:\tpython\n") is False
