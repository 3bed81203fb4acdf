"""The replacements inside dkimpy compute what dkimpy's own code does: RSA signatures through
OpenSSL are the same bytes (PKCS #1 v1.5 is deterministic), and body canonicalisation in
pieces gives the same canonical body."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dkim
import dkim.crypto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.core.dkimkeys import DkimKeys, FileKeyStore
from rmail.server.core.mailauth import dkimpatch


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
        ours = dkimpatch.rsa_sign(dkim.HashThrough(hashlib.new(name, data)), pk)
        theirs = dkim.crypto.RSASSA_PKCS1_v1_5_sign(dkim.HashThrough(hashlib.new(name, data)), pk)
        assert ours == theirs


_PEM: dict[str, bytes] = {}


def test_dkimpy_signs_through_openssl_once_rmail_is_loaded() -> None:
    import rmail.server.core.mailauth.dkim  # noqa: F401 - installs the OpenSSL signer
    assert dkim.RSASSA_PKCS1_v1_5_sign is dkimpatch.rsa_sign


#: Bodies of lines with runs of spaces and tabs, at and around the piece size.
_LINES = st.lists(st.sampled_from([b"", b" ", b"\t", b"  \t ", b"a", b"b c", b"x" * 70, b"y \t z"]), max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(_LINES.map(lambda parts: b"".join(parts)), max_size=60), st.sampled_from([8, 64, 1000]),
       st.booleans())
def test_canonicalisation_in_pieces_is_the_same(lines: list[bytes], piece: int, final_crlf: bool) -> None:
    body = b"\r\n".join(lines) + (b"\r\n" if final_crlf else b"")
    original = (dkimpatch._original_strip, dkimpatch._original_compress)
    old, dkimpatch.PIECE = dkimpatch.PIECE, piece
    try:
        assert dkimpatch.strip_trailing_whitespace(body) == original[0](body)
        assert dkimpatch.compress_whitespace(body) == original[1](body)
    finally:
        dkimpatch.PIECE = old


def test_dkimpy_canonicalises_in_pieces_once_rmail_is_loaded() -> None:
    import dkim.canonicalization
    import rmail.server.core.mailauth.dkim  # noqa: F401
    assert dkim.canonicalization.compress_whitespace is dkimpatch.compress_whitespace
    assert dkim.canonicalization.strip_trailing_whitespace is dkimpatch.strip_trailing_whitespace


_MESSAGE_LINES = st.lists(st.sampled_from([b"", b"A: 1", b"B: x y", b" folded", b"\tmore", b"body",
                                          b"From me", b"x" * 50, b"  "]), max_size=40)


@settings(max_examples=80, deadline=None)
@given(_MESSAGE_LINES, st.lists(st.sampled_from([b"\r\n", b"\n"]), min_size=40, max_size=40),
       st.sampled_from([8, 64, 1000]))
def test_parse_is_the_same(lines: list[bytes], ends: list[bytes], piece: int) -> None:
    message = b"".join(line + end for line, end in zip(lines, ends))
    old, dkimpatch.PIECE = dkimpatch.PIECE, piece
    try:
        try:
            expected = dkimpatch._original_parse(message)
        except Exception as exc:  # noqa: BLE001 - the same error is expected
            with pytest.raises(type(exc)):
                dkimpatch.rfc822_parse(message)
            return
        assert dkimpatch.rfc822_parse(message) == expected
    finally:
        dkimpatch.PIECE = old
