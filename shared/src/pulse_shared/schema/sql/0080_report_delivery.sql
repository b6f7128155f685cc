-- Report delivery (pulse_reporting.delivery owns 0080-0089).
-- Subscriptions: who receives which report kind, as whom (a user, whose current role
-- decides what it sees, or a role), by e-mail and/or a Slack-compatible webhook. One row
-- version per change; unsubscribing writes a version with active = 0 (and without its
-- address and webhook). Readers read FINAL.
-- The address and the webhook URL (a bearer secret) are Fernet tokens ("fernet:…", key
-- PULSE_REPORTING_DELIVERY_KEY, pulse_reporting.delivery.secrets), never clear text; the
-- address is also in contact_id as its salted hash (pulse_shared.privacy.contact_hash), so
-- pulse privacy erase --contact deletes the rows like any other contact's.
-- Access: no persona role (nor Grafana's per-role users) is granted these tables
-- (pulse_shared.access.BUSINESS_TABLES does not list them); Pulse reads them as the writer.
-- The deploy's pulse_reader user has SELECT on the whole database, so it can read the
-- ciphertexts and hashes, never the addresses or webhooks.
CREATE TABLE IF NOT EXISTS report_subscriptions
(
    subscription_id String,
    subscriber_kind LowCardinality(String) COMMENT 'user or role',
    subscriber      String COMMENT 'a pulse_users name, or a role name',
    report_kind     LowCardinality(String),
    formats         Array(LowCardinality(String)) COMMENT 'attachments: pdf, html, md, json',
    email           String DEFAULT '' COMMENT 'encrypted: extra/explicit address (user: else its name)',
    webhook_url     String DEFAULT '' COMMENT 'encrypted: Slack-compatible incoming webhook (a secret)',
    contact_id      String DEFAULT '' COMMENT 'salted hash of the address named (email, else a user name)',
    active          UInt8 DEFAULT 1,
    created_at      DateTime64(3, 'UTC'),
    created_by      String DEFAULT '',
    updated_at      DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY subscription_id;

-- The delivery log: one row per delivery outcome (after its retries). Recipients are
-- masked (j***@example.com, https://hooks.example.com/…): never a full address or a
-- webhook's secret path; an e-mail recipient's salted hash is in contact_id when known
-- (erasure deletes its rows).
CREATE TABLE IF NOT EXISTS report_deliveries
(
    delivery_id     String,
    report_id       String,
    report_kind     LowCardinality(String),
    period          String,
    subscription_id String DEFAULT '' COMMENT 'empty for a one-off pulse report send',
    channel         LowCardinality(String) COMMENT 'email or webhook',
    recipient       String COMMENT 'masked',
    contact_id      String DEFAULT '' COMMENT 'salted hash of an e-mail recipient, if known',
    role            LowCardinality(String) COMMENT 'whose view was sent',
    status          LowCardinality(String) COMMENT 'sent or failed',
    attempts        UInt8,
    error           String DEFAULT '',
    at              DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(at)
ORDER BY (report_id, delivery_id);
