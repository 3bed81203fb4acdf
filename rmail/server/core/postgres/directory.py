"""The directory on PostgreSQL: domains, users, alias rules, quotas and shared secrets.

Same meanings as the SQLite backend's (core/accounts.py, aliases.py, quota.py); uniqueness is
left to the database's constraints, so two nodes adding the same user at once get one user
and one AlreadyExists, never two rows.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Callable, Sequence

import asyncpg

from ..errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied, TemporaryFailure
from ..events import AccountsChanged, AliasesChanged
from ..model import Account, Address, AliasRule
from ..storage.directory import AddressLookup, UserUsage
from .database import PgDatabase, PgTxn

if TYPE_CHECKING:
    from .mail import PgMailStore

__all__ = ["PgDirectory"]

_USER_COLS = "u.id, u.local, d.name, u.admin"
_USER_FROM = "users u JOIN domains d ON d.id = u.domain_id"


def _account(row: asyncpg.Record) -> Account:
    return Account(row[0], row[1], row[2], row[3])


async def _domain_id(conn: asyncpg.Connection, name: str) -> int:
    domain_id = await conn.fetchval("SELECT id FROM domains WHERE name = $1", name)
    if domain_id is None:
        raise NotFound(f"no domain {name} (add a user in it first)")
    return int(domain_id)


async def _rules(conn: asyncpg.Connection, domain: str) -> list[AliasRule]:
    rows = await conn.fetch("SELECT a.pattern, u.local FROM aliases a JOIN domains d ON d.id = a.domain_id"
                            " JOIN users u ON u.id = a.target_user_id WHERE d.name = $1 ORDER BY a.position, a.id",
                            domain)
    return [AliasRule(domain, i + 1, row[0], row[1]) for i, row in enumerate(rows)]


async def _get_or_create_domain(conn: asyncpg.Connection, name: str) -> int:
    """The domain's id, creating it if needed, locked against removal until commit."""
    for _ in range(3):
        # A node inserting the same name at once makes the INSERT wait for its commit; the
        # next statement (a new snapshot) then sees its row.
        await conn.execute("INSERT INTO domains(name) VALUES($1) ON CONFLICT (name) DO NOTHING", name)
        domain_id = await conn.fetchval("SELECT id FROM domains WHERE name = $1 FOR KEY SHARE", name)
        if domain_id is not None:
            return int(domain_id)
        # Removed by another node between the two statements: create it again.
    raise TemporaryFailure(f"domain {name} keeps being removed; try again")


# Everything alias resolution needs, in one statement: the domain, the exact user, the domain's
# postmaster (first admin, else first user) and its rules with their targets in order.
_LOOKUP = """
SELECT d.id,
       (SELECT ROW(u.id, u.local, u.admin) FROM users u WHERE u.domain_id = d.id AND u.local_key = $2),
       (SELECT ROW(u.id, u.local, u.admin) FROM users u WHERE u.domain_id = d.id
         ORDER BY u.admin DESC, u.id LIMIT 1),
       (SELECT array_agg(ROW(a.pattern, u.id, u.local, u.admin) ORDER BY a.position, a.id)
          FROM aliases a JOIN users u ON u.id = a.target_user_id WHERE a.domain_id = d.id)
  FROM domains d WHERE d.name = $1
"""


class PgDirectory:
    """storage.Directory over PostgreSQL.

    Args:
        db: the node's database.
        mail: the mail store, which creates a new user's mailboxes and collects the message
            bytes of a removed one, inside the directory's transaction.
    """

    def __init__(self, db: PgDatabase, mail: PgMailStore) -> None:
        self.db = db
        self.mail = mail

    # -- domains ------------------------------------------------------------------------------

    async def add_domain(self, name: str) -> None:
        name = name.lower()

        async def w(txn: PgTxn) -> None:
            inserted = await txn.conn.fetchval(
                "INSERT INTO domains(name) VALUES($1) ON CONFLICT (name) DO NOTHING RETURNING id", name)
            if inserted is None:
                raise AlreadyExists(f"domain {name} already exists")
            txn.emit(AccountsChanged())
        await self.db.write(w)

    async def list_domains(self) -> list[tuple[str, int]]:
        async def q(conn: asyncpg.Connection) -> list[tuple[str, int]]:
            rows = await conn.fetch("SELECT d.name, count(u.id) FROM domains d LEFT JOIN users u"
                                    " ON u.domain_id = d.id GROUP BY d.id ORDER BY d.name")
            return [(row[0], int(row[1])) for row in rows]
        return await self.db.read(q)

    async def remove_domain(self, name: str) -> None:
        name = name.lower()

        async def w(txn: PgTxn) -> None:
            conn = txn.conn
            # FOR UPDATE: a user being added to it meanwhile waits, then fails on the
            # missing domain row instead of landing in a domain that is gone.
            domain_id = await conn.fetchval("SELECT id FROM domains WHERE name = $1 FOR UPDATE", name)
            if domain_id is None:
                raise NotFound(f"no domain {name}")
            if await conn.fetchval("SELECT 1 FROM users WHERE domain_id = $1 LIMIT 1", domain_id):
                raise PermissionDenied(f"domain {name} still has users; remove them first")
            rules = await conn.execute("DELETE FROM aliases WHERE domain_id = $1", domain_id)
            await conn.execute("DELETE FROM domains WHERE id = $1", domain_id)
            txn.emit(AccountsChanged())
            if rules != "DELETE 0":
                txn.emit(AliasesChanged(name))
        await self.db.write(w)

    async def is_local_domain(self, name: str) -> bool:
        name = name.lower()
        return await self.db.read(
            lambda conn: conn.fetchval("SELECT EXISTS(SELECT 1 FROM domains WHERE name = $1)", name), single=True)

    async def first_domain(self) -> str | None:
        return await self.db.read(lambda conn: conn.fetchval("SELECT name FROM domains ORDER BY id LIMIT 1"),
                                  single=True)

    # -- users --------------------------------------------------------------------------------

    async def add_user(self, address: Address, password_hash: bytes, *, admin: bool = False) -> Account:
        async def w(txn: PgTxn) -> Account:
            conn = txn.conn
            domain_id = await _get_or_create_domain(conn, address.domain)
            user_id = await conn.fetchval(
                "INSERT INTO users(domain_id, local, local_key, password_hash, admin, created)"
                " VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT (domain_id, local_key) DO NOTHING RETURNING id",
                domain_id, address.local, address.local.lower(), password_hash, admin, int(time.time()))
            if user_id is None:
                raise AlreadyExists(f"user {address} already exists")
            await self.mail.create_default_mailboxes(txn, user_id)
            txn.emit(AccountsChanged())
            return Account(user_id, address.local, address.domain, admin)
        return await self.db.write(w)

    async def find_user(self, address: Address) -> Account | None:
        async def q(conn: asyncpg.Connection) -> Account | None:
            row = await conn.fetchrow(f"SELECT {_USER_COLS} FROM {_USER_FROM} WHERE d.name = $1 AND u.local_key = $2",
                                      address.domain, address.local.lower())
            return _account(row) if row else None
        return await self.db.read(q, single=True)

    async def get_user_by_id(self, user_id: int) -> Account:
        async def q(conn: asyncpg.Connection) -> Account:
            row = await conn.fetchrow(f"SELECT {_USER_COLS} FROM {_USER_FROM} WHERE u.id = $1", user_id)
            if row is None:
                raise NotFound("user no longer exists")
            return _account(row)
        return await self.db.read(q, single=True)

    async def list_users(self, domain: str | None = None) -> list[Account]:
        async def q(conn: asyncpg.Connection) -> list[Account]:
            if domain is None:
                rows = await conn.fetch(f"SELECT {_USER_COLS} FROM {_USER_FROM} ORDER BY d.name, u.local_key, u.id")
            else:
                rows = await conn.fetch(f"SELECT {_USER_COLS} FROM {_USER_FROM} WHERE d.name = $1"
                                        " ORDER BY u.local_key, u.id", domain.lower())
            return [_account(row) for row in rows]
        return await self.db.read(q)

    async def usage(self) -> list[UserUsage]:
        async def q(conn: asyncpg.Connection) -> list[UserUsage]:
            rows = await conn.fetch(
                f"SELECT {_USER_COLS},"
                " (SELECT count(*) FROM mailboxes b WHERE b.user_id = u.id AND NOT b.noselect),"
                " coalesce(s.messages, 0), coalesce(s.bytes, 0)"
                f" FROM {_USER_FROM} LEFT JOIN LATERAL"
                " (SELECT count(*) AS messages, sum(m.size) AS bytes FROM messages m"
                "  JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = u.id) s ON true"
                " ORDER BY d.name, u.local_key, u.id")
            return [UserUsage(_account(r), int(r[4]), int(r[5]), int(r[6])) for r in rows]
        return await self.db.read(q)

    async def credentials(self, address: Address) -> tuple[Account, bytes] | None:
        async def q(conn: asyncpg.Connection) -> tuple[Account, bytes] | None:
            row = await conn.fetchrow(f"SELECT {_USER_COLS}, u.password_hash FROM {_USER_FROM}"
                                      " WHERE d.name = $1 AND u.local_key = $2",
                                      address.domain, address.local.lower())
            return (_account(row), bytes(row[4])) if row else None
        return await self.db.read(q, single=True)

    async def set_password_hash(self, user_id: int, password_hash: bytes) -> None:
        await self._update_user(user_id, "password_hash", password_hash)

    async def set_admin(self, user_id: int, admin: bool) -> None:
        await self._update_user(user_id, "admin", admin)

    async def _update_user(self, user_id: int, column: str, value: object) -> None:
        async def w(txn: PgTxn) -> None:
            if await txn.conn.execute(f"UPDATE users SET {column} = $1 WHERE id = $2", value, user_id) == "UPDATE 0":
                raise NotFound("user no longer exists")
            txn.emit(AccountsChanged())
        await self.db.write(w)

    async def remove_user(self, user_id: int) -> None:
        async def w(txn: PgTxn) -> None:
            conn = txn.conn
            domain = await conn.fetchval("SELECT d.name FROM users u JOIN domains d ON d.id = u.domain_id"
                                         " WHERE u.id = $1 FOR UPDATE OF u", user_id)
            if domain is None:
                raise NotFound("user no longer exists")
            # Lock the user's mailboxes in ascending id order, as deliveries do, so removing a
            # user cannot deadlock with a delivery to several of its mailboxes.
            await conn.execute("SELECT id FROM mailboxes WHERE user_id = $1 ORDER BY id FOR UPDATE", user_id)
            blob_ids = [r[0] for r in await conn.fetch(
                "SELECT DISTINCT m.blob_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                " WHERE b.user_id = $1", user_id)]
            # Messages and expunge records go with their mailboxes, quota and import records
            # with the user (ON DELETE CASCADE); the bytes only once nothing else uses them.
            await conn.execute("DELETE FROM mailboxes WHERE user_id = $1", user_id)
            rules = await conn.execute("DELETE FROM aliases WHERE target_user_id = $1", user_id)
            await conn.execute("DELETE FROM users WHERE id = $1", user_id)
            await self.mail.collect_blobs(txn, blob_ids)
            txn.emit(AccountsChanged())
            if rules != "DELETE 0":
                txn.emit(AliasesChanged(domain))
        await self.db.write(w)

    # -- alias rules --------------------------------------------------------------------------

    async def alias_rules(self, domain: str) -> list[AliasRule]:
        name = domain.lower()

        async def q(conn: asyncpg.Connection) -> list[AliasRule]:
            await _domain_id(conn, name)
            return await _rules(conn, name)
        return await self.db.read(q)

    async def add_alias(self, domain: str, pattern: str, target_local: str) -> AliasRule:
        name = domain.lower()

        async def w(txn: PgTxn) -> AliasRule:
            conn = txn.conn
            # Locking the domain row orders concurrent rule changes, so positions stay distinct
            # (NO KEY: users being added to the domain meanwhile need not wait).
            domain_id = await conn.fetchval("SELECT id FROM domains WHERE name = $1 FOR NO KEY UPDATE", name)
            if domain_id is None:
                raise NotFound(f"no domain {name} (add a user in it first)")
            user_id = await conn.fetchval("SELECT id FROM users WHERE domain_id = $1 AND local_key = $2",
                                          domain_id, target_local.lower())
            if user_id is None:
                raise InvalidInput(f"alias target {target_local}@{name} is not an existing user")
            inserted = await conn.fetchval(
                "INSERT INTO aliases(domain_id, position, pattern, target_user_id)"
                " SELECT $1, coalesce(max(position), 0) + 1, $2, $3 FROM aliases WHERE domain_id = $1"
                " ON CONFLICT (domain_id, pattern) DO NOTHING RETURNING id", domain_id, pattern, user_id)
            if inserted is None:
                raise AlreadyExists(f"alias pattern {pattern!r} already exists in {name}")
            txn.emit(AliasesChanged(name))
            return next(r for r in await _rules(conn, name) if r.pattern == pattern)
        return await self.db.write(w)

    async def remove_alias(self, domain: str, pattern: str) -> None:
        name = domain.lower()

        async def w(txn: PgTxn) -> None:
            domain_id = await _domain_id(txn.conn, name)
            if await txn.conn.execute("DELETE FROM aliases WHERE domain_id = $1 AND pattern = $2",
                                      domain_id, pattern) == "DELETE 0":
                raise NotFound(f"no alias pattern {pattern!r} in {name}")
            txn.emit(AliasesChanged(name))
        await self.db.write(w)

    async def move_alias(self, domain: str, pattern: str, position: int) -> list[AliasRule]:
        name = domain.lower()

        async def w(txn: PgTxn) -> list[AliasRule]:
            conn = txn.conn
            domain_id = await conn.fetchval("SELECT id FROM domains WHERE name = $1 FOR NO KEY UPDATE", name)
            if domain_id is None:
                raise NotFound(f"no domain {name} (add a user in it first)")
            order = [r[0] for r in await conn.fetch(
                "SELECT pattern FROM aliases WHERE domain_id = $1 ORDER BY position, id", domain_id)]
            if pattern not in order:
                raise NotFound(f"no alias pattern {pattern!r} in {name}")
            if not 1 <= position <= len(order):
                raise InvalidInput(f"position must be from 1 to {len(order)}")
            order.remove(pattern)
            order.insert(position - 1, pattern)
            await conn.execute("UPDATE aliases a SET position = n.position FROM unnest($2::text[])"
                               " WITH ORDINALITY AS n(pattern, position)"
                               " WHERE a.domain_id = $1 AND a.pattern = n.pattern", domain_id, order)
            txn.emit(AliasesChanged(name))
            return await _rules(conn, name)
        return await self.db.write(w)

    async def lookup(self, address: Address) -> AddressLookup:
        async def q(conn: asyncpg.Connection) -> AddressLookup:
            row = await conn.fetchrow(_LOOKUP, address.domain, address.local.lower())
            if row is None:
                return AddressLookup(False, None, (), None)

            def user(rec: asyncpg.Record | None) -> Account | None:
                return Account(rec[0], rec[1], address.domain, rec[2]) if rec is not None else None
            rules = tuple((AliasRule(address.domain, i + 1, r[0], r[2]), Account(r[1], r[2], address.domain, r[3]))
                          for i, r in enumerate(row[3] or ()))
            return AddressLookup(True, user(row[1]), rules, user(row[2]))
        return await self.db.read(q, single=True)

    # -- quotas -------------------------------------------------------------------------------

    async def set_quota(self, user_id: int, limit: int | None) -> None:
        async def w(txn: PgTxn) -> None:
            if limit is None:
                await txn.conn.execute("DELETE FROM quotas WHERE user_id = $1", user_id)
            else:
                try:
                    await txn.conn.execute("INSERT INTO quotas(user_id, bytes) VALUES($1, $2)"
                                           " ON CONFLICT (user_id) DO UPDATE SET bytes = excluded.bytes",
                                           user_id, limit)
                except asyncpg.ForeignKeyViolationError:
                    raise NotFound("user no longer exists") from None
            txn.emit(AccountsChanged())
        await self.db.write(w)

    async def quota_overrides(self) -> dict[int, int]:
        async def q(conn: asyncpg.Connection) -> dict[int, int]:
            return {int(r[0]): int(r[1]) for r in await conn.fetch("SELECT user_id, bytes FROM quotas")}
        return await self.db.read(q)

    async def quota_usage(self, user_ids: Sequence[int], default: int, *,
                          limited_only: bool = False) -> dict[int, tuple[int, int, bool]]:
        ids = list(dict.fromkeys(user_ids))

        # With limited_only, usage is summed only where a limit applies (0 means none): the
        # scan is the cost.
        async def q(conn: asyncpg.Connection) -> dict[int, tuple[int, int, bool]]:
            rows = await conn.fetch(
                "SELECT u.id, q.bytes, CASE WHEN $3 AND coalesce(q.bytes, $2) = 0 THEN 0 ELSE"
                " (SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                "  WHERE b.user_id = u.id) END"
                " FROM unnest($1::bigint[]) AS i(id) JOIN users u ON u.id = i.id"
                " LEFT JOIN quotas q ON q.user_id = u.id",
                ids, default, limited_only)
            return {int(r[0]): (int(r[2]), default if r[1] is None else int(r[1]), r[1] is not None) for r in rows}
        return await self.db.read(q, single=True)

    # -- shared secrets -----------------------------------------------------------------------

    async def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        async def get(conn: asyncpg.Connection) -> bytes | None:
            value = await conn.fetchval("SELECT value FROM secrets WHERE name = $1", name)
            return bytes(value) if value is not None else None
        found = await self.db.read(get)
        if found is not None:
            return found
        # Key generation may be slow (RSA for DKIM): off the loop, and outside the transaction.
        made = await asyncio.to_thread(create)

        async def w(txn: PgTxn) -> bytes:
            # The first node to commit wins; everyone else gets its bytes, not their own.
            await txn.conn.execute("INSERT INTO secrets(name, value) VALUES($1, $2) ON CONFLICT (name) DO NOTHING",
                                   name, made)
            return bytes(await txn.conn.fetchval("SELECT value FROM secrets WHERE name = $1", name))
        return await self.db.write(w)

    async def drop_secret(self, name: str) -> None:
        async def w(txn: PgTxn) -> None:
            await txn.conn.execute("DELETE FROM secrets WHERE name = $1", name)
        await self.db.write(w)
