"""Building configs and live runtimes for tests: free ports, temporary data dirs, fast bcrypt."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from rmail.server.config import Config, build_config

from .dns import shared_server

ALL_PORTS_FREE = {name: 0 for name in ("smtp", "submission", "smtps", "imap", "imaps", "api")}


def make_config(data_dir: Path, *, tls: tuple[Path, Path] | None = None, **overrides: Any) -> Config:
    """A config on 127.0.0.1 with every port 0 (the OS picks), bcrypt at its cheapest, and every
    DNS lookup sent to the test process's empty loopback DNS server (hermetic and fast)."""
    raw: dict[str, Any] = {"data_dir": str(data_dir), "bcrypt_rounds": 4, "hostname": "mail.example.com",
                           "ports": dict(ALL_PORTS_FREE), "dns": {"nameserver": shared_server().address}}
    if tls is not None:
        raw["tls"] = {"cert": str(tls[0]), "key": str(tls[1])}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return build_config(raw, {}, is_root=True)


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (for configs of server subprocesses,
    which cannot report an OS-chosen port back)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
