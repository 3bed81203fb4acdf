"""The target of the end-to-end suite: a throwaway server, or the running one named by
``python run.py test --target CONFIG`` (passed in ``$RMAIL_E2E_TARGET``).

Throwaway: free ports on 127.0.0.1, a temporary data dir, the session's test certificate and
two users. Running server: two users in a fresh ``*.invalid`` domain, created through the store
as the admin CLI does and removed (with the domain) when the session ends.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from rmail.e2e.target import (Backend, RuntimeBackend, StoreBackend, Target, TestUsers, User, configured_ports,
                              connect_host)
from rmail.server.config import load_config

from ..conftest import PASSWORD
from ..helpers.server import make_config

#: Set by ``python run.py test --target CONFIG``; the resolved data dir rides along so that a
#: hermetic test environment cannot change which store the suite opens.
TARGET_ENV = "RMAIL_E2E_TARGET"
DATA_DIR_ENV = "RMAIL_E2E_DATA_DIR"


@dataclass(frozen=True, slots=True)
class Server:
    target: Target
    backend: Backend
    throwaway: bool


def _throwaway(data_dir: Path, tls: tuple[Path, Path] | None) -> tuple[Target, RuntimeBackend]:
    backend = RuntimeBackend(make_config(data_dir, tls=tls))
    alice = User("alice@example.com", PASSWORD)
    bob = User("bob@example.com", PASSWORD, admin=True)
    users = TestUsers(backend)
    users.add(alice)
    users.add(bob)
    cfg = backend.runtime.config
    target = Target(host="127.0.0.1", ports=backend.bound_ports(), hostname=cfg.hostname,
                    tls=cfg.tls.configured, cafile=cfg.tls.cert, domain="example.com", alice=alice, bob=bob,
                    message_size=cfg.limits.message_size)
    return target, backend


@pytest.fixture(scope="session")
def server(tls_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config_path = os.environ.get(TARGET_ENV)
    if not config_path:
        target, backend = _throwaway(tmp_path_factory.mktemp("e2e") / "data", tls_files)
        try:
            yield Server(target, backend, throwaway=True)
        finally:
            backend.close()
        return
    env = {"RMAIL_DATA_DIR": os.environ.get(DATA_DIR_ENV, "")}
    cfg = load_config(config_path, env)
    store = StoreBackend(cfg)
    users = TestUsers(store)
    domain = f"e2e-{secrets.token_hex(4)}.invalid"
    alice = User(f"alice@{domain}", secrets.token_urlsafe(12))
    bob = User(f"bob@{domain}", secrets.token_urlsafe(12), admin=True)
    try:
        users.add(alice)
        users.add(bob)
        target = Target(host=connect_host(cfg.listen[0]), ports=configured_ports(cfg), hostname=cfg.hostname,
                        tls=cfg.tls.configured, cafile=cfg.tls.cert, domain=domain, alice=alice, bob=bob,
                        message_size=cfg.limits.message_size)
        yield Server(target, store, throwaway=False)
    finally:
        problems = users.remove_all()
        store.close()
        if problems:
            raise RuntimeError("could not remove the e2e test users: " + "; ".join(problems))


@pytest.fixture(scope="session")
def target(server: Server) -> Target:
    return server.target


@pytest.fixture(scope="session")
def backend(server: Server) -> Backend:
    return server.backend


@pytest.fixture(scope="session")
def plain_target(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A second throwaway server without TLS configured (only when the suite runs its own)."""
    if not server.throwaway:
        pytest.skip("needs a server without TLS; --target checks the configured one only")
    target, backend = _throwaway(tmp_path_factory.mktemp("e2e-plain") / "data", None)
    try:
        yield target
    finally:
        backend.close()
