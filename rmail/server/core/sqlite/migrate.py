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
    # Subscriptions are the user's own list of names, independent of mailboxes (RFC 3501
    # §6.3.6): a name stays subscribed when its mailbox is deleted or renamed. What LSUB
    # showed before (subscribed, selectable mailboxes) carries over.
    (3, ("CREATE TABLE subscriptions("
         " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
         " name TEXT NOT NULL,"
         " PRIMARY KEY(user_id, name)) WITHOUT ROWID",
         "INSERT INTO subscriptions(user_id, name)"
         " SELECT user_id, name FROM mailboxes WHERE subscribed <> 0 AND noselect = 0",
         "ALTER TABLE mailboxes DROP COLUMN subscribed")),
    # The save date (RFC 8514 §3): when a message was saved into its mailbox, unix seconds.
    # Messages stored before rmail kept it get their INTERNALDATE rather than NIL ("unknown",
    # which RFC 8514 also allows): for delivered mail and an APPEND without a date that is
    # exactly the moment of saving, and with it every mailbox has a save date on every
    # message (SAVEDATESUPPORTED matches all, SAVED* searches and expiry see old mail too).
    # Every write names the column; the default only lets SQLite add it NOT NULL.
    (4, ("ALTER TABLE messages ADD COLUMN savedate INTEGER NOT NULL DEFAULT 0",
         "UPDATE messages SET savedate = internaldate")),
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
