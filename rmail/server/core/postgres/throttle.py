"""The failed-login ledger on PostgreSQL (storage.FailureLedger): one count per key for every
node of the store, so guesses spread over nodes meet the same limits as guesses at one.

Each call is one statement outside any explicit transaction: one round trip, committed on its
own. The leaky bucket is computed by the statement itself, on the database's clock, in
``INSERT ... ON CONFLICT DO UPDATE``: the row lock serialises nodes failing on one key, so no
increment is lost, and keys are taken in ascending order so two calls never deadlock. The
transaction that starts a lock writes its id into ``locked_by``, which tells the caller
exactly whether its failure was the one. ``version`` comes from a sequence and is taken while
the row is locked, so a later change always has a higher one.

Bounded: every failure deletes a few rows worth nothing any more (leaked to 0, lock over,
plus one period; the expression index finds them), every success a few expired known pairs;
``SKIP LOCKED`` keeps nodes sweeping at once from waiting on each other. Keys are stored as
SHA-256 digests: a hostile user name (NUL, lone surrogates, 320 astral characters) can neither
break a statement nor outgrow an index entry.
"""

from __future__ import annotations

import hashlib
from typing import Awaitable, Callable, Sequence, TypeVar

import asyncpg

from ..storage.throttle import Bucket, FailureCount, Standing
from .database import PgDatabase, store_error

__all__ = ["PgFailureLedger"]

T = TypeVar("T")

#: Worthless rows deleted at most per call: more than a call can create, so the table shrinks
#: back whenever failures slow down, while no call does much work.
SWEEP = 32
#: Float slack when comparing leaked counts with integer limits (as the guard does).
_EPSILON = 1e-9

_NOW = "extract(epoch FROM statement_timestamp())::float8"

_LOOK = f"""
WITH clock AS (SELECT {_NOW} AS now)
SELECT f.key,
       greatest(0, f.level - greatest(0, clock.now - f.stamp) * f.lim / f.seconds),
       greatest(0, f.locked_until - clock.now),
       f.version,
       (SELECT greatest(0, k.until - clock.now) FROM login_known k WHERE k.key = $2)
FROM clock LEFT JOIN login_failures f ON f.key = ANY($1::bytea[])
"""

# In the update, "now" is the later of the row's stamp and this statement's clock: a call that
# started before another one committed must not leak the count backwards.
_UPDATE_NOW = "greatest(f.stamp, EXCLUDED.stamp)"
_GROWN = (f"(greatest(0, f.level - ({_UPDATE_NOW} - f.stamp) * EXCLUDED.lim / EXCLUDED.seconds) + 1)")
_LOCKS = f"({_GROWN} > EXCLUDED.lim - 1 + {_EPSILON})"

_FAIL = f"""
WITH clock AS (SELECT {_NOW} AS now),
swept AS (
    DELETE FROM login_failures WHERE key IN (
        SELECT key FROM login_failures, clock
        WHERE greatest(locked_until, stamp + level * seconds / lim) + seconds < clock.now
          AND key <> ALL($1::bytea[])
        LIMIT {SWEEP} FOR UPDATE SKIP LOCKED))
INSERT INTO login_failures AS f(key, level, stamp, locked_until, locked_by, lim, seconds, version)
SELECT b.key,
       CASE WHEN b.lim <= 1 THEN 0 ELSE 1 END,
       clock.now,
       CASE WHEN b.lim <= 1 THEN clock.now + b.seconds ELSE 0 END,
       CASE WHEN b.lim <= 1 THEN pg_current_xact_id() END,
       b.lim, b.seconds, nextval('login_failure_versions')
FROM unnest($1::bytea[], $2::int4[], $3::float8[]) AS b(key, lim, seconds), clock
ORDER BY b.key
ON CONFLICT (key) DO UPDATE SET
    level = CASE WHEN {_LOCKS} THEN 0 ELSE {_GROWN} END,
    locked_until = CASE WHEN {_LOCKS} THEN {_UPDATE_NOW} + EXCLUDED.seconds ELSE f.locked_until END,
    locked_by = CASE WHEN {_LOCKS} THEN pg_current_xact_id() ELSE f.locked_by END,
    stamp = {_UPDATE_NOW},
    lim = EXCLUDED.lim,
    seconds = EXCLUDED.seconds,
    version = nextval('login_failure_versions')
RETURNING key, level, greatest(0, locked_until - stamp), version,
          coalesce(locked_by = pg_current_xact_id(), false)
"""

_SUCCEED = f"""
WITH clock AS (SELECT {_NOW} AS now),
cleared AS (
    UPDATE login_failures SET level = 0, locked_until = 0, locked_by = NULL,
                              stamp = greatest(stamp, clock.now), version = nextval('login_failure_versions')
    FROM clock WHERE key = $1),
swept AS (
    DELETE FROM login_known WHERE key IN (
        SELECT key FROM login_known, clock WHERE until < clock.now AND key <> $1
        LIMIT {SWEEP} FOR UPDATE SKIP LOCKED))
INSERT INTO login_known(key, until) SELECT $1, clock.now + $2 FROM clock
ON CONFLICT (key) DO UPDATE SET until = greatest(login_known.until, EXCLUDED.until)
"""


def digest(key: str) -> bytes:
    """What a key is stored as; surrogates (from undecodable bytes) are hashed as they are."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class PgFailureLedger:
    """storage.FailureLedger over the node's pool (the change feed is not involved: a node
    asks the ledger on every login rather than being told)."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise store_error(exc, "the failed-login counts could not be reached; try again") from exc

    async def look(self, keys: Sequence[str], known: str) -> Standing:
        by_digest = {digest(key): key for key in keys}
        rows = await self._run(lambda: self.db.pool.fetch(_LOOK, list(by_digest), digest(known)))
        counts = {by_digest[bytes(r[0])]: FailureCount(r[1], r[2], r[3]) for r in rows if r[0] is not None}
        return Standing(counts, rows[0][4] or 0.0)

    async def fail(self, buckets: Sequence[Bucket]) -> dict[str, FailureCount]:
        # One row per key (a key twice in one INSERT ... ON CONFLICT is an error), ascending.
        unique = sorted({digest(b.key): b for b in buckets}.items())
        rows = await self._run(lambda: self.db.pool.fetch(
            _FAIL, [d for d, _ in unique], [b.limit for _, b in unique], [float(b.seconds) for _, b in unique]))
        by_digest = {d: b.key for d, b in unique}
        return {by_digest[bytes(r[0])]: FailureCount(r[1], r[2], r[3], r[4]) for r in rows}

    async def succeed(self, key: str, known_seconds: float) -> None:
        await self._run(lambda: self.db.pool.execute(_SUCCEED, digest(key), float(known_seconds)))
