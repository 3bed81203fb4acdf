"""The one header rmail adds to a message it accepts: ``Received`` (RFC 5321 §4.4).

Pure code. The client's HELO name is untrusted text, so only host-name characters survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
#: RFC 1035 §2.3.4: a host name has at most 255 octets.
MAX_HELO = 255


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What the Received header records about one transaction."""

    helo: str                      #: the name the client gave in EHLO/HELO
    peer_ip: str
    hostname: str                  #: our name
    esmtp: bool
    tls_version: str | None = None     #: e.g. "TLSv1.3" when the session is encrypted
    tls_cipher: str | None = None
    tls_bits: int | None = None
    user: str | None = None            #: the authenticated user, if any
    recipients: tuple[str, ...] = ()
    smtputf8: bool = False


def with_protocol(info: TraceInfo) -> str:
    """RFC 3848 / RFC 6531 §3.7.3 "with" keyword: ESMTP + S (TLS) + A (auth), UTF8 variants."""
    if not info.esmtp:
        return "SMTP"
    base = "UTF8SMTP" if info.smtputf8 else "ESMTP"
    return base + ("S" if info.tls_version else "") + ("A" if info.user else "")


def safe_helo(helo: str) -> str:
    return _UNSAFE.sub("?", helo[:MAX_HELO]) or "unknown"


def received_header(info: TraceInfo, trace_id: str, when: datetime | None = None) -> bytes:
    """The folded header line, ending in CRLF, to prepend to the message bytes."""
    when = when or datetime.now(timezone.utc)
    peer = f"IPv6:{info.peer_ip}" if ":" in info.peer_ip else info.peer_ip
    lines = [f"Received: from {safe_helo(info.helo)} ([{peer}])"]
    if info.tls_version:
        cipher = f" with cipher {info.tls_cipher}" if info.tls_cipher else ""
        bits = f" ({info.tls_bits} bits)" if info.tls_bits else ""
        lines.append(f"\t(using {info.tls_version}{cipher}{bits})")
    if info.user:
        lines.append(f"\t(authenticated as {info.user})")
    lines.append(f"\tby {info.hostname} (rmail) with {with_protocol(info)} id {trace_id}")
    if len(info.recipients) == 1:
        # One recipient only: naming several would disclose Bcc recipients to each other.
        lines.append(f"\tfor <{info.recipients[0]}>; {format_datetime(when)}")
    else:
        lines[-1] += f"; {format_datetime(when)}"
    text = "\r\n".join(lines) + "\r\n"
    return text.encode("utf-8", "replace")
