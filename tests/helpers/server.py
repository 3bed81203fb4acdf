"""Building configs and live runtimes for tests: free ports, temporary data dirs, fast bcrypt."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import pytest

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


def dns_toml() -> str:
    """The ``[dns]`` section for configs of server subprocesses: every lookup goes to the
    tests' loopback DNS server, never to the machine's resolver."""
    return f'[dns]\nnameserver = "{shared_server().address}"\n'


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


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` right now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def serve_process(argv: Sequence[str], ports: Iterable[int], log: Path, *, cwd: Path,
                  env: Mapping[str, str] | None = None, timeout: float = 30) -> Iterator[subprocess.Popen]:
    """Run a server command (``run.py serve``, ``rmail serve``) with its output in ``log``, wait
    until every port in ``ports`` accepts, and stop it on exit: SIGTERM, then SIGKILL after 20 s.

    Fails the test, with the log, when the server exits or does not listen in time.
    """
    ports = list(ports)
    with log.open("w") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env=dict(env) if env is not None else None)
    try:
        deadline = time.monotonic() + timeout
        while not all(port_open(p) for p in ports):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{' '.join(argv[-3:])} did not come up:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it is still running after 20 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


ROOT = Path(__file__).resolve().parents[2]


def cli_runner(workdir: Path, extra_config: str = "") -> Callable[..., subprocess.CompletedProcess]:
    """``run(*args)`` runs ``run.py ARGS --config workdir/rmail.toml`` as a user types it, on a
    data dir in ``workdir``, with ``extra_config`` appended to the config. ``stdin`` is typed
    in; ``config_first`` puts ``--config`` before the sub-command instead."""
    config = workdir / "rmail.toml"
    config.write_text(f'data_dir = "{workdir / "data"}"\nbcrypt_rounds = 4\n' + extra_config)

    def run(*args: str, stdin: str | None = None, config_first: bool = False) -> subprocess.CompletedProcess:
        argv = ["--config", str(config), *args] if config_first else [*args, "--config", str(config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RMAIL_")}
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], capture_output=True, text=True,
                              input=stdin, env=env, cwd=workdir, timeout=60)
    return run
