"""Shared fixtures: hermetic environment, test certificate, live runtimes on free ports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.runtime import ServerRuntime
from rmail.server.tls import generate_self_signed

from .helpers.server import make_config
from .helpers.summary import IMAPTEST_SUMMARY

PASSWORD = "secret-password"


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests off the real user's config and data dirs."""
    home = tmp_path_factory.mktemp("home")
    for var in ("RMAIL_CONFIG", "RMAIL_DATA_DIR", "RMAIL_PASSWORD", "RMAIL_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for mail.example.com, localhost and 127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    generate_self_signed(cert, key, "mail.example.com")
    return cert, key


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServerRuntime]:
    """A running server without TLS; users alice@ and bob@example.com (bob is admin)."""
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await rt.accounts.add_user("bob@example.com", PASSWORD, admin=True)
        yield rt


@pytest.fixture
async def tls_runtime(tmp_path: Path, tls_files: tuple[Path, Path]) -> AsyncIterator[ServerRuntime]:
    """A running server with TLS configured; same users as ``runtime``."""
    async with ServerRuntime(make_config(tmp_path / "data", tls=tls_files), auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        await rt.accounts.add_user("bob@example.com", PASSWORD, admin=True)
        yield rt


@pytest.fixture
def client_tls_context(tls_files: tuple[Path, Path]):
    """A client SSL context trusting the test certificate."""
    import ssl
    ctx = ssl.create_default_context(cafile=str(tls_files[0]))
    return ctx


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the whole run (tests/helpers/pg.py)."""
    from .helpers import pg
    reason = pg.missing_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL: {reason}")
        pytest.skip(reason)
    cluster = pg.Cluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """The URL of a fresh, empty database on the test cluster."""
    return pg_cluster.create_database()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print imaptest's scripted summary when that test ran (CI's log reports it)."""
    summary = config.stash.get(IMAPTEST_SUMMARY, None)
    if summary:
        terminalreporter.section("imaptest scripted (rmail)")
        terminalreporter.write_line(summary)
