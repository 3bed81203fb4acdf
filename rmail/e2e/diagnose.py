"""The eight diagnose phases against a configured, running rmail.

Configuration and storage are read directly (the config file, the data dir, the store opened
like the admin CLI opens it); the protocols are checked over real sockets with stdlib clients.
A temporary diagnostic user (random name, in its own ``.invalid`` domain) receives mail through
25, 587 and 465, which is then looked for in the store, over IMAP and over the API; the cleanup
phase removes the user and the domain whatever happened before.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import os
import secrets
import ssl
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from rmail.server.config import Config, ConfigError, find_config, load_config
from rmail.server.core.errors import AuthenticationFailed
from rmail.server.core.queue import Outcome
from rmail.server.core.space import MIB

from . import clients
from .report import FAIL, PASS, WARN, Check, Report
from .target import Target, User, configured_ports, connect_host

#: Domain of the diagnostic user: reserved (RFC 2606), so it can never be a real domain.
DIAG_DOMAIN = "rmail-diagnose.invalid"
CERT_WARN_DAYS = 14
QUEUE_OLD_SECONDS = 3600
#: Warn below this much free space even when limits.min_free_space is lower (or 0).
MIN_FREE_BYTES = 100 * 1024 * 1024
DELIVERY_WAIT = 10.0
LOG_FIX = "see the server log (python run.py serve prints it), then restart the server"
LABELS = {"smtp": "SMTP", "submission": "submission", "smtps": "SMTPS", "imap": "IMAP", "imaps": "IMAPS",
          "api": "API"}


class Finding(Exception):
    """Raised inside a probe to report a warn or fail with its fix."""

    def __init__(self, status: str, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.fix = status, reason, fix


def warn(reason: str, fix: str) -> Finding:
    return Finding(WARN, reason, fix)


def failed(reason: str, fix: str) -> Finding:
    return Finding(FAIL, reason, fix)


def config_fix(message: str, source: Path | None) -> str:
    """The fix for a ConfigError: the key it names, in the file it came from."""
    key = message.split(":", 1)[0].strip()
    where = str(source) if source else "rmail.toml"
    if key.startswith("tls."):
        return (f"set {key} in {where} to an existing, readable PEM file (or remove the [tls] section to run "
                "without TLS)")
    if key.startswith("unknown key"):
        return f"remove or correct that key in {where}"
    return f"correct {key} in {where}"


@dataclass
class Diagnosis:
    config_arg: str | None
    report: Report

    def __post_init__(self) -> None:
        self.config: Config | None = None
        self.ctx: Any = None
        self.running: dict[str, bool] = {}
        self.user: User | None = None
        self.created_domain = False
        self.tokens: dict[str, str] = {}      #: listener → subject token of the mail sent through it
        self.stored: dict[str, tuple[int, bytes]] = {}

    # -- plumbing -----------------------------------------------------------------------------

    def add(self, phase: str, name: str, status: str, reason: str, fix: str | None = None) -> None:
        self.report.add(Check(phase, name, status, reason, fix))

    async def probe(self, phase: str, name: str, fn: Callable[[], Awaitable[str]], fix: str = LOG_FIX) -> bool:
        """Run one check; its return value is the pass reason. Unexpected errors are failures."""
        try:
            reason = await fn()
        except Finding as f:
            self.add(phase, name, f.status, f.reason, f.fix)
            return f.status != FAIL
        except Exception as exc:  # noqa: BLE001 - any error is this check's failure, never a traceback
            self.add(phase, name, FAIL, _one_line(exc), fix)
            return False
        self.add(phase, name, PASS, reason)
        return True

    def blocking(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return asyncio.to_thread(fn, *args)

    @property
    def target(self) -> Target:
        assert self.config is not None and self.user is not None
        cfg = self.config
        ports = {p: (v if self.running.get(p) else None) for p, v in configured_ports(cfg).items()}
        return Target(host=connect_host(cfg.listen[0]), ports=ports, hostname=cfg.hostname, tls=cfg.tls.configured,
                      cafile=cfg.tls.cert, domain=self.user.domain, alice=self.user, bob=self.user,
                      message_size=cfg.limits.message_size)

    @property
    def server_up(self) -> bool:
        return any(self.running.values())

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> None:
        if not await self.configuration():
            return
        from rmail.cli.common import admin_context
        assert self.config is not None
        async with admin_context(self.config) as ctx:
            self.ctx = ctx
            try:
                if await self.user_management():
                    await self.storage()
                    if self.server_up:
                        await self.smtp()
                        await self.delivery()
                        await self.imap()
                        await self.api()
                    else:
                        for phase in ("SMTP protocol", "delivery verification", "IMAP protocol", "Exchange API"):
                            self.report.phase(phase)
                            self.report.note(phase, "skipped: the server is not running")
                else:
                    await self.storage()
            finally:
                await self.cleanup()

    # -- 1. configuration ---------------------------------------------------------------------

    async def configuration(self) -> bool:
        phase = "configuration"
        self.report.phase(phase)
        try:
            source = find_config(self.config_arg, os.environ)
        except ConfigError as exc:
            self.add(phase, "config file", FAIL, str(exc), "pass an existing file to --config or fix $RMAIL_CONFIG")
            return False
        try:
            cfg = await self.blocking(load_config, self.config_arg)
        except ConfigError as exc:
            self.add(phase, "config", FAIL, str(exc), config_fix(str(exc), source))
            return False
        self.config = cfg
        self.add(phase, "config", PASS, f"loaded {cfg.source}" if cfg.source else "no rmail.toml found; all defaults")
        ports = ", ".join(f"{LABELS[p]} {v}" for p, v in configured_ports(cfg).items() if v)
        moved = f" (+{cfg.port_offset}: not running as root)" if cfg.port_offset else ""
        self.add(phase, "ports", PASS, f"{ports}{moved}; hostname {cfg.hostname}")
        where = cfg.source or "rmail.toml"

        if not cfg.tls.configured:
            self.add(phase, "tls", WARN, "TLS is not configured: passwords travel in clear, 465 and 993 are off",
                     f'set [tls] cert = "/path/cert.pem" and key = "/path/key.pem" in {where}, then restart')
        else:
            await self.probe(phase, "tls", self._tls_files, fix=config_fix("tls.cert", cfg.source))
            await self.probe(phase, "tls key permissions", self._tls_key_mode, fix=f"chmod 600 {cfg.tls.key}")
        beyond = [a for a in cfg.listen if not _is_loopback(a)]
        if beyond and not cfg.tls.configured:
            self.add(phase, "listen", WARN, f"listening on {', '.join(beyond)} without TLS",
                     f'configure [tls] cert and key in {where}, or set listen = ["127.0.0.1"]')
        else:
            self.add(phase, "listen", PASS, ", ".join(cfg.listen))
        await self._server_running(phase)
        return True

    async def _tls_files(self) -> str:
        from cryptography import x509
        from rmail.server.tls import server_context
        cfg = self.config
        assert cfg is not None and cfg.tls.cert is not None and cfg.tls.key is not None
        await self.blocking(server_context, cfg)      # raises ConfigError naming tls.cert / tls.key
        cert = x509.load_pem_x509_certificate(await self.blocking(cfg.tls.cert.read_bytes))
        self._cert_der = cert.public_bytes(_der())
        left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
        expires = cert.not_valid_after_utc.date().isoformat()
        if left.total_seconds() <= 0:
            raise failed(f"certificate expired on {expires}", f"renew the certificate at tls.cert ({cfg.tls.cert}) "
                         "and restart the server")
        if left.days < CERT_WARN_DAYS:
            raise warn(f"certificate expires in {left.days} days ({expires})",
                       f"renew the certificate at tls.cert ({cfg.tls.cert}) and restart the server")
        names = _cert_names(cert)
        if names and cfg.hostname.lower() not in names and not any(
                n.startswith("*.") and cfg.hostname.lower().partition(".")[2] == n[2:] for n in names):
            raise warn(f"certificate names {', '.join(sorted(names))}, not hostname {cfg.hostname}",
                       f"set hostname in {cfg.source or 'rmail.toml'} to the certificate's name, or get a "
                       f"certificate for {cfg.hostname}")
        return f"certificate and key load; valid until {expires}; names {cfg.hostname}"

    async def _tls_key_mode(self) -> str:
        assert self.config is not None and self.config.tls.key is not None
        key = self.config.tls.key
        mode = (await self.blocking(key.stat)).st_mode
        if mode & 0o077:
            raise warn(f"{key} is readable by others ({stat.filemode(mode)})", f"chmod 600 {key}")
        return f"{key} is readable by its owner only"

    async def _server_running(self, phase: str) -> None:
        cfg = self.config
        assert cfg is not None
        host = connect_host(cfg.listen[0])
        ports = {p: v for p, v in configured_ports(cfg).items() if v}
        opened = await asyncio.gather(*(self.blocking(clients.port_open, host, v) for v in ports.values()))
        self.running = dict(zip(ports, opened))
        if not any(opened):
            listed = ", ".join(str(v) for v in ports.values())
            start = "python run.py serve" + (f" --config {self.config_arg}" if self.config_arg else "")
            self.add(phase, "server", FAIL, f"rmail is not running (connection refused on {host} ports {listed})",
                     f"start it with: {start}")
            return
        down = [f"{LABELS[p]} {ports[p]}" for p, up in self.running.items() if not up]
        if down:
            self.add(phase, "server", FAIL, f"nothing listens on {host} for {', '.join(down)}",
                     f"{LOG_FIX}; check that no other program holds those ports")
        else:
            self.add(phase, "server", PASS, f"all {len(ports)} listeners answer on {host}")
        if not await self.blocking(_lock_held, cfg.data_dir):
            self.add(phase, "data dir in use", FAIL,
                     f"something answers on the ports, but no rmail server is using data_dir {cfg.data_dir}",
                     f"set data_dir in {cfg.source or 'rmail.toml'} (or $RMAIL_DATA_DIR) to the running server's, "
                     "or stop the other program on those ports")
        else:
            self.add(phase, "data dir in use", PASS, f"the running server uses {cfg.data_dir}")

    # -- 2. user management -------------------------------------------------------------------

    async def user_management(self) -> bool:
        phase = "user management"
        self.report.phase(phase)
        accounts = self.ctx.accounts
        users = await accounts.list_users()
        domains = await accounts.list_domains()
        self.add(phase, "accounts", PASS, f"{len(users)} users in {len(domains)} domains")
        await self.dns_records(phase, [name for name, _ in domains if name != DIAG_DOMAIN])
        user = User(f"rmail-diag-{secrets.token_hex(5)}@{DIAG_DOMAIN}", secrets.token_urlsafe(18))

        async def create() -> str:
            self.created_domain = not await accounts.is_local_domain(DIAG_DOMAIN)
            await accounts.add_user(user.address, user.password)
            self.user = user
            return f"created temporary user {user.address}"
        if not await self.probe(phase, "create user", create,
                                fix=f"check that {self.config.data_dir if self.config else 'data_dir'} is writable"):
            return False

        async def lookup() -> str:
            found = await accounts.find_user(user.address)
            if found is None or found.address.lower() != user.address.lower():
                raise failed("the new user cannot be found", "check the store: python run.py user list")
            return "found by address; has INBOX" if await self.ctx.store.get_mailbox(found.id, "INBOX") else "found"
        await self.probe(phase, "look up user", lookup)

        async def passwords() -> str:
            await accounts.authenticate(user.address, user.password)
            try:
                await accounts.authenticate(user.address, user.password + "-wrong")
            except AuthenticationFailed:
                return "right password accepted, wrong one refused (bcrypt)"
            raise failed("a wrong password was accepted", "reset the user's password: python run.py user passwd EMAIL")
        await self.probe(phase, "passwords", passwords)
        return True

    async def dns_records(self, phase: str, domains: list[str]) -> None:
        """Each public local domain's records, looked up through ``[dns] nameserver``."""
        from rmail.server.core.dns import Resolver, TempDNSError
        from rmail.server.core.mailauth.records import domain_records

        from .dnscheck import check_domain, is_public
        cfg = self.config
        assert cfg is not None
        public = [d for d in domains if is_public(d)]
        if not public:
            skipped = f" ({', '.join(domains)}: reserved names that never resolve publicly)" if domains else ""
            self.add(phase, "DNS records", PASS, f"no public domain to look up{skipped}")
            return
        resolver = Resolver.from_config(cfg.dns)
        for domain in public:
            async def check(domain: str = domain) -> str:
                generations = await self.blocking(self.ctx.dkim.published_if_any, domain)
                records = domain_records(cfg, domain, generations)
                try:
                    result = await check_domain(resolver, domain, records)
                except TempDNSError as exc:
                    raise warn(f"DNS is not reachable through {resolver.description}: {exc}",
                               "check the network, or [dns] nameserver in "
                               f"{cfg.source or 'rmail.toml'}; then run diagnose again") from None
                problems = [f"{r.type} {r.name} missing" for r in result.missing]
                problems += [f"{r.type} {r.name} is {found or 'different'}" for r, found in result.wrong]
                lines = [r.line for r in result.missing] + [r.line for r, _ in result.wrong]
                if not generations:
                    problems.append("no DKIM keys yet")
                    lines.append(f"python run.py dns {domain} (makes the DKIM keys and prints their records)")
                if problems:
                    raise warn("; ".join(problems), "publish: " + " ; ".join(lines))
                if result.recommended:
                    self.report.note(phase, f"{domain}: recommended records not published: "
                                            + ", ".join(f"{r.type} {r.name}" for r in result.recommended)
                                            + f" (see python run.py dns {domain})")
                selectors = sum(len(g.keys) for g in generations)
                return f"{domain}: MX, SPF, DMARC and {selectors} DKIM selectors published as expected"
            await self.probe(phase, f"DNS records of {domain}", check)

    # -- 3. backend storage -------------------------------------------------------------------

    async def storage(self) -> None:
        phase = "backend storage"
        self.report.phase(phase)
        cfg = self.config
        assert cfg is not None
        await self.probe(phase, "data dir permissions", self._permissions)

        async def integrity() -> str:
            result = await self.ctx.backend.integrity_check()
            if result != "ok":
                raise failed(f"{self.ctx.backend.location.describe()} integrity check: {result}",
                             "stop the server and restore the store from a backup")
            return f"{self.ctx.backend.location.describe()} passes its integrity check"
        await self.probe(phase, "database", integrity)

        if self.user is not None:
            async def round_trip() -> str:
                account = await self.ctx.accounts.get_user(self.user.address)
                box = await self.ctx.store.get_mailbox(account.id, "INBOX")
                data = clients.message("diagnose@localhost", self.user.address, "rmail diagnose store round trip")
                uid = await self.ctx.store.append(box.id, data, ("\\Seen",))
                try:
                    [meta] = await self.ctx.store.get_meta(box.id, [uid])
                    if await self.ctx.store.read_message(meta.blob_id) != data:
                        raise failed("a stored message reads back different bytes",
                                     f"stop the server and check the disk under {cfg.data_dir}")
                finally:
                    await self.ctx.store.delete_messages(box.id, [uid])
                return "append, read back and delete a message"
            await self.probe(phase, "store round trip", round_trip,
                             fix=f"check free space and permissions under {cfg.data_dir}")

        async def disk() -> str:
            # Measured as the server measures it (space.py: statvfs, blocks free to non-root).
            state = await self.ctx.store.space.refresh()
            if state is None:
                return "the store is not on a local disk"
            free, reserve = state.free // MIB, cfg.limits.min_free_space // MIB
            where = cfg.source or "rmail.toml"
            if state.low:
                raise failed(f"{free} MiB free under {cfg.data_dir}, below the reserve of {reserve} MiB: "
                             "rmail refuses new mail (SMTP 452 4.3.1, IMAP NO [OVERQUOTA], REST 507)",
                             "free disk space (deleting mail in rmail works), move data_dir to a larger disk, "
                             f"or lower limits.min_free_space in {where}")
            if free * MIB < max(MIN_FREE_BYTES, 2 * cfg.limits.min_free_space):
                raise warn(f"only {free} MiB free under {cfg.data_dir}"
                           + (f"; rmail refuses new mail below {reserve} MiB" if reserve else ""),
                           "free disk space, or move data_dir to a larger disk")
            return f"{free} MiB free" + (f" (new mail is refused below {reserve} MiB)" if reserve else "")
        await self.probe(phase, "disk space", disk)

        async def queue() -> str:
            total, old, oldest = await self.ctx.backend.queue.age_summary(time.time() - QUEUE_OLD_SECONDS)
            if old:
                hours = (time.time() - oldest) / 3600
                raise warn(f"{old} of {total} outbound entries are older than 1 hour (oldest {hours:.1f} h)",
                           "see why with: python run.py queue list (then queue retry ID); check [relay] and that "
                           "outbound port 25 is open")
            return f"{total} outbound entries, none older than 1 hour"
        await self.probe(phase, "outbound queue", queue)

    async def _permissions(self) -> str:
        cfg = self.config
        assert cfg is not None

        def scan() -> list[tuple[Path, int, int]]:
            """(path, mode, wanted) for everything too open."""
            bad = []
            d = cfg.data_dir
            keys = d / "keys"
            dirs = [d, keys, d / "blobs"]
            files = [d / f"rmail.db{suffix}" for suffix in ("", "-wal", "-shm")]   # SQLite in WAL mode
            if keys.is_dir():
                # keys/dkim/<domain>/ holds the DKIM keys: directories 0700, files 0600 all the way down.
                for f in sorted(keys.rglob("*")):
                    if f.is_dir():
                        dirs.append(f)
                    elif f.is_file():
                        files.append(f)
            for path, wanted in [(p, 0o700) for p in dirs] + [(p, 0o600) for p in files]:
                try:
                    mode = path.stat().st_mode
                except FileNotFoundError:
                    continue
                if mode & 0o077:
                    bad.append((path, mode, wanted))
            return bad
        bad = await self.blocking(scan)
        if bad:
            listed = ", ".join(f"{p} ({stat.filemode(m)})" for p, m, _ in bad)
            fixes = "; ".join(f"chmod {w:o} {p}" for p, _, w in bad)
            raise warn(f"readable by others: {listed}", fixes)
        return f"{cfg.data_dir}, keys/ and blobs/ are 0700; rmail.db and keys/ files are 0600"

    # -- 4. SMTP ------------------------------------------------------------------------------

    async def smtp(self) -> None:
        phase = "SMTP protocol"
        self.report.phase(phase)
        if self.user is None:
            self.report.note(phase, "skipped: no diagnostic user")
            return
        t = self.target
        for protocol in ("smtp", "submission", "smtps"):
            if t.ports.get(protocol) is None:
                continue
            await self.probe(phase, f"{LABELS[protocol]} {t.ports[protocol]} greeting",
                             lambda p=protocol: self.blocking(self._smtp_ehlo, t, p))
        if t.ports.get("smtp"):
            await self.probe(phase, f"relay refused on {t.ports['smtp']}", lambda: self.blocking(self._relay, t))
        assert self.config is not None
        relay = self.config.relay
        if relay.host:
            await self.probe(phase, f"smarthost {relay.host}:{relay.port}", self._smarthost)
        for protocol in ("smtp", "submission", "smtps"):
            if t.ports.get(protocol) is None:
                continue
            await self.probe(phase, f"send through {LABELS[protocol]} {t.ports[protocol]}",
                             lambda p=protocol: self.blocking(self._send, t, p))

    def _smtp_ehlo(self, t: Target, protocol: str) -> str:
        if protocol == "smtps":
            client = clients.smtp(t, protocol)
            try:
                self._check_cert(client.sock)
                if not {"PLAIN", "LOGIN"} <= clients.auth_mechanisms(client):
                    raise failed("465 does not offer AUTH PLAIN LOGIN", LOG_FIX)
                return "TLS handshake; AUTH PLAIN LOGIN offered"
            finally:
                client.close()
        client = clients.smtp(t, protocol, starttls=False)
        try:
            size = client.esmtp_features.get("size", "")
            if t.tls:
                if client.has_extn("auth"):
                    raise failed("AUTH is offered before STARTTLS", LOG_FIX)
                if not client.has_extn("starttls"):
                    raise failed("STARTTLS is not offered although TLS is configured", LOG_FIX)
                client.starttls(context=t.ssl_context())
                client.ehlo(clients.EHLO_NAME)
                self._check_cert(client.sock)
            if not {"PLAIN", "LOGIN"} <= clients.auth_mechanisms(client):
                raise failed("AUTH PLAIN LOGIN is not offered" + (" after STARTTLS" if t.tls else ""), LOG_FIX)
            how = "STARTTLS, then AUTH" if t.tls else "AUTH in clear (no TLS configured)"
            return f"EHLO offers {how}; SIZE {size}"
        finally:
            client.close()

    async def _smarthost(self) -> str:
        """Log in to the configured smarthost the way the outbound queue will, send nothing."""
        from rmail.server.smtp.outbound import SMTPTransport
        assert self.config is not None
        cfg, relay = self.config, self.config.relay
        where = str(cfg.source or "rmail.toml")
        from rmail.server.core.dns import Resolver
        transport = SMTPTransport(relay, cfg.hostname, timeout=15, threads=1, resolver=Resolver.from_config(cfg.dns))
        try:
            result = await self.blocking(transport.check_smarthost)
        finally:
            await transport.close()
        if result.outcome is Outcome.DELIVERED:
            login = f", logged in as {relay.username}" if relay.username else ""
            return f"session accepted ({relay.tls}){login}"
        if result.status.startswith("5.7") or result.diagnostic.startswith("535"):
            raise failed(f"the smarthost refused the login of relay.username {relay.username!r}: {result.describe()}",
                         f"set relay.username and relay.password in {where} to the credentials of your "
                         "provider, then restart the server")
        if result.status in ("4.4.1", "4.7.10"):
            raise failed(result.describe(), f"check relay.host, relay.port and relay.tls in {where}")
        raise failed(result.describe(), f"check the [relay] section in {where}")

    def _check_cert(self, sock: Any) -> None:
        """The listener presents the configured certificate (not a stale one from before a renewal)."""
        expected = getattr(self, "_cert_der", None)
        if expected is None or not isinstance(sock, ssl.SSLSocket):
            return
        if sock.getpeercert(binary_form=True) != expected:
            assert self.config is not None
            raise warn(f"the server presents a different certificate than tls.cert ({self.config.tls.cert})",
                       "restart the server so it loads the current certificate")

    def _relay(self, t: Target) -> str:
        client = clients.smtp(t, "smtp")
        try:
            client.mail("diagnose@example.net")
            code, reply = client.rcpt("relay-test@example.org")
            if 200 <= code < 300:
                raise failed("OPEN RELAY: mail for a remote domain was accepted without AUTH",
                             "this is a bug: stop the server (it must refuse unauthenticated relaying) and report it")
            return f"unauthenticated mail to a remote domain refused ({code})"
        finally:
            client.close()

    def _send(self, t: Target, protocol: str) -> str:
        assert self.user is not None
        token = f"rmail-diagnose-{protocol}-{secrets.token_hex(4)}"
        sender = "diagnose@example.net" if protocol == "smtp" else self.user.address
        login = None if protocol == "smtp" else self.user
        clients.smtp_send(t, protocol, sender, [self.user.address],
                          clients.message(sender, self.user.address, token), login=login)
        self.tokens[protocol] = token
        return "accepted (250)" + (" after AUTH" if login else "")

    # -- 5. delivery verification -------------------------------------------------------------

    async def delivery(self) -> None:
        phase = "delivery verification"
        self.report.phase(phase)
        if not self.tokens:
            self.report.note(phase, "skipped: no message was accepted over SMTP")
            return
        assert self.user is not None
        account = await self.ctx.accounts.get_user(self.user.address)
        box = await self.ctx.store.get_mailbox(account.id, "INBOX")
        for protocol, token in self.tokens.items():
            async def look(token: str = token, protocol: str = protocol) -> str:
                deadline = time.monotonic() + DELIVERY_WAIT
                while True:
                    found = await self._find(box.id, token)
                    if found is not None:
                        self.stored[protocol] = found
                        if b"Received:" not in found[1][:2048]:
                            raise failed("stored without a Received: trace header", LOG_FIX)
                        return f"in INBOX as UID {found[0]}"
                    if time.monotonic() > deadline:
                        raise failed(f"accepted but not in INBOX after {DELIVERY_WAIT:.0f} s", LOG_FIX)
                    await asyncio.sleep(0.1)
            await self.probe(phase, f"mail via {LABELS[protocol]} stored", look)

    async def _find(self, mailbox_id: int, token: str) -> tuple[int, bytes] | None:
        metas = await self.ctx.store.list_messages(mailbox_id)
        infos = await self.ctx.store.fetch_info(mailbox_id, [m.uid for m in metas]) if metas else {}
        for meta in metas:
            info = infos.get(meta.uid)
            if info is not None and token in info.subject:
                return meta.uid, await self.ctx.store.read_message(meta.blob_id)
        return None

    # -- 6. IMAP ------------------------------------------------------------------------------

    async def imap(self) -> None:
        phase = "IMAP protocol"
        self.report.phase(phase)
        if self.user is None:
            return
        t = self.target
        if t.ports.get("imap"):
            await self.probe(phase, f"IMAP {t.ports['imap']} capabilities", lambda: self.blocking(self._imap_caps, t))
        for protocol in ("imap", "imaps"):
            if t.ports.get(protocol):
                await self.probe(phase, f"{LABELS[protocol]} {t.ports[protocol]} login and fetch",
                                 lambda p=protocol: self.blocking(self._imap_fetch, t, p))

    def _imap_caps(self, t: Target) -> str:
        client = clients.imap(t, starttls=False)
        try:
            caps = clients.capabilities(client)
            if t.tls:
                if not {"STARTTLS", "LOGINDISABLED"} <= caps or any(c.startswith("AUTH=") for c in caps):
                    raise failed(f"cleartext capabilities must carry STARTTLS and LOGINDISABLED, no AUTH=: "
                                 f"{' '.join(sorted(caps))}", LOG_FIX)
                return "STARTTLS and LOGINDISABLED before TLS"
            if "AUTH=PLAIN" not in caps:
                raise failed("AUTH=PLAIN missing although TLS is not configured", LOG_FIX)
            return "AUTH=PLAIN in clear (no TLS configured)"
        finally:
            client.shutdown()

    def _imap_fetch(self, t: Target, protocol: str) -> str:
        assert self.user is not None
        client = clients.imap(t, protocol)
        try:
            if protocol == "imaps" or t.tls:
                self._check_cert(client.sock)
            client.login(self.user.address, self.user.password)
            clients.imap_ok(client.select("INBOX", readonly=True))
            found = 0
            for via, (uid, data) in self.stored.items():
                uids = clients.uid_search(client, "SUBJECT", f'"{self.tokens[via]}"')
                if uids != [uid]:
                    raise failed(f"SEARCH for the mail sent via {LABELS[via]} found {uids}, expected [{uid}]", LOG_FIX)
                if clients.fetch_body(client, uid) != data:
                    raise failed(f"FETCH BODY[] of UID {uid} differs from the stored bytes", LOG_FIX)
                found += 1
            client.logout()
            if not found:
                return "LOGIN, SELECT INBOX (no diagnostic mail was stored to look for)"
            return f"LOGIN, SELECT INBOX; {found} diagnostic messages found by SEARCH with identical bytes"
        finally:
            with contextlib.suppress(Exception):   # already logged out
                client.shutdown()

    # -- 7. Exchange API ----------------------------------------------------------------------

    async def api(self) -> None:
        phase = "Exchange API"
        self.report.phase(phase)
        if self.user is None:
            return
        t = self.target
        if not t.ports.get("api"):
            return
        rest = clients.Api(t)

        async def unauthenticated() -> str:
            reply = await self.blocking(rest.request, "GET", "/folders")
            if reply.status != 401:
                raise failed(f"GET /folders without a token answered {reply.status}, not 401", LOG_FIX)
            return "GET /folders without a token: 401"
        await self.probe(phase, f"API {t.ports['api']} requires a token", unauthenticated)

        async def login() -> str:
            data = await self.blocking(rest.login, self.user)
            return f"POST /auth/login: token for {data['user']}, expires in {data['expires_in']} s"
        if not await self.probe(phase, "login", login):
            return

        async def messages() -> str:
            folders = (await self.blocking(rest.request, "GET", "/folders")).json()["folders"]
            inbox = next((f for f in folders if f["name"] == "INBOX"), None)
            if inbox is None or inbox["messages"] != len(self.stored):
                raise failed(f"GET /folders: INBOX {inbox}, expected {len(self.stored)} messages", LOG_FIX)
            for via, (uid, data) in self.stored.items():
                reply = await self.blocking(lambda u=uid: rest.request(
                    "GET", clients.folder_path("INBOX", "messages", str(u)), headers={"Accept": "message/rfc822"}))
                if reply.status != 200 or reply.body != data:
                    raise failed(f"GET message {uid} (sent via {LABELS[via]}): {reply.status}, bytes differ", LOG_FIX)
            return f"INBOX lists {len(self.stored)} messages; each one's bytes match the store"
        await self.probe(phase, "folders and messages", messages)

        async def autoconfig() -> str:
            reply = await self.blocking(rest.request, "GET", "/.well-known/autoconfig/mail/config-v1.1.xml", None)
            if reply.status != 200 or b"<clientConfig" not in reply.body:
                raise failed(f"autoconfig answered {reply.status}", LOG_FIX)
            return "Thunderbird autoconfig document served"
        await self.probe(phase, "autoconfig", autoconfig)

    # -- 8. cleanup ---------------------------------------------------------------------------

    async def cleanup(self) -> None:
        phase = "cleanup"
        self.report.phase(phase)
        if self.user is None:
            self.add(phase, "diagnostic user", PASS, "nothing was created")
            return
        user = self.user

        async def remove() -> str:
            await self.ctx.accounts.remove_user(user.address)
            if await self.ctx.accounts.find_user(user.address) is not None:
                raise failed(f"{user.address} still exists", f"python run.py user remove {user.address}")
            return f"removed {user.address} and its mail"
        await self.probe(phase, "diagnostic user", remove, fix=f"python run.py user remove {user.address}")
        if self.created_domain:
            async def domain() -> str:
                remaining = [u for u in await self.ctx.accounts.list_users(DIAG_DOMAIN)]
                if remaining:
                    # Another diagnose run is using it; that run removes the domain.
                    return f"kept {DIAG_DOMAIN}: another diagnose run still uses it"
                await self.ctx.accounts.remove_domain(DIAG_DOMAIN)
                return f"removed domain {DIAG_DOMAIN}"
            await self.probe(phase, "diagnostic domain", domain, fix=f"python run.py domain remove {DIAG_DOMAIN}")


def _lock_held(data_dir: Path) -> bool:
    """Whether a server holds the data dir's lock (runtime.data_dir_lock takes it exclusively)."""
    path = data_dir / "rmail.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)       # closing drops our shared lock at once
    return False


def _is_loopback(address: str) -> bool:
    import ipaddress
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _cert_names(cert: Any) -> set[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    names: set[str] = set()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.update(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names.update(str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return names


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding
    return Encoding.DER


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError):
        text = "connection refused"
    return " ".join(text.split())[:240]


async def diagnose(config_arg: str | None, report: Report) -> Report:
    await Diagnosis(config_arg, report).run()
    return report
