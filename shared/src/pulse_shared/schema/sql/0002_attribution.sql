-- Credits per conversion × model × touchpoint. A late touch produces a new version of the
-- conversion's credits; readers keep only the highest version per (conversion, model).
CREATE TABLE IF NOT EXISTS attribution_credits
(
    conversion_id       String,
    milestone           LowCardinality(String),
    model               LowCardinality(String),
    version             UInt32,
    account_id          String,
    touchpoint_event_id String,
    channel             LowCardinality(String),
    campaign_id         String,
    touched_at          DateTime64(3, 'UTC'),
    converted_at        DateTime64(3, 'UTC'),
    credit              Float64,
    credited_revenue    Decimal(18, 4),
    currency            LowCardinality(String),
    computed_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(converted_at)
ORDER BY (conversion_id, model, version, touchpoint_event_id);
