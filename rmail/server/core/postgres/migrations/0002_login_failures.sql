-- Schema version 2: failed-login counters and known pairs shared by every node
-- (storage/throttle.py says what they mean, postgres/throttle.py how they change).
-- Times are unix seconds on the database's clock, the one clock every node shares.
CREATE SEQUENCE login_failure_versions;
CREATE TABLE login_failures(
    key bytea PRIMARY KEY,              -- SHA-256 of the guard's key: any user name fits
    level float8 NOT NULL,              -- failures as of stamp
    stamp float8 NOT NULL,              -- when level was last brought up to date
    locked_until float8 NOT NULL,       -- in the past: not locked
    locked_by xid8,                     -- the transaction that started the lock
    lim integer NOT NULL CHECK (lim >= 1),      -- the tier's rule, as of the last failure
    seconds float8 NOT NULL CHECK (seconds > 0),
    version bigint NOT NULL             -- from login_failure_versions: higher on every change
);
-- When a row is worth nothing (leaked to 0, lock over) plus one period: the sweep goes by it.
CREATE INDEX login_failures_expiry
    ON login_failures ((greatest(locked_until, stamp + level * seconds / lim) + seconds));
CREATE TABLE login_known(
    key bytea PRIMARY KEY,              -- as login_failures.key, of a pair
    until float8 NOT NULL
);
CREATE INDEX login_known_until ON login_known(until);
