"""SIGHUP on ``run.py serve``: new TLS connections get the replaced certificate, open ones keep
working, a broken certificate leaves the previous one served; a few config keys change live.
Also the start-up warning for a non-loopback address without TLS."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import socket
import ssl
import sys
import time
from pathlib import Path

import pytest

from rmail.client.tlstrust import pretty
from rmail.server.reload import live_config
from rmail.server.runtime import ServerRuntime, is_loopback
from rmail.server.tls import generate_self_signed

from .helpers.server import dns_toml, free_ports, make_config, serve_process

ROOT = Path(__file__).resolve().parent.parent
PORTS = ("smtp", "submission", "smtps", "imap", "imaps", "api")


def _open_imaps(port: int) -> tuple[ssl.SSLSocket, str]:
    """An IMAPS connection (certificate not verified: the test compares fingerprints) and the
    fingerprint of the certificate it was shown."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    greeting = sock.recv(4096)
    assert greeting.startswith(b"* OK")
    return sock, pretty(hashlib.sha256(der).hexdigest())


def _smtps_fingerprint(port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                         server_hostname="localhost") as sock:
        der = sock.getpeercert(binary_form=True)
        assert der is not None and sock.recv(4096).startswith(b"220")
        return pretty(hashlib.sha256(der).hexdigest())


def _noop(sock: ssl.SSLSocket, tag: str) -> bytes:
    sock.sendall(f"{tag} NOOP\r\n".encode())
    data = b""
    while f"{tag} ".encode() not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return data


def _wait_for(log: Path, text: str, count: int = 1, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text()
        if content.count(text) >= count:
            return content
        time.sleep(0.1)
    pytest.fail(f"{text!r} not logged {count} time(s):\n{log.read_text()}")


def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    keys = tmp_path / "tls"
    cert, key = keys / "cert.pem", keys / "key.pem"
    generate_self_signed(cert, key, "mail.example.com")
    ports = dict(zip(PORTS, free_ports(len(PORTS))))
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nbcrypt_rounds = 4\nhostname = "mail.example.com"\n'
                      f'[tls]\ncert = "{cert}"\nkey = "{key}"\n'
                      "[ports]\n" + "".join(f"{k} = {v}\n" for k, v in ports.items()) + dns_toml())
    log = tmp_path / "serve.log"
    argv = [sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)]
    with serve_process(argv, ports.values(), log, cwd=ROOT) as proc:
        _wait_for(log, "SHA-256 fingerprint")
        old_conn, first = _open_imaps(ports["imaps"])
        assert first in log.read_text()

        generate_self_signed(cert, key, "mail.example.com")      # a new pair in the same files
        proc.send_signal(signal.SIGHUP)
        text = _wait_for(log, "reload: TLS certificate")
        new_conn, second = _open_imaps(ports["imaps"])
        assert second != first and second in text.split("reload: TLS certificate", 1)[1]
        assert _smtps_fingerprint(ports["smtps"]) == second        # every listener shares the context
        assert b"a1 OK" in _noop(old_conn, "a1")                 # the open session goes on
        assert b"b1 OK" in _noop(new_conn, "b1")

        cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        proc.send_signal(signal.SIGHUP)
        text = _wait_for(log, "still serving the previous certificate")
        assert [line for line in text.splitlines() if " ERROR " in line] == [
            line for line in text.splitlines() if "still serving the previous certificate" in line]
        assert len([line for line in text.splitlines() if " ERROR " in line]) == 1
        third_conn, third = _open_imaps(ports["imaps"])
        assert third == second
        assert b"c1 OK" in _noop(third_conn, "c1")
        assert b"a2 OK" in _noop(old_conn, "a2")
        for s in (old_conn, new_conn, third_conn):
            s.close()
        assert proc.poll() is None
    assert "Traceback" not in log.read_text()


async def test_reload_applies_live_keys_and_names_the_rest(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rmail")
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        new = make_config(tmp_path / "data", limits={"recipients": 3, "connections": 5},
                          antispam={"checks": False}, listen=["127.0.0.1", "::1"])
        assert await rt.reload(new)
        assert rt.config.limits.recipients == 3 and rt.config.antispam.checks is False
        assert rt.config.limits.connections == 1000 and rt.config.listen == ("127.0.0.1",)
        warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][-1]
        assert "listen" in warning and "limits.connections" in warning and "recipients" not in warning


async def _smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str | None) -> str:
    if line is not None:
        writer.write(line.encode() + b"\r\n")
    while True:
        reply = (await asyncio.wait_for(reader.readline(), 10)).decode()
        if reply[3:4] != "-":
            return reply


async def test_reloaded_recipient_limit_applies_to_the_next_session(tmp_path: Path) -> None:
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", "a-password-1")
        await rt.reload(make_config(tmp_path / "data", limits={"recipients": 2}))
        reader, writer = await asyncio.open_connection("127.0.0.1", rt.port("smtp"))
        assert (await _smtp(reader, writer, None)).startswith("220")
        assert (await _smtp(reader, writer, "EHLO client.example.net")).startswith("250")
        assert (await _smtp(reader, writer, "MAIL FROM:<carol@example.net>")).startswith("250")
        for _ in range(2):
            assert (await _smtp(reader, writer, "RCPT TO:<alice@example.com>")).startswith("250")
        assert (await _smtp(reader, writer, "RCPT TO:<alice@example.com>")).startswith("452 4.5.3")
        writer.close()


def test_live_config_reports_nothing_for_an_unchanged_file(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    assert live_config(cfg, cfg) == (cfg, [])


async def test_plain_public_listener_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rmail")
    # No protocol services: the runtime binds nothing, so a documentation address can stand for
    # a public one; the warning is about the configured addresses.
    cfg = make_config(tmp_path / "data", listen=["127.0.0.1", "192.0.2.1", "::"])
    async with ServerRuntime(cfg, auth_delay=0, services=()):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "192.0.2.1, ::" in warnings[0] and "[tls]" in warnings[0] and "127.0.0.1," not in warnings[0]


async def test_no_warning_with_tls_or_on_loopback(tmp_path: Path, tls_files: tuple[Path, Path],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rmail")
    async with ServerRuntime(make_config(tmp_path / "a", listen=["192.0.2.1"], tls=tls_files), services=()):
        pass
    async with ServerRuntime(make_config(tmp_path / "b", listen=["127.0.0.1", "::1", "localhost"]), services=()):
        pass
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not is_loopback("0.0.0.0") and not is_loopback("mail.example.com")


def test_copy_certificate_errors_are_config_errors(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    from rmail.server.config import ConfigError
    from rmail.server.reload import copy_certificate
    copy = copy_certificate(*tls_files, tmp_path)
    assert copy.cert.read_bytes() == tls_files[0].read_bytes() and copy.fingerprint.count(":") == 31
    copy.directory.cleanup()
    with pytest.raises(ConfigError, match="scratch directory"):
        copy_certificate(*tls_files, tmp_path / "missing")
    with pytest.raises(ConfigError, match="cannot read"):
        copy_certificate(tmp_path / "nope.pem", tls_files[1], tmp_path)
    with pytest.raises(ConfigError, match="cannot load"):
        copy_certificate(tls_files[1], tls_files[1], tmp_path)        # a key is not a certificate
    assert list(tmp_path.iterdir()) == []                            # no copy left behind
