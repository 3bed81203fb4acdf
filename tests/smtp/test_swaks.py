"""A real, independent client: swaks (Debian package) on 25, 587 (STARTTLS + AUTH) and 465."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from rmail.server.runtime import ServerRuntime
from tests.helpers.clients import require_client

from .conftest import PASSWORD, inbox


def _swaks(*args: str) -> subprocess.CompletedProcess[str]:
    swaks = require_client("swaks")
    return subprocess.run([swaks, "--server", "127.0.0.1", "--helo", "client.example.net",
                           "--h-Subject", "swaks test", "--body", "hello from swaks", *args],
                          capture_output=True, text=True, timeout=30)


async def test_swaks_plain_25(runtime: ServerRuntime) -> None:
    done = await asyncio.to_thread(_swaks, "--port", str(runtime.port("smtp")),
                                   "--from", "carol@example.net", "--to", "alice@example.com")
    assert done.returncode == 0, done.stdout + done.stderr
    [stored] = await inbox(runtime, "alice@example.com")
    assert b"Subject: swaks test" in stored and b"hello from swaks" in stored


async def test_swaks_25_refuses_relay(runtime: ServerRuntime) -> None:
    done = await asyncio.to_thread(_swaks, "--port", str(runtime.port("smtp")),
                                   "--from", "carol@example.net", "--to", "dave@remote.example.org")
    assert done.returncode != 0
    assert "554 5.7.1" in done.stdout


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_swaks_starttls_auth_587(tls_runtime: ServerRuntime, tls_files: tuple[Path, Path],
                                       mechanism: str) -> None:
    done = await asyncio.to_thread(
        _swaks, "--port", str(tls_runtime.port("submission")), "--tls", "--tls-verify", "--tls-ca-path",
        str(tls_files[0]), "--tls-sni", "localhost", "--auth", mechanism, "--auth-user", "alice@example.com",
        "--auth-password", PASSWORD, "--from", "alice@example.com", "--to", "bob@example.com")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "AUTH" in done.stdout and "235 2.7.0" in done.stdout
    [stored] = await inbox(tls_runtime, "bob@example.com")
    assert b"with ESMTPSA" in stored and b"hello from swaks" in stored


async def test_swaks_implicit_tls_465(tls_runtime: ServerRuntime) -> None:
    done = await asyncio.to_thread(
        _swaks, "--port", str(tls_runtime.port("smtps")), "--tls-on-connect", "--auth", "PLAIN",
        "--auth-user", "alice@example.com", "--auth-password", PASSWORD,
        "--from", "alice@example.com", "--to", "bob@example.com")
    assert done.returncode == 0, done.stdout + done.stderr
    [stored] = await inbox(tls_runtime, "bob@example.com")
    assert b"with ESMTPSA" in stored


async def test_swaks_auth_refused_before_starttls(tls_runtime: ServerRuntime) -> None:
    done = await asyncio.to_thread(
        _swaks, "--port", str(tls_runtime.port("submission")), "--auth", "PLAIN",
        "--auth-user", "alice@example.com", "--auth-password", PASSWORD,
        "--from", "alice@example.com", "--to", "bob@example.com")
    assert done.returncode != 0      # AUTH is not offered in clear when TLS is configured
    assert await inbox(tls_runtime, "bob@example.com") == []
