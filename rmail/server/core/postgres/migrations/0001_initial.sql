-- rmail on PostgreSQL, schema version 1. Names and meanings follow core/sqlite/schema.sql;
-- message bytes live in blob_data whatever their size (no files: every node sees them).
CREATE TABLE meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE domains(
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE                       -- lower-case
);
CREATE TABLE users(
    id bigserial PRIMARY KEY,
    domain_id bigint NOT NULL REFERENCES domains(id),
    local text NOT NULL,                            -- as given
    local_key text NOT NULL,                        -- lower-case, for lookups
    password_hash bytea NOT NULL,                   -- bcrypt
    admin boolean NOT NULL DEFAULT false,
    created bigint NOT NULL,                        -- unix seconds
    UNIQUE(domain_id, local_key)
);
CREATE TABLE aliases(
    id bigserial PRIMARY KEY,
    domain_id bigint NOT NULL REFERENCES domains(id),
    position integer NOT NULL,                      -- declaration order
    pattern text NOT NULL,
    target_user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    UNIQUE(domain_id, pattern)
);
-- Mailbox ids are never reused (a sequence never hands a value out twice): an id names one
-- life of a mailbox. UIDVALIDITY comes from its own sequence-like row in meta.
CREATE TABLE mailboxes(
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name text NOT NULL,                             -- Unicode, "/" separated, INBOX upper-case
    special_use text,
    subscribed boolean NOT NULL DEFAULT true,
    noselect boolean NOT NULL DEFAULT false,        -- deleted but has children (RFC 3501 §6.3.4)
    uidvalidity bigint NOT NULL,
    uidnext bigint NOT NULL DEFAULT 1,
    highestmodseq bigint NOT NULL DEFAULT 1,
    recent_uid bigint NOT NULL DEFAULT 1,           -- first UID no session has seen as \Recent
    UNIQUE(user_id, name)
);
CREATE TABLE blobs(
    id text PRIMARY KEY,                            -- random hex
    size bigint NOT NULL,
    subject text NOT NULL,
    from_ text NOT NULL,
    to_ text NOT NULL,
    cc text NOT NULL,
    date bigint,                                    -- Date header, unix seconds
    message_id text NOT NULL,
    in_reply_to text NOT NULL,
    refs text NOT NULL,
    preview text NOT NULL,
    envelope bytea NOT NULL,
    body bytea NOT NULL,
    bodystructure bytea NOT NULL,
    header_text text NOT NULL,
    search_text text NOT NULL
);
CREATE TABLE blob_data(                            -- the bytes of every message
    id text PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
    data bytea NOT NULL
);
-- Bytes are already compressed or small; skip TOAST compression (costs CPU on every read).
ALTER TABLE blob_data ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE messages(
    mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid bigint NOT NULL,
    modseq bigint NOT NULL,
    sysflags integer NOT NULL DEFAULT 0,            -- bit mask, model.SYSTEM_FLAGS
    keywords text NOT NULL DEFAULT '',              -- space separated, sorted
    internaldate bigint NOT NULL,                   -- unix seconds
    size bigint NOT NULL,
    blob_id text NOT NULL REFERENCES blobs(id),
    PRIMARY KEY(mailbox_id, uid)
);
CREATE INDEX messages_blob ON messages(blob_id);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE TABLE expunged(                             -- tombstones, so sessions learn of expunges
    mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid bigint NOT NULL,
    modseq bigint NOT NULL,
    PRIMARY KEY(mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
CREATE TABLE queue(
    id bigserial PRIMARY KEY,
    sender text NOT NULL,
    recipient text NOT NULL,
    blob_id text NOT NULL REFERENCES blobs(id),
    size bigint NOT NULL,
    created bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt bigint NOT NULL,
    last_error text NOT NULL DEFAULT '',
    delayed_notified boolean NOT NULL DEFAULT false,
    leased_until double precision NOT NULL DEFAULT 0   -- a scheduler holds the entry until then
);
CREATE INDEX queue_blob ON queue(blob_id);
CREATE INDEX queue_due ON queue(next_attempt, id);
CREATE TABLE quotas(
    user_id bigint PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    bytes bigint NOT NULL                           -- 0: unlimited; no row: [limits] quota
);
CREATE TABLE imported(
    user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source text NOT NULL,
    key text NOT NULL,
    PRIMARY KEY(user_id, source, key)
);
CREATE TABLE secrets(                              -- shared by every node (JWT key, ...)
    name text PRIMARY KEY,
    value bytea NOT NULL
);
