"""ServerRuntime: builds the core and the protocol adapters, starts their listeners under one
AsyncExitStack, exposes ``snapshot()`` and the event bus, and stops gracefully.

``python run.py serve`` and the console run the same runtime. Protocol adapters plug in as
modules listed in ``SERVICES``; each has ``async def start(runtime, stack)`` that opens its
listeners, reports them with ``runtime.add_listener`` and registers its shutdown on ``stack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import ipaddress
import logging
import os
import ssl
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .config import Config, ConfigError, ensure_data_dir
from .core.accounts import Accounts
from .core.aliases import Aliases
from .core.authguard import AuthGuard, GuardLimits
from .core.connections import ConnectionRegistry, raise_fd_limit
from .core.delivery import Delivery
from .core.dkimkeys import DkimKeys
from .core.dns import Resolver
from .core.events import AuthFailed, Bounced, Event, EventBus, LogRecord, MessageReceived
from .core.mailauth.inbound import InboundChecker
from .core.mailauth.signing import Signer
from .core.quota import Quotas
from .core.rates import RateLimiter
from .core.space import SpaceState
from .core.storage import open_backend
from .metrics import Metrics
from .reload import copy_certificate, live_config
from .tls import certificate_fingerprint, server_context

if TYPE_CHECKING:
    from .admin import AdminServer

log = logging.getLogger("rmail")

#: Adapter modules, started in this order (SMTP first: it owns the outbound queue; the admin
#: socket last, so an attached console finds every other service up, and it goes first at stop).
SERVICES = ("rmail.server.smtp", "rmail.server.imap", "rmail.server.http", "rmail.server.admin")
#: Seconds between free-space measurements when no mail arrives (each is one statvfs).
SPACE_POLL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Listener:
    protocol: str          #: "smtp", "submission", "smtps", "imap", "imaps", "api"
    host: str
    port: int
    tls: str               #: "none", "starttls" or "implicit"


@dataclass(slots=True)
class Counters:
    received: int = 0
    delivered: int = 0
    queued: int = 0
    bounced: int = 0
    auth_failures: int = 0

    def count(self, event: Event) -> None:
        if isinstance(event, MessageReceived):
            self.received += 1
            self.delivered += event.local_recipients
            self.queued += event.remote_recipients
        elif isinstance(event, AuthFailed):
            self.auth_failures += 1
        elif isinstance(event, Bounced):
            self.bounced += 1


@dataclass(frozen=True, slots=True)
class Snapshot:
    hostname: str
    started: float
    listeners: tuple[Listener, ...]
    counters: Counters
    connections_now: int
    connections_peak: int
    storage: SpaceState | None = None    #: free space against limits.min_free_space
    tls_fingerprint: str | None = None   #: SHA-256 of the TLS certificate (None: no TLS)


class BusLogHandler(logging.Handler):
    """Forwards log records to the bus (the console's Log pane). Thread-safe."""

    def __init__(self, bus: EventBus) -> None:
        super().__init__(logging.INFO)
        self.bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "rmail.access":
            return      # one line per API request would drown everything else in the pane
        try:
            event = LogRecord(record.levelname, record.name, record.getMessage(), record.created)
            self.bus.publish_threadsafe([event])
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


@dataclass
class ServerRuntime:
    """The whole server. Use ``async with ServerRuntime(config) as rt:`` or start()/stop()."""

    config: Config
    auth_delay: float = 0.5            #: first failed-login delay; tests set 0
    services: tuple[str, ...] = SERVICES
    bus: EventBus = field(default_factory=EventBus)
    listeners: list[Listener] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    started: float = 0.0
    tls_fingerprint: str | None = None   #: SHA-256 of the TLS certificate, once started with TLS
    stopping: bool = False               #: stop() was called: /healthz answers 503 from then on
    admin: AdminServer | None = None     #: the admin socket consoles attach to, once listening
    #: What each service's ``start`` returned (its server object), by module name.
    started_services: dict[str, object] = field(default_factory=dict)
    _log_forwarders: int = field(default=0, repr=False)
    _log_handler: BusLogHandler | None = field(default=None, repr=False)

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.bus.bind_loop(loop)
        self._stack = contextlib.AsyncExitStack()
        await self._stack.__aenter__()
        try:
            await asyncio.to_thread(ensure_data_dir, cfg)
            self._stack.enter_context(data_dir_lock(cfg.data_dir))
            self.tls: ssl.SSLContext | None = server_context(cfg)
            self.tls_fingerprint = certificate_fingerprint(cfg.tls.cert) if self.tls is not None else None
            self.dns = Resolver.from_config(cfg.dns, cache=True)   # every DNS lookup of the server goes here
            self.backend = await open_backend(cfg.store_location, publish=self.bus.publish_threadsafe,
                                              recover=True, min_free_space=cfg.limits.min_free_space,
                                              pool_size=cfg.store.pool_size)
            self._stack.push_async_callback(self.backend.close)
            self.store = self.backend.mail
            self.views = self.backend.views
            space = asyncio.create_task(self._watch_space(), name="rmail-space")
            self._stack.push_async_callback(_cancel, space)
            self.accounts = Accounts(self.backend.directory, bcrypt_rounds=cfg.bcrypt_rounds,
                                     cache_seconds=cfg.limits.auth_cache_seconds)
            self.aliases = Aliases(self.accounts)
            self.quotas = Quotas(self.backend.directory, default=cfg.limits.quota)
            self.send_rate = RateLimiter(cfg.limits.send_per_minute)  # REST send and SMTP AUTH
            self.dkim = DkimKeys(self.backend.dkim_keys)
            self.inbound = InboundChecker(self.dns, cfg.hostname, cfg.antispam)
            self.delivery = Delivery(self.store, self.accounts, self.aliases, self.bus, quotas=self.quotas,
                                     signer=Signer(self.dkim))
            lim = cfg.limits
            #: Every password check goes through this guard (core/authguard.py); its counts
            #: live in the store's ledger, shared by every node of a PostgreSQL store.
            self.throttle = AuthGuard(GuardLimits(
                pair_failures=lim.auth_pair_failures, address_failures=lim.auth_failures,
                account_failures=lim.auth_account_failures, lockout_seconds=lim.auth_lockout_seconds,
                account_lockout_seconds=lim.auth_account_lockout_seconds, concurrent=lim.auth_concurrent,
                base_delay=self.auth_delay), bus=self.bus, on_lockout=self.accounts.forget_login,
                ledger=self.backend.login_failures)
            self._stack.push_async_callback(self.throttle.settle)   # before the store closes
            self.connections = ConnectionRegistry(self.bus, max_total=cfg.limits.connections,
                                                  max_per_ip=cfg.limits.connections_per_ip,
                                                  max_preauth=cfg.limits.preauth_connections)
            raise_fd_limit(cfg.limits.connections)
            self.metrics = Metrics(self)
            self.store.on_commit = self.metrics.commit_seconds.observe
            self._watch = self.bus.feed(lambda e: True, maxlen=100000)
            self._stack.callback(self.bus.unsubscribe, self._watch)
            watcher = asyncio.create_task(self._watch_events(), name="rmail-counters")
            self._stack.push_async_callback(_cancel, watcher)
            for name in self.services:
                module = importlib.import_module(name)
                start = getattr(module, "start", None)
                if start is None:
                    log.warning("%s is not built yet; not started", name)
                    continue
                self.started_services[name] = await start(self, self._stack)
            self.started = time.time()
        except BaseException:
            await self._stack.aclose()
            raise
        for listener in self.listeners:
            log.info("%s listening on %s:%d (%s)", listener.protocol, listener.host, listener.port,
                     {"none": "plain", "starttls": "STARTTLS", "implicit": "TLS"}[listener.tls])
        if self.tls_fingerprint:
            # What users compare when their client asks whether to trust a self-signed certificate.
            log.info("TLS certificate %s, SHA-256 fingerprint %s", cfg.tls.cert, self.tls_fingerprint)
        exposed = [host for host in cfg.listen if not is_loopback(host)]
        if exposed and self.tls is None:
            log.warning("listening on %s without TLS: passwords and mail cross the network in clear; set "
                        "[tls] cert and key (docs/OPERATIONS.md, \"Going public\") or listen on 127.0.0.1 only",
                        ", ".join(exposed))

    async def reload(self, new: Config) -> bool:
        """Apply a re-read config (SIGHUP): load the certificate again and take the keys that
        can change live (rmail/server/reload.py). A certificate that does not load leaves the old
        one in use and logs one ERROR line. Returns whether everything asked for was applied."""
        ok = True
        if self.tls is not None and new.tls.configured:
            assert new.tls.cert is not None and new.tls.key is not None
            try:
                copy = await asyncio.to_thread(copy_certificate, new.tls.cert, new.tls.key, self.config.data_dir)
            except ConfigError as exc:
                log.error("reload: %s; still serving the previous certificate (%s)", exc, self.tls_fingerprint)
                ok = False
            else:
                try:
                    # The pair loaded into a scratch context from these very copies, so this cannot
                    # leave the live context half-updated. New handshakes present it from now on.
                    self.tls.load_cert_chain(str(copy.cert), str(copy.key))
                finally:
                    copy.directory.cleanup()
                self.tls_fingerprint = copy.fingerprint
                self.config = replace(self.config, tls=new.tls)   # the paths now in use
                log.info("reload: TLS certificate %s, SHA-256 fingerprint %s", new.tls.cert, copy.fingerprint)
        elif (self.tls is None) != (not new.tls.configured):
            log.warning("reload: turning TLS on or off needs a restart")
            ok = False
        self.config, restart = live_config(self.config, new)
        if restart:
            log.warning("reload: changes to %s need a restart; not applied", ", ".join(restart))
        return ok

    def forward_logs(self) -> Callable[[], None]:
        """Copy log records to the bus (a console's Log pane) until the returned function is
        called. One handler on the root logger however many consoles watch, so no line shows
        twice; it catches every library too (aiosmtpd, aiohttp, asyncio)."""
        if self._log_forwarders == 0:
            self._log_handler = BusLogHandler(self.bus)
            logging.getLogger().addHandler(self._log_handler)
        self._log_forwarders += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._log_forwarders -= 1
            if self._log_forwarders == 0 and self._log_handler is not None:
                logging.getLogger().removeHandler(self._log_handler)
                self._log_handler = None
        return release

    async def stop(self) -> None:
        """Close listeners, let in-flight work finish, close the store."""
        self.stopping = True
        await self._stack.aclose()

    async def __aenter__(self) -> ServerRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _watch_events(self) -> None:
        while True:
            await self._watch.wait()
            for event in self._watch.drain():
                self.counters.count(event)
                self.metrics.count(event)
                self.delivery.forget_cached(event)

    async def _watch_space(self) -> None:
        """Measure free space now and then even when no mail comes in, so the console header
        and the log tell of a disk below the reserve (and of its recovery) without delay."""
        while True:
            try:
                await self.store.space.refresh()
            except OSError as exc:
                log.warning("storage: cannot measure free space: %s", exc)
            await asyncio.sleep(SPACE_POLL_SECONDS)

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def port(self, protocol: str) -> int:
        """The bound port of a listener (tests bind port 0 and ask here)."""
        for listener in self.listeners:
            if listener.protocol == protocol:
                return listener.port
        raise KeyError(f"no {protocol} listener")

    def snapshot(self) -> Snapshot:
        return Snapshot(self.config.hostname, self.started, tuple(self.listeners), self.counters,
                        len(self.connections), self.connections.peak, self.store.space.state,
                        self.tls_fingerprint)


def is_loopback(host: str) -> bool:
    """Whether a ``listen`` address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False     # a host name: it may resolve to anything


class AlreadyRunning(ConfigError):
    """Another rmail server holds the data dir (the console offers to attach to it)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(f"data_dir: another rmail server is already running on {data_dir}")
        self.data_dir = data_dir


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """One server per data dir: a second one would race the first one's recovery and queue.

    Raises:
        AlreadyRunning: another rmail server holds the lock.
    """
    fd = os.open(data_dir / "rmail.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(data_dir) from None
    try:
        yield
    finally:
        os.close(fd)


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
