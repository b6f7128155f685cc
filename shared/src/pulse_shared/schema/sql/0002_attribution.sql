-- Credits per conversion × model × touchpoint. A late touch produces a new version of the
-- conversion's credits; readers keep only the highest version per (conversion, model):
-- read `attribution_credits_latest` (or apply the same filter).
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

-- Only the latest version of each conversion × model (what every reader should use).
CREATE VIEW IF NOT EXISTS attribution_credits_latest AS
SELECT * EXCEPT (latest_version)
FROM
(
    SELECT *, max(version) OVER (PARTITION BY conversion_id, model) AS latest_version
    FROM attribution_credits FINAL
)
WHERE version = latest_version;

-- Conversion milestones (pipeline lead/opportunity/won, new subscriptions) with the
-- revenue they are worth (deal amount, or MRR × 12).
CREATE TABLE IF NOT EXISTS conversions
(
    conversion_id String,
    account_id    String,
    milestone     LowCardinality(String),
    converted_at  DateTime64(3, 'UTC'),
    revenue       Decimal(18, 4),
    currency      LowCardinality(String),
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (account_id, conversion_id);

-- One row per data-driven model run (Markov, Shapley) with its parameters.
CREATE TABLE IF NOT EXISTS attribution_model_runs
(
    run_id           String,
    model            LowCardinality(String),
    milestone        LowCardinality(String),
    version          UInt32,
    parameters       String COMMENT 'JSON',
    started_at       DateTime64(3, 'UTC'),
    finished_at      DateTime64(3, 'UTC'),
    journeys         UInt64,
    conversions      UInt64,
    channels         UInt32,
    approximate      UInt8,
    total_conversion_value Decimal(18, 4)
)
ENGINE = ReplacingMergeTree
ORDER BY (model, milestone, run_id);

-- Channel-level results of a run: removal effect (Markov) or Shapley value, and the
-- conversions / value shared out in proportion to it.
CREATE TABLE IF NOT EXISTS attribution_channel_results
(
    run_id                 String,
    model                  LowCardinality(String),
    milestone              LowCardinality(String),
    channel                LowCardinality(String),
    removal_effect         Nullable(Float64),
    shapley_value          Nullable(Float64),
    share                  Float64,
    total_conversions      Float64,
    total_conversion_value Float64,
    computed_at            DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (model, milestone, run_id, channel);
