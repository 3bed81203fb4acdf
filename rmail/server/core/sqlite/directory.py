"""storage.Directory over rmail.db: domains, users, alias rules, quotas and secrets."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from ..events import AccountsChanged, AliasesChanged
from ..model import Account, Address, AliasRule
from ..storage.directory import AddressLookup, UserUsage
from .database import Database, WriteTxn
from .mail import SqliteMailStore
from .secrets import load_or_create_secret, remove_secret, secret_path

_USER_COLS = "u.id, u.local, d.name, u.admin"
_USAGE_SQL = ("SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
              " WHERE b.user_id = ?")


def _account(row: Sequence[Any]) -> Account:
    return Account(row[0], row[1], row[2], bool(row[3]))


def find(conn: sqlite3.Connection, addr: Address) -> Account | None:
    row = conn.execute(f"SELECT {_USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id"
                       " WHERE d.name = ? AND u.local_key = ?", (addr.domain, addr.local.lower())).fetchone()
    return _account(row) if row else None


def _domain_id(conn: sqlite3.Connection, domain: str) -> int:
    row = conn.execute("SELECT id FROM domains WHERE name = ?", (domain,)).fetchone()
    if row is None:
        raise NotFound(f"no domain {domain} (add a user in it first)")
    return int(row[0])


def _rules(conn: sqlite3.Connection, domain: str) -> list[AliasRule]:
    rows = conn.execute("SELECT a.pattern, u.local FROM aliases a JOIN domains d ON d.id = a.domain_id"
                        " JOIN users u ON u.id = a.target_user_id WHERE d.name = ? ORDER BY a.position, a.id",
                        (domain,)).fetchall()
    return [AliasRule(domain, i + 1, pattern, target) for i, (pattern, target) in enumerate(rows)]


class SqliteDirectory:
    def __init__(self, db: Database, mail: SqliteMailStore, keys_dir: Path) -> None:
        self.db = db
        self.mail = mail
        self.keys_dir = keys_dir

    # -- domains ---------------------------------------------------------------------------

    async def add_domain(self, name: str) -> None:
        def w(txn: WriteTxn) -> None:
            try:
                txn.conn.execute("INSERT INTO domains(name) VALUES(?)", (name,))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"domain {name} already exists") from None
            txn.emit(AccountsChanged())
        await self.db.write(w)

    async def list_domains(self) -> list[tuple[str, int]]:
        def q(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            return conn.execute("SELECT d.name, count(u.id) FROM domains d LEFT JOIN users u ON u.domain_id = d.id"
                                " GROUP BY d.id ORDER BY d.name").fetchall()
        return await self.db.read(q)

    async def remove_domain(self, name: str) -> None:
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

    async def is_local_domain(self, name: str) -> bool:
        def q(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM domains WHERE name = ?", (name,)).fetchone() is not None
        return await self.db.read(q)

    async def first_domain(self) -> str | None:
        def q(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT name FROM domains ORDER BY id LIMIT 1").fetchone()
            return row[0] if row else None
        return await self.db.read(q)

    # -- users -----------------------------------------------------------------------------

    async def add_user(self, address: Address, password_hash: bytes, *, admin: bool = False) -> Account:
        def w(txn: WriteTxn) -> Account:
            conn = txn.conn
            conn.execute("INSERT OR IGNORE INTO domains(name) VALUES(?)", (address.domain,))
            domain_id = conn.execute("SELECT id FROM domains WHERE name = ?", (address.domain,)).fetchone()[0]
            try:
                cur = conn.execute("INSERT INTO users(domain_id, local, local_key, password_hash, admin, created)"
                                   " VALUES(?,?,?,?,?,?)", (domain_id, address.local, address.local.lower(),
                                                            password_hash, int(admin), int(time.time())))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"user {address} already exists") from None
            assert cur.lastrowid is not None      # set by every INSERT
            user_id = cur.lastrowid
            self.mail.create_default_mailboxes(txn, user_id)
            txn.emit(AccountsChanged())
            return Account(user_id, address.local, address.domain, admin)
        return await self.db.write(w)

    async def find_user(self, address: Address) -> Account | None:
        return await self.db.read(lambda conn: find(conn, address))

    async def get_user_by_id(self, user_id: int) -> Account:
        def q(conn: sqlite3.Connection) -> Account:
            row = conn.execute(f"SELECT {_USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id"
                               " WHERE u.id = ?", (user_id,)).fetchone()
            if row is None:
                raise NotFound("user no longer exists")
            return _account(row)
        return await self.db.read(q)

    async def list_users(self, domain: str | None = None) -> list[Account]:
        def q(conn: sqlite3.Connection) -> list[Account]:
            sql = f"SELECT {_USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id"
            args: tuple[str, ...] = ()
            if domain is not None:
                sql += " WHERE d.name = ?"
                args = (domain,)
            return [_account(r) for r in conn.execute(sql + " ORDER BY d.name, u.local_key", args)]
        return await self.db.read(q)

    async def usage(self) -> list[UserUsage]:
        def q(conn: sqlite3.Connection) -> list[UserUsage]:
            rows = conn.execute(
                f"SELECT {_USER_COLS}, (SELECT count(*) FROM mailboxes b WHERE b.user_id = u.id AND b.noselect = 0),"
                " (SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = u.id),"
                " (SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                "  WHERE b.user_id = u.id)"
                " FROM users u JOIN domains d ON d.id = u.domain_id ORDER BY d.name, u.local_key")
            return [UserUsage(_account(r), r[4], r[5], r[6]) for r in rows]
        return await self.db.read(q)

    async def credentials(self, address: Address) -> tuple[Account, bytes] | None:
        def q(conn: sqlite3.Connection) -> tuple[Account, bytes] | None:
            row = conn.execute(f"SELECT {_USER_COLS}, u.password_hash FROM users u JOIN domains d"
                               " ON d.id = u.domain_id WHERE d.name = ? AND u.local_key = ?",
                               (address.domain, address.local.lower())).fetchone()
            return (_account(row), bytes(row[4])) if row else None
        return await self.db.read(q)

    async def _update_user(self, sql: str, args: tuple[object, ...]) -> None:
        def w(txn: WriteTxn) -> None:
            if txn.conn.execute(sql, args).rowcount == 0:
                raise NotFound("user no longer exists")
            txn.emit(AccountsChanged())
        await self.db.write(w)

    async def set_password_hash(self, user_id: int, password_hash: bytes) -> None:
        await self._update_user("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))

    async def set_admin(self, user_id: int, admin: bool) -> None:
        await self._update_user("UPDATE users SET admin = ? WHERE id = ?", (int(admin), user_id))

    async def remove_user(self, user_id: int) -> None:
        def w(txn: WriteTxn) -> None:
            conn = txn.conn
            if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
                raise NotFound("user no longer exists")
            blob_ids = [r[0] for r in conn.execute(
                "SELECT DISTINCT m.blob_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = ?",
                (user_id,))]
            conn.execute("DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)",
                         (user_id,))
            conn.execute("DELETE FROM expunged WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)",
                         (user_id,))
            conn.execute("DELETE FROM mailboxes WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM aliases WHERE target_user_id = ?", (user_id,))
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
            self.mail.collect_blobs(txn, blob_ids)
            txn.emit(AccountsChanged())
        await self.db.write(w)

    # -- alias rules -----------------------------------------------------------------------

    async def alias_rules(self, domain: str) -> list[AliasRule]:
        def q(conn: sqlite3.Connection) -> list[AliasRule]:
            _domain_id(conn, domain)
            return _rules(conn, domain)
        return await self.db.read(q)

    async def add_alias(self, domain: str, pattern: str, target_local: str) -> AliasRule:
        def w(txn: WriteTxn) -> AliasRule:
            conn = txn.conn
            domain_id = _domain_id(conn, domain)
            user = conn.execute("SELECT id FROM users WHERE domain_id = ? AND local_key = ?",
                                (domain_id, target_local.lower())).fetchone()
            if user is None:
                raise InvalidInput(f"alias target {target_local}@{domain} is not an existing user")
            position = conn.execute("SELECT coalesce(max(position), 0) + 1 FROM aliases WHERE domain_id = ?",
                                    (domain_id,)).fetchone()[0]
            try:
                conn.execute("INSERT INTO aliases(domain_id, position, pattern, target_user_id) VALUES(?,?,?,?)",
                             (domain_id, position, pattern, user[0]))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"alias pattern {pattern!r} already exists in {domain}") from None
            txn.emit(AliasesChanged(domain))
            return next(r for r in _rules(conn, domain) if r.pattern == pattern)
        return await self.db.write(w)

    async def remove_alias(self, domain: str, pattern: str) -> None:
        def w(txn: WriteTxn) -> None:
            domain_id = _domain_id(txn.conn, domain)
            cur = txn.conn.execute("DELETE FROM aliases WHERE domain_id = ? AND pattern = ?", (domain_id, pattern))
            if cur.rowcount == 0:
                raise NotFound(f"no alias pattern {pattern!r} in {domain}")
            txn.emit(AliasesChanged(domain))
        await self.db.write(w)

    async def move_alias(self, domain: str, pattern: str, position: int) -> list[AliasRule]:
        def w(txn: WriteTxn) -> list[AliasRule]:
            conn = txn.conn
            domain_id = _domain_id(conn, domain)
            rows = [r[0] for r in conn.execute("SELECT pattern FROM aliases WHERE domain_id = ? ORDER BY position, id",
                                               (domain_id,))]
            if pattern not in rows:
                raise NotFound(f"no alias pattern {pattern!r} in {domain}")
            if not 1 <= position <= len(rows):
                raise InvalidInput(f"position must be from 1 to {len(rows)}")
            rows.remove(pattern)
            rows.insert(position - 1, pattern)
            conn.executemany("UPDATE aliases SET position = ? WHERE domain_id = ? AND pattern = ?",
                             [(i + 1, domain_id, p) for i, p in enumerate(rows)])
            txn.emit(AliasesChanged(domain))
            return _rules(conn, domain)
        return await self.db.write(w)

    async def lookup(self, address: Address) -> AddressLookup:
        def q(conn: sqlite3.Connection) -> AddressLookup:
            if conn.execute("SELECT 1 FROM domains WHERE name = ?", (address.domain,)).fetchone() is None:
                return AddressLookup(False, None, (), None)
            account = find(conn, address)
            if account is not None:
                return AddressLookup(True, account, (), None)
            rules = tuple((rule, find(conn, Address(rule.target, address.domain)))
                          for rule in _rules(conn, address.domain))
            row = conn.execute("SELECT u.local FROM users u JOIN domains d ON d.id = u.domain_id WHERE d.name = ?"
                               " ORDER BY u.admin DESC, u.id LIMIT 1", (address.domain,)).fetchone()
            postmaster = find(conn, Address(row[0], address.domain)) if row else None
            return AddressLookup(True, None, rules, postmaster)
        return await self.db.read(q)

    # -- quotas ----------------------------------------------------------------------------

    async def set_quota(self, user_id: int, limit: int | None) -> None:
        def w(txn: WriteTxn) -> None:
            if limit is None:
                txn.conn.execute("DELETE FROM quotas WHERE user_id = ?", (user_id,))
            else:
                txn.conn.execute("INSERT INTO quotas(user_id, bytes) VALUES(?, ?)"
                                 " ON CONFLICT(user_id) DO UPDATE SET bytes = excluded.bytes", (user_id, limit))
            txn.emit(AccountsChanged())
        await self.db.write(w)

    async def quota_overrides(self) -> dict[int, int]:
        return await self.db.read(lambda conn: dict(conn.execute("SELECT user_id, bytes FROM quotas").fetchall()))

    async def quota_usage(self, user_ids: Sequence[int], default: int, *,
                          limited_only: bool = False) -> dict[int, tuple[int, int, bool]]:
        ids = list(user_ids)

        def q(conn: sqlite3.Connection) -> dict[int, tuple[int, int, bool]]:
            out: dict[int, tuple[int, int, bool]] = {}
            for user_id in ids:
                if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
                    continue
                row = conn.execute("SELECT bytes FROM quotas WHERE user_id = ?", (user_id,)).fetchone()
                limit, own = (default, False) if row is None else (row[0], True)
                used = 0 if limited_only and limit == 0 else conn.execute(_USAGE_SQL, (user_id,)).fetchone()[0]
                out[user_id] = (used, limit, own)
            return out
        return await self.db.read(q)

    # -- shared secrets --------------------------------------------------------------------

    async def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """Kept in ``keys/NAME.key`` (secrets.py): a file an administrator can inspect, rotate
        (remove it) and back up with the data dir."""
        return await asyncio.to_thread(load_or_create_secret, secret_path(self.keys_dir, name), create)

    async def drop_secret(self, name: str) -> None:
        await asyncio.to_thread(remove_secret, secret_path(self.keys_dir, name))
