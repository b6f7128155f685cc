-- Latest value of each KPI per grain × dimension × period (computed_at decides).
CREATE TABLE IF NOT EXISTS kpi_values
(
    kpi             LowCardinality(String),
    grain           LowCardinality(String),
    period          String,
    period_start    Date,
    dimension       LowCardinality(String),
    dimension_value String,
    value           Nullable(Float64),
    unit            LowCardinality(String),
    computed_at     DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (kpi, grain, dimension, dimension_value, period_start);

-- One MRR movement per subscription event (ChartMogul definitions, event by event).
-- Recomputed for the whole account when one of its events arrives, so a late event
-- re-classifies the movements after it; computed_at decides which row wins.
CREATE TABLE IF NOT EXISTS kpi_mrr_movements
(
    event_id     String,
    account_id   String,
    occurred_at  DateTime64(3, 'UTC'),
    kind         LowCardinality(String) COMMENT 'new, expansion, contraction, churn, reactivation, none',
    mrr_before   Decimal(18, 4),
    mrr_after    Decimal(18, 4),
    paying_delta Int8 COMMENT '+1 starts paying, -1 stops paying',
    computed_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (account_id, event_id)
