-- Current state per alert fingerprint: survives restarts so nothing is re-sent.
CREATE TABLE IF NOT EXISTS alert_state
(
    fingerprint  String,
    rule         LowCardinality(String),
    state        LowCardinality(String),
    severity     LowCardinality(String),
    kpi          LowCardinality(String),
    labels       Map(String, String),
    value        Nullable(Float64),
    threshold    Nullable(Float64),
    active_since DateTime64(3, 'UTC'),
    last_sent_at Nullable(DateTime64(3, 'UTC')),
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY fingerprint;

-- Every notification sent (one row per alert transition).
CREATE TABLE IF NOT EXISTS alert_events
(
    alert_id     String,
    fingerprint  String,
    rule         LowCardinality(String),
    state        LowCardinality(String),
    severity     LowCardinality(String),
    kpi          LowCardinality(String),
    labels       Map(String, String),
    annotations  Map(String, String),
    value        Nullable(Float64),
    threshold    Nullable(Float64),
    starts_at    DateTime64(3, 'UTC'),
    ends_at      Nullable(DateTime64(3, 'UTC')),
    sent_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (sent_at, alert_id);
