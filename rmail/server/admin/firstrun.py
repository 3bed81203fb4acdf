"""The first-run wizard's server side: a self-signed certificate and the ``[tls]`` lines that
turn it on (written to a new config file, never into an existing one)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..tls import generate_self_signed

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"


@dataclass(frozen=True, slots=True)
class CertificateView:
    """What the wizard tells the user after making the certificate."""

    hostname: str
    keys_dir: str
    lines: str                #: the [tls] lines
    config_path: str          #: where the lines were written, or should be added
    written: bool             #: True: a new config file was written with the lines


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for any path)."""
    return json.dumps(value, ensure_ascii=False)


def tls_lines(cert: Path, key: Path) -> str:
    return f"[tls]\ncert = {toml_string(str(cert))}\nkey = {toml_string(str(key))}\n"


def write_new_config(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` unless it exists already (never overwrite a user's file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write("# Written by the rmail first-run wizard.\n" + text)
    except FileExistsError:
        return False
    return True


def make_certificate(cfg: Config, config_path: Path) -> CertificateView:
    """Blocking (key generation, file writes): call it in a thread. ``config_path`` is where a
    server without a config file should get one."""
    keys = cfg.data_dir / "keys"
    cert, key = keys / CERT_NAME, keys / KEY_NAME
    generate_self_signed(cert, key, cfg.hostname)
    lines = tls_lines(cert, key)
    written = cfg.source is None and write_new_config(config_path, lines)
    where = config_path if written else (cfg.source or config_path)
    return CertificateView(cfg.hostname, str(keys), lines, str(where), written)
