-- Privacy erasures (pulse_shared.erasure owns 0050-0059): the audit log of who erased
-- which subject, when, and how many rows per table, and the tombstones every writer of a
-- raw table checks so a replay or a late redelivery cannot bring an erased subject back.
-- Accounts are business ids and kept as they are; contacts only as their salted hash.
CREATE TABLE IF NOT EXISTS erasures
(
    erasure_id   String,
    subject_kind LowCardinality(String) COMMENT 'account or contact',
    subject      String COMMENT 'account_id, or the contact_id (salted SHA-256), never raw',
    actor        String COMMENT 'who asked (--actor, or the OS user)',
    requested_at DateTime64(3, 'UTC'),
    completed_at Nullable(DateTime64(3, 'UTC')),
    row_counts   Map(String, UInt64) COMMENT 'table -> rows removed',
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY erasure_id
