"""Versioned schema of rmail.db. ``schema.sql`` creates version 1 (idempotently, so a store
made by an older rmail opens unchanged); each step below brings ``PRAGMA user_version`` one
version further, in the same transaction as its change."""

from __future__ import annotations

import sqlite3
from typing import Final

from ..errors import TemporaryFailure

__all__ = ["SCHEMA_VERSION", "migrate"]

#: (version reached, statements). Append only; never edit a released step.
STEPS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    # The outbound queue: a scheduler holds an entry until leased_until (unix seconds), so
    # schedulers in several processes never attempt one entry twice at once.
    (2, ("ALTER TABLE queue ADD COLUMN leased_until REAL NOT NULL DEFAULT 0",
         "CREATE INDEX IF NOT EXISTS queue_due ON queue(next_attempt, id)")),
)
SCHEMA_VERSION: Final = STEPS[-1][0]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found.

    Raises:
        TemporaryFailure: the store was written by a newer rmail (its schema is unknown here).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = conn.execute("PRAGMA user_version").fetchone()[0] or 1
        if found > SCHEMA_VERSION:
            raise TemporaryFailure(f"rmail.db has schema version {found}, newer than this rmail knows"
                                   f" ({SCHEMA_VERSION}); upgrade rmail")
        for version, statements in STEPS:
            if version > found:
                for sql in statements:
                    conn.execute(sql)
                conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
