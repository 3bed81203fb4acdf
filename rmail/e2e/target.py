"""What an end-to-end check talks to: a throwaway server or a running one, and its store.

A ``Backend`` runs coroutines against the store on an event loop in its own thread, so that
blocking stdlib clients (smtplib, imaplib) can be used from the caller's thread while the server
— when it is a throwaway one — keeps serving on that other loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from rmail.server.config import Config

T = TypeVar("T")

#: Listener names in config order (SPEC Part 3 `[ports]`).
PROTOCOLS = ("smtp", "submission", "smtps", "imap", "imaps", "api")
#: Seconds any single backend call may take before the check fails instead of hanging.
CALL_TIMEOUT = 60.0


def connect_host(listen: str) -> str:
    """Where a local client reaches an address the server listens on (wildcards → loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen, listen)


def configured_ports(config: Config) -> dict[str, int | None]:
    """The ports a running server with ``config`` listens on (None: disabled or needs TLS)."""
    ports: dict[str, int | None] = {}
    for name in PROTOCOLS:
        port = getattr(config.ports, name)
        if port == 0 or (name in ("smtps", "imaps") and not config.tls.configured):
            ports[name] = None
        else:
            ports[name] = port
    return ports


def client_context(cafile: Path | None) -> ssl.SSLContext:
    """A client context that trusts the system CAs plus the server's own certificate.

    The configured certificate is added as a trust anchor (partial chains allowed), so a
    self-signed certificate verifies; host names are not checked because checks connect to
    loopback addresses the certificate need not name (diagnose checks the name separately).
    """
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    if cafile is not None:
        ctx.load_verify_locations(cafile=str(cafile))
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


@dataclass(frozen=True, slots=True)
class User:
    address: str
    password: str
    admin: bool = False

    @property
    def local(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.split("@", 1)[1]


@dataclass(frozen=True, slots=True)
class Target:
    """A server to check: where it listens and whom to log in as."""

    host: str
    ports: dict[str, int | None]
    hostname: str
    tls: bool                            #: TLS configured (STARTTLS offered, 465/993 listen)
    cafile: Path | None
    domain: str
    alice: User
    bob: User                            #: an admin of ``domain``
    message_size: int

    def port(self, protocol: str) -> int:
        port = self.ports.get(protocol)
        if port is None:
            raise LookupError(f"the server has no {protocol} listener")
        return port

    def ssl_context(self) -> ssl.SSLContext:
        return client_context(self.cafile)

    def unique(self, prefix: str = "e2e") -> str:
        """A token no other check uses (subjects, folder names)."""
        return f"{prefix}-{secrets.token_hex(6)}"


class Backend:
    """Runs ``fn(ctx)`` coroutines on a private event loop; ``ctx`` has accounts, aliases, store."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="rmail-e2e-backend", daemon=True)
        self._thread.start()
        self.ctx: Any = None

    def call(self, fn: Callable[[Any], Awaitable[T]], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(fn(self.ctx), self.loop).result(timeout)

    def run(self, coro: Awaitable[T], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    # -- store helpers every check needs -------------------------------------------------

    def mailbox_id(self, address: str, name: str = "INBOX") -> int:
        async def q(ctx: Any) -> int:
            account = await ctx.accounts.get_user(address)
            return (await ctx.store.get_mailbox(account.id, name)).id
        return self.call(q)

    def messages_with(self, address: str, token: str, name: str = "INBOX") -> list[tuple[int, bytes]]:
        """(uid, raw bytes) of the messages in a mailbox whose subject contains ``token``."""
        async def q(ctx: Any) -> list[tuple[int, bytes]]:
            account = await ctx.accounts.get_user(address)
            box = await ctx.store.get_mailbox(account.id, name)
            metas = await ctx.store.list_messages(box.id)
            uids = [m.uid for m in metas]
            if not uids:
                return []
            infos = await ctx.store.fetch_info(box.id, uids)
            found = []
            for meta in metas:
                info = infos.get(meta.uid)
                if info is not None and token in info.subject:
                    found.append((meta.uid, await ctx.store.read_message(meta.blob_id)))
            return found
        return self.call(q)

    def wait_for_message(self, address: str, token: str, name: str = "INBOX",
                         timeout: float = 10.0) -> list[tuple[int, bytes]]:
        """Poll until a message with ``token`` in its subject is stored (delivery is durable on
        250, but a check may race the store's read snapshot by a few milliseconds)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages_with(address, token, name)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


class RuntimeBackend(Backend):
    """A throwaway ``ServerRuntime`` served from the backend's loop."""

    def __init__(self, config: Config, *, auth_delay: float = 0.0) -> None:
        super().__init__()
        from rmail.server.runtime import ServerRuntime
        self.runtime = ServerRuntime(config, auth_delay=auth_delay)
        try:
            self.run(self.runtime.start())
        except BaseException:
            super().close()
            raise
        self.ctx = self.runtime

    def bound_ports(self) -> dict[str, int | None]:
        ports: dict[str, int | None] = {}
        for name in PROTOCOLS:
            try:
                ports[name] = self.runtime.port(name)
            except KeyError:
                ports[name] = None
        return ports

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.runtime.stop())
        super().close()


class StoreBackend(Backend):
    """The data dir of a running server, opened like the admin CLI opens it."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        from rmail.cli.common import admin_context
        self._cm = admin_context(config)
        try:
            self.ctx = self.run(self._cm.__aenter__())
        except BaseException:
            super().close()
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self._cm.__aexit__(None, None, None))
        super().close()


@dataclass
class TestUsers:
    """Creates users (and their domain) in a backend, and removes exactly what it created."""

    backend: Backend
    created_users: list[str] = field(default_factory=list)
    created_domains: list[str] = field(default_factory=list)

    def add(self, user: User) -> None:
        async def w(ctx: Any) -> None:
            if not await ctx.accounts.is_local_domain(user.domain):
                self.created_domains.append(user.domain)
            await ctx.accounts.add_user(user.address, user.password, admin=user.admin)
        self.backend.call(w)
        self.created_users.append(user.address)

    def remove_all(self) -> list[str]:
        """Remove everything added; returns what could not be removed (with the reason)."""
        problems: list[str] = []

        async def w(ctx: Any) -> None:
            for address in reversed(self.created_users):
                try:
                    await ctx.accounts.remove_user(address)
                except Exception as exc:  # noqa: BLE001 - keep removing the rest
                    problems.append(f"user {address}: {exc}")
            for domain in self.created_domains:
                try:
                    await ctx.accounts.remove_domain(domain)
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"domain {domain}: {exc}")
        self.backend.call(w)
        self.created_users.clear()
        self.created_domains.clear()
        return problems
