"""The installed package, not the checkout: build the wheel, install it into a fresh venv, run the
``rmail`` command from there (admin CLI, ``rmail serve``) and log in over IMAP.

The fresh venv reaches rmail's dependencies through a path entry to the test venv's
site-packages (no network, no second download), but rmail itself only from the wheel: it runs
from a directory without the checkout, and the checkout's editable hook is never loaded.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .helpers.server import dns_toml, free_ports, serve_process

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from (rmail/tui/rmail.tcss links to the root's rmail.tcss).
SOURCES = ("pyproject.toml", "README.md", "rmail.tcss", "rmail")
#: Files the code reads at run time through its package; a wheel without them cannot start.
DATA_FILES = ("rmail/server/core/sqlite/schema.sql", "rmail/server/core/postgres/migrations/0001_initial.sql", "rmail/tui/rmail.tcss", "rmail/client/client.tcss")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a fresh venv with the wheel installed."""
    d = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the wheel is made of: setuptools writes build/ and egg-info into
    # the source tree, which must not race another test run in the same checkout.
    source = d / "source"
    source.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(d / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next((d / "dist").glob("rmail-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in DATA_FILES if f not in names]
    assert not missing, f"wheel lacks {missing}"
    venv = d / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (site / "rmail-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300)
    return venv / "bin"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RMAIL_", "PYTHONPATH"))}


def test_wheel_runs_the_server(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "python"), "-c", "import rmail; print(rmail.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=_env(), check=True)
    assert str(ROOT) not in where.stdout, "the installed rmail must not be the checkout's"

    smtp, imap, api = free_ports(3)
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nbcrypt_rounds = 4\n'
                      f"[ports]\nsmtp = {smtp}\nsubmission = 0\nsmtps = 0\nimap = {imap}\nimaps = 0\napi = {api}\n" + dns_toml())
    rmail = str(installed / "rmail")
    added = subprocess.run([rmail, "user", "add", "alice@example.com", "--password", "pw", "--config", str(config)],
                           capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=60)
    assert added.returncode == 0, added.stderr

    with serve_process([rmail, "serve", "--config", str(config)], [imap], tmp_path / "serve.log",
                       cwd=tmp_path, env=_env()) as proc:
        client = imaplib.IMAP4("127.0.0.1", imap)
        client.login("alice@example.com", "pw")
        assert client.select("INBOX")[0] == "OK"
        client.logout()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()


def _base_python() -> str:
    return str(Path(sys.base_prefix) / "bin" / "python3")


def test_run_py_from_outside_the_venv_uses_the_checkouts_venv(tmp_path: Path) -> None:
    env = {k: v for k, v in _env().items() if k != "VIRTUAL_ENV"}
    result = subprocess.run([_base_python(), str(ROOT / "run.py"), "user", "list", "--config",
                             str(tmp_path / "missing.toml")], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=60)
    # Reaching rmail's own config check proves the dependencies were importable (the venv's).
    assert "no such file" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_run_py_without_a_venv_says_what_to_run(tmp_path: Path) -> None:
    probe = subprocess.run([_base_python(), "-c", "import platformdirs"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the base Python has rmail's dependencies installed; nothing is missing to report")
    script = tmp_path / "run.py"
    script.write_text((ROOT / "run.py").read_text())
    env = {**{k: v for k, v in _env().items() if k != "VIRTUAL_ENV"}, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([_base_python(), str(script), "user", "list"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "make install" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
