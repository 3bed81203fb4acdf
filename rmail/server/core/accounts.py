"""Users and domains. Passwords are bcrypt hashes; hashing runs off the event loop.

``authenticate`` costs the same whether or not the user exists (a missing user is checked
against a dummy hash of the configured cost), and a password verified recently is accepted
from the credential cache (credcache.py) without bcrypt.

A domain is local once it has a user or was added explicitly (SPEC Part 3). User names are
full addresses; local parts compare case-insensitively, as every mainstream server does.
"""

from __future__ import annotations

import asyncio
import secrets

import bcrypt

from .credcache import CredentialCache
from .errors import AuthenticationFailed, InvalidInput, NotFound
from .model import Account, Address
from .storage.directory import Directory, UserUsage

__all__ = ["Accounts", "AuthenticationFailed", "UnknownUser", "UserUsage", "check_password", "dummy_hash",
           "hash_cost", "normalize_domain"]

#: bcrypt ignores bytes past 72; refuse rather than silently truncate.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_LENGTH = 1
#: bcrypt's base64 alphabet (not RFC 4648's).
_BCRYPT_ALPHABET = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def check_password(password: str) -> bytes:
    """Raises InvalidInput for an empty password or one longer than bcrypt can hash."""
    raw = password.encode("utf-8")
    if len(raw) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password may not be empty")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"password is longer than {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)")
    if "\x00" in password:
        raise InvalidInput("password may not contain NUL")
    return raw


class UnknownUser(AuthenticationFailed):
    """No such user. Replies must not tell it from a wrong password; only the log does."""

    reason = "unknown-user"


def dummy_hash(rounds: int) -> bytes:
    """A well-formed bcrypt hash of cost ``rounds`` that no password matches.

    Checking a password against it costs what checking a real hash of that cost does, and
    making it costs nothing: bcrypt derives the work from the salt part (cost + 22 characters)
    and only compares the rest, which here is random.
    """
    tail = bytes(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))
    return bcrypt.gensalt(rounds) + tail


def hash_cost(hashed: bytes) -> int:
    """The cost parameter of a ``$2b$NN$...`` hash."""
    return int(hashed.split(b"$")[2])


def normalize_domain(domain: str) -> str:
    return Address.parse(f"x@{domain}").domain


class Accounts:
    """Domains and users over the store's directory."""

    def __init__(self, directory: Directory, *, bcrypt_rounds: int = 12, cache_seconds: float = 0) -> None:
        self.directory = directory
        self.rounds = bcrypt_rounds
        # Verified against when the user does not exist, at the cost of real hashes, so timing
        # does not reveal who exists (issue 11: cost 4 here answered in 2 ms instead of 450).
        self.dummy_hash = dummy_hash(bcrypt_rounds)
        self.credentials = CredentialCache(cache_seconds)

    def _hash(self, raw: bytes) -> bytes:
        return bcrypt.hashpw(raw, bcrypt.gensalt(self.rounds))

    def check_hash(self, raw: bytes, hashed: bytes) -> bool:
        """The one place a password meets bcrypt (runs on a worker thread; tests count calls)."""
        return bcrypt.checkpw(raw, hashed)

    @staticmethod
    def _login_key(addr: Address) -> str:
        return f"{addr.local.lower()}@{addr.domain}"

    def forget_login(self, username: str) -> None:
        """Drop any cached credential for ``username`` (a lockout started for it)."""
        try:
            self.credentials.forget(self._login_key(Address.parse(username)))
        except InvalidInput:
            pass

    # -- domains ---------------------------------------------------------------------------

    async def add_domain(self, domain: str) -> str:
        name = normalize_domain(domain)
        await self.directory.add_domain(name)
        return name

    async def list_domains(self) -> list[tuple[str, int]]:
        """(domain, number of users), by name."""
        return await self.directory.list_domains()

    async def remove_domain(self, domain: str) -> None:
        await self.directory.remove_domain(normalize_domain(domain))

    async def is_local_domain(self, domain: str) -> bool:
        return await self.directory.is_local_domain(domain.lower())

    # -- users -----------------------------------------------------------------------------

    async def add_user(self, address: str, password: str, *, admin: bool = False) -> Account:
        """Create a user (and its domain, and the default mailboxes).

        Raises:
            InvalidInput: bad address or password.  AlreadyExists: the user exists.
        """
        addr = Address.parse(address)
        raw = check_password(password)
        hashed = await asyncio.to_thread(self._hash, raw)
        return await self.directory.add_user(addr, hashed, admin=admin)

    async def find_user(self, address: str) -> Account | None:
        try:
            addr = Address.parse(address)
        except InvalidInput:
            return None
        return await self.directory.find_user(addr)

    async def get_user(self, address: str) -> Account:
        account = await self.find_user(address)
        if account is None:
            raise NotFound(f"no user {address}")
        return account

    async def get_user_by_id(self, user_id: int) -> Account:
        return await self.directory.get_user_by_id(user_id)

    async def list_users(self, domain: str | None = None) -> list[Account]:
        return await self.directory.list_users(None if domain is None else domain.lower())

    async def usage(self) -> list[UserUsage]:
        """Every user with mailbox count, message count and bytes stored (console Users pane)."""
        return await self.directory.usage()

    async def set_password(self, address: str, password: str) -> None:
        account = await self.get_user(address)
        hashed = await asyncio.to_thread(self._hash, check_password(password))
        await self.directory.set_password_hash(account.id, hashed)
        # authenticate() would miss anyway (the stored hash changed); do not keep the entry.
        self.forget_login(address)

    async def set_admin(self, address: str, admin: bool) -> Account:
        account = await self.get_user(address)
        await self.directory.set_admin(account.id, admin)
        return Account(account.id, account.local, account.domain, admin)

    async def remove_user(self, address: str) -> None:
        """Remove a user with all its mail, and the alias rules that point at it."""
        account = await self.get_user(address)
        await self.directory.remove_user(account.id)
        self.forget_login(address)

    async def authenticate(self, username: str, password: str) -> Account:
        """Check a password; same cost whether or not the user exists.

        A password verified within ``cache_seconds`` against the hash stored *now* is accepted
        without bcrypt; anything else pays a full bcrypt check.

        Raises:
            AuthenticationFailed: wrong password (``UnknownUser``, a subclass, for a user that
                does not exist; its message is the same, for logs only).
        """
        raw = password.encode("utf-8", "surrogateescape")
        try:
            addr = Address.parse(username)
        except InvalidInput:
            addr = None
        found = await self.directory.credentials(addr) if addr is not None else None
        fits = len(raw) <= MAX_PASSWORD_BYTES
        if found is not None and fits:
            assert addr is not None
            if self.credentials.verify(self._login_key(addr), found[0].id, found[1], raw):
                return found[0]
        hashed = found[1] if found else self.dummy_hash
        ok = fits and await asyncio.to_thread(self.check_hash, raw, hashed)
        if found is None:
            raise UnknownUser("invalid credentials")
        if not ok:
            raise AuthenticationFailed("invalid credentials")
        assert addr is not None
        self.credentials.remember(self._login_key(addr), found[0].id, found[1], raw)
        return found[0]
