-- Current state per alert fingerprint: survives restarts so nothing is re-sent.
-- One row version per change; read with FINAL (latest updated_at wins).
CREATE TABLE IF NOT EXISTS alert_state
(
    fingerprint  String,
    rule         LowCardinality(String),
    state        LowCardinality(String),
    severity     LowCardinality(String),
    kpi          LowCardinality(String),
    labels       Map(String, String),
    annotations  Map(String, String),
    value        Nullable(Float64),
    threshold    Nullable(Float64),
    active_since Nullable(DateTime64(3, 'UTC')),
    fired_at     Nullable(DateTime64(3, 'UTC')),
    resolved_at  Nullable(DateTime64(3, 'UTC')),
    consecutive  UInt32,
    notified     LowCardinality(String),
    last_sent_at Nullable(DateTime64(3, 'UTC')),
    period_start Nullable(Date),
    as_of        Nullable(DateTime64(6, 'UTC')),
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY fingerprint;

-- Every notification (one row per alert transition or repeat); also the outbox:
-- delivered: 0 = not sent, 1 = on alerts.v1, 2 = webhook/e-mail done too; rows below 2
-- are re-sent after a crash (same alert_id).
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
    sent_at      DateTime64(3, 'UTC'),
    group_key    String,
    actions      String,
    delivered    UInt8,
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY alert_id;

-- Silences: mute notifications of matching alerts until ends_at.
CREATE TABLE IF NOT EXISTS alert_silences
(
    silence_id  String,
    matchers    Map(String, String),
    starts_at   DateTime64(3, 'UTC'),
    ends_at     DateTime64(3, 'UTC'),
    created_by  String,
    comment     String,
    updated_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY silence_id;
