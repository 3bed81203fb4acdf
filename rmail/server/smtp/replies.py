"""SMTP reply texts and the one place that makes every reply safe and RFC 2034-complete.

aiosmtpd writes some replies itself ("503 Error: need MAIL command", "552 Error: Too much mail
data"). Because rmail advertises ENHANCEDSTATUSCODES, ``finish_reply`` gives every 2xx/4xx/5xx
reply an enhanced status code when it has none (RFC 2034 §3: all replies except the greeting
and the EHLO/HELO response carry one). Pure code; no sockets.
"""

from __future__ import annotations

import re

from ..core.errors import (AuthenticationFailed, InvalidInput, LimitExceeded, NotFound, PermissionDenied,
                           QuotaExceeded, RmailError, StorageFull, TemporaryFailure)

#: A reply that already carries an enhanced status code (RFC 3463 §2: class.subject.detail).
_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
_CODE = re.compile(r"^(\d{3})([ -])(.*)$", re.S)

#: Enhanced codes for replies aiosmtpd composes without one (RFC 3463 §3).
_DEFAULT_ENHANCED: dict[str, str] = {
    "211": "2.0.0", "214": "2.0.0", "220": "2.0.0", "221": "2.0.0", "235": "2.7.0", "250": "2.0.0",
    "252": "2.5.0", "354": "",
    "421": "4.3.0", "451": "4.3.0", "452": "4.5.3", "454": "4.7.0",
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
    "530": "5.7.0", "535": "5.7.8", "538": "5.7.11", "550": "5.7.1", "552": "5.3.4", "553": "5.1.3",
    "554": "5.5.0", "555": "5.5.4",
}

# Replies rmail sends itself.
OK = "250 2.0.0 OK"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_LOCKED = "454 4.7.0 Too many failed logins; try again later"
AUTH_TOO_MANY = "421 4.7.0 Too many failed logins; closing connection"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors; closing connection"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
RELAY_DENIED = "554 5.7.1 Relay access denied"
NOT_OWNER = "553 5.7.1 Sender address not owned by the authenticated user"
BAD_ADDRESS = "501 5.1.3 Bad address syntax"
SHUTTING_DOWN = "421 4.3.2 Service shutting down"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections; try again later"
LOGIN_TIMEOUT = "421 4.4.2 Not authenticated in time; closing connection"
SESSION_TIMEOUT = "421 4.4.2 Session time limit reached; closing connection"
TOO_MUCH_MAIL = "450 4.7.1 Too much mail from your address; try again later"
BARE_NEWLINE = "500 5.5.2 Bare <LF> or <CR> in a command line; commands end with <CR><LF>"
INTERNAL_ERROR = "451 4.3.0 Internal error; try again later"
#: RFC 3463 X.2.2 "mailbox full", as a temporary failure: the user may make room.
MAILBOX_FULL = "452 4.2.2 Mailbox full"
#: Postfix answers its message rate limit so (smtpd_client_message_rate_limit).
RATE_EXCEEDED = "450 4.7.1 Sending rate exceeded"


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")


def finish_reply(status: str, *, enhanced: bool = True) -> bytes:
    """One reply as bytes: control characters removed, an enhanced code added if missing.

    Network and store text can end up in a reply (an address in an error message); a CR or LF
    in it would let it forge a reply line, and a lone surrogate from a non-UTF-8 argument would
    not encode, so both are neutralised here.
    """
    text = _CONTROL.sub("?", status)
    if enhanced and not _HAS_ENHANCED.match(text):
        m = _CODE.match(text)
        if m:
            code, sep, rest = m.groups()
            detail = _DEFAULT_ENHANCED.get(code, f"{code[0]}.0.0" if code[0] in "245" else "")
            if detail:
                text = f"{code}{sep}{detail} {rest}".rstrip()
    return text.encode("utf-8", "replace")


def reply_code(status: str | bytes) -> int:
    """The three-digit code of a reply line (0 if it has none)."""
    head = status[:3]
    if isinstance(head, bytes):
        head = head.decode("ascii", "replace")
    return int(head) if head.isdigit() else 0


def error_reply(exc: RmailError, *, recipient: bool = False) -> str:
    """Map a core error to an SMTP reply (RFC 3463 codes); its message is safe to show."""
    text = str(exc)[:200]
    if isinstance(exc, NotFound):
        return f"550 5.1.1 {text}" if recipient else f"550 5.1.0 {text}"
    if isinstance(exc, PermissionDenied):
        return RELAY_DENIED if recipient else f"550 5.7.1 {text}"
    if isinstance(exc, InvalidInput):
        return f"501 5.1.3 {text}"
    if isinstance(exc, QuotaExceeded):
        return f"452 4.2.2 {text}"
    if isinstance(exc, LimitExceeded):
        return f"552 5.3.4 {text}"
    if isinstance(exc, AuthenticationFailed):
        return AUTH_INVALID
    if isinstance(exc, StorageFull):
        # RFC 5321 §4.2.3 452 "insufficient system storage"; RFC 3463 X.3.1 "mail system full".
        return f"452 4.3.1 {text}"
    if isinstance(exc, TemporaryFailure):
        return f"451 4.3.0 {text}"
    return INTERNAL_ERROR
