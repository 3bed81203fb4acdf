"""TLS contexts and trust-on-first-use by certificate fingerprint.

A self-signed rmail certificate fails CA verification; the user can then trust that exact
certificate once by its SHA-256 fingerprint (of the DER bytes), which is remembered with the
account and checked on every later connection instead of the CA chain.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import ssl

from rmail.client.model import AccountSettings

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class UntrustedCertificate(Exception):
    """The server's certificate is not trusted; ``fingerprint`` identifies it."""

    def __init__(self, fingerprint: str, *, mismatch: bool = False, reason: str = "") -> None:
        self.fingerprint = fingerprint
        self.mismatch = mismatch
        what = "does not match the trusted fingerprint" if mismatch else "is not trusted"
        super().__init__(f"server certificate {what} ({reason or 'unknown issuer'}): SHA256 {pretty(fingerprint)}")


def fingerprint_of(der: bytes) -> str:
    """Lower-case hex SHA-256 of a DER certificate."""
    return hashlib.sha256(der).hexdigest()


def normalize_fingerprint(text: str) -> str:
    """Accept ``AB:CD:…``, ``sha256:abcd…`` or plain hex; raise ValueError otherwise."""
    cleaned = re.sub(r"[\s:]", "", text.strip().lower().removeprefix("sha256:").removeprefix("sha256="))
    if not _HEX64.match(cleaned):
        raise ValueError("a certificate fingerprint is 64 hex digits (SHA-256)")
    return cleaned


def pretty(fp: str) -> str:
    """``AB:CD:…`` form for display."""
    return ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()


def context_for(settings: AccountSettings) -> ssl.SSLContext:
    """Verify against the CA store, unless a fingerprint is pinned or checks are disabled."""
    if settings.insecure or settings.fingerprint:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx
    return ssl.create_default_context()


def probe_context() -> ssl.SSLContext:
    """A non-verifying context used only to read the certificate of a failed verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_pin(sock: ssl.SSLSocket, settings: AccountSettings) -> None:
    """Compare the peer certificate with the pinned fingerprint (constant-time)."""
    if settings.insecure or not settings.fingerprint:
        return
    der = sock.getpeercert(binary_form=True) or b""
    actual = fingerprint_of(der)
    if not hmac.compare_digest(actual, settings.fingerprint):
        raise UntrustedCertificate(actual, mismatch=True)
