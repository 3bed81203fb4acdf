"""Remembered accounts, default ports and Thunderbird autoconfig (clientConfig 1.1).

Accounts live in ``client-accounts.json`` in the platformdirs user config dir. The file never
holds a password: it is asked in the app or read from ``$RMAIL_PASSWORD``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import platformdirs

from rmail.client.model import AccountSettings, Security
from rmail.ports import UNPRIVILEGED_OFFSET, may_bind_privileged_ports

APP_NAME = "rmail"
ACCOUNTS_FILE = "client-accounts.json"
#: The autoconfig document is small; refuse anything bigger (hostile or broken server).
MAX_AUTOCONFIG = 64 * 1024
#: Remember at most this many accounts (the file is read at every start).
MAX_ACCOUNTS = 50

_STANDARD = {
    Security.STARTTLS: (143, 587),
    Security.TLS: (993, 465),
    Security.NONE: (143, 587),
}


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_security(host: str) -> Security:
    """A local rmail usually runs without TLS; anything remote gets STARTTLS."""
    return Security.NONE if is_loopback(host) else Security.STARTTLS


def local_offset(host: str, *, privileged: bool | None = None) -> int:
    """What rmail adds to its default ports on ``host``: for a server on this machine, the
    server's own rule (rmail.ports: +10000 unless it may bind privileged ports, judged by this
    process, as the same user usually runs both); 0 for any other host."""
    if not is_loopback(host):
        return 0
    may_bind = may_bind_privileged_ports() if privileged is None else privileged
    return 0 if may_bind else UNPRIVILEGED_OFFSET


def default_ports(host: str, security: Security, *, privileged: bool | None = None) -> tuple[int, int]:
    """(IMAP, SMTP) ports: the standard ones, plus ``local_offset``."""
    imap, smtp = _STANDARD[security]
    offset = local_offset(host, privileged=privileged)
    return imap + offset, smtp + offset


def default_api_port(host: str, *, privileged: bool | None = None) -> int:
    return 9002 + local_offset(host, privileged=privileged)


def config_dir() -> Path:
    """Where accounts are remembered (``$RMAIL_CLIENT_CONFIG_DIR`` overrides, for tests)."""
    override = os.environ.get("RMAIL_CLIENT_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))


@dataclass(frozen=True, slots=True)
class AccountStore:
    """Load and save remembered accounts in one JSON file."""

    path: Path

    @classmethod
    def default(cls) -> AccountStore:
        return cls(config_dir() / ACCOUNTS_FILE)

    def load(self) -> list[AccountSettings]:
        """Remembered accounts, most recently used first; a damaged file reads as empty."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        out: list[AccountSettings] = []
        for item in data.get("accounts", []) if isinstance(data, dict) else []:
            try:
                out.append(
                    AccountSettings(
                        server=str(item["server"]),
                        imap_port=int(item["imap_port"]),
                        smtp_port=int(item["smtp_port"]),
                        security=Security(item["security"]),
                        user=str(item["user"]),
                        fingerprint=str(item.get("fingerprint", "")),
                        insecure=bool(item.get("insecure", False)),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
        return out[:MAX_ACCOUNTS]

    def remember(self, account: AccountSettings) -> None:
        """Put ``account`` first (replacing an entry with the same key) and save atomically."""
        accounts = [a for a in self.load() if a.key != account.key]
        accounts.insert(0, account)
        rows = []
        for a in accounts[:MAX_ACCOUNTS]:
            row = asdict(a)
            row["security"] = a.security.value
            row.pop("timeout", None)
            rows.append(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".accounts-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"accounts": rows}, fh, indent=2)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass(frozen=True, slots=True)
class Autoconfig:
    """The IMAP and SMTP servers announced by a clientConfig document."""

    imap_host: str
    imap_port: int
    smtp_host: str
    smtp_port: int
    security: Security


_SOCKET = {"SSL": Security.TLS, "STARTTLS": Security.STARTTLS, "PLAIN": Security.NONE}


def parse_autoconfig(document: bytes) -> Autoconfig:
    """Parse Thunderbird's clientConfig 1.1 (the first imap and smtp servers are used).

    Raises:
        ValueError: when the document is too large, not XML, or lacks an IMAP/SMTP server.
    """
    if len(document) > MAX_AUTOCONFIG:
        raise ValueError("autoconfig document too large")
    if b"<!ENTITY" in document.upper():
        raise ValueError("autoconfig document declares entities")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise ValueError(f"autoconfig is not valid XML: {exc}") from exc
    provider = root.find("emailProvider")
    if provider is None:
        raise ValueError("autoconfig has no emailProvider")

    def server(tag: str, kind: str) -> tuple[str, int, Security]:
        for node in provider.findall(tag):
            if node.get("type") == kind:
                host = (node.findtext("hostname") or "").strip()
                try:
                    port = int((node.findtext("port") or "").strip())
                except ValueError:
                    continue
                sec = _SOCKET.get((node.findtext("socketType") or "").strip().upper())
                if host and 0 < port < 65536 and sec is not None:
                    return host, port, sec
        raise ValueError(f"autoconfig has no usable {kind} server")

    imap_host, imap_port, imap_sec = server("incomingServer", "imap")
    smtp_host, smtp_port, smtp_sec = server("outgoingServer", "smtp")
    # One security setting covers both connections; prefer the stronger when they differ.
    security = imap_sec if imap_sec == smtp_sec else (Security.TLS if Security.TLS in (imap_sec, smtp_sec) else Security.STARTTLS)
    return Autoconfig(imap_host, imap_port, smtp_host, smtp_port, security)


def autoconfig_url(host: str, api_port: int, email: str = "") -> str:
    query = f"?emailaddress={urllib.request.quote(email)}" if email else ""
    return f"http://{host}:{api_port}/.well-known/autoconfig/mail/config-v1.1.xml{query}"


def fetch_autoconfig(host: str, api_port: int, email: str = "", timeout: float = 10.0) -> Autoconfig:
    """Download and parse the autoconfig document (blocking: call from a worker thread)."""
    url = autoconfig_url(host, api_port, email)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http by design
            body = resp.read(MAX_AUTOCONFIG + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise ValueError(f"cannot fetch {url}: {exc}") from exc
    return parse_autoconfig(body)


def apply_autoconfig(settings: AccountSettings, auto: Autoconfig) -> AccountSettings:
    return replace(settings, server=auto.imap_host, imap_port=auto.imap_port, smtp_port=auto.smtp_port, security=auto.security)
