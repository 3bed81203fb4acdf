"""rmail.toml → frozen Config, validated once at start.

Lookup order (SPEC Part 3): ``--config FILE``, ``$RMAIL_CONFIG``, ``./rmail.toml``, the
platformdirs user config dir. Every key is optional. A bad value raises ``ConfigError`` whose
message names the key and what is allowed, in one line.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

import platformdirs

from .core.errors import InvalidInput
from ..ports import UNPRIVILEGED_OFFSET, may_bind_privileged_ports
from .core.quota import MAX_QUOTA, parse_size

if TYPE_CHECKING:
    from .core.storage import StoreLocation

APP_NAME = "rmail"
MIB = 1024 * 1024


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line naming the key."""


@dataclass(frozen=True, slots=True)
class Ports:
    smtp: int = 25
    submission: int = 587
    smtps: int = 465
    imap: int = 143
    imaps: int = 993
    api: int = 9002


@dataclass(frozen=True, slots=True)
class TLSConfig:
    cert: Path | None = None
    key: Path | None = None

    @property
    def configured(self) -> bool:
        return self.cert is not None and self.key is not None


@dataclass(frozen=True, slots=True)
class Limits:
    message_size: int = 25 * MIB           #: SMTP SIZE, IMAP literal cap, REST body cap
    connections: int = 1000                #: open connections across all listeners
    #: An office behind one NAT address: ~40 desktop clients with Thunderbird's 5 cached IMAP
    #: connections each is 200, plus room for their SMTP and API connections.
    connections_per_ip: int = 256
    connections_per_user: int = 100        #: concurrent IMAP sessions per user (5 per device, 20 devices)
    # -- pre-login bounds (docs/SECURITY.md "Unauthenticated clients") --
    #: Unauthenticated connections per protocol family (IMAP, SMTP 25, submission, API); over
    #: it (or over ``connections``) the oldest one of the address holding the most is dropped.
    preauth_connections: int = 256
    preauth_literal: int = 8192            #: IMAP literal before login (Dovecot: 4-8 KiB)
    login_timeout: int = 60                #: seconds from connect to authenticated (IMAP, 587/465)
    smtp_session_timeout: int = 1800       #: seconds an unauthenticated session on port 25 may last
    smtp_connection_rate: int = 60         #: port-25 connections per client address per minute
    smtp_message_rate: int = 120           #: port-25 MAIL FROM per client address per minute
    api_header_timeout: int = 30           #: seconds from a request's first byte to its last header
    api_keepalive_timeout: int = 60        #: seconds an idle API keep-alive connection stays open
    # Password guessing (core/authguard.py says why each exists and how they combine).
    auth_failures: int = 20                #: failed logins from one address (any user) before it is locked
    auth_lockout_seconds: int = 300        #: address and pair lock length; their counts leak over it
    auth_pair_failures: int = 5            #: failed logins for one user from one address before that pair is locked
    auth_account_failures: int = 50        #: failed logins for one user from all addresses before it is locked
    auth_account_lockout_seconds: int = 600
    auth_concurrent: int = 4               #: password checks in flight per client address
    auth_cache_seconds: int = 3600         #: a verified password is remembered this long; 0 = never
    recipients: int = 100                  #: RCPT TO per SMTP transaction
    line_length: int = 65536               #: IMAP command line, excluding literals
    # Costly commands, storage and sending (docs/SECURITY.md). 0 means no limit for these three.
    search_budget: float = 10.0            #: CPU seconds one IMAP SEARCH may use, then NO [LIMIT]
    quota: int = 0                         #: bytes per user unless `user quota` says otherwise
    send_per_minute: int = 60              #: messages per user a minute: REST send and SMTP AUTH
    #: Bytes that must stay free on the data dir's filesystem for new mail to be accepted
    #: (Postfix's queue_minfree); 0 turns the reserve off. 256 MiB: ten messages of the default
    #: maximum size in flight, plus room for the WAL and for the deletions that free space.
    min_free_space: int = 256 * MIB


@dataclass(frozen=True, slots=True)
class RelayConfig:
    host: str | None = None                #: smarthost; None means direct MX delivery
    port: int = 25
    tls: str = "starttls"                  #: "starttls" (opportunistic), "tls" (implicit), "none"
    username: str | None = None
    password: str | None = None
    queue_lifetime_hours: int = 120        #: bounce after 5 days
    delay_notice_hours: int = 4


@dataclass(frozen=True, slots=True)
class ApiConfig:
    cors_origins: tuple[str, ...] = ("*",)
    #: Networks (CIDR) allowed to read GET /metrics and /healthz without a token; loopback
    #: only by default, widen it for a monitoring host.
    metrics_from: tuple[str, ...] = ("127.0.0.1/8", "::1")


@dataclass(frozen=True, slots=True)
class LogConfig:
    file: Path | None = None               #: append the server log here (``serve``); None = stderr only
    format: str = "text"                   #: "text" or "json" (one JSON object per line)


@dataclass(frozen=True, slots=True)
class DnsConfig:
    nameserver: str | None = None          #: "HOST:PORT" for every lookup; None = the system resolver
    timeout: int = 5                       #: seconds one lookup may take, retries included


@dataclass(frozen=True, slots=True)
class AntispamConfig:
    checks: bool = True                    #: SPF, DKIM, ARC and DMARC on port 25 (never on submission)
    dmarc_reject: bool = True              #: refuse DMARC failures under p=reject (550 5.7.1)
    dmarc_quarantine: str = "junk"         #: where p=quarantine failures go: "junk" or "inbox"
    dnsbl: tuple[str, ...] = ()            #: DNS blocklist zones asked about port-25 clients
    check_seconds: int = 20                #: time for all checks of one message (RFC 7208 §4.6.4: ~20 s)


@dataclass(frozen=True, slots=True)
class MtaStsConfig:
    mode: str = "testing"                  #: policy served for rmail's domains: "testing", "enforce", "none"
    max_age: int = 604800                  #: seconds senders may cache it (RFC 8461 §3.2; a week)
    outbound: bool = True                  #: honour recipient domains' policies when delivering


#: [store] pool_size bounds: the pool keeps 2 connections open; past 500 a node would hold
#: more than a stock PostgreSQL serves (max_connections = 100, raised by hand to a few hundred).
MIN_POOL_SIZE = 2
MAX_POOL_SIZE = 500


@dataclass(frozen=True, slots=True)
class StoreConfig:
    #: "postgresql://user:password@host:port/db": users and mail in PostgreSQL, shared by
    #: several nodes; None: SQLite in data_dir. $RMAIL_STORE_URL overrides.
    url: str | None = None
    pool_size: int = 20                    #: PostgreSQL connections per node


@dataclass(frozen=True, slots=True)
class Config:
    hostname: str
    listen: tuple[str, ...]
    ports: Ports
    tls: TLSConfig
    limits: Limits
    relay: RelayConfig
    api: ApiConfig
    data_dir: Path
    dns: DnsConfig = DnsConfig()
    antispam: AntispamConfig = AntispamConfig()
    mta_sts: MtaStsConfig = MtaStsConfig()
    log: LogConfig = LogConfig()
    store: StoreConfig = StoreConfig()
    source: Path | None = None             #: the file this came from, if any
    port_offset: int = 0                   #: UNPRIVILEGED_OFFSET when it was applied
    bcrypt_rounds: int = 12                #: tests lower it; never below 4

    @property
    def db_path(self) -> Path:
        return self.data_dir / "rmail.db"

    @property
    def store_location(self) -> StoreLocation:
        """Where the store lives: PostgreSQL at [store] url, else SQLite in data_dir."""
        from .core.storage import StoreLocation   # the storage contract is heavier than the config
        return StoreLocation(self.data_dir, self.store.url)


_SECTIONS = {"ports": Ports, "tls": TLSConfig, "limits": Limits, "relay": RelayConfig, "api": ApiConfig,
             "dns": DnsConfig, "antispam": AntispamConfig, "mta_sts": MtaStsConfig, "log": LogConfig,
             "store": StoreConfig}
_TOP_KEYS = {"hostname", "listen", "data_dir", "bcrypt_rounds", *_SECTIONS}
#: Integer keys where 0 switches the feature off.
_ZERO_ALLOWED = {"limits.auth_cache_seconds"}


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "rmail.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read, or None when there is none (all defaults)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--config: no such file: {path}")
        return path
    if env.get("RMAIL_CONFIG"):
        path = Path(env["RMAIL_CONFIG"])
        if not path.is_file():
            raise ConfigError(f"RMAIL_CONFIG: no such file: {path}")
        return path
    for candidate in (Path("rmail.toml"), default_config_path()):
        if candidate.is_file():
            return candidate
    return None


def load_config(
    explicit: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    is_root: bool | None = None,
) -> Config:
    """Find, read and validate the configuration.

    Raises:
        ConfigError: unreadable TOML or a key with a wrong name, type or value.
    """
    env = os.environ if env is None else env
    path = find_config(explicit, env)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
    root = may_bind_privileged_ports() if is_root is None else is_root
    return build_config(raw, env, source=path, is_root=root)


def build_config(raw: Mapping[str, Any], env: Mapping[str, str], *, source: Path | None = None,
                 is_root: bool = True) -> Config:
    """Validate a parsed TOML mapping into a Config (pure, for tests)."""
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    base = source.parent if source else Path.cwd()
    sections = {name: _section(name, cls, raw.get(name, {}), base) for name, cls in _SECTIONS.items()}

    hostname = raw.get("hostname", socket.getfqdn() or "localhost")
    if not isinstance(hostname, str) or not hostname or any(c.isspace() for c in hostname):
        raise ConfigError("hostname: must be a non-empty host name without spaces")

    listen = raw.get("listen", ["127.0.0.1"])
    if isinstance(listen, str):
        listen = [listen]
    if not isinstance(listen, list) or not listen or not all(isinstance(a, str) and a for a in listen):
        raise ConfigError("listen: must be an address or a list of addresses, e.g. [\"127.0.0.1\", \"::1\"]")

    if env.get("RMAIL_DATA_DIR"):
        data_dir = Path(env["RMAIL_DATA_DIR"])
    elif "data_dir" in raw:
        if not isinstance(raw["data_dir"], str) or not raw["data_dir"]:
            raise ConfigError("data_dir: must be a directory path string")
        data_dir = (base / Path(raw["data_dir"]).expanduser())
    else:
        data_dir = default_data_dir()

    rounds = raw.get("bcrypt_rounds", 12)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or not 4 <= rounds <= 16:
        raise ConfigError("bcrypt_rounds: must be an integer from 4 to 16")

    tls: TLSConfig = sections["tls"]
    if (tls.cert is None) != (tls.key is None):
        raise ConfigError("tls: set both cert and key (PEM paths), or neither")
    for key in ("cert", "key"):
        p = getattr(tls, key)
        if p is not None and not p.is_file():
            raise ConfigError(f"tls.{key}: no such file: {p}")
    relay: RelayConfig = sections["relay"]
    if relay.tls not in ("starttls", "tls", "none"):
        raise ConfigError("relay.tls: must be one of \"starttls\", \"tls\", \"none\"")

    _check_mail_auth(sections["dns"], sections["antispam"])
    if sections["mta_sts"].mode not in ("testing", "enforce", "none"):
        raise ConfigError('mta_sts.mode: must be "testing", "enforce" or "none" (RFC 8461 §3.2)')
    if sections["mta_sts"].max_age > 31557600:
        raise ConfigError("mta_sts.max_age: at most 31557600 seconds (one year, RFC 8461 §3.2)")

    store: StoreConfig = sections["store"]
    if env.get("RMAIL_STORE_URL"):
        store = replace(store, url=_store_url("RMAIL_STORE_URL", env["RMAIL_STORE_URL"]))

    ports: Ports = sections["ports"]
    offset = 0
    explicit_ports = set(raw.get("ports", {}))
    if not is_root and len(explicit_ports) < len(fields(Ports)):
        # Only ports left at their defaults move; an explicit port is never changed silently.
        ports = Ports(**{f.name: getattr(ports, f.name) + (0 if f.name in explicit_ports else UNPRIVILEGED_OFFSET)
                         for f in fields(Ports)})
        offset = UNPRIVILEGED_OFFSET
    used = [getattr(ports, f.name) for f in fields(Ports) if getattr(ports, f.name) != 0]
    if len(used) != len(set(used)):
        raise ConfigError("ports: two services share one port number")

    return Config(hostname=hostname, listen=tuple(listen), ports=ports, tls=tls,
                  limits=sections["limits"], relay=relay, api=sections["api"],
                  data_dir=data_dir.resolve(), source=source, port_offset=offset, bcrypt_rounds=rounds,
                  dns=sections["dns"], antispam=sections["antispam"], mta_sts=sections["mta_sts"],
                  log=sections["log"], store=store)


def _check_mail_auth(dns: DnsConfig, antispam: AntispamConfig) -> None:
    """[dns] and [antispam]: the values _coerce cannot judge by type alone."""
    from .core.dns import parse_nameserver
    if dns.nameserver is not None:
        try:
            parse_nameserver(dns.nameserver)
        except ValueError:
            raise ConfigError('dns.nameserver: must be "HOST", "HOST:PORT" or "[IPv6]:PORT", '
                              'e.g. "127.0.0.1:53"') from None
    if antispam.dmarc_quarantine not in ("junk", "inbox"):
        raise ConfigError('antispam.dmarc_quarantine: must be "junk" or "inbox"')
    for zone in antispam.dnsbl:
        if not zone or any(c.isspace() or c in "/@:" for c in zone) or zone.startswith("."):
            raise ConfigError(f"antispam.dnsbl: {zone!r} is not a DNS zone name, e.g. \"zen.spamhaus.org\"")


def _section(name: str, cls: type, values: Any, base: Path) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: must be a table ([{name}])")
    defaults = cls()
    allowed = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in allowed:
            raise ConfigError(f"unknown key {name}.{key}; allowed: {', '.join(allowed)}")
        kwargs[key] = _coerce(f"{name}.{key}", getattr(defaults, key), value, base, name)
    return replace(defaults, **kwargs)


def _coerce(key: str, default: Any, value: Any, base: Path, section: str) -> Any:
    if section == "ports":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            raise ConfigError(f"{key}: must be a port number from 0 to 65535 (0 = any free port)")
        return value
    if section == "tls":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: must be a PEM file path")
        return (base / Path(value).expanduser()).resolve()
    if key in _ZERO_MEANS_UNLIMITED:
        return _coerce_unlimited(key, value)
    if key == "api.cors_origins":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: must be a list of origins, e.g. [\"*\"]")
        return tuple(value)
    if key == "store.url":
        return _store_url(key, value)
    if key == "store.pool_size":
        if not isinstance(value, int) or isinstance(value, bool) or not MIN_POOL_SIZE <= value <= MAX_POOL_SIZE:
            raise ConfigError(f"{key}: must be an integer from {MIN_POOL_SIZE} to {MAX_POOL_SIZE}")
        return value
    if key in ("api.metrics_from", "log.file", "log.format"):
        return _coerce_ops(key, value, base)
    if key == "antispam.dnsbl":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: must be a list of zones, e.g. [\"zen.spamhaus.org\"]")
        return tuple(v.strip().rstrip(".").lower() for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false")
        return value
    if key in _ZERO_ALLOWED:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{key}: must be a non-negative integer (0 = off)")
        return value
    if key == "limits.min_free_space":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{key}: must be a number of bytes, 0 or more (0 turns the reserve off)")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key}: must be a positive integer")
        return value
    # str or optional str
    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be a string")
    return value


def _coerce_ops(key: str, value: Any, base: Path) -> Any:
    """[api] metrics_from and [log]: who may scrape, where and how the server logs."""
    if key == "api.metrics_from":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'{key}: must be a list of networks, e.g. ["127.0.0.1/8", "::1", "10.0.0.5/32"]')
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"{key}: {net!r} is not an address or network (CIDR), "
                                  'e.g. "10.0.0.0/24"') from None
        return tuple(value)
    if key == "log.file":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: must be a file path (the log is appended to it)")
        return (base / Path(value).expanduser()).resolve()
    if value not in ("text", "json"):
        raise ConfigError(f'{key}: must be "text" or "json"')
    return value


def _store_url(key: str, value: Any) -> str:
    """[store] url (or $RMAIL_STORE_URL). The message never repeats the value: it may hold a
    password."""
    example = 'e.g. "postgresql://rmail:PASSWORD@db.example.com:5432/rmail"'
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{key}: must be a PostgreSQL URL starting with postgresql:// or postgres://, {example}")
    if any(c.isspace() for c in value):
        raise ConfigError(f"{key}: must be a PostgreSQL URL without spaces, {example}")
    try:
        urlsplit(value).port
    except ValueError:
        raise ConfigError(f"{key}: is not a valid URL (look at the host and the port), {example}") from None
    return value


_ZERO_MEANS_UNLIMITED = frozenset({"limits.search_budget", "limits.quota", "limits.send_per_minute"})


def _coerce_unlimited(key: str, value: Any) -> Any:
    """The [limits] keys where 0 turns the limit off; quota also takes sizes such as "2G"."""
    if key == "limits.search_budget":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 3600:
            raise ConfigError(f"{key}: must be CPU seconds from 0 to 3600 (0 = unlimited)")
        return float(value)
    if key == "limits.quota":
        try:
            if isinstance(value, str):
                return parse_size(value)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_QUOTA:
                return value
        except InvalidInput:
            pass
        raise ConfigError(f"{key}: must be bytes or a size such as \"500M\" or \"2G\", at most 1P (0 = unlimited)")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key}: must be a whole number, 0 or more (0 = unlimited)")
    return value


def ensure_data_dir(config: Config) -> Path:
    """Create the data dir and its keys/ and blobs/ subdirs, all 0700, and keep them private.

    They hold password hashes, messages and TLS keys. A directory that already exists with a
    wider mode (made by hand, by an installer, by an older rmail) is narrowed to 0700 when
    rmail's user owns it, which puts everything inside out of other users' reach; something
    another user owns is left to that user. Files are not changed here: rmail creates its own
    0600 (the database narrows old ones when it opens), and ``diagnose`` reports a key file
    someone made readable, rather than having it silently fixed by the very run that checks.
    """
    d = config.data_dir
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    for sub in (d, d / "keys", d / "blobs"):
        sub.mkdir(exist_ok=True, mode=0o700)
        _make_private(sub, 0o700)
    return d


def _make_private(path: Path, mode: int) -> None:
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, mode)
