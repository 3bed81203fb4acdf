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
import sqlite3
import time
from dataclasses import dataclass

import bcrypt

from .db import WriteTxn
from .errors import AlreadyExists, AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from .events import AccountsChanged
from .model import Account, Address
from .credcache import CredentialCache
from .store import MailStore

#: bcrypt ignores bytes past 72; refuse rather than silently truncate.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_LENGTH = 1
#: bcrypt's base64 alphabet (not RFC 4648's).
_BCRYPT_ALPHABET = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

_USER_COLS = "u.id, u.local, d.name, u.admin"


@dataclass(frozen=True, slots=True)
class UserUsage:
    account: Account
    mailboxes: int
    messages: int
    size: int


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
    """Domains and users, over the store's database."""

    def __init__(self, store: MailStore, *, bcrypt_rounds: int = 12, cache_seconds: float = 0) -> None:
        self.store = store
        self.db = store.db
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

        def w(txn: WriteTxn) -> str:
            try:
                txn.conn.execute("INSERT INTO domains(name) VALUES(?)", (name,))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"domain {name} already exists") from None
            txn.emit(AccountsChanged())
            return name
        return await self.db.write(w)

    async def list_domains(self) -> list[tuple[str, int]]:
        """(domain, number of users), by name."""
        def q(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            return conn.execute("SELECT d.name, count(u.id) FROM domains d LEFT JOIN users u ON u.domain_id = d.id"
                                " GROUP BY d.id ORDER BY d.name").fetchall()
        return await self.db.read(q)

    async def remove_domain(self, domain: str) -> None:
        name = normalize_domain(domain)

        def w(txn: WriteTxn) -> None:
            row = txn.conn.execute("SELECT id FROM domains WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no domain {name}")
            if txn.conn.execute("SELECT 1 FROM users WHERE domain_id = ?", (row[0],)).fetchone():
                raise PermissionDenied(f"domain {name} still has users; remove them first")
            txn.conn.execute("DELETE FROM aliases WHERE domain_id = ?", (row[0],))
            txn.conn.execute("DELETE FROM domains WHERE id = ?", (row[0],))
            txn.emit(AccountsChanged())
        await self.db.write(w)

    async def is_local_domain(self, domain: str) -> bool:
        name = domain.lower()

        def q(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM domains WHERE name = ?", (name,)).fetchone() is not None
        return await self.db.read(q)

    # -- users -----------------------------------------------------------------------------

    async def add_user(self, address: str, password: str, *, admin: bool = False) -> Account:
        """Create a user (and its domain, and the default mailboxes).

        Raises:
            InvalidInput: bad address or password.  AlreadyExists: the user exists.
        """
        addr = Address.parse(address)
        raw = check_password(password)
        hashed = await asyncio.to_thread(self._hash, raw)

        def w(txn: WriteTxn) -> Account:
            conn = txn.conn
            conn.execute("INSERT OR IGNORE INTO domains(name) VALUES(?)", (addr.domain,))
            domain_id = conn.execute("SELECT id FROM domains WHERE name = ?", (addr.domain,)).fetchone()[0]
            try:
                cur = conn.execute("INSERT INTO users(domain_id, local, local_key, password_hash, admin, created)"
                                   " VALUES(?,?,?,?,?,?)",
                                   (domain_id, addr.local, addr.local.lower(), hashed, int(admin), int(time.time())))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"user {addr} already exists") from None
            user_id = cur.lastrowid
            self.store.create_default_mailboxes(txn, user_id)
            txn.emit(AccountsChanged())
            return Account(user_id, addr.local, addr.domain, admin)
        return await self.db.write(w)

    @staticmethod
    def _find(conn: sqlite3.Connection, addr: Address) -> Account | None:
        row = conn.execute(f"SELECT {_USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id"
                           " WHERE d.name = ? AND u.local_key = ?", (addr.domain, addr.local.lower())).fetchone()
        return Account(row[0], row[1], row[2], bool(row[3])) if row else None

    async def find_user(self, address: str) -> Account | None:
        try:
            addr = Address.parse(address)
        except InvalidInput:
            return None
        return await self.db.read(lambda conn: self._find(conn, addr))

    async def get_user(self, address: str) -> Account:
        account = await self.find_user(address)
        if account is None:
            raise NotFound(f"no user {address}")
        return account

    async def get_user_by_id(self, user_id: int) -> Account:
        def q(conn: sqlite3.Connection) -> Account:
            row = conn.execute(f"SELECT {_USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id"
                               " WHERE u.id = ?", (user_id,)).fetchone()
            if row is None:
                raise NotFound("user no longer exists")
            return Account(row[0], row[1], row[2], bool(row[3]))
        return await self.db.read(q)

    async def list_users(self, domain: str | None = None) -> list[Account]:
        def q(conn: sqlite3.Connection) -> list[Account]:
            sql = f"SELECT {_USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id"
            args: tuple = ()
            if domain is not None:
                sql += " WHERE d.name = ?"
                args = (domain.lower(),)
            rows = conn.execute(sql + " ORDER BY d.name, u.local_key", args)
            return [Account(r[0], r[1], r[2], bool(r[3])) for r in rows]
        return await self.db.read(q)

    async def usage(self) -> list[UserUsage]:
        """Every user with mailbox count, message count and bytes stored (console Users pane)."""
        def q(conn: sqlite3.Connection) -> list[UserUsage]:
            rows = conn.execute(
                f"SELECT {_USER_COLS}, (SELECT count(*) FROM mailboxes b WHERE b.user_id = u.id AND b.noselect = 0),"
                " (SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = u.id),"
                " (SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                "  WHERE b.user_id = u.id)"
                " FROM users u JOIN domains d ON d.id = u.domain_id ORDER BY d.name, u.local_key")
            return [UserUsage(Account(r[0], r[1], r[2], bool(r[3])), r[4], r[5], r[6]) for r in rows]
        return await self.db.read(q)

    async def set_password(self, address: str, password: str) -> None:
        account = await self.get_user(address)
        hashed = await asyncio.to_thread(self._hash, check_password(password))

        def w(txn: WriteTxn) -> None:
            txn.conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hashed, account.id))
            txn.emit(AccountsChanged())
        await self.db.write(w)
        # authenticate() would miss anyway (the stored hash changed); do not keep the entry.
        self.forget_login(address)

    async def set_admin(self, address: str, admin: bool) -> Account:
        account = await self.get_user(address)

        def w(txn: WriteTxn) -> None:
            txn.conn.execute("UPDATE users SET admin = ? WHERE id = ?", (int(admin), account.id))
            txn.emit(AccountsChanged())
        await self.db.write(w)
        return Account(account.id, account.local, account.domain, admin)

    async def remove_user(self, address: str) -> None:
        """Remove a user with all its mail, and the alias rules that point at it."""
        account = await self.get_user(address)

        def w(txn: WriteTxn) -> None:
            conn = txn.conn
            blob_ids = [r[0] for r in conn.execute(
                "SELECT DISTINCT m.blob_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = ?",
                (account.id,))]
            conn.execute("DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)",
                         (account.id,))
            conn.execute("DELETE FROM expunged WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)",
                         (account.id,))
            conn.execute("DELETE FROM mailboxes WHERE user_id = ?", (account.id,))
            conn.execute("DELETE FROM aliases WHERE target_user_id = ?", (account.id,))
            conn.execute("DELETE FROM users WHERE id = ?", (account.id,))
            self.store._collect_blobs(txn, blob_ids)
            txn.emit(AccountsChanged())
        await self.db.write(w)
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

        def q(conn: sqlite3.Connection) -> tuple[Account, bytes] | None:
            if addr is None:
                return None
            row = conn.execute(f"SELECT {_USER_COLS}, u.password_hash FROM users u JOIN domains d"
                               " ON d.id = u.domain_id WHERE d.name = ? AND u.local_key = ?",
                               (addr.domain, addr.local.lower())).fetchone()
            return (Account(row[0], row[1], row[2], bool(row[3])), row[4]) if row else None

        found = await self.db.read(q)
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
