"""The Authentication-Results field (RFC 8601) rmail writes, and the removal of forged ones.

authres formats each method's result (escaping reasons and property values); rmail puts one
result per folded line so the field stays far below the 998-octet line limit however many
signatures a message carries.
"""

from __future__ import annotations

import re
from typing import Sequence

import authres
from authres.arc import ARCAuthenticationResult
from authres.dmarc import DMARCAuthenticationResult

from ..mime.headers import Field, unfold
from ..tracefields import drop_fields, has_field
from .dkim import ArcResult, DkimResult
from .dmarc import DmarcResult
from .spf import SpfResult

__all__ = ["authentication_results", "without_forged_results", "authserv_id_of"]

_FEATURES = authres.FeatureContext(authres.dmarc, authres.arc)
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_TOKEN = re.compile(r"[^\s;()]+")


def _spf(result: SpfResult) -> authres.AuthenticationResult:
    prop = "mailfrom" if result.identity == "mailfrom" else "helo"
    return authres.AuthenticationResult(
        "spf", result=result.result, reason=result.reason or None,
        properties=[authres.AuthenticationResultProperty("smtp", prop, result.domain or "none")])


def _dkim(result: DkimResult) -> authres.AuthenticationResult:
    props = [authres.AuthenticationResultProperty("header", "d", result.domain or "none")]
    if result.selector:
        props.append(authres.AuthenticationResultProperty("header", "s", result.selector))
    if result.algorithm:
        props.append(authres.AuthenticationResultProperty("header", "a", result.algorithm))
    if result.b:
        # RFC 6008: the first characters of b= tell several signatures of one domain apart.
        props.append(authres.AuthenticationResultProperty("header", "b", result.b))
    return authres.AuthenticationResult("dkim", result=result.result, reason=result.reason or None,
                                        properties=props)


def authentication_results(authserv_id: str, *, spf_mailfrom: SpfResult, spf_helo: SpfResult,
                           dkim: Sequence[DkimResult], arc: ArcResult, dmarc: DmarcResult | None) -> bytes:
    """The whole field, CRLF-terminated, ready to prepend."""
    results: list[object] = [_spf(spf_mailfrom), _spf(spf_helo)]
    if dkim:
        results.extend(_dkim(d) for d in dkim)
    else:
        results.append(authres.AuthenticationResult("dkim", result="none"))
    results.append(ARCAuthenticationResult(result=arc.result, reason=arc.reason or None))
    if dmarc is not None:
        dm = DMARCAuthenticationResult(result=dmarc.result, reason=dmarc.reason or None,
                                       header_from=dmarc.from_domain or "none")
        if dmarc.record_domain and dmarc.result in ("pass", "fail"):
            dm.policy = dmarc.policy
            dm.result_comment = f"p={dmarc.policy} dis={dmarc.disposition.upper()}"
        results.append(dm)
    lines = [f"Authentication-Results: {authserv_id.lower()};"]
    lines += [f"\t{r};" for r in results]
    lines[-1] = lines[-1].rstrip(";")
    text = "\r\n".join(lines) + "\r\n"
    return text.encode("ascii", "replace")


def authserv_id_of(value: bytes) -> str:
    """The authserv-id of an Authentication-Results value (RFC 8601 §2.2): parsed by authres,
    or for a value authres refuses, the first token outside comments (a forged field need
    not be well-formed to mislead a mail client)."""
    text = unfold(value).decode("utf-8", "replace")
    try:
        header = _FEATURES.parse_value(text)
        authserv_id: str | None = header.authserv_id     # authres is untyped
        if authserv_id:
            return authserv_id.lower()
    except Exception:  # noqa: BLE001 - authres raises its own and plain errors on junk
        pass
    stripped = _COMMENT.sub(" ", text)
    m = _TOKEN.search(stripped)
    return m.group(0).lower().strip('"') if m else ""


def without_forged_results(data: bytes, authserv_id: str) -> bytes:
    """RFC 8601 §5: remove every Authentication-Results field (and its ARC-era cousin
    ``Authentication-Results`` spelled with other case) claiming ``authserv_id``."""
    if not has_field(data, b"authentication-results"):
        return data
    ours = authserv_id.lower()

    def forged(f: Field) -> bool:
        return f.key == "authentication-results" and authserv_id_of(f.value) == ours
    return drop_fields(data, forged)
