-- Pulse users (pulse_shared.auth owns 0055-0059): one row version per change of a user
-- (added, revoked). The token is stored only as its salted Argon2id hash; token_id is the
-- token's public prefix, used to find the row without scanning hashes. Readers read FINAL.
CREATE TABLE IF NOT EXISTS pulse_users
(
    name        String,
    role        LowCardinality(String) COMMENT 'cmo, director, marketing_ops, cx or platform',
    token_id    String COMMENT 'public part of the token (pulse_<token_id>_<secret>)',
    token_hash  String COMMENT 'Argon2id hash of the secret part, salted; never the token',
    created_at  DateTime64(3, 'UTC'),
    created_by  String,
    expires_at  Nullable(DateTime64(3, 'UTC')),
    revoked_at  Nullable(DateTime64(3, 'UTC')),
    revoked_by  String DEFAULT '',
    updated_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY name
