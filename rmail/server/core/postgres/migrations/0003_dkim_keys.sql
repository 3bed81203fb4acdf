-- DKIM signing keys per domain (core/dkimkeys.py), shared by every node: a key made on one
-- node signs on all of them.
--
-- ``version`` changes on every save and is what DkimKeys caches on (one indexed read per
-- signature). It comes from a sequence, so it never repeats, not even after a domain's keys
-- were deleted and made again: a cache can never mistake new keys for old ones.
CREATE SEQUENCE dkim_version;
CREATE TABLE dkim_domains(
    domain text PRIMARY KEY,                        -- A-label form, the DKIM d= value
    version bigint NOT NULL
);
CREATE TABLE dkim_generations(
    domain text NOT NULL REFERENCES dkim_domains(domain) ON DELETE CASCADE,
    name text NOT NULL,
    position integer NOT NULL,                      -- oldest first
    state text NOT NULL CHECK (state IN ('pending', 'active', 'retired')),
    created bigint NOT NULL,                        -- unix seconds
    changed bigint NOT NULL,                        -- unix seconds of the last state change
    PRIMARY KEY (domain, name),
    UNIQUE (domain, position)
);
CREATE TABLE dkim_private_keys(
    domain text NOT NULL,
    generation text NOT NULL,
    position smallint NOT NULL,                     -- RSA first, then Ed25519
    selector text NOT NULL,                         -- the DKIM s= value
    algorithm text NOT NULL,                        -- "rsa" or "ed25519"
    private_pem bytea NOT NULL,                     -- PKCS#8 PEM: a secret
    PRIMARY KEY (domain, generation, position),
    UNIQUE (domain, selector),
    FOREIGN KEY (domain, generation) REFERENCES dkim_generations(domain, name) ON DELETE CASCADE
);
