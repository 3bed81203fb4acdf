"""MTA-STS (RFC 8461) as data: the policy rmail serves for its domains, the ``_mta-sts`` TXT
record, and parsing and matching of other domains' policies for outbound delivery. Pure
code; fetching over HTTPS lives with the SMTP client (server.smtp.mtasts), because the core
imports no HTTP library.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["Policy", "build_policy", "policy_id", "parse_policy", "parse_txt", "mx_matches", "PolicyError",
           "MAX_POLICY_BYTES"]

#: RFC 8461 §3.3: senders should limit the policy body; 64 KiB is what common senders use.
MAX_POLICY_BYTES = 64 * 1024
#: RFC 8461 §3.2: max_age at most 31557600 (about a year).
MAX_AGE_LIMIT = 31557600
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


class PolicyError(ValueError):
    """A record or policy that does not follow RFC 8461 (treated as "no policy")."""


@dataclass(frozen=True, slots=True)
class Policy:
    mode: str                      #: enforce, testing, none
    mx: tuple[str, ...]            #: patterns: a host name or "*.example.net"
    max_age: int

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"


def build_policy(mode: str, mx_hosts: list[str], max_age: int) -> str:
    """The policy file body (RFC 8461 §3.2), CRLF line endings."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {h.rstrip('.').lower()}" for h in mx_hosts),
             f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


def policy_id(policy: str) -> str:
    """The TXT record's id (§3.1: 1-32 alphanumerics): a digest of the policy, so it changes
    exactly when the policy does and senders fetch the new one."""
    return hashlib.sha256(policy.encode()).hexdigest()[:20]


def parse_txt(records: list[str]) -> str | None:
    """The id of the domain's STS record (§3.1), None when there is none. More than one
    ``v=STSv1`` record means no policy (§3.1)."""
    sts = [r for r in records if r.replace(" ", "").startswith("v=STSv1")]
    if len(sts) != 1:
        return None
    fields = dict(part.strip().partition("=")[::2] for part in sts[0].split(";") if part.strip())
    ident = fields.get("id", "").strip()
    return ident if _ID.match(ident) else None


def parse_policy(text: str) -> Policy:
    """§3.2: key: value lines; version STSv1, mode, max_age and (unless mode none) mx required.

    Raises:
        PolicyError: anything else.
    """
    version = mode = None
    max_age: int | None = None
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"not a key: value line: {line[:60]!r}")
        key, value = key.strip(), value.strip()
        if key == "version":
            version = value
        elif key == "mode":
            mode = value
        elif key == "max_age":
            if not value.isdigit():
                raise PolicyError("max_age is not a number")
            max_age = min(int(value), MAX_AGE_LIMIT)
        elif key == "mx":
            mx.append(value.lower().rstrip("."))
    if version != "STSv1":
        raise PolicyError("version is not STSv1")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"mode {mode!r} is not enforce, testing or none")
    if max_age is None:
        raise PolicyError("max_age is missing")
    if mode != "none" and not mx:
        raise PolicyError("no mx patterns")
    return Policy(mode, tuple(mx), max_age)


def mx_matches(pattern: str, host: str) -> bool:
    """§4.1: a pattern matches the MX host name exactly, or "*.example.net" matches exactly
    one leftmost label."""
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return host == pattern
