"""Two replacements inside dkimpy, each computing exactly what the original computes, so that
DKIM work on a worker thread never holds the GIL (and so the event loop) for long.

dkimpy does the DKIM canonicalisation and header assembly well, but:

- it signs RSA with Python's built-in ``pow``: ~6.5 ms of CPU per RSA-2048 signature in one
  call that holds the GIL. OpenSSL (the ``cryptography`` package) signs the same digest in
  ~0.3 ms. ``dkim.RSASSA_PKCS1_v1_5_sign`` is replaced by ``rsa_sign``, which produces the same
  PKCS #1 v1.5 signature (RFC 8017 §8.2.1; deterministic, a test compares both byte for byte).
  Verification stays dkimpy's: with e = 65537 it is cheap.
- it canonicalises a body with one ``re.sub`` over the whole body per step, a single C call
  that holds the GIL: ~1.2 s for a 25 MiB message, during which no other thread (the event
  loop included) runs. The two line-local steps (``strip_trailing_whitespace``,
  ``compress_whitespace``) are replaced by versions that work in pieces of whole lines;
  Python hands the GIL over between pieces (its switch interval), so the loop waits a
  millisecond or so instead of a second. Same result: a property test compares them.
- it parses a message by splitting all of it into lines with one ``re.split`` (~250 ms for
  25 MiB) just to find the end of the header. ``rfc822_parse`` here gives dkimpy's parser the
  header block only and normalises the body's line ends in pieces, with the same result.
"""

from __future__ import annotations

import re
import threading
from typing import Callable, Protocol

import dkim
import dkim.canonicalization as canonicalization
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

__all__ = ["install", "rsa_sign", "strip_trailing_whitespace", "compress_whitespace", "rfc822_parse"]

#: dkimpy's hash names → cryptography's algorithms (rsa-sha1 is verify-only in rmail, but a
#: signer asked for it still gets a correct signature).
_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
#: Keys converted at most (one per domain and selector in use; a bound against a leak).
MAX_KEYS = 1024

#: dkimpy's untyped functions this module replaces or calls, with the signatures they have.
Step = Callable[[bytes], bytes]
Parse = Callable[[bytes], tuple[list[list[bytes]], bytes]]

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


class _Hash(Protocol):
    """What dkimpy hands the signer (its HashThrough): a hashlib-like object."""

    @property
    def name(self) -> str: ...

    def digest(self) -> bytes: ...


def rsa_sign(hash_obj: _Hash, pk: dict[str, int]) -> bytes:
    """``dkim.crypto.RSASSA_PKCS1_v1_5_sign`` with OpenSSL: ``hash_obj`` has ``name`` and
    ``digest()`` (dkimpy's HashThrough), ``pk`` is dkimpy's parsed private key."""
    algorithm = _HASHES[hash_obj.name]()
    return _private_key(pk).sign(hash_obj.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))


#: Bytes per piece of body canonicalisation: ~0.3 ms of regex work, far below the 5 ms switch
#: interval, and few enough pieces that the per-piece overhead is lost in the noise.
PIECE = 64 * 1024

_original_strip: Step = canonicalization.strip_trailing_whitespace
_original_compress: Step = canonicalization.compress_whitespace


def _in_pieces(step: Step, content: bytes) -> bytes:
    """``step`` applied to pieces of whole lines (each ends just after a LF). Both steps only
    ever match within one line, so the pieces' results joined are the whole's result."""
    if len(content) <= PIECE:
        return step(content)
    out = []
    start = 0
    while start < len(content):
        end = content.find(b"\n", start + PIECE)
        end = len(content) if end < 0 else end + 1
        out.append(step(content[start:end]))
        start = end
    return b"".join(out)


def _strip_piece(piece: bytes) -> bytes:
    # Only a space or tab right before CRLF is removed; most pieces (base64, plain text)
    # have none, and two substring scans cost far less than the regex.
    if b" \r\n" not in piece and b"\t\r\n" not in piece:
        return piece
    return _original_strip(piece)


def _compress_piece(piece: bytes) -> bytes:
    # Only tabs and runs of two or more spaces change; a piece without either is unchanged.
    if b"\t" not in piece and b"  " not in piece:
        return piece
    return _original_compress(piece)


def strip_trailing_whitespace(content: bytes) -> bytes:
    return _in_pieces(_strip_piece, content)


def compress_whitespace(content: bytes) -> bytes:
    return _in_pieces(_compress_piece, content)


_original_parse: Parse = dkim.rfc822_parse
#: The first empty line (dkimpy accepts LF or CRLF line ends): the end of the header block.
_HEADER_END = re.compile(rb"(?:^|\n)\r?\n")
_LINE_END = re.compile(rb"\r?\n")


def _crlf(piece: bytes) -> bytes:
    if piece.count(b"\n") == piece.count(b"\r\n"):
        return piece          # already CRLF throughout, as SMTP delivers it
    return _LINE_END.sub(b"\r\n", piece)


def rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse``: (header fields, body with CRLF line ends)."""
    end = _HEADER_END.search(message)
    if end is None:
        return _original_parse(message)
    headers, _ = _original_parse(message[:end.end()])
    return headers, _in_pieces(_crlf, message[end.end():])


def install() -> None:
    """Put both replacements into dkimpy (idempotent)."""
    dkim.RSASSA_PKCS1_v1_5_sign = rsa_sign
    canonicalization.strip_trailing_whitespace = strip_trailing_whitespace
    canonicalization.compress_whitespace = compress_whitespace
    dkim.rfc822_parse = rfc822_parse
