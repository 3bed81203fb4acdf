"""DKIM (RFC 6376, RFC 8463 Ed25519) signing and verification, and ARC (RFC 8617)
verification, with dkimpy doing the canonicalisation and the crypto. Blocking: run under
``asyncio.to_thread``; DNS comes in through a ``txt`` callback (``Resolver.txt_sync``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from ..dkimkeys import DkimKey
from ..dns import TempDNSError
from ..mime.headers import parse_fields, split_header
from . import dkimpatch

__all__ = ["sign", "verify_all", "verify_arc", "DkimResult", "ArcResult", "MAX_SIGNATURES"]

#: Signatures verified per message (RFC 6376 §6.1: a verifier MAY limit the signatures it
#: tries, "to mitigate denial-of-service"). Each one hashes the whole body again.
MAX_SIGNATURES = 5
#: RFC 8617 §4.2.1: instance numbers run from 1 to 50; a longer chain is a failure.
MAX_ARC_INSTANCES = 50
#: RFC 8301 §3.2: verifiers MUST NOT accept RSA keys shorter than 1024 bits.
MIN_RSA_BITS = 1024
#: Header and body canonicalisation of rmail's signatures (RFC 6376 §3.4).
CANONICALIZATION = (b"relaxed", b"relaxed")

TxtLookup = Callable[[str], list[bytes]]
log = logging.getLogger("rmail.mailauth")
# dkimpy logs every failed verification at ERROR; rmail reports them in the results instead.
logging.getLogger("dkim").setLevel(logging.CRITICAL)
# RSA through OpenSSL and body canonicalisation in pieces: see dkimpatch for why.
dkimpatch.install()


def sign(data: bytes, keys: Sequence[DkimKey], signing_keys: Sequence[bytes]) -> bytes:
    """The DKIM-Signature fields (CRLF-terminated, one per key) to put on top of ``data``.

    ``signing_keys[i]`` is ``keys[i].signing_key`` (callers cache the conversion). Relaxed
    canonicalisation for header and body (RFC 6376 §3.4.2, §3.4.4) survives the re-folding
    and trailing-space changes relays make; simple/simple breaks on the first of them. The
    signed fields are dkimpy's default, RFC 6376 §5.4.1's list of those present, with From
    signed once more than it occurs (§8.15), so no second From can be added unnoticed.
    """
    signer = dkim.DKIM(data, linesep=b"\r\n")
    out = []
    for key, private in zip(keys, signing_keys):
        algorithm = b"ed25519-sha256" if key.algorithm == "ed25519" else b"rsa-sha256"
        header = signer.sign(key.selector.encode(), key.domain.encode(), private,
                             signature_algorithm=algorithm, canonicalize=CANONICALIZATION)
        out.append(header)
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class DkimResult:
    """The verdict on one DKIM-Signature (RFC 8601 §2.7.1 result names)."""

    result: str            #: pass, fail, neutral, temperror, permerror
    domain: str = ""       #: d=
    selector: str = ""     #: s=
    algorithm: str = ""    #: a=
    b: str = ""            #: the first characters of b= (RFC 6008 header.b)
    reason: str = ""


class _Lookup:
    """dkimpy's ``dnsfunc`` over rmail's resolver, remembering why a key was missing."""

    def __init__(self, txt: TxtLookup) -> None:
        self.txt = txt
        self.temporary = False
        self.missing = False

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        try:
            records = self.txt(name.decode("ascii").rstrip("."))
        except (UnicodeDecodeError, ValueError):
            self.missing = True
            return None
        except TempDNSError as exc:
            self.temporary = True
            raise dkim.DnsTimeoutError(str(exc)) from None
        if not records:
            self.missing = True
            return None
        # RFC 6376 §3.6.2.2: several key records for one selector make the result undefined;
        # the first one is what everyone uses.
        return records[0]


def _signature_fields(value: bytes) -> dict[bytes, bytes]:
    try:
        fields: dict[bytes, bytes] = parse_tag_value(value)     # dkimpy is untyped
        return fields
    except (InvalidTagValueList, ValueError):
        return {}


def verify_all(data: bytes, txt: TxtLookup, *, limit: int = MAX_SIGNATURES) -> list[DkimResult]:
    """Verify every DKIM-Signature of ``data`` (the first ``limit`` of them), top down."""
    end, _ = split_header(data, 0, len(data))
    count = sum(1 for f in parse_fields(data, 0, end) if f.key == "dkim-signature")
    if not count:
        return []
    try:
        verifier = dkim.DKIM(data, minkey=MIN_RSA_BITS)
    except Exception as exc:  # noqa: BLE001 - a message dkimpy cannot even parse
        return [DkimResult("permerror", reason=f"unparsable message: {type(exc).__name__}")]
    results: list[DkimResult] = []
    for index in range(min(count, limit)):
        sig_value = _raw_signature(verifier, index)
        tags = _signature_fields(sig_value)
        base = dict(domain=tags.get(b"d", b"").decode("ascii", "replace").lower(),
                    selector=tags.get(b"s", b"").decode("ascii", "replace"),
                    algorithm=tags.get(b"a", b"").decode("ascii", "replace"),
                    b=re.sub(rb"\s+", b"", tags.get(b"b", b""))[:12].decode("ascii", "replace"))
        lookup = _Lookup(txt)
        try:
            ok = verifier.verify(index, dnsfunc=lookup)
        except dkim.ValidationError as exc:
            # Body hash mismatch, expired signature, bad header list: the signature is not valid.
            results.append(DkimResult("fail", reason=_short(exc), **base))
            continue
        except dkim.DKIMException as exc:
            results.append(DkimResult("permerror", reason=_short(exc), **base))
            continue
        except Exception as exc:  # noqa: BLE001 - hostile input must never escape as a traceback
            results.append(DkimResult("permerror", reason=f"unverifiable: {type(exc).__name__}", **base))
            continue
        if ok:
            results.append(DkimResult("pass", **base))
        elif lookup.temporary:
            results.append(DkimResult("temperror", reason="key lookup failed", **base))
        elif lookup.missing:
            results.append(DkimResult("permerror", reason="no key for signature", **base))
        else:
            results.append(DkimResult("fail", reason="signature did not verify", **base))
    return results


def _raw_signature(verifier: dkim.DKIM, index: int) -> bytes:
    sigs: list[bytes] = [v for k, v in verifier.headers if k.lower() == b"dkim-signature"]
    return sigs[index] if index < len(sigs) else b""


@dataclass(frozen=True, slots=True)
class ArcResult:
    result: str            #: pass, fail, none (RFC 8617 §4.4 chain validation status)
    reason: str = ""
    instances: int = 0


_ARC_INSTANCE = re.compile(rb"(?:^|[\s;])i\s*=\s*(\d+)")


def verify_arc(data: bytes, txt: TxtLookup) -> ArcResult:
    """Validate the ARC chain (RFC 8617 §5.2); ``none`` when the message has no ARC sets."""
    end, _ = split_header(data, 0, len(data))
    instances = set()
    for f in parse_fields(data, 0, end):
        if f.key in ("arc-seal", "arc-message-signature", "arc-authentication-results"):
            m = _ARC_INSTANCE.search(f.value)
            if m:
                instances.add(int(m.group(1)))
    if not instances:
        return ArcResult("none")
    if max(instances) > MAX_ARC_INSTANCES:
        return ArcResult("fail", f"more than {MAX_ARC_INSTANCES} ARC sets", max(instances))
    lookup = _Lookup(txt)
    try:
        cv, _results, reason = dkim.arc_verify(data, dnsfunc=lookup, minkey=MIN_RSA_BITS)
    except Exception as exc:  # noqa: BLE001 - hostile input must never escape as a traceback
        return ArcResult("fail", f"unverifiable: {type(exc).__name__}", max(instances))
    status = (cv or b"fail").decode("ascii", "replace")
    if lookup.temporary and status != "pass":
        status = "fail"
        reason = "key lookup failed"
    return ArcResult(status if status in ("pass", "fail", "none") else "fail",
                     _short(reason), max(instances))


def _short(text: object) -> str:
    s = " ".join(str(text).split())
    return s[:160]
