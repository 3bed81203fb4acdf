"""dkimpy's RSA signatures through OpenSSL are the very bytes dkimpy's own code computes
(PKCS #1 v1.5 is deterministic), and what rmail signs still verifies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dkim
import dkim.crypto
from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.core.dkimkeys import DkimKeys, FileKeyStore
from rmail.server.core.mailauth import rsasign


def _rsa_pem(tmp_path: Path) -> bytes:
    keys = DkimKeys(FileKeyStore(tmp_path))
    keys.ensure("example.com")
    [rsa_key] = [k for k in keys.signing_keys("example.com") if k.algorithm == "rsa"]
    return rsa_key.signing_key


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=300))
def test_same_signature_as_dkimpys_own(tmp_path_factory, data: bytes) -> None:
    pk = dkim.crypto.parse_pem_private_key(_PEM.setdefault("pem", _rsa_pem(tmp_path_factory.mktemp("k"))))
    for name in ("sha256", "sha1"):
        ours = rsasign.rsa_sign(dkim.HashThrough(hashlib.new(name, data)), pk)
        theirs = dkim.crypto.RSASSA_PKCS1_v1_5_sign(dkim.HashThrough(hashlib.new(name, data)), pk)
        assert ours == theirs


_PEM: dict[str, bytes] = {}


def test_dkimpy_signs_through_openssl_once_rmail_is_loaded() -> None:
    import rmail.server.core.mailauth.dkim  # noqa: F401 - installs the OpenSSL signer
    assert dkim.RSASSA_PKCS1_v1_5_sign is rsasign.rsa_sign
