-- rmail.db schema. Bytes of large messages live in blobs/; everything else is here.
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE                       -- lower-case
);
CREATE TABLE IF NOT EXISTS users(
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    local TEXT NOT NULL,                            -- as given
    local_key TEXT NOT NULL,                        -- lower-case, for lookups
    password_hash BLOB NOT NULL,                    -- bcrypt
    admin INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    UNIQUE(domain_id, local_key)
);
CREATE TABLE IF NOT EXISTS aliases(
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    position INTEGER NOT NULL,                      -- declaration order
    pattern TEXT NOT NULL,
    target_user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    UNIQUE(domain_id, pattern)
);
CREATE TABLE IF NOT EXISTS mailboxes(
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,                             -- Unicode, "/" separated, INBOX upper-case
    special_use TEXT,
    subscribed INTEGER NOT NULL DEFAULT 1,
    noselect INTEGER NOT NULL DEFAULT 0,            -- deleted but has children (RFC 3501 §6.3.4)
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    recent_uid INTEGER NOT NULL DEFAULT 1,          -- first UID no session has seen as \Recent
    UNIQUE(user_id, name)
);
CREATE TABLE IF NOT EXISTS blobs(
    id TEXT PRIMARY KEY,                            -- random hex, the file name under blobs/
    size INTEGER NOT NULL,
    -- Parsed once at delivery (core.mime). Small, hot columns first: SQLite reads a row's
    -- columns in order, so a column after a large one costs a walk over its overflow pages.
    subject TEXT NOT NULL,
    from_ TEXT NOT NULL,
    to_ TEXT NOT NULL,
    cc TEXT NOT NULL,
    date INTEGER,                                   -- Date header, unix seconds
    message_id TEXT NOT NULL,
    in_reply_to TEXT NOT NULL,
    refs TEXT NOT NULL,
    preview TEXT NOT NULL,
    envelope BLOB NOT NULL,
    body BLOB NOT NULL,
    bodystructure BLOB NOT NULL,
    header_text TEXT NOT NULL,
    search_text TEXT NOT NULL                       -- up to 1 MiB: last
);
CREATE TABLE IF NOT EXISTS blob_data(              -- bytes of small messages (store.INLINE_BLOB_MAX)
    id TEXT PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS messages(
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    sysflags INTEGER NOT NULL DEFAULT 0,            -- bit mask, model.SYSTEM_FLAGS
    keywords TEXT NOT NULL DEFAULT '',              -- space separated
    internaldate INTEGER NOT NULL,                  -- unix seconds
    size INTEGER NOT NULL,
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    PRIMARY KEY(mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_blob ON messages(blob_id);
CREATE INDEX IF NOT EXISTS messages_modseq ON messages(mailbox_id, modseq);
CREATE TABLE IF NOT EXISTS expunged(               -- tombstones, so sessions learn of expunges
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY(mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox_id, modseq);
CREATE TABLE IF NOT EXISTS queue(
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    delayed_notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_blob ON queue(blob_id);
CREATE TABLE IF NOT EXISTS quotas(                 -- per-user storage limits (core.quota)
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    bytes INTEGER NOT NULL                          -- 0: unlimited; no row: [limits] quota
);
CREATE TABLE IF NOT EXISTS imported(               -- source identities of imported mail (core.mailmove)
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source TEXT NOT NULL,                           -- "maildir" or "mbox"
    key TEXT NOT NULL,                              -- mailbox NUL file base name / sha256#n
    PRIMARY KEY(user_id, source, key)
) WITHOUT ROWID;
