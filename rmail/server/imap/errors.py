"""Errors of an IMAP session and the reply each deserves, mapped once (STYLE: "let an error
know its reply").

- `ReplyError` (wire.py) and its kinds know their reply: `WireError` from the framer,
  `ParseError` from the parser, `CommandError` from a handler — BAD for protocol misuse, NO
  for a request that is understood and refused, with an RFC 5530 code when one fits.
- A core error (`RmailError`) is the user's or the server's condition, never a bug: NO with the
  RFC 5530 code of its kind (`core_error_reply`).
- `InvalidSequence` (a message number past the end) is the client's mistake: BAD.
- `SessionClosed` ends the connection (LOGOUT, autologout, a vanished client, a mailbox
  deleted under the session); it has no reply of its own.
- Anything else is a bug: logged by the session, answered ``NO [SERVERBUG]``.
"""

from __future__ import annotations

from typing import Final

from rmail.server.core.errors import (AlreadyExists, AuthenticationFailed, InvalidInput,
                                      LimitExceeded, NotFound, PermissionDenied, QuotaExceeded,
                                      RmailError, StorageFull, TemporaryFailure)

from .encode import Status, Tagged
from .wire import ReplyError

__all__ = ["BYE_AUTOLOGOUT", "BYE_DELETED", "BYE_LOGIN_TIMEOUT", "CommandError", "SessionClosed",
           "core_error_reply", "reply"]

#: RFC 5530 response codes for the core's errors, most specific first.
_CORE_CODES: Final[tuple[tuple[type[RmailError], str], ...]] = (
    (NotFound, "NONEXISTENT"), (AlreadyExists, "ALREADYEXISTS"), (PermissionDenied, "NOPERM"),
    (AuthenticationFailed, "AUTHENTICATIONFAILED"), (InvalidInput, "CANNOT"),
    (QuotaExceeded, "OVERQUOTA"), (LimitExceeded, "LIMIT"),
    # A full disk is OVERQUOTA, as in Dovecot: RFC 5530 has no code for it, OVERQUOTA tells the
    # user the remedy (delete mail, which still works) and SERVERBUG would claim a bug.
    (StorageFull, "OVERQUOTA"), (TemporaryFailure, "UNAVAILABLE"),
)

#: RFC 3501 §5.4: after 30 minutes without a command (IDLE included) the session ends.
BYE_AUTOLOGOUT: Final = Status("BYE", "autologout; idle for too long")
#: Before login, at the end of ``limits.login_timeout`` (issue 11).
BYE_LOGIN_TIMEOUT: Final = Status("BYE", "login timeout; log in sooner after connecting")
#: The selected mailbox was deleted by someone else (the wording is Dovecot's; IMAP4rev1 has
#: no untagged "mailbox gone" response, docs/IMAP.md).
BYE_DELETED: Final = Status("BYE", "Selected mailbox was deleted, have to disconnect")


class SessionClosed(Exception):
    """The session ended (LOGOUT, autologout, disconnect); the connection closes."""


class CommandError(ReplyError):
    """A handler's refusal, with its reply (BAD for protocol misuse, NO otherwise)."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text, status=status, code=code)


def reply(exc: ReplyError, tag: str | None = None) -> Tagged | Status:
    """The reply to a refused command: tagged when a tag is known (`tag`, else the error's),
    untagged otherwise (a line whose tag could not be read)."""
    tag = tag if tag is not None else exc.tag
    if tag is None:
        return Status(exc.status, exc.text, exc.code)
    return Tagged(tag, exc.status, exc.text, exc.code)


def core_error_reply(tag: str, exc: RmailError) -> Tagged:
    """NO with the RFC 5530 code of the core error's kind."""
    code = next((code for kind, code in _CORE_CODES if isinstance(exc, kind)), None)
    return Tagged(tag, "NO", str(exc) or "failed", code)
