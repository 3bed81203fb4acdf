"""`make alias`, `make listaliases` and `make delalias`, as a user types them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_alias_targets(tmp_path: Path) -> None:
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nbcrypt_rounds = 4\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RMAIL_", "MAKE"))},
           "RMAIL_CONFIG": str(config)}

    def make(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-s", "-C", str(ROOT), *args], capture_output=True, text=True, env=env,
                              timeout=120)

    subprocess.run([str(ROOT / ".venv/bin/python"), str(ROOT / "run.py"), "user", "add", "alice@example.com",
                    "--password", "pw"], env=env, check=True, capture_output=True, timeout=60)
    pattern = "it's-(eu|us)$"
    r = make("alias", "DOMAIN=example.com", f"PATTERN={pattern}", "TARGET=alice")
    assert r.returncode == 0, r.stderr
    assert pattern in make("listaliases", "DOMAIN=example.com").stdout
    assert make("delalias", "DOMAIN=example.com", f"PATTERN={pattern}").returncode == 0
    assert pattern not in make("listaliases", "DOMAIN=example.com").stdout
    r = make("alias", "DOMAIN=example.com")
    assert r.returncode != 0 and "usage: make alias" in r.stderr
