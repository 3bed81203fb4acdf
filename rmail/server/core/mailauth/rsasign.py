"""RSA signatures for dkimpy through OpenSSL (the ``cryptography`` package).

dkimpy does the DKIM canonicalisation and header assembly well, but signs RSA with Python's
built-in ``pow``: ~6.5 ms of CPU per RSA-2048 signature that holds the GIL, so a signing worker
thread stalls the event loop as long. OpenSSL signs the same digest in well under a millisecond
and releases the GIL. ``install()`` replaces the one function dkimpy calls for RSA signatures
(``dkim.RSASSA_PKCS1_v1_5_sign``) with one that produces the same PKCS #1 v1.5 signature
(RFC 8017 §8.2.1; RSA signatures are deterministic, a test compares both byte for byte).
Verification stays dkimpy's: with e = 65537 it is cheap.
"""

from __future__ import annotations

import threading
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

__all__ = ["install", "rsa_sign"]

#: dkimpy's hash names → cryptography's algorithms (rsa-sha1 is verify-only in rmail, but a
#: signer asked for it still gets a correct signature).
_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
#: Keys converted at most (one per domain and selector in use; a bound against a leak).
MAX_KEYS = 1024

_keys: dict[int, rsa.RSAPrivateKey] = {}
_lock = threading.Lock()


def _private_key(pk: dict[str, int]) -> rsa.RSAPrivateKey:
    """The OpenSSL key for dkimpy's parsed key (a dict of the RSA numbers), cached by modulus."""
    n = pk["modulus"]
    with _lock:
        key = _keys.get(n)
    if key is None:
        public = rsa.RSAPublicNumbers(pk["publicExponent"], n)
        key = rsa.RSAPrivateNumbers(pk["prime1"], pk["prime2"], pk["privateExponent"], pk["exponent1"],
                                    pk["exponent2"], pk["coefficient"], public).private_key()
        with _lock:
            if len(_keys) >= MAX_KEYS:
                _keys.clear()
            _keys[n] = key
    return key


def rsa_sign(hash_obj: Any, pk: dict[str, int]) -> bytes:
    """``dkim.crypto.RSASSA_PKCS1_v1_5_sign`` with OpenSSL: ``hash_obj`` has ``name`` and
    ``digest()`` (dkimpy's HashThrough), ``pk`` is dkimpy's parsed private key."""
    algorithm = _HASHES[hash_obj.name]()
    return _private_key(pk).sign(hash_obj.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))


def install() -> None:
    """Make dkimpy sign RSA through OpenSSL (idempotent)."""
    dkim.RSASSA_PKCS1_v1_5_sign = rsa_sign
