"""TLS contexts for the listeners, and a self-signed certificate for first runs and tests."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from pathlib import Path

from .config import Config, ConfigError


def server_context(config: Config) -> ssl.SSLContext | None:
    """The server-side context, or None when TLS is not configured.

    Raises:
        ConfigError: the certificate or key cannot be loaded.
    """
    if not config.tls.configured:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(config.tls.cert), str(config.tls.key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"tls.cert / tls.key: cannot load the certificate and key: {exc}") from None
    return ctx


def certificate_fingerprint(cert_path: Path) -> str:
    """SHA-256 of the (first) certificate's DER bytes as ``AB:CD:…``: what a client that pins a
    self-signed certificate compares (rmail's mail client shows the same form).

    Raises:
        ConfigError: the file holds no readable PEM certificate.
    """
    try:
        pem = Path(cert_path).read_text(encoding="ascii", errors="replace")
        der = ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----"):
                                           pem.index("-----END CERTIFICATE-----") + 25])
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tls.cert: cannot read the certificate: {exc}") from None
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def generate_self_signed(cert_path: Path, key_path: Path, hostname: str, *, days: int = 825) -> None:
    """Write a self-signed certificate for ``hostname`` (and localhost), both files mode 0600.

    The certificate is public, but it lives beside the key in rmail's private keys/ directory,
    where ``diagnose`` expects only owner-readable files; rmail itself is its only reader.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName(hostname), x509.DNSName("localhost"),
           x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(key_path, key_bytes)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    """Create or replace ``path`` with mode 0600 (also when it existed with a wider mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)
