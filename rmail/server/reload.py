"""What SIGHUP changes in a running server: the TLS certificate and a few config keys.

The certificate: every listener (IMAP STARTTLS and 993, SMTP STARTTLS and 465) holds the one
``ssl.SSLContext`` the runtime built at start, so loading the new pair into that context with
``load_cert_chain`` changes what every *new* handshake presents; connections already encrypted keep
their session. ``load_cert_chain`` sets the certificate before the key, so a mismatching or
half-written pair loaded straight into the live context could leave it with a new certificate and
the old key, and every handshake would fail. Hence: copy both files once (certbot may be
rewriting them), load the copies into a scratch context, and only when that works load the same
copies into the live one. A bad pair changes nothing.

The config: only keys every use of which reads ``runtime.config`` per session or per request take
effect without a restart (``LIVE_KEYS``); a change to any other key is reported as needing one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Protocol

from .config import Config, ConfigError, load_config
from .tls import certificate_fingerprint

log = logging.getLogger("rmail")


class Reloadable(Protocol):
    def reload(self, new: Config) -> Awaitable[bool]: ...


async def reload_from_file(runtime: Reloadable, path: str | Path | None) -> bool:
    """What SIGHUP does, in ``serve`` and in the console's embedded server alike: re-read the
    config file (``path``, else where the config was found) and apply it. A file that does not
    load changes nothing and logs one ERROR line. Returns whether everything was applied."""
    log.info("SIGHUP: reloading the configuration and TLS certificate")
    try:
        new = await asyncio.to_thread(load_config, str(path) if path is not None else None)
    except ConfigError as exc:
        log.error("reload: config: %s; nothing changed", exc)
        return False
    return await runtime.reload(new)


#: Keys applied on reload, by section. Each is read afresh for every session or request:
#: ``limits.recipients`` (SMTP RCPT TO, REST send), ``limits.smtp_session_timeout`` (each new
#: port-25 session) and ``antispam.checks`` (each message on port 25).
LIVE_KEYS: dict[str, tuple[str, ...]] = {
    "limits": ("recipients", "smtp_session_timeout"),
    "antispam": ("checks",),
}
#: Keys that belong to the certificate reload, not to the "needs a restart" list.
_TLS_KEYS = ("tls.cert", "tls.key")


@dataclass(frozen=True, slots=True)
class CertificateCopy:
    """A private copy of a certificate and key pair, checked to load, and its fingerprint."""

    directory: tempfile.TemporaryDirectory[str]
    cert: Path
    key: Path
    fingerprint: str


def copy_certificate(cert: Path, key: Path, scratch_dir: Path) -> CertificateCopy:
    """Copy ``cert`` and ``key`` into a new private directory under ``scratch_dir`` and check
    that the copies load as a pair. Blocking file I/O: run it in a thread. The caller cleans up
    ``directory``.

    Raises:
        ConfigError: a file is unreadable, the pair does not load (bad PEM, key mismatch), or
            the scratch directory cannot be made.
    """
    try:
        directory = tempfile.TemporaryDirectory(prefix="tls-reload-", dir=scratch_dir)   # mode 0700
    except OSError as exc:
        raise ConfigError(f"cannot make a scratch directory in {scratch_dir}: {exc}") from None
    try:
        copy_cert, copy_key = Path(directory.name) / "cert.pem", Path(directory.name) / "key.pem"
        try:
            copy_cert.write_bytes(Path(cert).read_bytes())
            copy_key.write_bytes(Path(key).read_bytes())
        except OSError as exc:
            raise ConfigError(f"tls.cert / tls.key: cannot read: {exc}") from None
        scratch = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            scratch.load_cert_chain(str(copy_cert), str(copy_key))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"tls.cert / tls.key: cannot load the certificate and key: {exc}") from None
        return CertificateCopy(directory, copy_cert, copy_key, certificate_fingerprint(copy_cert))
    except BaseException:
        directory.cleanup()
        raise


def live_config(current: Config, new: Config) -> tuple[Config, list[str]]:
    """``current`` with the ``LIVE_KEYS`` of ``new``, and the names of the other keys that
    differ (they need a restart), e.g. ``["listen", "ports.imap"]``."""
    changed = [key for key in _differences(current, new) if key not in _TLS_KEYS]
    updates = {}
    for section, keys in LIVE_KEYS.items():
        values = {k: getattr(getattr(new, section), k) for k in keys}
        updates[section] = dataclasses.replace(getattr(current, section), **values)
    live = {f"{section}.{k}" for section, keys in LIVE_KEYS.items() for k in keys}
    return dataclasses.replace(current, **updates), [key for key in changed if key not in live]


def _differences(a: Config, b: Config) -> list[str]:
    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x) and dataclasses.is_dataclass(y):
            out += [f"{f.name}.{g.name}" for g in dataclasses.fields(x) if getattr(x, g.name) != getattr(y, g.name)]
        elif x != y:
            out.append(f.name)
    return out
