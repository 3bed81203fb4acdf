"""The directory: domains, users, alias rules, quotas and shared secrets.

The services in core (Accounts, Aliases, Quotas) hold the logic (bcrypt, pattern matching,
limits); a backend only stores and finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from ..model import Account, Address, AliasRule

__all__ = ["AddressLookup", "Directory", "UserUsage"]


@dataclass(frozen=True, slots=True)
class UserUsage:
    account: Account
    mailboxes: int
    messages: int
    size: int                                            #: bytes stored


@dataclass(frozen=True, slots=True)
class AddressLookup:
    """Everything alias resolution needs about one address, from one consistent read."""

    local_domain: bool                                   #: the domain is one of ours
    account: Account | None                              #: the user of exactly that address
    rules: tuple[tuple[AliasRule, Account | None], ...]  #: the domain's rules in order, with targets
    postmaster: Account | None                           #: first admin, else first user, of the domain


class Directory(Protocol):
    """Domains are lower-case names; a user's local part is kept as given and found
    case-insensitively. Changes publish AccountsChanged / AliasesChanged after commit.
    """

    # -- domains -----------------------------------------------------------------------------

    async def add_domain(self, name: str) -> None:
        """Raises: AlreadyExists."""
        ...

    async def list_domains(self) -> list[tuple[str, int]]:
        """(domain, number of users), by name."""
        ...

    async def remove_domain(self, name: str) -> None:
        """Remove a domain without users, with its alias rules.

        Raises: NotFound, PermissionDenied (it still has users).
        """
        ...

    async def is_local_domain(self, name: str) -> bool:
        ...

    async def first_domain(self) -> str | None:
        """The domain added first (the bare ``postmaster`` recipient's), or None."""
        ...

    # -- users -------------------------------------------------------------------------------

    async def add_user(self, address: Address, password_hash: bytes, *, admin: bool = False) -> Account:
        """Create a user (its domain too, if new) with the default mailboxes, in one transaction.

        Raises: AlreadyExists.
        """
        ...

    async def find_user(self, address: Address) -> Account | None:
        ...

    async def get_user_by_id(self, user_id: int) -> Account:
        """Raises: NotFound."""
        ...

    async def list_users(self, domain: str | None = None) -> list[Account]:
        """By domain, then local part (case-insensitively)."""
        ...

    async def usage(self) -> list[UserUsage]:
        """Every user with selectable mailboxes, messages and bytes stored."""
        ...

    async def credentials(self, address: Address) -> tuple[Account, bytes] | None:
        """The user and its password hash (bcrypt), or None."""
        ...

    async def set_password_hash(self, user_id: int, password_hash: bytes) -> None:
        """Raises: NotFound."""
        ...

    async def set_admin(self, user_id: int, admin: bool) -> None:
        """Raises: NotFound."""
        ...

    async def remove_user(self, user_id: int) -> None:
        """Remove a user with all its mail, quota and the alias rules that point at it.

        Raises: NotFound.
        """
        ...

    # -- alias rules -------------------------------------------------------------------------

    async def alias_rules(self, domain: str) -> list[AliasRule]:
        """The domain's rules in declaration order (positions from 1).

        Raises: NotFound: no such domain.
        """
        ...

    async def add_alias(self, domain: str, pattern: str, target_local: str) -> AliasRule:
        """Append a rule (the pattern is already validated).

        Raises: NotFound (no domain), InvalidInput (target is not a user of the domain),
        AlreadyExists (the pattern is a rule of the domain already).
        """
        ...

    async def remove_alias(self, domain: str, pattern: str) -> None:
        """Raises: NotFound (no domain, or no such rule)."""
        ...

    async def move_alias(self, domain: str, pattern: str, position: int) -> list[AliasRule]:
        """Move a rule to ``position`` (1-based); returns the rules in their new order.

        Raises: NotFound, InvalidInput (position out of range).
        """
        ...

    async def lookup(self, address: Address) -> AddressLookup:
        ...

    # -- quotas ------------------------------------------------------------------------------

    async def set_quota(self, user_id: int, limit: int | None) -> None:
        """A user's own limit in bytes (0: unlimited), or None to follow the default."""
        ...

    async def quota_overrides(self) -> dict[int, int]:
        """user id → own limit, for the users that have one."""
        ...

    async def quota_usage(self, user_ids: Sequence[int], default: int, *,
                          limited_only: bool = False) -> dict[int, tuple[int, int, bool]]:
        """user id → (bytes used, limit, whether the limit is the user's own), for the users
        among ``user_ids`` that exist. ``default`` is the limit of users without their own (0:
        none). ``limited_only``: sum bytes only for users with a limit and report 0 for the
        others (delivery's check; a sum costs a scan of the user's messages)."""
        ...

    # -- shared secrets ----------------------------------------------------------------------

    async def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """The secret ``name`` (the JWT signing key, say), created with ``create()`` by the
        first caller on any node; every node gets the same bytes."""
        ...

    async def drop_secret(self, name: str) -> None:
        """Forget the secret ``name`` durably (nothing happens when there is none): the next
        `secret` call creates a new one. What the old one signed no longer verifies (IMAP
        RESETKEY, RFC 4467 §6.2)."""
        ...
