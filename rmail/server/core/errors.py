"""One error hierarchy for the core; each protocol adapter maps it once to its own replies."""

from __future__ import annotations


class RmailError(Exception):
    """Base of every error the core raises on purpose. Its message is safe to show a user."""


class NotFound(RmailError):
    """The named user, domain, mailbox, message or alias does not exist."""


class AlreadyExists(RmailError):
    """Creating something that is already there."""


class PermissionDenied(RmailError):
    """The caller is known but not allowed to do this."""


class AuthenticationFailed(RmailError):
    """Wrong credentials (never says which part was wrong)."""


class InvalidInput(RmailError):
    """The request is malformed or a value is out of range."""


class LimitExceeded(RmailError):
    """A size, count or rate limit was hit."""


class TemporaryFailure(RmailError):
    """Could not be done now; retrying later may work."""


class QuotaExceeded(LimitExceeded):
    """A user's storage quota would be exceeded (IMAP [OVERQUOTA], SMTP 452 4.2.2, HTTP 507)."""


class StorageFull(TemporaryFailure):
    """The disk holding the store is full or below its free-space reserve.

    Temporary: it clears as soon as space is freed, and deleting mail still works while it
    lasts. SMTP answers 452 4.3.1, IMAP NO [OVERQUOTA], REST 507.
    """
